"""``paperlab uoe``: run the Union-of-Experts comparison (cheap to import; torch is loaded in the command)."""

from __future__ import annotations

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

app = system_app("uoe", "Union of Experts: equivalent decomposition, SMHA, UoME vs dense and top-k MoE.")


@app.callback()
def uoe() -> None:
    """Union of Experts (arXiv 2503.02495): SMHA + UoME vs dense and top-k MoE on counted FLOPs."""


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    seeds: Annotated[str | None, typer.Option(
        "--seeds", help="Comma-separated training seeds (default 0,1,2); the first one runs the lr sweep.")] = None,
    lrs: Annotated[str | None, typer.Option(
        "--lrs", help="Comma-separated learning rates swept per model (default 1e-3,2e-3,4e-3; quick 2e-3,4e-3).")] = None,
    d_ff_mult: Annotated[int | None, typer.Option(
        "--d-ff-mult", help="UoME hidden size as a multiple of the dense d_ff: 2 (default) gives the top-2 "
        "MoE's parameters and FLOPs exactly, 1 the dense MLP's.")] = None,
    routing: Annotated[str | None, typer.Option(
        "--routing", help="Comma-separated UoE routings to train: paper (official: SMHA dropping nothing, UoME "
        "with filler tokens; leaks the future), causal (UoME dropless; decides the claims), capacity (T/2 "
        "capacity in both). Default: paper,causal.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Training steps per run.")] = None,
    variants: Annotated[list[str] | None, typer.Option(
        "--variant", help="Models to train (repeatable): dense, moe, uome, uome_causal, smha, uoe, uoe_causal, "
        "uoe_capacity, uoe_official_gate, smha_rope_original. Default: dense, moe, uome, uome_causal, smha, uoe, "
        "uoe_causal (quick: moe, uoe, uoe_causal).")] = None,
    gate: Annotated[str | None, typer.Option(
        "--gate", help="Router gradient: straight_through (default) | multiply | none (official code).")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="fp32 | bf16.")] = None,
) -> None:
    """Train the models and write the report (runs/uoe/<timestamp>/report.md). Re-run with --out to resume."""
    # every value is checked before any work: a bad one is a one-line error and leaves no run folder
    if steps is not None and steps < 1:  # a UserError: tests/uoe/test_experiment.py checks for one
        raise UserError(f"--steps must be >= 1, got {steps}", "pass a positive number of steps")
    if d_ff_mult is not None and d_ff_mult < 1:
        raise UserError(f"--d-ff-mult must be >= 1, got {d_ff_mult}", "pass 2 (the MoE's budget) or 1")
    check_choice(precision, "--precision", ("fp32", "bf16"))
    seed_list = parse_ints(seeds, "--seeds", min=0, example="0,1,2")
    lr_list = parse_floats(lrs, "--lrs", positive=True, example="1e-3,2e-3,4e-3")
    from paperlab.uoe.experiment import ROUTINGS, default_config, reproduce
    from paperlab.uoe.routing import GATES

    routing_list = parse_names(routing, "--routing", ROUTINGS, example="paper,causal")
    check_choice(gate, "--gate", GATES)
    given = {"seeds": seed_list, "lrs": lr_list, "uome_d_ff_mult": d_ff_mult, "uoe_routing": routing_list,
             "steps": steps, "variants": variants or None, "gate": gate, "precision": precision}
    overrides = {k: v for k, v in given.items() if v is not None}
    default_config(quick, **overrides)  # unknown variants, duplicate seeds etc., still before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))
