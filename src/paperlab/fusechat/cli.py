"""``paperlab fusechat``: the IMF experiment, and building IMF training data from your own sources and prompts
(cheap to import; torch, trl and llama.cpp load inside the commands)."""

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
    check_writable_dir,
    parse_floats,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("fusechat", "FuseChat-3.0 (2503.04222): implicit model fusion — SFT on the best source responses, "
                 "then length-normalised DPO on same-source pairs.")


@app.callback()
def fusechat() -> None:
    """FuseChat-3.0 (arXiv 2503.04222): IMF data construction, SFT + length-normalised DPO, same- vs cross-source."""


def _check_window(text: str | None) -> tuple[float, float] | None | str:
    """``lo,hi`` or ``none``; returns ``"unset"`` when not given."""
    if text is None:
        return "unset"
    if text.strip().lower() == "none":
        return None
    vals = parse_floats(text, "--window", min=0.0, example="0.01,0.1")
    if len(vals) != 2 or vals[0] > vals[1]:
        raise UserError(f"--window {text!r} is not lo,hi with lo <= hi", "e.g. --window 0.01,0.1 (or none)")
    return vals[0], vals[1]


def _check_lm_spec(spec: str | None, option: str) -> None:
    """A generation spec: ``default-hf`` (the default LM through transformers, batched) or any core model spec."""
    if spec is not None and spec != "default-hf":
        check_model_spec(spec, option)


