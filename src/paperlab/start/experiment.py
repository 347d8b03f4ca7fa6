"""``paperlab start run``: the sandbox red-team battery, Hint-infer on a verifiable set, and Hint-RFT.

The driver (:func:`run_experiment`) is a list of steps:

1. :func:`red_team` — every attack of :mod:`paperlab.start.redteam` against the sandbox, judged on the host
   (``redteam.jsonl``).
2. :func:`evaluate` — each problem under each condition: ``none`` (the tool loop alone), ``hint``
   (Hint-infer: hints at a terminator and at the end, R = 1), ``hint_x2``/``hint_x3`` (the hint repeated
   at the end: sequential test-time scaling) and, reported apart, ``hint_opener`` (the hint followed by
   a ```` ```python ```` opener). One record per (condition, problem) in ``trajectories.jsonl``: a killed
   run resumes at the next one, and every LM request is in the core request cache.
3. :func:`hint_rft` (default tier) — Hint-infer trajectories on training problems disjoint from the
   evaluation ones, scored and filtered into D_seed (``rft_dataset.jsonl``), LoRA fine-tuning
   (``rft-<hash>/``), then the base and the fine-tuned model both WITHOUT hints on the evaluation problems
   (``rft_eval.jsonl``; both through transformers, so the comparison shares a backend).
4. :mod:`paperlab.start.report` — claims, tables, plots, report.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from paperlab.core.runs import Run, build_config
from paperlab.start.problems import SETS, Problem, load_set

PAPER = "START: Self-taught Reasoner with Tools, arXiv:2503.04625 (2025), https://arxiv.org/abs/2503.04625"
CONDITIONS = ("none", "hint", "hint_x2", "hint_x3", "hint_opener")


class StartConfig(BaseModel):
    """Configuration of ``paperlab start run`` (saved with every run)."""

    model: str = Field("default", description="model spec (default, gguf:, hf:, openai:)")
    problem_set: Literal[SETS] = Field("arith", description=f"one of {', '.join(SETS)}")
    n_problems: int = Field(60, ge=2)
    instruction: Literal["plain", "tool"] = Field("plain", description="plain: 'reason step by step' (tools must come from hints); "
                             "tool: CoRT's 'integrate python programs' instruction")
    conditions: list[str] = Field(default_factory=lambda: list(CONDITIONS))
    inline_hints: int = Field(1, ge=0, description="hints at terminators inside the response")
    max_calls: int = Field(10, ge=1)
    max_tokens_per_segment: int = Field(512, ge=16)
    max_total_tokens: int = Field(1536, ge=32)
    max_seconds: float = Field(900.0, gt=0, description="wall time per solution: a safety stop, set high so "
                               "that results do not depend on the machine's load")
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    sandbox_wall_seconds: float = Field(30.0, gt=0)
    sandbox_cpu_seconds: int = Field(10, ge=1)
    red_team: bool = True
    attacks: list[str] | None = Field(None, description="red-team attacks to run (None: the whole battery)")
    rft: bool = True
    rft_train_problems: int = Field(120, ge=2)
    rft_samples: int = Field(2, ge=1, description="Hint-infer samples per training problem")
    rft_rounds: int = Field(1, ge=1, description="1: START-0 (D_seed); 2: + self-distillation round")
    rft_eval_problems: int = Field(40, ge=2)
    rft_require_correct: bool = Field(True, description="the paper's filter keeps correct trajectories only; "
                                      "False (an ablation, reported as such) keeps any with an error-free call")
    lora_r: int = Field(8, ge=1)
    lora_epochs: int = Field(3, ge=1)
    lora_lr: float = Field(2e-4, gt=0)
    seed: int = 0
    n_boot: int = Field(2000, ge=100)

    @field_validator("conditions")
    @classmethod
    def _conds(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in CONDITIONS]
        if bad or "none" not in v or "hint" not in v or len(set(v)) != len(v):
            raise ValueError(f"conditions: distinct names of {', '.join(CONDITIONS)}, with none and hint")
        return v

    @field_validator("attacks")
    @classmethod
    def _attacks(cls, v: list[str] | None) -> list[str] | None:
        from paperlab.start.redteam import ATTACK_NAMES

        if v is not None and (not v or any(a not in ATTACK_NAMES for a in v)):
            raise ValueError(f"attacks: names of {', '.join(ATTACK_NAMES)}")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        from paperlab.core.models import parse_spec

        parse_spec(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> StartConfig:
        if self.max_tokens_per_segment > self.max_total_tokens:
            raise ValueError("max_tokens_per_segment must not exceed max_total_tokens")
        return self

    @classmethod
    def quick(cls, **overrides) -> StartConfig:
        """12 arithmetic problems, short solutions (384 tokens, segments of 160), 4 code calls, no hint /
        hint / hint x2 / hint x3; the red-team battery; no Hint-RFT (it needs a transformers-backend
        evaluation that does not fit the quick budget)."""
        base = dict(n_problems=12, conditions=["none", "hint", "hint_x2", "hint_x3"], max_calls=4,
                    max_tokens_per_segment=160, max_total_tokens=384, sandbox_wall_seconds=10.0,
                    sandbox_cpu_seconds=5, rft=False, n_boot=1000)
        base.update(overrides)
        return cls(**base)


def default_config(quick: bool, **overrides) -> StartConfig:
    return build_config(StartConfig, "start", quick, overrides)


# ----------------------------------------------------------------------------------------------
# Shared pieces


def loop_config(cfg: StartConfig):
    from paperlab.start.sandbox import Limits
    from paperlab.start.tool_loop import LoopConfig

    return LoopConfig(max_calls=cfg.max_calls, max_seconds=cfg.max_seconds, max_tokens_per_segment=cfg.max_tokens_per_segment,
                      max_total_tokens=cfg.max_total_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                      sandbox=Limits(cpu_seconds=cfg.sandbox_cpu_seconds, wall_seconds=cfg.sandbox_wall_seconds))


def hint_policy(condition: str, inline: int):
    """The Hint-infer policy of a condition (None: no hints)."""
    from paperlab.start.hint_infer import HintPolicy

    return {"none": None, "hint": HintPolicy(inline=inline, at_end=1),
            "hint_x2": HintPolicy(inline=inline, at_end=2), "hint_x3": HintPolicy(inline=inline, at_end=3),
            "hint_opener": HintPolicy(inline=inline, at_end=1, code_opener=True)}[condition]


def prompt_for(problem: Problem, instruction: str) -> str:
    from paperlab.start.tool_loop import INSTRUCTION, PLAIN_INSTRUCTION, render_prompt

    return render_prompt(problem.question, INSTRUCTION if instruction == "tool" else PLAIN_INSTRUCTION)


def solve_problem(lm, problem: Problem, condition: str, cfg: StartConfig, sample: int = 0) -> dict[str, Any]:
    """One problem under one condition: the trajectory record (answer checked when a gold answer exists)."""
    from paperlab.start.answers import is_equivalent
    from paperlab.start.hint_infer import HintPlan
    from paperlab.start.tool_loop import solve

    policy = hint_policy(condition, cfg.inline_hints)
    plan = HintPlan(policy, problem.id) if policy is not None else None
    t = solve(lm, prompt_for(problem, cfg.instruction), loop_config(cfg), hints=plan,
              seed=cfg.seed * 1_000_003 + sample)
    rec = {"id": problem.id, "condition": condition, "sample": sample, "gold": problem.answer,
           "correct": bool(problem.answer) and is_equivalent(t.answer, problem.answer), **t.to_dict()}
    rec["tool_used"] = t.n_calls > 0
    return rec


def load_model(spec: str):
    """The generation backend (core ``load_lm``, request-cached)."""
    from paperlab.core.models import load_lm

    return load_lm(spec)


def _progress(total: int, label: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="sol", leave=False, dynamic_ncols=True)


# ----------------------------------------------------------------------------------------------
# Step 1: red team


def red_team(run: Run, names: list[str] | None, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run the battery once per run folder (``redteam.jsonl``); the victim folder is the run folder."""
    from paperlab.start import redteam

    names = tuple(names or redteam.ATTACK_NAMES)
    done = run.read("redteam")
    if done and [d["attack"] for d in done] == [a for a in redteam.ATTACK_NAMES if a in names]:
        return done
    (run.dir / "redteam.jsonl").unlink(missing_ok=True)
    out = []
    for o in redteam.run_battery(names, victim_root=run.dir):
        run.append("redteam", o.as_dict())
        out.append(o.as_dict())
        log(f"red team: {o.attack}: {'contained' if o.contained else 'BREACH'} ({o.detail})")
    return out


