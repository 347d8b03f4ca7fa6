"""``paperlab hybridnorm run``: train Pre-Norm, Post-Norm, QK-Norm, HybridNorm and HybridNorm* side by side."""

from __future__ import annotations

from typing import Annotated

import typer

from paperlab.core.cli import Out, Quick, print_run, system_app
from paperlab.core.errors import UserError

app = system_app("hybridnorm", "HybridNorm (2503.04598): QKV-Norm attention + Post-Norm FFN vs. Pre/Post/QK-Norm.")


def _list(text: str | None, cast, name: str):
    if text is None:
        return None
    try:
        items = [cast(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--{name} {text!r} is not a comma-separated list", f"e.g. --{name} 8,24") from None
    if not items:
        raise UserError(f"--{name} is empty", f"e.g. --{name} 8,24")
    return items


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    depths: Annotated[str | None, typer.Option(help="Comma-separated depths, e.g. 8,24.")] = None,
    variants: Annotated[str | None, typer.Option(help="pre,post,qknorm,hybrid,hybrid_star (subset).")] = None,
    sweep_variants: Annotated[str | None, typer.Option(help="Variants in the learning-rate sweep.")] = None,
    sweep_lrs: Annotated[str | None, typer.Option(help="Learning rates of the sweep, e.g. 1e-3,1e-2.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps per run.")] = None,
    lr: Annotated[float | None, typer.Option(help="Base learning rate of the loss curves.")] = None,
    d_model: Annotated[int | None, typer.Option(help="Model width.")] = None,
    n_heads: Annotated[int | None, typer.Option(help="Attention heads.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per step.")] = None,
    seq_len: Annotated[int | None, typer.Option(help="Tokens per sequence.")] = None,
    corpus: Annotated[str | None, typer.Option(help="tinyshakespeare | wikitext2.")] = None,
    tokenizer: Annotated[str | None, typer.Option(help="char | byte | gpt2.")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 | bf16.")] = None,
) -> None:
    """Loss curves at several depths and a learning-rate sweep; writes report.md + results.json."""
    from paperlab.hybridnorm.experiment import reproduce

    run_dir = reproduce(
        quick=quick, out=out, depths=_list(depths, int, "depths"), variants=_list(variants, str, "variants"),
        sweep_variants=_list(sweep_variants, str, "sweep-variants"), sweep_lrs=_list(sweep_lrs, float, "sweep-lrs"),
        seeds=_list(seeds, int, "seeds"), steps=steps, lr=lr, d_model=d_model, n_heads=n_heads,
        batch_size=batch_size, seq_len=seq_len, corpus=corpus, tokenizer=tokenizer, precision=precision)
    print_run(run_dir)
