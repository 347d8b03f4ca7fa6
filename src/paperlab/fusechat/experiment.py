"""``paperlab fusechat run``: implicit model fusion at small scale — sample several sources, score, build the SFT set
and same-/cross-source DPO pairs, train SFT then length-normalised DPO, and compare on held-out problems.

The driver (:func:`run_experiment`) is a list of steps:

1. :func:`make_problems` — verifiable prompts (generated arithmetic by default; GSM8K for larger sources), split
   into construction prompts (SFT : DPO = 4 : 6) and disjoint held-out evaluation prompts.
2. :func:`sample` — ``samples`` responses per prompt from each source (``load_lm``, cached per request; the run
   folder keeps ``responses.jsonl``).
3. :func:`score` — verification (exact final number) and the judge reward of every response (``scored.jsonl``).
4. :func:`construct` — the IMF data (:func:`paperlab.fusechat.imf.build_imf`): SFT set, same-source pairs (the
   paper's), cross-source pairs (the ablation), written as TRL JSONL, with the gap statistics.
5. :func:`train` — LoRA SFT of the student on the SFT set, then from that model two DPO arms with the same number of
   pairs and steps: same-source and cross-source pairs (adapters kept in the run folder; a re-run reuses them).
6. :func:`evaluate` — greedy answers of the base student, SFT, SFT+DPO(same), SFT+DPO(cross) on the held-out
   prompts: exact accuracy and judge reward per prompt (``eval_<model>.jsonl``).
7. :func:`make_claims` and :func:`write_report`.

Offline sources: one real LM ships (SmolLM2-135M-Instruct); the default sources are that model under three system
prompts with two demonstration turns each (answer styles: bare number, equation, sentence) and the paper's two
sampling settings — a stand-in for the paper's four 27B-123B source LLMs. They run as ``default-hf`` (the same
weights through transformers, batched), which measured about 5x faster than llama.cpp for these short answers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from paperlab.core.runs import Run, build_config
from paperlab.fusechat.dpo import TrainSettings
from paperlab.fusechat.imf import PAPER_SAMPLING, IMFData, PairRule, Response, Source
from paperlab.fusechat.problems import Problem

PAPER = ("FuseChat-3.0: Preference Optimization Meets Heterogeneous Model Fusion, arXiv:2503.04222 (2025), "
         "https://arxiv.org/abs/2503.04222")
TASKS = ("arithmetic", "gsm8k")
ARMS = ("base", "sft", "dpo_same", "dpo_cross")
ARM_NAMES = {"base": "student before training", "sft": "SFT only", "dpo_same": "SFT + LN-DPO, same-source pairs",
             "dpo_cross": "SFT + LN-DPO, cross-source pairs"}


class SourceConfig(BaseModel):
    """One source generator: a model spec, an optional system prompt, sampling settings."""

    name: str
    spec: str = Field("default-hf", description="default-hf (SmolLM2 via transformers, batched) or a model spec")
    system: str | None = None
    examples: list[tuple[str, str]] = Field(default_factory=list, description="demonstration (user, assistant) "
                                            "turns before the prompt")
    temperature: float = Field(PAPER_SAMPLING["default"]["temperature"], ge=0)
    top_p: float = Field(PAPER_SAMPLING["default"]["top_p"], gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)
    max_tokens: int = Field(32, ge=1)

    @field_validator("spec")
    @classmethod
    def _spec(cls, v: str) -> str:
        from paperlab.core.models import parse_spec

        parse_spec(v)
        return v

    def source(self) -> Source:
        d = self.model_dump()
        return Source(**{**d, "examples": tuple(tuple(x) for x in d["examples"])})


#: demonstration problems: operands above 9, so never one of the generated problems (operands 1..9)
DEMOS = ("What is 12 plus 13?", "What is 11 times 2?")


def default_sources() -> list[SourceConfig]:
    """Three generators built from the one offline LM: different system prompts with two demonstration turns each
    (three answer styles: a bare number, an equation, a sentence) and the paper's two sampling settings (T 0.8 /
    top-p 0.95; Qwen's T 0.7 / top-p 0.8 / repetition penalty 1.05)."""
    q = PAPER_SAMPLING["qwen"]
    a, b = DEMOS
    return [SourceConfig(name="terse", system="Answer with the final number only.", examples=[(a, "25"), (b, "22")]),
            SourceConfig(name="equation", system="Answer with one equation.",
                         examples=[(a, "12 + 13 = 25"), (b, "11 * 2 = 22")]),
            SourceConfig(name="sentence", system="Answer in one short sentence.",
                         examples=[(a, "Adding 12 and 13 gives 25."), (b, "Eleven twice makes 22.")],
                         temperature=q["temperature"], top_p=q["top_p"], repetition_penalty=q["repetition_penalty"])]


