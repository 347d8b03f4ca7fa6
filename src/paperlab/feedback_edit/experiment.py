"""``paperlab feedback_edit run``: Feedback-Edit's selected-answer reward over an (N, M, K) grid and
best-of-N at the same number of generation calls.

The driver (:func:`reproduce`) is a list of steps:

1. :func:`load_problems` — the task's problems with exact references (:mod:`.tasks`).
2. :func:`load_roles` — one backend per role; requests cached in the run folder (``requests.sqlite``).
3. :func:`sample_trees` — the pipeline once at the grid's largest setting, ``N'_max = C(N_max, M_max,
   K_max)`` initial samples for best-of-N (nested sampling: every smaller setting is a sub-array, see
   :mod:`.pipeline`); ``chunk`` prompts per batched stage, one record per prompt in ``trees.jsonl``,
   so a killed run resumes at the next chunk (and finished requests come from the cache).
4. :func:`evaluate` — per prompt and setting: the selected answer's exact reward, the oracle
   (any candidate correct), the reward under self-consistency voting over the same candidates (a
   model-free selector, reported beside the claims), compute per role; the same for best-of-N at
   equal calls.
5. :func:`~paperlab.feedback_edit.report.make_claims`, the plot and the report (:mod:`.report`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from paperlab.core.errors import UserError
from paperlab.core.runs import Run, build_config
from paperlab.feedback_edit import pipeline as fe
from paperlab.feedback_edit.tasks import TASKS, Problem, final_answer, load_task, reward

SYSTEM = "feedback_edit"
PAPER = ("Dedicated Feedback and Edit Models Empower Inference-Time Scaling for Open-Ended General-Domain Tasks "
         "(HelpSteer3 Feedback-Edit), arXiv:2503.04378 (2025), https://arxiv.org/abs/2503.04378")


class FeedbackEditConfig(BaseModel):
    """Configuration of ``paperlab feedback_edit run`` (saved with every run)."""

    task: Literal[TASKS] = Field("onestep", description=f"one of {TASKS}")
    problems: int = Field(40, ge=2)
    n_grid: list[int] = Field(default_factory=lambda: [1, 2, 4], description="N: initial responses")
    m_grid: list[int] = Field(default_factory=lambda: [1, 2], description="M: feedbacks per response")
    k_grid: list[int] = Field(default_factory=lambda: [1, 2], description="K: edits per feedback")
    generator: str = "default"
    feedback: str = "default"
    editor: str = "default"
    selector: str = "default"
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    max_tokens_generator: int = Field(192, ge=8)
    max_tokens_feedback: int = Field(128, ge=8)
    max_tokens_editor: int = Field(192, ge=8)
    keep: int | None = Field(None, ge=1, description="edit only the top-`keep` feedbacks by criticism count")
    seed: int = 0
    chunk: int = Field(6, ge=1, description="prompts per batched stage (and per resume unit)")

    @field_validator("n_grid", "m_grid", "k_grid")
    @classmethod
    def _grid(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 1 or len(set(v)) != len(v):
            raise ValueError("a grid is a non-empty list of distinct integers >= 1")
        return sorted(v)

    @model_validator(mode="after")
    def _specs(self):
        from paperlab.core.cli import check_model_spec

        for role in fe.ROLES:
            check_model_spec(getattr(self, role), f"--{role}")
        if self.keep is not None and (len(self.m_grid) > 1 or self.keep > self.m_grid[0]):
            # the top-`keep` of M_max feedbacks are not the top of a smaller M's: settings would not nest
            raise ValueError(f"keep={self.keep} needs one M >= keep (m_grid {self.m_grid})")
        return self

    @classmethod
    def quick(cls, **kw) -> FeedbackEditConfig:
        """Sized for ~6 minutes alone on 2 cores with llama.cpp: 8 problems, N and M in {1, 2}, K = 1, short
        answers (K in {1, 2} is the default tier's).

        Per problem the largest setting (2, 2, 1) and best-of-10 cost 10 + 4 + 4 = 18 generation calls and
        4 + 10 = 14 selector calls. Measured alone on 2 cores (2026-12-02): with K in {1, 2} (48 requests a
        problem) 10 problems took 11 min, ~1.4 s a request."""
        base = dict(problems=8, n_grid=[1, 2], m_grid=[1, 2], k_grid=[1], max_tokens_generator=48,
                    max_tokens_feedback=40, max_tokens_editor=48, chunk=4)
        return cls(**{**base, **kw})

    def sampling(self) -> fe.Sampling:
        return fe.Sampling(self.temperature, self.top_p, self.max_tokens_generator, self.max_tokens_feedback,
                           self.max_tokens_editor)

    def settings(self) -> list[tuple[int, int, int]]:
        return list(itertools.product(self.n_grid, self.m_grid, self.k_grid))

    def largest(self) -> tuple[int, int, int]:
        return max(self.n_grid), max(self.m_grid), max(self.k_grid)

    def smallest(self) -> tuple[int, int, int]:
        return min(self.n_grid), min(self.m_grid), min(self.k_grid)

    def n_bon(self) -> int:
        """Initial samples needed for best-of-N at the largest setting's number of generation calls."""
        return fe.generation_calls(*self.largest())


def default_config(quick: bool = False, **overrides) -> FeedbackEditConfig:
    return build_config(FeedbackEditConfig, SYSTEM, quick, overrides)


# ------------------------------------------------------------------ steps


def load_problems(cfg: FeedbackEditConfig) -> list[Problem]:
    return load_task(cfg.task, cfg.problems, cfg.seed)


def load_roles(specs: dict[str, str], cache_path: Path | None) -> fe.Roles:
    """One backend per role (a spec shared by roles loads once); requests cached at ``cache_path``."""
    from paperlab.core.cache import Cache
    from paperlab.core.models import load_lm, parse_spec

    cache = Cache(cache_path) if cache_path is not None else True
    lms = {}
    for role in fe.ROLES:
        spec = specs[role]
        kw = {"n_ctx": 2048} if parse_spec(spec).kind == "gguf" else {}  # the judge's logits_all copy stays small
        lms[role] = load_lm(spec, cache=cache, **kw)
    return fe.Roles(**lms)


def requests_per_prompt(n: int, m: int, k: int, n_bon: int) -> int:
    """Model requests one prompt costs at the largest setting (all stages, selector included)."""
    n0 = max(n, n_bon)
    return n0 + n * m + n * m * k + (n * m * k + n0)


def sample_trees(run: Run, roles: fe.Roles, problems: Sequence[Problem], cfg: FeedbackEditConfig) -> list[fe.Tree]:
    """The pipeline at the largest setting over every problem, ``cfg.chunk`` prompts per batch;
    finished prompts are read back from ``trees.jsonl`` (resume)."""
    from rich.progress import Progress

    done = {d["uid"]: fe.Tree.from_dict(d) for d in run.read("trees")}
    todo = [p for p in problems if p.uid not in done]
    n, m, k = cfg.largest()
    per = requests_per_prompt(n, m, k, cfg.n_bon())
    with Progress(transient=True) as bar:
        task = bar.add_task("feedback-edit requests", total=per * len(todo))
        for s in range(0, len(todo), cfg.chunk):
            part = todo[s:s + cfg.chunk]
            trees = fe.run_pipeline(roles, [p.prompt for p in part], [p.uid for p in part], n, m, k,
                                    n_bon=cfg.n_bon(), sampling=cfg.sampling(), seed=cfg.seed, keep=cfg.keep,
                                    progress=lambda role, c: bar.advance(task, c))
            for t in trees:
                run.append("trees", t.to_dict())
                done[t.uid] = t
    return [done[p.uid] for p in problems]


def _oracle(texts: Sequence[str], answer: str | None) -> float:
    return float(max((reward(t, answer) for t in texts), default=0.0))


def evaluate(trees: Sequence[fe.Tree], problems: Sequence[Problem], cfg: FeedbackEditConfig) -> dict:
    """Per setting: per-prompt selected reward, oracle, calls and tokens; best-of-N at equal calls."""
    out: dict = {"feedback_edit": {}, "best_of_n": {}}
    for n, m, k in cfg.settings():
        sel, orc, vot, comp = [], [], [], []
        for t, p in zip(trees, problems, strict=True):
            i, j, kk = fe.select_feedback_edit(t, n, m, k)
            sel.append(reward(t.edits[i][j][kk].text, p.answer))
            idx = fe.edit_index(t, n, m, k)
            texts = [t.edits[a][b][c].text for a, b, c in idx]
            orc.append(_oracle(texts, p.answer))
            v = fe.vote([final_answer(x) for x in texts], [t.edit_judged[a][b][c].score for a, b, c in idx])
            vot.append(reward(texts[v], p.answer))
            comp.append(fe.compute_feedback_edit(t, n, m, k))
        out["feedback_edit"][(n, m, k)] = {"reward": sel, "oracle": orc, "vote": vot, "compute": _mean_compute(comp),
                                           "calls": fe.generation_calls(n, m, k)}
    for c in sorted({fe.generation_calls(*s) for s in cfg.settings()} | {1}):
        sel, orc, vot, comp = [], [], [], []
        for t, p in zip(trees, problems, strict=True):
            sel.append(reward(t.initial[fe.select_best_of_n(t, c)].text, p.answer))
            texts = [x.text for x in t.initial[:c]]
            orc.append(_oracle(texts, p.answer))
            v = fe.vote([final_answer(x) for x in texts], [x.score for x in t.initial_judged[:c]])
            vot.append(reward(texts[v], p.answer))
            comp.append(fe.compute_best_of_n(t, c))
        out["best_of_n"][c] = {"reward": sel, "oracle": orc, "vote": vot, "compute": _mean_compute(comp), "calls": c}
    out["diagnostics"] = diagnostics(trees, problems, cfg)
    return out


def _mean_compute(per_prompt: Sequence[dict[str, dict[str, int]]]) -> dict[str, dict[str, float]]:
    """Mean calls and tokens per prompt, per role."""
    return {r: {q: float(np.mean([c[r][q] for c in per_prompt])) for q in ("calls", "prompt_tokens",
                                                                          "completion_tokens")}
            for r in fe.ROLES}


def diagnostics(trees: Sequence[fe.Tree], problems: Sequence[Problem], cfg: FeedbackEditConfig) -> dict:
    """What the claims rest on: do edits help on average, does the judge rank correct answers higher,
    does the criticism-keyword count predict an edit's gain."""
    n, m, k = cfg.largest()
    init_r, edit_r, scores, labels, counts, gains, trunc = [], [], [], [], [], [], []
    for t, p in zip(trees, problems, strict=True):
        for i in range(len(t.initial)):
            r0 = reward(t.initial[i].text, p.answer)
            scores.append(t.initial_judged[i].score)
            labels.append(r0)
            if i < n:
                init_r.append(r0)
                for j, f in enumerate(t.feedback[i]):
                    es = [reward(e.text, p.answer) for e in t.edits[i][j]]
                    for e, je in zip(es, t.edit_judged[i][j], strict=True):
                        edit_r.append(e)
                        scores.append(je.score)
                        labels.append(e)
                    if es:
                        counts.append(fe.criticism_count(f.text))
                        gains.append(float(np.mean(es)) - r0)
        trunc += [c.finish_reason == "length" for c in t.initial]
        trunc += [e.finish_reason == "length" for row in t.edits for ks in row for e in ks]
    return {"initial_reward": init_r, "edit_reward": edit_r, "judge_scores": scores, "judge_labels": labels,
            "criticism_counts": counts, "edit_gains": gains, "truncated_share": float(np.mean(trunc)) if trunc else 0.0}


def reproduce(quick: bool = False, out: Path | str | None = None, overwrite: bool = False, **overrides) -> Path:
    """Run the experiment; returns the run folder (report.md, results.json, rewards_vs_calls.png)."""
    from paperlab.feedback_edit.report import write_report

    cfg = default_config(quick, **overrides)
    problems = load_problems(cfg)
    if not any(p.answer is not None for p in problems):
        raise UserError("the task has no reference answers", "use --task onestep, arithmetic or gsm8k")
    run = Run(SYSTEM, out=out, config=cfg, overwrite=overwrite)
    roles = load_roles({r: getattr(cfg, r) for r in fe.ROLES}, run.path("requests.sqlite"))
    trees = sample_trees(run, roles, problems, cfg)
    ev = evaluate(trees, problems, cfg)
    write_report(run, cfg, ev, roles.ids(), PAPER)
    return run.dir
