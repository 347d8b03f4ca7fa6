"""``paperlab feedback_edit solve``: Feedback-Edit on a user's prompts, one JSON line per prompt.

Requests go through the shared request cache (``$PAPERLAB_CACHE``), so a re-run or a killed run
recomputes nothing already answered.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paperlab.feedback_edit import pipeline as fe
from paperlab.feedback_edit.tasks import Problem, reward


def _total(per_prompt: Sequence[dict]) -> dict:
    return {r: {q: int(sum(c[r][q] for c in per_prompt)) for q in ("calls", "prompt_tokens", "completion_tokens")}
            for r in fe.ROLES}


def solve_prompts(problems: Sequence[Problem], specs: dict[str, str], n: int, m: int, k: int, output: Path,
                  best_of_n: bool = False, keep: int | None = None, max_tokens: int = 256,
                  temperature: float = 0.7, top_p: float = 0.9, seed: int = 0) -> dict:
    """Run the pipeline, write ``output`` (JSONL), return a summary (mean rewards when answers are given,
    calls and tokens per role)."""
    from paperlab.feedback_edit.experiment import load_roles

    roles = load_roles(specs, None)
    calls = fe.generation_calls(n, m, k)
    sampling = fe.Sampling(temperature, top_p, max_tokens, max_tokens, max_tokens)
    trees = fe.run_pipeline(roles, [p.prompt for p in problems], [p.uid for p in problems], n, m, k,
                            n_bon=calls if best_of_n else 0, sampling=sampling, seed=seed, keep=keep)
    rows, comp_fe, comp_bon = [], [], []
    for p, t in zip(problems, trees, strict=True):
        i, j, kk = fe.select_feedback_edit(t, n, m, k)
        row = {"id": p.uid, "prompt": p.prompt, "answer_text": t.edits[i][j][kk].text,
               "selector_reward": t.edit_judged[i][j][kk].score, "chosen": {"response": i, "feedback": j, "edit": kk},
               "initial_response": t.initial[i].text, "feedback": t.feedback[i][j].text,
               "compute": fe.compute_feedback_edit(t, n, m, k)}
        comp_fe.append(row["compute"])
        if p.answer is not None:
            row["reward"] = reward(row["answer_text"], p.answer)
        if best_of_n:
            b = fe.select_best_of_n(t, calls)
            row["best_of_n"] = {"n": calls, "answer_text": t.initial[b].text,
                                "selector_reward": t.initial_judged[b].score,
                                "compute": fe.compute_best_of_n(t, calls)}
            comp_bon.append(row["best_of_n"]["compute"])
            if p.answer is not None:
                row["best_of_n"]["reward"] = reward(t.initial[b].text, p.answer)
        rows.append(row)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    summary: dict = {"output": str(output), "prompts": len(rows), "setting": {"n": n, "m": m, "k": k},
                     "generation_calls_per_prompt": calls, "roles": roles.ids(), "compute": _total(comp_fe)}
    scored = [r["reward"] for r in rows if "reward" in r]
    if scored:
        summary["mean_reward"] = float(np.mean(scored))
    if best_of_n:
        summary["best_of_n"] = {"n": calls, "compute": _total(comp_bon)}
        b_scored = [r["best_of_n"]["reward"] for r in rows if "reward" in r.get("best_of_n", {})]
        if b_scored:
            summary["best_of_n"]["mean_reward"] = float(np.mean(b_scored))
    return {key: v for key, v in summary.items() if not (isinstance(v, float) and math.isnan(v))}