class TrainConfig(BaseModel):
    """One LoRA training stage (see :class:`paperlab.fusechat.dpo.TrainSettings`)."""

    steps: int = Field(30, ge=1)
    batch_size: int = Field(4, ge=1)
    lr: float = Field(1e-4, gt=0)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    max_length: int = Field(192, ge=16)


class FuseChatConfig(BaseModel):
    """Configuration of ``paperlab fusechat run`` (saved with every run)."""

    task: Literal[TASKS] = Field("arithmetic", description="arithmetic (generated) | gsm8k (packaged test subset)")
    max_operand: int = Field(9, ge=2, description="arithmetic operands in 1..max_operand")
    train_prompts: int = Field(60, ge=4, description="construction prompts (split SFT : DPO = sft_share)")
    eval_prompts: int = Field(60, ge=4, description="held-out prompts")
    sources: list[SourceConfig] = Field(default_factory=default_sources)
    samples: int = Field(5, ge=2, description="responses per prompt and source (paper: 5 for instructions)")
    judge: str = Field("default-hf", description="model spec of the offline reward model (P(Yes) judgement)")
    window: tuple[float, float] | None = Field((0.01, 0.1), description="RM-gap window of a kept pair")
    sft_share: float = Field(0.4, gt=0, lt=1, description="paper: SFT : DPO prompts = 4 : 6")
    student: str = Field("default", description="the target model (a transformers-loadable spec), LoRA-trained")
    sft: TrainConfig = Field(default_factory=lambda: TrainConfig(steps=30, lr=2e-4))
    dpo: TrainConfig = Field(default_factory=lambda: TrainConfig(steps=30, lr=5e-5))
    beta: float = Field(10.0, gt=0, description="paper: 10 with length normalisation (Llama targets)")
    loss_type: Literal["sigmoid_norm", "sigmoid"] = Field("sigmoid_norm", description="trl loss: sigmoid_norm (the paper's LN-DPO) | sigmoid")
    eval_max_tokens: int = Field(48, ge=4)
    seed: int = 0
    n_boot: int = Field(2000, ge=100)
    threads: int = Field(2, ge=1)

    @field_validator("student")
    @classmethod
    def _spec(cls, v: str) -> str:
        from paperlab.core.models import parse_spec

        parse_spec(v)
        return v

    @field_validator("judge")
    @classmethod
    def _judge(cls, v: str) -> str:
        from paperlab.core.models import parse_spec

        parse_spec(v)
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v):
        if v is not None and not 0 <= v[0] <= v[1]:
            raise ValueError("window must be (lo, hi) with 0 <= lo <= hi")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> FuseChatConfig:
        names = [s.name for s in self.sources]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError("give at least two sources with distinct names (cross-source pairs need two)")
        if self.task == "arithmetic" and self.train_prompts + self.eval_prompts > 3 * self.max_operand ** 2 // 2:
            raise ValueError(f"too many prompts for max_operand={self.max_operand}")
        return self

    @classmethod
    def quick(cls, **overrides) -> FuseChatConfig:
        """40 construction prompts (16 SFT : 24 DPO), 4 samples from each of 3 sources, 40 held-out prompts,
        20 SFT steps and 20 DPO steps per arm."""
        base: dict[str, Any] = dict(train_prompts=40, eval_prompts=40, samples=4, n_boot=1000,
                                    sft=TrainConfig(steps=20, lr=2e-4), dpo=TrainConfig(steps=20, lr=5e-5))
        base.update(overrides)
        return cls(**base)

    def settings(self, stage: str) -> TrainSettings:
        t = self.sft if stage == "sft" else self.dpo
        return TrainSettings(steps=t.steps, batch_size=t.batch_size, lr=t.lr, lora_r=t.lora_r,
                             lora_alpha=t.lora_alpha, max_length=t.max_length, beta=self.beta,
                             loss_type=self.loss_type, seed=self.seed)


