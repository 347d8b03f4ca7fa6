"""``paperlab feedback_edit``: the Feedback-Edit experiment, and Feedback-Edit on your own prompts
(cheap to import: the pipeline and the backends load inside the commands)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import (
    Out,
    Overwrite,
    Quick,
    check_choice,
    check_model_spec,
    check_readable_file,
    check_writable_file,
    parse_ints,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("feedback_edit", "Feedback-Edit (2503.04378): inference-time scaling with feedback and edit models.")

TASKS = ("onestep", "arithmetic", "gsm8k")  # = paperlab.feedback_edit.tasks.TASKS (kept here: cli stays cheap to import)
ROLE_HELP = "Model spec: default | hf:<path> | gguf:<file> | openai:<base_url>#<model>."


@app.callback()
def feedback_edit() -> None:
    """Feedback-Edit (arXiv 2503.04378): N responses, M feedbacks each, K edits each, select by a reward model."""


def _check_sampling(temperature: float | None, top_p: float | None) -> None:
    if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
        raise UserError(f"--temperature must be >= 0, got {temperature}", "e.g. --temperature 0.7")
    if top_p is not None and not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise UserError(f"--top-p must be in (0, 1], got {top_p}", "e.g. --top-p 0.9")


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    task: Annotated[str | None, typer.Option("--task", help="onestep (default: generated one-step problems) | arithmetic (two-step) | gsm8k.")]
    = None,
    problems: Annotated[int | None, typer.Option("--problems", min=2, help="Problems (quick 5, default 40).")]
    = None,
    n: Annotated[str | None, typer.Option("--n", help="Grid of N, initial responses (e.g. 1,2,4).")] = None,
    m: Annotated[str | None, typer.Option("--m", help="Grid of M, feedbacks per response (e.g. 1,2).")] = None,
    k: Annotated[str | None, typer.Option("--k", help="Grid of K, edits per feedback (e.g. 1,2).")] = None,
    generator: Annotated[str | None, typer.Option("--generator", help=ROLE_HELP)] = None,
    feedback: Annotated[str | None, typer.Option("--feedback", help=ROLE_HELP)] = None,
    editor: Annotated[str | None, typer.Option("--editor", help=ROLE_HELP)] = None,
    selector: Annotated[str | None, typer.Option("--selector", help=ROLE_HELP + " Used as a Yes/No judge.")]
    = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="Sampling temperature (0.7).")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="Nucleus top_p (0.9).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of every request (nested sampling).")] = None,
) -> None:
    """Selected-answer reward over the (N, M, K) grid vs best-of-N at equal generation calls; writes report.md,
    results.json and rewards_vs_calls.png (runs/feedback_edit/<timestamp>/). Re-run with --out to resume."""
    check_choice(task, "--task", TASKS)
    grids = {"n_grid": parse_ints(n, "--n", min=1, example="1,2,4"), "m_grid": parse_ints(m, "--m", min=1,
                                                                                         example="1,2"),
             "k_grid": parse_ints(k, "--k", min=1, example="1,2")}
    for opt, g in zip(("--n", "--m", "--k"), grids.values(), strict=True):
        if g is not None and len(set(g)) != len(g):
            raise UserError(f"{opt} repeats a value", f"give distinct values, e.g. {opt} 1,2")
    specs = {"generator": generator, "feedback": feedback, "editor": editor, "selector": selector}
    for role, spec in specs.items():
        check_model_spec(spec, f"--{role}")
    _check_sampling(temperature, top_p)
    given = {"task": task, "problems": problems, **grids, **specs, "temperature": temperature, "top_p": top_p,
             "seed": seed}
    overrides = {key: v for key, v in given.items() if v is not None}
    from paperlab.feedback_edit.experiment import default_config, reproduce

    default_config(quick, **overrides)  # the settings' own checks, before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def solve(
    input: Annotated[Path, typer.Option("--input", help="JSONL: one {\"prompt\": ..., \"id\"?: ..., \"answer\"?: "
                                        "<number>} per line ('question'/'instruction' also read).")],
    n: Annotated[int, typer.Option("--n", min=1, help="N initial responses per prompt.")] = 2,
    m: Annotated[int, typer.Option("--m", min=1, help="M feedbacks per response.")] = 2,
    k: Annotated[int, typer.Option("--k", min=1, help="K edits per feedback.")] = 2,
    generator: Annotated[str, typer.Option("--generator", help=ROLE_HELP)] = "default",
    feedback: Annotated[str, typer.Option("--feedback", help=ROLE_HELP)] = "default",
    editor: Annotated[str, typer.Option("--editor", help=ROLE_HELP)] = "default",
    selector: Annotated[str, typer.Option("--selector", help=ROLE_HELP + " Used as a Yes/No judge.")] = "default",
    output: Annotated[Path, typer.Option("--output", help="Where to write the answers (JSONL).")]
    = Path("feedback_edit_answers.jsonl"),
    best_of_n: Annotated[bool, typer.Option("--best-of-n", help="Also answer by best-of-N' at the same number of "
                                            "generation calls, N' = N + NM + NMK.")] = False,
    keep: Annotated[int | None, typer.Option("--keep", min=1, help="Edit only each response's top-KEEP feedbacks "
                                             "by criticism-keyword count (default: all M).")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=8, help="Max tokens of every generation.")] = 256,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.")] = 0.7,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus top_p.")] = 0.9,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every request.")] = 0,
) -> None:
    """Feedback-Edit on your prompts with one backend per role; one JSON line per prompt (the selected answer,
    its selector reward, calls and tokens per role, and the exact reward when the prompt has an answer)."""
    check_readable_file(input, "--input")
    specs = {"generator": generator, "feedback": feedback, "editor": editor, "selector": selector}
    for role, spec in specs.items():
        check_model_spec(spec, f"--{role}")
    _check_sampling(temperature, top_p)
    if keep is not None and keep > m:
        raise UserError(f"--keep {keep} exceeds --m {m}", "pass --keep <= --m")
    check_writable_file(output, "--output")
    from paperlab.feedback_edit.solve import solve_prompts
    from paperlab.feedback_edit.tasks import read_prompts

    problems = read_prompts(input)
    summary = solve_prompts(problems, specs, n, m, k, output, best_of_n=best_of_n, keep=keep,
                            max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    typer.echo(json.dumps(summary, indent=2))
