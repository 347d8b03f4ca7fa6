"""``paperlab tsv``: train and evaluate TSV on TruthfulQA, or score your own answers with a detector."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import (
    Model,
    Out,
    Overwrite,
    Quick,
    Seed,
    check_model_spec,
    check_readable_file,
    check_writable_file,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("tsv", "TSV: a truthfulness separator vector steers LLM latents for hallucination detection.")


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    model: Model = "default",
    mode: Annotated[str | None, typer.Option(
        help="gold: TruthfulQA's reference answers with their labels (default with --quick); "
             "paper: the LM's own answers, labelled by reference similarity (default).")] = None,
    answers_file: Annotated[Path | None, typer.Option(
        "--answers-file", help="JSONL {\"row\", \"answer\"[, \"label\"]} per line: score these answers "
                               "(several per row allowed; without labels --labeller labels them).")] = None,
    answers_per_question: Annotated[int | None, typer.Option(
        min=2, help="Gold mode: reference answers per question, half truthful (default 2).")] = None,
    labeller: Annotated[str | None, typer.Option(help="Answer labels: embed (MiniLM margin) or rouge.")] = None,
    layer: Annotated[int | None, typer.Option(min=0, help="Steering block (default: 9/32 of the depth).")] = None,
    lam: Annotated[float | None, typer.Option(
        "--lambda", help="One absolute steering strength (paper: 5); default: select on validation.")] = None,
    lam_rel: Annotated[list[float] | None, typer.Option(
        "--lambda-rel", help="Lambdas / residual norm tried besides the paper's 5 (repeat the option).")] = None,
    tau: Annotated[float | None, typer.Option(help="vMF temperature tau = 1/kappa (paper: 0.1).")] = None,
    lr: Annotated[float | None, typer.Option(help="One AdamW learning rate (paper: 5e-3); default: the grid.")] = None,
    lr_grid: Annotated[list[float] | None, typer.Option(
        "--lr-grid", help="Learning rates tried on validation (repeat the option).")] = None,
    seeds: Annotated[int | None, typer.Option(min=1, help="Training seeds (default 3).")] = None,
    stage1_epochs: Annotated[int | None, typer.Option(min=1, help="Stage-1 epochs (paper: 20).")] = None,
    stage2_epochs: Annotated[int | None, typer.Option(min=0, help="Stage-2 epochs (paper: 20).")] = None,
    k: Annotated[int | None, typer.Option(min=2, help="Pseudo-labelled samples kept (paper: 128).")] = None,
    n_wild: Annotated[int | None, typer.Option(min=1, help="Wild questions used (default: all 512).")] = None,
    n_test: Annotated[int | None, typer.Option(min=10, help="Test questions used (default: all 205).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch.")] = None,
    seed: Seed = 0,
) -> None:
    """Generate answers, label them, train TSV (stage 1 + OT), compare with baselines, write the report."""
    # every value is checked before any work: a bad one is a one-line error and leaves no run folder
    check_model_spec(model, "--model")
    for name, v in (("--lambda", lam), ("--tau", tau), ("--lr", lr), *(("--lambda-rel", x) for x in lam_rel or ()),
                    *(("--lr-grid", x) for x in lr_grid or ())):
        if v is not None and not math.isfinite(v):
            raise UserError(f"{name} must be a finite number, got {v}", "see `paperlab tsv run --help`")
    if answers_file is not None:
        check_readable_file(answers_file, "--answers-file")
    from paperlab.tsv.experiment import default_config, read_answers_file, reproduce, split_parts

    overrides = {k_: v for k_, v in dict(
        model=model, mode=mode, answers_per_question=answers_per_question, labeller=labeller, layer=layer, lam=lam,
        lam_rel=lam_rel or None, tau=tau, lr=lr, lr_grid=lr_grid or None, seeds=seeds, stage1_epochs=stage1_epochs,
        stage2_epochs=stage2_epochs, k=k, n_wild=n_wild, n_test=n_test, threads=threads, seed=seed,
        answers_file=str(answers_file) if answers_file is not None else None,
    ).items() if v is not None}
    cfg = default_config(quick, **overrides)  # the settings' own checks (ranges, labeller), still before any work
    if answers_file is not None:  # a bad record is an error before any work
        read_answers_file(answers_file, split_parts(cfg, 817))
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def score(
    detector: Annotated[Path, typer.Option(help="A detector folder (<run>/detector).", file_okay=False)],
    input: Annotated[Path, typer.Option("--input", help="JSONL, one {\"question\", \"answer\", ...} per line "
                                                        "(other fields are copied to the output).")],
    output: Annotated[Path | None, typer.Option("--output", help="Write JSONL here (default: stdout).")] = None,
) -> None:
    """Write p(truthful) for each (question, answer) line of INPUT with a trained detector."""
    import json

    if not detector.is_dir():
        raise UserError(f"--detector {detector} is not a folder", "pass the detector/ folder of a TSV run")
    check_readable_file(input, "--input")
    if output is not None:
        check_writable_file(output, "--output", parent_must_exist=True)
    from paperlab.tsv.detector import Detector, read_records, score_file

    read_records(input)  # a malformed line or an empty answer is an error before the model is loaded
    Detector.load(detector)  # so is a damaged detector
    records = score_file(detector, input, output)
    if output is not None:
        typer.echo(f"wrote {len(records)} scores to {output}")
    else:
        for r in records:
            typer.echo(json.dumps(r, ensure_ascii=False))