def _check_torch_spec(spec: str | None, option: str) -> None:
    if spec is None:
        return
    check_model_spec(spec, option)
    if spec.startswith("openai:"):
        raise UserError(f"{option}: an OpenAI-compatible server cannot be fine-tuned here",
                        "pass default, hf:<path> or gguf:<file>")


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    task: Annotated[str | None, typer.Option("--task", help="arithmetic (generated, default) | gsm8k.")] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=2, help="Responses per prompt and source.")] = None,
    train_prompts: Annotated[int | None, typer.Option("--train-prompts", min=4, help="Construction prompts.")] = None,
    eval_prompts: Annotated[int | None, typer.Option("--eval-prompts", min=4, help="Held-out prompts.")] = None,
    student: Annotated[str | None, typer.Option("--student", help="Target model spec (default, hf:<path>).")] = None,
    judge: Annotated[str | None, typer.Option("--judge", help="Reward-model spec (P(Yes) judgement; default-hf = "
                                              "the default LM through transformers).")] = None,
    window: Annotated[str | None, typer.Option("--window", help="RM-gap window lo,hi (paper 0.01,0.1) or none.")]
    = None,
    sft_steps: Annotated[int | None, typer.Option("--sft-steps", min=1, help="SFT steps.")] = None,
    dpo_steps: Annotated[int | None, typer.Option("--dpo-steps", min=1, help="DPO steps per arm.")] = None,
    beta: Annotated[float | None, typer.Option("--beta", help="DPO beta (paper: 10 with length normalisation).")]
    = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads (default 2).")] = None,
) -> None:
    """Sample the sources, score, build SFT data and same-/cross-source DPO pairs, train SFT then LN-DPO (LoRA), and
    compare on held-out problems; writes report.md + results.json (runs/fusechat/<timestamp>/)."""
    check_choice(task, "--task", ("arithmetic", "gsm8k"))
    _check_torch_spec(student, "--student")
    _check_lm_spec(judge, "--judge")
    w = _check_window(window)
    if beta is not None and not (math.isfinite(beta) and beta > 0):
        raise UserError(f"--beta must be positive, got {beta}", "e.g. --beta 10")
    from paperlab.fusechat.experiment import TrainConfig, default_config, reproduce

    given = {"task": task, "samples": samples, "train_prompts": train_prompts, "eval_prompts": eval_prompts,
             "student": student, "judge": judge, "beta": beta, "threads": threads}
    overrides = {k: v for k, v in given.items() if v is not None}
    if w != "unset":
        overrides["window"] = w
    base = default_config(quick)
    if sft_steps is not None:
        overrides["sft"] = TrainConfig(**{**base.sft.model_dump(), "steps": sft_steps})
    if dpo_steps is not None:
        overrides["dpo"] = TrainConfig(**{**base.dpo.model_dump(), "steps": dpo_steps})
    default_config(quick, **overrides)  # the settings' own checks, still before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def build(
    sources: Annotated[str, typer.Option("--sources", help="Comma-separated model specs, one source each "
                                         "(default, default-hf, hf:<path>, gguf:<file>, openai:<url>#<model>); a spec "
                                         "may repeat with a system prompt from --systems.")],
    prompts: Annotated[Path, typer.Option("--prompts", help="JSONL: {\"prompt\": ..., \"answer\"?: ...} per line "
                                          "(with answer: math rule by verification; without: reward only).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for sft.jsonl, dpo.jsonl, responses.jsonl, "
                                      "stats.json.", file_okay=False)] = Path("fusechat-data"),
    samples: Annotated[int, typer.Option("--samples", min=1, help="Responses per prompt and source (paper: 5).")]
    = 5,
    judge: Annotated[str, typer.Option("--judge", help="Reward-model spec: P(Yes) judgement of a chat LM.")]
    = "default-hf",
    window: Annotated[str, typer.Option("--window", help="RM-gap window lo,hi, or none.")] = "0.01,0.1",
    sft_share: Annotated[float, typer.Option("--sft-share", help="Share of prompts for SFT (paper 0.4).")] = 0.4,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Max tokens per response.")] = 512,
    systems: Annotated[str | None, typer.Option("--systems", help="System prompts, one per source, separated by "
                                                "'||' (empty: none).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of sample 0 (sample k uses seed+k).")] = 0,
    cross: Annotated[bool, typer.Option("--cross", help="Also write dpo_cross.jsonl (cross-source pairs).")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Implicit model fusion data from your sources and prompts: N samples per source with the paper's sampling
    settings (T 0.8 / top-p 0.95; Qwen specs T 0.7 / top-p 0.8 / repetition penalty 1.05), reward + verification,
    SFT set (best response) and same-source DPO pairs in the RM-gap window, as TRL JSONL."""
    spec_list = [s.strip() for s in sources.split(",") if s.strip()]
    if not spec_list:
        raise UserError("--sources is empty", "e.g. --sources default,hf:/models/qwen")
    for s in spec_list:
        _check_lm_spec(s, "--sources")
    _check_lm_spec(judge, "--judge")
    w = _check_window(window)
    if not (0 < sft_share < 1):
        raise UserError(f"--sft-share must be in (0, 1), got {sft_share}", "e.g. --sft-share 0.4")
    sys_list = [x.strip() or None for x in systems.split("||")] if systems is not None else [None] * len(spec_list)
    if len(sys_list) != len(spec_list):
        raise UserError(f"--systems has {len(sys_list)} prompts for {len(spec_list)} sources",
                        "give one system prompt per source, separated by '||'")
    if len(set(zip(spec_list, sys_list, strict=True))) != len(spec_list):
        raise UserError("--sources repeats a spec with the same system prompt",
                        "give each repeated spec its own system prompt with --systems")
    check_readable_file(prompts, "--prompts")
    from paperlab.fusechat.problems import read_prompts

    problems = read_prompts(prompts)
    out = check_writable_dir(out, "--out")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "stats.json").exists():
            raise UserError(f"--out {out} is not empty and holds no fusechat data", "pass a new or empty folder")
        if not overwrite:
            raise UserError(f"--out {out} already holds fusechat data", "pass --overwrite to replace it")
    from paperlab.fusechat.build import build_data

    stats = build_data(spec_list, sys_list, problems, out, samples=samples, judge=judge,
                       window=None if w == "unset" else w, sft_share=sft_share, max_tokens=max_tokens, seed=seed,
                       cross=cross, log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps(stats, indent=2))