# ----------------------------------------------------------------------------------------------
# Step 2: the conditions on the evaluation problems


def evaluate(run: Run, lm, problems: list[Problem], conditions: list[str], cfg: StartConfig,
             stream: str = "trajectories") -> list[dict[str, Any]]:
    """Every (condition, problem) once; resumes from ``<stream>.jsonl``."""
    done = {(r["condition"], r["id"]): r for r in run.read(stream)}
    todo = [(c, p) for p in problems for c in conditions if (c, p.id) not in done]
    bar = _progress(len(todo), stream)
    for c, p in todo:
        rec = solve_problem(lm, p, c, cfg)
        run.append(stream, rec)
        done[(c, p.id)] = rec
        bar.update(1)
    bar.close()
    return [done[(c, p.id)] for c in conditions for p in problems]


# ----------------------------------------------------------------------------------------------
# Step 3: Hint-RFT


def base_hf_path(spec: str) -> Path | None:
    """A transformers checkpoint of the model (None: no weights, e.g. an OpenAI endpoint)."""
    from paperlab.core.models import dequantised_folder, load_torch_model, parse_spec

    ms = parse_spec(spec)
    if ms.kind == "openai":
        return None
    if ms.kind == "hf":
        return Path(ms.target)
    load_torch_model(spec)  # materialises the dequantised copy of a GGUF
    return dequantised_folder(ms.target)