# ----------------------------------------------------------------------------------------------
# Step 1: problems


def make_problems(cfg: FuseChatConfig) -> tuple[list[Problem], list[Problem]]:
    """Construction and held-out prompts, disjoint."""
    from paperlab.fusechat.problems import arithmetic_problems, gsm8k_problems

    n = cfg.train_prompts + cfg.eval_prompts
    if cfg.task == "gsm8k":
        allp = gsm8k_problems(n)
    else:
        allp = arithmetic_problems(n, seed=cfg.seed, max_operand=cfg.max_operand)
    return allp[:cfg.train_prompts], allp[cfg.train_prompts:]


# ----------------------------------------------------------------------------------------------
# Steps 2-3: sample and score (cached per request by the core; the run folder keeps the records)


def _cached_records(run: Run, stream: str, n: int) -> list[dict] | None:
    rows = run.read(stream)
    return rows if len(rows) == n else None


def sample(cfg: FuseChatConfig, run: Run, problems: list[Problem]) -> list[Response]:
    from paperlab.fusechat.imf import response_from_dict, response_to_dict, sample_responses

    n = len(problems) * len(cfg.sources) * cfg.samples
    rows = _cached_records(run, "responses", n)
    if rows is None:
        from tqdm import tqdm

        run.path("responses.jsonl").unlink(missing_ok=True)
        bar = tqdm(total=n, desc="fusechat: sampling sources", unit="resp")
        rs = sample_responses(problems, [s.source() for s in cfg.sources], cfg.samples, cfg.seed,
                              on_result=lambda r: bar.update())
        bar.close()
        for r in rs:
            run.append("responses", response_to_dict(r))
        return rs
    return [response_from_dict(d) for d in rows]


def score(cfg: FuseChatConfig, run: Run, problems: list[Problem], responses: list[Response]) -> list[Response]:
    from paperlab.fusechat.imf import judge_rewards, response_from_dict, response_to_dict, verify

    rows = _cached_records(run, "scored", len(responses))
    if rows is not None:
        return [response_from_dict(d) for d in rows]
    from tqdm import tqdm

    verify(responses, problems)
    text = {p.id: p.prompt for p in problems}
    bar = tqdm(total=len(responses), desc="fusechat: judging responses", unit="resp")
    rewards = judge_rewards([text[r.prompt_id] for r in responses], [r.text for r in responses], cfg.judge,
                            on_result=lambda i, x: bar.update())
    bar.close()
    run.path("scored.jsonl").unlink(missing_ok=True)
    for r, w in zip(responses, rewards, strict=True):
        r.reward = w
        run.append("scored", response_to_dict(r))
    return responses


# ----------------------------------------------------------------------------------------------
# Step 4: construct


def construct(cfg: FuseChatConfig, run: Run, problems: list[Problem], responses: list[Response]) -> IMFData:
    from paperlab.fusechat.imf import build_imf, write_trl_jsonl

    data = build_imf(problems, responses, [s.name for s in cfg.sources], PairRule(window=cfg.window),
                     cfg.sft_share)
    write_trl_jsonl(data, problems, run.dir)
    return data


def matched_arms(data: IMFData) -> tuple[list, list]:
    """Same- and cross-source pairs cut to one size ``n = min(#same, #cross)``: pairs of prompts that have both
    kinds first (in prompt order), then the rest — so the two DPO arms see as many pairs and as many steps."""
    n = min(len(data.same), len(data.cross))
    both = {p.prompt_id for p in data.same} & {p.prompt_id for p in data.cross}

    def order(pairs):
        return sorted(pairs, key=lambda p: p.prompt_id not in both)[:n]

    return order(data.same), order(data.cross)


# ----------------------------------------------------------------------------------------------
# Steps 5-6: train and evaluate


def _student(cfg: FuseChatConfig):
    import copy

    from paperlab.core.models import load_torch_model

    model, tok = load_torch_model(cfg.student, device="cpu")
    return copy.deepcopy(model), tok  # the loader memoises its model: train a copy


