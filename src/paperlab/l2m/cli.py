"""``paperlab l2m``: bipartite/two-point mutual information of text, the Gaussian check, and the L²M condition."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import (
    Model,
    Out,
    Overwrite,
    Quick,
    Seed,
    check_choice,
    check_model_spec,
    parse_ints,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("l2m", "L²M: mutual-information scaling law for long-context language modelling.")

CORPORA = ("gutenberg", "wikitext2")


def check_corpus(corpus: str | None) -> None:
    """``--corpus``: a packaged corpus name, an existing .txt file or a folder (mirrors ``load_documents``)."""
    if corpus is None or corpus in CORPORA:
        return
    try:
        p = Path(corpus)
        if p.is_dir() and not any(p.glob("*.txt")):
            raise UserError(f"--corpus {p}: no .txt files in the folder", "pass a folder of .txt documents")
        ok = p.is_dir() or p.is_file()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"unknown --corpus {corpus!r}: not gutenberg, wikitext2, or an existing file/folder",
                        "use gutenberg, wikitext2, a .txt file or a folder of .txt files")


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    model: Model = "default",
    scorer: Annotated[str, typer.Option(help="torch (transformers, any device) or vllm (GPU; prompt_logprobs, "
                                        "needs --model hf:<path>).")] = "torch",
    corpus: Annotated[str | None, typer.Option(help="gutenberg, wikitext2, a .txt file or a folder of .txt files.")] = None,
    samples: Annotated[int | None, typer.Option(min=2, help="Text blocks for the bipartite MI.")] = None,
    max_split: Annotated[int | None, typer.Option(min=4, help="Largest L_x (power of two).")] = None,
    ratios: Annotated[str | None, typer.Option(help="Comma-separated r = L / L_x (2 = bipartite I_{L/2;L}).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Samples per LM forward batch.")] = None,
    block_start: Annotated[str | None, typer.Option(help="Where text blocks open: paragraph (default), chapter, "
                                                    "or any (mid-sentence allowed; the old behaviour).")] = None,
    fit_min_split: Annotated[int | None, typer.Option(min=2, help="Smallest L_x of the claim's power-law fit "
                                                      "(power of two, <= max split / 4; default 16).")] = None,
    no_vclub: Annotated[bool, typer.Option("--no-vclub", help="Skip the vCLUB estimator (halves LM work).")] = False,
    no_text: Annotated[bool, typer.Option("--no-text", help="Skip the LM part (Gaussian + training only).")] = False,
    no_train: Annotated[bool, typer.Option("--no-train", help="Skip the transformer-vs-GRU training check.")] = False,
    train_steps: Annotated[int | None, typer.Option(min=1, help="Training steps per model.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads.")] = None,
    seed: Seed = 0,
) -> None:
    """Measure bipartite MI (direct + vCLUB) and two-point MI, check the estimators on a Gaussian with exact MI,
    and compare per-position loss of a transformer and a fixed-state model."""
    # every value is checked before any work: a bad one is a one-line error and leaves no run folder
    check_model_spec(model, "--model")
    check_choice(scorer, "--scorer", ("torch", "vllm"))
    check_corpus(corpus)
    check_choice(block_start, "--block-start", ("paragraph", "chapter", "any"))
    ratio_list = parse_ints(ratios, "--ratios", min=2, example="2,4")
    from paperlab.l2m.experiment import default_config, reproduce

    overrides = {k: v for k, v in dict(
        corpus=corpus, n_samples=samples, max_split=max_split, batch_size=batch_size, train_steps=train_steps,
        threads=threads, ratios=ratio_list, block_start=block_start, fit_min_split=fit_min_split,
    ).items() if v is not None}
    overrides.update(model=model, scorer=scorer, seed=seed, vclub=not no_vclub, text_mi=not no_text,
                     train=not no_train)
    default_config(quick, **overrides)  # the settings' own checks (powers of two, ranges), before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def gaussian(
    gamma: Annotated[float, typer.Option(min=0.0, help="Innovation decay exponent (asymptotic beta = 1 - gamma).")] = 0.5,
    a: Annotated[float, typer.Option(min=0.0, help="Innovation amplitude a.")] = 2.0,
    max_split: Annotated[int, typer.Option(min=2, max=4096, help="Largest L_x (power of two).")] = 256,
    samples: Annotated[int, typer.Option(min=20)] = 2000,
    seed: Seed = 0,
) -> None:
    """Exact vs. estimated bipartite MI of the sub-volume Gaussian (seconds; prints a table)."""
    import math

    import numpy as np

    from paperlab.l2m.estimators import bipartite_mi, collect_logprobs
    from paperlab.l2m.gaussian import GaussianScorer, SubVolumeGaussian

    for name, v in (("--gamma", gamma), ("--a", a)):
        if not (math.isfinite(v) and v > 0):
            raise UserError(f"{name} must be a positive number, got {v}", f"e.g. {name} 0.5")
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