def hint_rft(run: Run, lm, cfg: StartConfig, eval_problems: list[Problem],
             log: Callable[[str], None]) -> dict[str, Any]:
    """Sample -> score -> filter -> LoRA -> evaluate without hints (base vs fine-tuned)."""
    from paperlab.core.models import load_lm
    from paperlab.start.hint_rft import LoraSettings, keep, score, to_example
    from paperlab.start.tool_loop import Trajectory

    base = base_hf_path(cfg.model)
    if base is None:
        return {"ran": False, "why": "the model has no local weights to fine-tune (OpenAI endpoint)"}
    train = load_set(cfg.problem_set, cfg.rft_train_problems, offset=_train_offset(cfg), seed=cfg.seed)
    if len(train) < 2:
        return {"ran": False, "why": f"{cfg.problem_set} has too few problems left for a disjoint training set"}
    gold = {p.id: p.answer for p in train}
    teacher, record, folder = lm, {"ran": True, "rounds": [], "require_correct": cfg.rft_require_correct}, None
    for rnd in range(cfg.rft_rounds):
        stream = f"rft_samples_r{rnd}"
        done = {(r["id"], r["sample"]) for r in run.read(stream)}
        bar = _progress(len(train) * cfg.rft_samples, stream)
        for p in train:
            for k in range(cfg.rft_samples):
                if (p.id, k) not in done:
                    # round 0: Hint-infer on the base model (D_seed); later rounds: the fine-tuned model
                    # samples with hints again (self-distillation, D_START)
                    run.append(stream, solve_problem(teacher, p, "hint", cfg, sample=k))
                bar.update(1)
        bar.close()
        kept, scores = [], []
        for r in run.read(stream):
            s = score(Trajectory.from_dict(r), gold[r["id"]])
            scores.append(s.as_dict())
            if keep(s, cfg.rft_require_correct):
                kept.append(to_example(Trajectory.from_dict(r)))
        from paperlab.start.problems import write_jsonl

        write_jsonl(run.dir / f"rft_dataset_r{rnd}.jsonl", kept)
        info = {"round": rnd, "sampled": len(scores), "kept": len(kept),
                "correct": sum(s["correct"] for s in scores), "with_tool": sum(s["ok_calls"] > 0 for s in scores),
                "repetitive": sum(s["repetitive"] for s in scores)}
        log(f"Hint-RFT round {rnd}: kept {len(kept)} of {len(scores)} trajectories")
        if not kept:
            record["rounds"].append(info | {"trained": False})
            record["why"] = "no trajectory passed the filter (correct, tool used, not repetitive)"
            break
        settings = LoraSettings(r=cfg.lora_r, alpha=2 * cfg.lora_r, lr=cfg.lora_lr, epochs=cfg.lora_epochs,
                                seed=cfg.seed, max_len=cfg.max_total_tokens + 256)
        folder = _cached_finetune(run, rnd, base, kept, settings, log)
        info |= {"model": folder.name, "trained": True}
        record["rounds"].append(info)
        teacher = load_lm(f"hf:{folder}")
    if folder is None:
        record["ran"] = False
        return record
    base_lm, rft_lm = load_lm(f"hf:{base}"), load_lm(f"hf:{folder}")
    record["base"] = evaluate(run, base_lm, eval_problems, ["none"], cfg, stream="rft_eval_base")
    record["rft"] = evaluate(run, rft_lm, eval_problems, ["none"], cfg, stream="rft_eval_rft")
    return record


