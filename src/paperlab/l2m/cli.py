"""``paperlab l2m``: bipartite/two-point mutual information of text, the Gaussian check, and the L²M condition."""

from __future__ import annotations

from typing import Annotated

import typer

from paperlab.core.cli import Model, Out, Quick, Seed, print_run, system_app

app = system_app("l2m", "L²M: mutual-information scaling law for long-context language modelling.")


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    model: Model = "default",
    scorer: Annotated[str, typer.Option(help="torch (transformers, any device) or vllm (GPU; prompt_logprobs, "
                                        "needs --model hf:<path>).")] = "torch",
    corpus: Annotated[str | None, typer.Option(help="gutenberg, wikitext2, a .txt file or a folder of .txt files.")] = None,
    samples: Annotated[int | None, typer.Option(min=2, help="Text blocks for the bipartite MI.")] = None,
    max_split: Annotated[int | None, typer.Option(help="Largest L_x (power of two).")] = None,
    ratios: Annotated[str | None, typer.Option(help="Comma-separated r = L / L_x (2 = bipartite I_{L/2;L}).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Samples per LM forward batch.")] = None,
    no_vclub: Annotated[bool, typer.Option("--no-vclub", help="Skip the vCLUB estimator (halves LM work).")] = False,
    no_text: Annotated[bool, typer.Option("--no-text", help="Skip the LM part (Gaussian + training only).")] = False,
    no_train: Annotated[bool, typer.Option("--no-train", help="Skip the transformer-vs-GRU training check.")] = False,
    train_steps: Annotated[int | None, typer.Option(min=1, help="Training steps per model.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads.")] = None,
    seed: Seed = 0,
) -> None:
    """Measure bipartite MI (direct + vCLUB) and two-point MI, check the estimators on a Gaussian with exact MI,
    and compare per-position loss of a transformer and a fixed-state model."""
    from paperlab.l2m.experiment import reproduce

    overrides = {k: v for k, v in dict(
        corpus=corpus, n_samples=samples, max_split=max_split, batch_size=batch_size, train_steps=train_steps,
        threads=threads, ratios=[int(r) for r in ratios.split(",") if r.strip()] if ratios else None,
    ).items() if v is not None}
    overrides.update(model=model, scorer=scorer, seed=seed, vclub=not no_vclub, text_mi=not no_text,
                     train=not no_train)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def gaussian(
    gamma: Annotated[float, typer.Option(help="Innovation decay exponent (asymptotic beta = 1 - gamma).")] = 0.5,
    a: Annotated[float, typer.Option(help="Innovation amplitude a.")] = 2.0,
    max_split: Annotated[int, typer.Option(help="Largest L_x (power of two).")] = 256,
    samples: Annotated[int, typer.Option(min=20)] = 2000,
    seed: Seed = 0,
) -> None:
    """Exact vs. estimated bipartite MI of the sub-volume Gaussian (seconds; prints a table)."""
    import numpy as np

    from paperlab.core.errors import UserError
    from paperlab.l2m.estimators import bipartite_mi, collect_logprobs
    from paperlab.l2m.gaussian import GaussianScorer, SubVolumeGaussian

    if max_split < 2 or max_split & (max_split - 1):
        raise UserError(f"--max-split {max_split} is not a power of two >= 2", "pass e.g. --max-split 256")
    splits = [2 ** k for k in range(1, int(np.log2(max_split)) + 1)]
    g = SubVolumeGaussian(2 * max_split, gamma, a, seed=seed)
    lp = collect_logprobs(GaussianScorer(g.cov), g.sample(samples, seed + 1), splits, 2, batch_size=500)
    est = bipartite_mi(lp, 2)
    typer.echo(f"{'L_x':>6} {'exact':>9} {'direct':>9} {'±':>7} {'vCLUB':>9} {'±':>7}")
    for j, k in enumerate(splits):
        typer.echo(f"{k:>6} {g.exact_bipartite_mi(k):9.4f} {est.direct[j]:9.4f} {est.direct_err[j]:7.4f} "
                   f"{est.vclub[j]:9.4f} {est.vclub_err[j]:7.4f}")
