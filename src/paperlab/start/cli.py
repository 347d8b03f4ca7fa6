"""``paperlab start``: the START experiment (sandbox red team, Hint-infer, Hint-RFT) and solving your own problems
with the sandboxed tool loop (cheap to import: heavy imports inside the commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import (
    Model,
    Out,
    Overwrite,
    Quick,
    check_choice,
    check_model_spec,
    check_readable_file,
    check_writable_file,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("start", "START (2503.04625): tool-integrated reasoning with Hint-infer and Hint-RFT, in a sandbox.")

CONDITIONS = ("none", "hint", "hint_x2", "hint_x3", "hint_opener")
SETS = ("arith", "gsm8k", "math500", "amc23", "aime24")


@app.callback()
def start() -> None:
    """START (arXiv 2503.04625): hints raise tool use; Hint-RFT makes it unprompted; the code sandbox."""


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    model: Annotated[str | None, typer.Option("--model", help="Model spec (default: the default SmolLM2).")] = None,
    problem_set: Annotated[str | None, typer.Option("--set", help="arith | gsm8k | math500 | amc23 | aime24.")] = None,
    n_problems: Annotated[int | None, typer.Option("--problems", min=2, help="Evaluation problems.")] = None,
    instruction: Annotated[str | None, typer.Option("--instruction", help="plain (tools only through hints) | "
                                                    "tool (CoRT's 'integrate python programs').")] = None,
    max_calls: Annotated[int | None, typer.Option("--max-calls", min=1, help="Code calls per solution.")] = None,
    rft: Annotated[bool | None, typer.Option("--rft/--no-rft", help="Run Hint-RFT (default: on, off in --quick).")]
    = None,
) -> None:
    """Red-team the sandbox, compare no hint / hint / repeated hints (tool-call rate, accuracy), Hint-RFT; writes
    report.md + results.json (runs/start/<timestamp>/). Re-run with --out to resume."""
    if model is not None:
        check_model_spec(model, "--model")
    check_choice(problem_set, "--set", SETS)
    check_choice(instruction, "--instruction", ("plain", "tool"))
    given = {"model": model, "problem_set": problem_set, "n_problems": n_problems, "instruction": instruction,
             "max_calls": max_calls, "rft": rft}
    overrides = {k: v for k, v in given.items() if v is not None}
    from paperlab.start.experiment import default_config, reproduce
    from paperlab.start.sandbox import check_sandbox

    default_config(quick, **overrides)   # the settings' own checks, before any work
    check_sandbox()
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def solve(
    input: Annotated[Path, typer.Option("--input", help='JSONL: {"question": ..., "answer": optional, "id": optional} '
                                        'per line ("problem" also accepted).')],
    output: Annotated[Path | None, typer.Option("--output", help="JSONL out (default: <input>.start.jsonl).")] = None,
    model: Model = "default",
    hints: Annotated[str, typer.Option("--hints", help="none | hint | hint_x2 | hint_x3 | hint_opener.")] = "hint",
    instruction: Annotated[str, typer.Option("--instruction", help="plain | tool.")] = "tool",
    max_calls: Annotated[int, typer.Option("--max-calls", min=1, help="Code calls per problem.")] = 10,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=32, help="Generated tokens per problem.")] = 2048,
    max_seconds: Annotated[float, typer.Option("--max-seconds", min=1, help="Wall time per problem.")] = 300.0,
    call_seconds: Annotated[float, typer.Option("--call-seconds", min=1, help="Wall time per code call.")] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
) -> None:
    """Solve your problems with the sandboxed tool loop (+ hints); one JSONL line per problem: the trajectory,
    each tool call (code, ok, output), the \\boxed answer, and correctness when an answer was given."""
    check_choice(hints, "--hints", CONDITIONS)
    check_choice(instruction, "--instruction", ("plain", "tool"))
    check_model_spec(model, "--model")
    check_readable_file(input, "--input")
    output = output or input.with_suffix(".start.jsonl")
    check_writable_file(output, "--output")
    if output.resolve() == input.resolve():
        raise UserError("--output is the --input file", "pass another --output path")
    from paperlab.start.problems import read_user_problems

    problems = read_user_problems(input)
    from paperlab.start.sandbox import check_sandbox

    check_sandbox()
    from paperlab.start.experiment import StartConfig, load_model, solve_problem

    cfg = StartConfig(model=model, instruction=instruction, max_calls=max_calls, max_total_tokens=max_tokens,
                      max_tokens_per_segment=min(1024, max_tokens), max_seconds=max_seconds,
                      sandbox_wall_seconds=call_seconds, seed=seed, red_team=False, rft=False)
    lm = load_model(model)
    output.parent.mkdir(parents=True, exist_ok=True)
    n_tool = n_correct = 0
    with open(output, "w", encoding="utf-8") as f:
        for p in problems:
            rec = solve_problem(lm, p, hints, cfg)
            rec["question"] = p.question
            rec["tool_calls"] = _calls(rec)
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            n_tool += rec["tool_used"]
            n_correct += rec["correct"]
    graded = sum(bool(p.answer) for p in problems)
    typer.echo(json.dumps({"output": str(output), "problems": len(problems), "tool_used": n_tool,
                           "graded": graded, "correct": n_correct if graded else None}))


def _calls(rec: dict) -> list[dict]:
    """Each executed call with the output block the model saw after it."""
    out, steps = [], rec["steps"]
    for i, s in enumerate(steps):
        if s["kind"] == "code":
            nxt = steps[i + 1]["text"] if i + 1 < len(steps) and steps[i + 1]["kind"] == "output" else ""
            out.append({**s["meta"], "output": nxt.removeprefix("```output\n").removesuffix("\n```\n")})
    return out