def _cached_finetune(run: Run, rnd: int, base: Path, kept: list[dict], settings, log) -> Path:
    import hashlib
    import json

    from paperlab.start.hint_rft import finetune_lora

    key = hashlib.sha256(json.dumps([str(base), kept, settings.__dict__], sort_keys=True, default=str)
                         .encode()).hexdigest()[:16]
    marker = run.dir / f"rft_model_r{rnd}.json"
    if marker.exists():
        m = json.loads(marker.read_text())
        if m.get("key") == key and (run.dir / m["folder"]).is_dir():
            return run.dir / m["folder"]
    folder, train_log = finetune_lora(base, kept, run.dir, settings, log=log)
    marker.write_text(json.dumps({"key": key, "folder": folder.name, "train": train_log}))
    return folder


def _train_offset(cfg: StartConfig) -> int:
    """Training problems come after the evaluation ones (disjoint by construction)."""
    return max(cfg.n_problems, cfg.rft_eval_problems)


# ----------------------------------------------------------------------------------------------
# Driver


def run_experiment(cfg: StartConfig, out: Path | str | None = None, log: Callable[[str], None] = print) -> Path:
    from paperlab.start import report
    from paperlab.start.sandbox import check_sandbox

    check_sandbox()  # refuse before any work: model-written code never runs unprotected
    run = Run("start", out=out, config=cfg)
    t0 = time.monotonic()
    attacks = red_team(run, cfg.attacks, log) if cfg.red_team else []
    lm = load_model(cfg.model)
    problems = load_set(cfg.problem_set, cfg.n_problems, seed=cfg.seed)
    records = evaluate(run, lm, problems, cfg.conditions, cfg)
    rft = hint_rft(run, lm, cfg, problems[: cfg.rft_eval_problems], log) if cfg.rft else \
        {"ran": False, "why": "not run in this tier (quick): Hint-RFT runs in the default tier"}
    return report.write(run, cfg, attacks, records, rft, lm.id, time.monotonic() - t0)


def reproduce(quick: bool = False, out: Path | str | None = None, **overrides) -> Path:
    """Run the START experiment and return the run folder."""
    cfg = default_config(quick, **overrides)
    return run_experiment(cfg, out).parent
