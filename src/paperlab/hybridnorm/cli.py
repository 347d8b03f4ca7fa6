"""``paperlab hybridnorm run``: train Pre-Norm, Post-Norm, QK-Norm, HybridNorm and HybridNorm* side by side."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from paperlab.core.cli import (
    Out,
    Overwrite,
    Quick,
    check_choice,
    parse_floats,
    parse_ints,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("hybridnorm", "HybridNorm (2503.04598): QKV-Norm attention + Post-Norm FFN vs. Pre/Post/QK-Norm.")

VARIANT_EXAMPLE = "pre,hybrid"


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    depths: Annotated[str | None, typer.Option(help="Comma-separated depths, e.g. 8,24.")] = None,
    variants: Annotated[str | None, typer.Option(help="pre,post,qknorm,hybrid,hybrid_star (subset).")] = None,
    sweep_variants: Annotated[str | None, typer.Option(help="Variants in the learning-rate sweep.")] = None,
    sweep_lrs: Annotated[str | None, typer.Option(help="Learning rates of the sweep, e.g. 1e-3,1e-2.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds.")] = None,
    sweep_seeds: Annotated[str | None, typer.Option(help="Seeds of the learning-rate sweep (default: --seeds).")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps per run.")] = None,
    lr: Annotated[float | None, typer.Option(help="Base learning rate of the loss curves.")] = None,
    d_model: Annotated[int | None, typer.Option(min=1, help="Model width.")] = None,
    n_heads: Annotated[int | None, typer.Option(min=1, help="Attention heads.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Sequences per step.")] = None,
    seq_len: Annotated[int | None, typer.Option(min=2, help="Tokens per sequence.")] = None,
    corpus: Annotated[str | None, typer.Option(help="tinyshakespeare | wikitext2.")] = None,
    tokenizer: Annotated[str | None, typer.Option(help="char | byte | gpt2.")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 | bf16.")] = None,
    untied_embeddings: Annotated[bool, typer.Option(
        "--untied-embeddings", help="Ablation: a separate LM head instead of the paper's tied input embedding "
        "(does the tied head explain a variant's high initial loss?).")] = False,
) -> None:
    """Loss curves at several depths and a learning-rate sweep; writes report.md + results.json."""
    # every value is checked before any work: a bad one is a one-line error and leaves no run folder
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise UserError(f"--lr must be a positive number, got {lr}", "e.g. --lr 1e-3")
    check_choice(precision, "--precision", ("fp32", "bf16"))
    from paperlab.core.lm_data import CORPORA, TOKENIZERS
    from paperlab.hybridnorm.blocks import VARIANTS
    from paperlab.hybridnorm.experiment import default_config, reproduce

    check_choice(corpus, "--corpus", CORPORA)
    check_choice(tokenizer, "--tokenizer", TOKENIZERS)
    overrides = dict(
        depths=parse_ints(depths, "--depths", min=1, example="8,24"),
        variants=parse_names(variants, "--variants", VARIANTS, example=VARIANT_EXAMPLE),
        sweep_variants=parse_names(sweep_variants, "--sweep-variants", VARIANTS, example=VARIANT_EXAMPLE),
        sweep_lrs=parse_floats(sweep_lrs, "--sweep-lrs", positive=True, example="1e-3,1e-2"),
        seeds=parse_ints(seeds, "--seeds", min=0, example="0,1,2"),
        sweep_seeds=parse_ints(sweep_seeds, "--sweep-seeds", min=0, example="0"), steps=steps, lr=lr, d_model=d_model,
        n_heads=n_heads, batch_size=batch_size, seq_len=seq_len, corpus=corpus, tokenizer=tokenizer,
        precision=precision, tie_embeddings=False if untied_embeddings else None)
    default_config(quick, **overrides)  # the settings' own checks (variants, widths), still before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))
