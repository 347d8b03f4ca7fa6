"""``paperlab uoe``: run the Union-of-Experts comparison (cheap to import; torch is loaded in the command)."""

from __future__ import annotations

from typing import Annotated

import typer

from paperlab.core.cli import Out, Overwrite, Quick, Seed, check_choice, print_run, start_fresh, system_app
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
    seed: Seed = 0,
    steps: Annotated[int | None, typer.Option("--steps", help="Training steps per model.")] = None,
    variants: Annotated[list[str] | None, typer.Option(
        "--variant", help="Models to train (repeatable): dense, moe, uome, smha, uoe, uoe_nodrop, "
        "uoe_official_gate, smha_rope_original. Default: all (quick: the first five + uoe_nodrop).")] = None,
    gate: Annotated[str | None, typer.Option(
        "--gate", help="Router gradient: straight_through (default) | multiply | none (official code).")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="fp32 | bf16.")] = None,
) -> None:
    """Train the models and write the report (runs/uoe/<timestamp>/report.md). Re-run with --out to resume."""
    # every value is checked before any work: a bad one is a one-line error and leaves no run folder
    if steps is not None and steps < 1:  # a UserError: tests/uoe/test_experiment.py checks for one
        raise UserError(f"--steps must be >= 1, got {steps}", "pass a positive number of steps")
    check_choice(precision, "--precision", ("fp32", "bf16"))
    from paperlab.uoe.experiment import default_config, reproduce
    from paperlab.uoe.routing import GATES

    check_choice(gate, "--gate", GATES)
    overrides: dict = {"seed": seed}
    if steps is not None:
        overrides["steps"] = steps
    if variants:
        overrides["variants"] = variants
    if gate is not None:
        overrides["gate"] = gate
    if precision is not None:
        overrides["precision"] = precision
    default_config(quick, **overrides)  # unknown variants etc., still before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))
