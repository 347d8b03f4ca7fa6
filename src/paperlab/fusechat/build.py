"""``paperlab fusechat build``: IMF data from a user's sources and prompts, as TRL JSONL.

Each source spec gets the paper's sampling settings (:func:`paper_sampling`): T 0.8 / top-p 0.95, and for a Qwen
model (its spec names ``qwen``) T 0.7 / top-p 0.8 / repetition penalty 1.05. Prompts with a gold ``answer`` follow
the math rule (verification), the others the instruction-following rule (reward only); see
:mod:`paperlab.fusechat.imf`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from paperlab.fusechat.imf import (
    PAPER_SAMPLING,
    PairRule,
    Source,
    build_imf,
    gap_statistics,
    judge_rewards,
    response_to_dict,
    sample_responses,
    verify,
    write_jsonl,
    write_trl_jsonl,
)
from paperlab.fusechat.problems import Problem


def paper_sampling(spec: str) -> dict:
    """The paper's sampling settings for a source spec (Qwen-2.5(-Math)-72B had their own)."""
    return dict(PAPER_SAMPLING["qwen" if "qwen" in spec.lower() else "default"])


def make_sources(specs: Sequence[str], systems: Sequence[str | None], max_tokens: int) -> list[Source]:
    """One :class:`Source` per spec, named ``s<i>:<spec>`` (a spec may repeat under another system prompt)."""
    return [Source(name=f"s{i}:{spec}", spec=spec, system=sys, max_tokens=max_tokens, **paper_sampling(spec))
            for i, (spec, sys) in enumerate(zip(specs, systems, strict=True))]


def build_data(specs: Sequence[str], systems: Sequence[str | None], problems: Sequence[Problem], out: Path, *,
               samples: int = 5, judge: str = "default", window: tuple[float, float] | None = (0.01, 0.1),
               sft_share: float = 0.4, max_tokens: int = 512, seed: int = 0, cross: bool = False,
               log: Callable[[str], None] = print) -> dict:
    """Sample, score, select and write ``sft.jsonl``, ``dpo.jsonl`` (and ``dpo_cross.jsonl`` when ``cross``),
    ``responses.jsonl`` (every scored response) and ``stats.json``; returns the statistics."""
    out = Path(out)
    sources = make_sources(specs, systems, max_tokens)
    log(f"sampling {samples} responses x {len(sources)} sources x {len(problems)} prompts")
    responses = sample_responses(problems, sources, samples, seed)
    verify(responses, problems)
    text = {p.id: p.prompt for p in problems}
    log(f"judging {len(responses)} responses with {judge}")
    rewards = judge_rewards([text[r.prompt_id] for r in responses], [r.text for r in responses], judge)
    for r, w in zip(responses, rewards, strict=True):
        r.reward = w
    data = build_imf(problems, responses, [s.name for s in sources], PairRule(window=window), sft_share)
    # the folder is made (or emptied of an earlier build) only now: a killed build leaves nothing half-written
    # (the generations and judgements are in the request cache, so a re-run redoes nothing)
    for f in ("sft.jsonl", "dpo.jsonl", "dpo_cross.jsonl", "responses.jsonl", "stats.json"):
        (out / f).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    files = write_trl_jsonl(data, problems, out)
    if not cross:
        files.pop("dpo_cross").unlink()
    write_jsonl(out / "responses.jsonl", [response_to_dict(r) for r in responses])
    stats = {"files": {k: str(v) for k, v in files.items()}, "counts": data.counts,
             "gaps_same_source": gap_statistics(data.candidate_gaps["same"], window),
             "gaps_cross_source": gap_statistics(data.candidate_gaps["cross"], window),
             "sources": [s.__dict__ for s in sources], "samples": samples, "judge": judge,
             "window": None if window is None else list(window), "sft_share": sft_share, "seed": seed,
             "unscored_responses": sum(r.reward != r.reward for r in responses)}
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False))
    return stats