def train(cfg: FuseChatConfig, run: Run, problems: list[Problem], data: IMFData) -> tuple[dict, dict]:
    """The base student, SFT, and the two DPO arms (merged models), and their training logs."""
    import copy

    from paperlab.fusechat.dpo import require_trl_ln, train_dpo, train_sft
    from paperlab.fusechat.imf import dpo_record, sft_record

    require_trl_ln()
    text = {p.id: p.prompt for p in problems}
    base, tok = _student(cfg)
    models, logs = {"base": base}, {}
    if not data.sft:
        return models, {"sft": "no SFT examples: every SFT prompt lacked a correct response"}
    sft_model, logs["sft"] = train_sft(copy.deepcopy(base), tok, [sft_record(text[r.prompt_id], r) for r in data.sft],
                                       run.path("adapter_sft"), cfg.settings("sft"))
    models["sft"] = sft_model
    same, cross = matched_arms(data)
    if not same:
        logs["dpo"] = "no matched DPO pairs"
        return models, logs
    for arm, pairs in (("dpo_same", same), ("dpo_cross", cross)):
        models[arm], logs[arm] = train_dpo(copy.deepcopy(sft_model), tok, [dpo_record(text[p.prompt_id], p)
                                                                           for p in pairs],
                                           run.path(f"adapter_{arm}"), cfg.settings("dpo"))
    return models, logs


def evaluate(cfg: FuseChatConfig, run: Run, models: dict, problems: list[Problem]) -> dict[str, dict]:
    """Per model: greedy answers, exact correctness and judge reward per held-out prompt (resumable per model)."""
    from paperlab.core.models import load_torch_model
    from paperlab.fusechat.dpo import greedy_answers
    from paperlab.fusechat.imf import judge_rewards
    from paperlab.fusechat.problems import is_correct

    tok = load_torch_model(cfg.student, device="cpu")[1]
    out = {}
    for arm, model in models.items():
        rows = _cached_records(run, f"eval_{arm}", len(problems))
        if rows is None:
            t0 = time.perf_counter()
            answers = greedy_answers(model, tok, [p.prompt for p in problems], cfg.eval_max_tokens)
            rewards = judge_rewards([p.prompt for p in problems], answers, cfg.judge)
            run.path(f"eval_{arm}.jsonl").unlink(missing_ok=True)
            for p, a, w in zip(problems, answers, rewards, strict=True):
                run.append(f"eval_{arm}", {"prompt_id": p.id, "answer": a, "correct": is_correct(a, p.answer),
                                           "reward": w, "seconds": round(time.perf_counter() - t0, 1)})
            rows = run.read(f"eval_{arm}")
        out[arm] = {"correct": np.array([float(r["correct"]) for r in rows]),
                    "reward": np.array([float("nan") if r["reward"] is None else r["reward"] for r in rows]),
                    "answers": [r["answer"] for r in rows]}
    return out


# ----------------------------------------------------------------------------------------------
# Driver


def run_experiment(cfg: FuseChatConfig, out: Path | None = None) -> Path:
    """Every step of the module doc, then claims and report (torch threads restored after)."""
    from paperlab.core.threads import torch_threads

    with torch_threads(cfg.threads):
        return _run(cfg, out)


def _run(cfg: FuseChatConfig, out: Path | None) -> Path:
    from paperlab.fusechat.report import make_claims, write_report

    t0 = time.perf_counter()
    run = Run("fusechat", out, cfg)
    train_p, eval_p = make_problems(cfg)
    timings = {}
    responses = sample(cfg, run, train_p)
    timings["sample"] = time.perf_counter() - t0
    responses = score(cfg, run, train_p, responses)
    timings["score"] = time.perf_counter() - t0 - sum(timings.values())
    data = construct(cfg, run, train_p, responses)
    models, logs = train(cfg, run, train_p, data)
    timings["train"] = time.perf_counter() - t0 - sum(timings.values())
    evals = evaluate(cfg, run, models, eval_p)
    timings["evaluate"] = time.perf_counter() - t0 - sum(timings.values())
    claims = make_claims(cfg, evals)
    return write_report(cfg, run, claims, responses, data, logs, evals, timings)


def default_config(quick: bool = False, **overrides) -> FuseChatConfig:
    """The configuration ``reproduce(quick, out, **overrides)`` runs (``paperlab reproduce --skip-done`` hashes it)."""
    return build_config(FuseChatConfig, "fusechat", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)
