"""Implicit model fusion (IMF) data construction — FuseChat-3.0, Section 3 ("data construction").

Every prompt is answered ``N`` times by each *source* model (the paper: Gemma-2-27B, Mistral-Large, Qwen-2.5-72B,
Llama-3.1-70B; ``T 0.8 / top-p 0.95``, Qwen ``T 0.7 / top-p 0.8 / repetition penalty 1.05``; 5 samples per source
for instruction following). Every response is scored — by a reward model ``r`` (ArmoRM in the paper) and, for math,
by verification against the gold answer. Then, per prompt ``x`` with responses ``y_{s,k}`` (source ``s``, sample
``k``):

===================  ======================================================================================
SFT target           ``argmax_{s,k} r(y_{s,k})`` (math/code: over the *correct* responses only)
DPO pair, general    the **same** source ``s``: ``y_w = argmax_k r(y_{s,k})``, ``y_l = argmin_k r(y_{s,k})``
DPO pair, math       the same source: ``y_w`` = correct with the highest ``r``, ``y_l`` = incorrect with the lowest
DPO pair, code       the same source: ``y_w`` = passing with the highest ``r``, ``y_l`` = failing with the lowest
RM-gap window        a pair is kept only when ``r(y_w) - r(y_l)`` lies in ``[0.01, 0.1]`` (general and math)
===================  ======================================================================================

Prompts are split SFT : DPO = 4 : 6 (:func:`split_prompts`); one pair per DPO prompt. The paper does not say
which source's pair is kept when several qualify: we keep the one whose chosen response has the highest reward
(ties: the first source in the configured order) — :func:`same_source_pair`.

The *cross-source* pair (:func:`cross_source_pair`) is the ablation the paper argues against: ``y_w`` the best
response over all sources, ``y_l`` the worst response of *another* source, same correctness rule and window.

API: :class:`Source`, :class:`Response`, :class:`PairRule`, :func:`sample_responses`, :func:`judge_rewards`,
:func:`verify`, :func:`sft_target`, :func:`same_source_pair`, :func:`cross_source_pair`, :func:`build_imf`,
:func:`write_trl_jsonl`, :func:`gap_statistics`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from paperlab.fusechat.problems import Problem, is_correct

#: the paper's sampling settings (fact sheet): most sources, and Qwen-2.5(-Math)-72B
PAPER_SAMPLING = {"default": dict(temperature=0.8, top_p=0.95, repetition_penalty=1.0),
                  "qwen": dict(temperature=0.7, top_p=0.8, repetition_penalty=1.05)}
PAPER_WINDOW = (0.01, 0.1)


@dataclass(frozen=True)
class Source:
    """One source generator: a model spec (``load_lm``), an optional system prompt and demonstration turns
    (``examples``: (user, assistant) pairs placed before the prompt), its sampling settings."""

    name: str
    spec: str = "default"
    system: str | None = None
    examples: tuple[tuple[str, str], ...] = ()
    temperature: float = 0.8
    top_p: float = 0.95
    repetition_penalty: float = 1.0
    max_tokens: int = 128

    def messages(self, prompt: str) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        for user, assistant in self.examples:
            msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return msgs + [{"role": "user", "content": prompt}]


@dataclass
class Response:
    """One sampled response with its scores. ``correct`` is ``None`` for an unverified (general) prompt."""

    prompt_id: str
    source: str
    sample: int
    text: str
    reward: float = float("nan")
    correct: bool | None = None
    truncated: bool = False


@dataclass(frozen=True)
class PairRule:
    """How pairs are chosen: the RM-gap window ``[lo, hi]`` (``None``: no window), per prompt kind."""

    window: tuple[float, float] | None = PAPER_WINDOW
    code_window: tuple[float, float] | None = None  # the paper states no window for code pairs

    def in_window(self, gap: float, kind: str) -> bool:
        w = self.code_window if kind == "code" else self.window
        return math.isfinite(gap) and (w is None or w[0] <= gap <= w[1])


@dataclass
class Pair:
    """A DPO pair: ``chosen`` preferred to ``rejected`` for ``prompt_id``; ``gap = r(chosen) - r(rejected)``."""

    prompt_id: str
    chosen: Response
    rejected: Response
    kind: str

    @property
    def gap(self) -> float:
        return self.chosen.reward - self.rejected.reward

    @property
    def same_source(self) -> bool:
        return self.chosen.source == self.rejected.source


# ----------------------------------------------------------------------------------------------
# Sampling and scoring

#: Sources and judge default to ``default-hf`` (core spec: the default LM's weights through transformers).
#: Why: for many short answers, transformers' batched generation of the same weights measured about 5x faster
#: than llama.cpp's one-request-at-a-time on this 2-core machine (10 few-shot prompts: 27 s vs. 141 s, loaded).
DEFAULT_HF = "default-hf"


def sample_responses(problems: Sequence[Problem], sources: Sequence[Source], n_samples: int, seed: int = 0,
                     on_result: Callable[[Response], None] | None = None) -> list[Response]:
    """``n_samples`` responses per (prompt, source) through ``load_lm(source.spec)`` (cached per request: a
    re-run or a resumed run regenerates nothing). Sample ``k`` uses seed ``seed + k``."""
    from paperlab.core.models import GenerationParams, load_lm

    out: list[Response] = []
    for src in sources:
        lm = load_lm(src.spec)
        for k in range(n_samples):  # one request per prompt with one set of parameters: a batch for transformers
            params = GenerationParams(temperature=src.temperature, top_p=src.top_p,
                                      repetition_penalty=src.repetition_penalty, max_tokens=src.max_tokens,
                                      seed=seed + k)
            results = lm.chat([src.messages(p.prompt) for p in problems], params)
            for p, r in zip(problems, results, strict=True):
                resp = Response(p.id, src.name, k, r.text.strip(), truncated=r.finish_reason == "length")
                out.append(resp)
                if on_result:
                    on_result(resp)
    return out


def verify(responses: Sequence[Response], problems: Sequence[Problem]) -> None:
    """Set ``correct`` of every response to a prompt with a gold answer (exact final-number match)."""
    gold = {p.id: p for p in problems}
    for r in responses:
        p = gold[r.prompt_id]
        r.correct = is_correct(r.text, p.answer) if p.answer is not None else None


JUDGE_TEMPLATE = ("Question: {prompt}\n\nResponse: {response}\n\nIs the response a correct and helpful answer to "
                  "the question? Reply Yes or No.")
JUDGE_TOP = 20


def judge_messages(prompt: str, response: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": JUDGE_TEMPLATE.format(prompt=prompt, response=response)}]


def yes_probability(top: Sequence[tuple[str, float]]) -> float:
    """``P(Yes) / (P(Yes) + P(No))`` from the first generated token's top alternatives ``(token, logprob)``
    (token text stripped and lower-cased; ``yes``/``no`` variants summed). A side absent from the top list is
    given the smallest listed probability (an upper bound on it); ``nan`` when both are absent."""
    yes = sum(math.exp(lp) for t, lp in top if t.strip().lower() == "yes")
    no = sum(math.exp(lp) for t, lp in top if t.strip().lower() == "no")
    if yes == 0 and no == 0:
        return float("nan")
    floor = min((math.exp(lp) for _, lp in top), default=0.0)
    yes, no = yes or floor, no or floor
    return yes / (yes + no)


def judge_rewards(prompts: Sequence[str], responses: Sequence[str], judge: str = "default-hf",
                  on_result: Callable[[int, float], None] | None = None, chunk: int = 48) -> list[float]:
    """The offline stand-in for ArmoRM: a language model's judgement ``r = P(Yes) / (P(Yes) + P(No))`` for the first
    token of its reply to :data:`JUDGE_TEMPLATE`, in ``[0, 1]`` (greedy, one token, top-20 log-probabilities), through
    ``load_lm(judge)`` — any backend that returns log-probabilities, cached per request like generation."""
    from paperlab.core.models import GenerationParams, load_lm

    lm = load_lm(judge)
    params = GenerationParams(temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=JUDGE_TOP)
    batch = [judge_messages(p, r) for p, r in zip(prompts, responses, strict=True)]
    out: list[float] = []
    for i in range(0, len(batch), chunk):  # chunks: progress, and a killed run keeps the cached chunks
        for res in lm.chat(batch[i:i + chunk], params):
            out.append(_reward_of(res))
            if on_result:
                on_result(len(out) - 1, out[-1])
    return out


def _reward_of(res) -> float:
    if not res.logprobs:
        return float("nan")
    return yes_probability(res.logprobs[0].top)


# ----------------------------------------------------------------------------------------------
# Selection rules (pure functions of scored responses)


def _eligible(rs: Sequence[Response]) -> list[Response]:
    return [r for r in rs if math.isfinite(r.reward)]


def _best(rs: Sequence[Response]) -> Response | None:
    return max(rs, key=lambda r: r.reward, default=None)  # max keeps the first of ties


def _worst(rs: Sequence[Response]) -> Response | None:
    return min(rs, key=lambda r: r.reward, default=None)


def _verified(rs: Sequence[Response]) -> bool:
    return any(r.correct is not None for r in rs)


def sft_target(rs: Sequence[Response]) -> Response | None:
    """The SFT response of one prompt: the highest-reward response; for a verified prompt the highest-reward
    *correct* one (``None`` when no response is correct)."""
    rs = _eligible(rs)
    if _verified(rs):
        rs = [r for r in rs if r.correct]
    return _best(rs)


def candidate_pair(rs: Sequence[Response], kind: str) -> tuple[Response, Response] | None:
    """The extreme pair of a set of responses, before the window: general: (highest, lowest) reward;
    verified: (correct with the highest reward, incorrect with the lowest)."""
    rs = _eligible(rs)
    if _verified(rs):
        w, lo = _best([r for r in rs if r.correct]), _worst([r for r in rs if r.correct is False])
    else:
        if len(rs) < 2:
            return None
        w, lo = _best(rs), _worst(rs)
        if w is lo:
            return None
    return None if w is None or lo is None else (w, lo)


def same_source_pair(rs: Sequence[Response], sources: Sequence[str], kind: str, rule: PairRule) -> Pair | None:
    """FuseChat-3.0's pair: within one source; among the sources whose pair's gap lies in the window, the pair
    with the highest chosen reward (ties: the earlier source)."""
    best: Pair | None = None
    for s in sources:
        c = candidate_pair([r for r in rs if r.source == s], kind)
        if c is None:
            continue
        pair = Pair(c[0].prompt_id, c[0], c[1], kind)
        if rule.in_window(pair.gap, kind) and (best is None or pair.chosen.reward > best.chosen.reward):
            best = pair
    return best


def cross_source_pair(rs: Sequence[Response], kind: str, rule: PairRule) -> Pair | None:
    """The ablation: chosen = the best response over all sources (verified: best correct), rejected = the
    worst (verified: worst incorrect) response of a *different* source; kept when the gap lies in the window."""
    rs = _eligible(rs)
    pool_w = [r for r in rs if r.correct] if _verified(rs) else rs
    for w in sorted(pool_w, key=lambda r: -r.reward):  # the best chosen that has a rejected from another source
        pool_l = [r for r in rs if r.source != w.source and (r.correct is False if _verified(rs) else True)]
        lo = _worst(pool_l)
        if lo is not None:
            pair = Pair(w.prompt_id, w, lo, kind)
            return pair if rule.in_window(pair.gap, kind) else None
    return None


def split_prompts(problems: Sequence[Problem], sft_share: float = 0.4) -> tuple[list[Problem], list[Problem]]:
    """The paper's SFT : DPO prompt split (4 : 6), in the given order."""
    n = round(len(problems) * sft_share)
    return list(problems[:n]), list(problems[n:])


@dataclass
class IMFData:
    """What :func:`build_imf` makes: the SFT responses, the same- and cross-source pairs, and per-prompt
    candidate gaps (before the window) for the statistics."""

    sft: list[Response] = field(default_factory=list)
    same: list[Pair] = field(default_factory=list)
    cross: list[Pair] = field(default_factory=list)
    candidate_gaps: dict[str, list[float]] = field(default_factory=lambda: {"same": [], "cross": []})
    counts: dict[str, int] = field(default_factory=dict)


def build_imf(problems: Sequence[Problem], responses: Sequence[Response], sources: Sequence[str],
              rule: PairRule, sft_share: float = 0.4) -> IMFData:
    """Split the prompts 4 : 6, pick the SFT responses of the SFT prompts and the same-/cross-source pairs of
    the DPO prompts. Records every candidate pair's gap (kept or not) and the counts of each drop reason."""
    by_prompt: dict[str, list[Response]] = {}
    for r in responses:
        by_prompt.setdefault(r.prompt_id, []).append(r)
    sft_prompts, dpo_prompts = split_prompts(problems, sft_share)
    data = IMFData()
    counts = dict(sft_prompts=len(sft_prompts), dpo_prompts=len(dpo_prompts), sft_kept=0, same_kept=0,
                  cross_kept=0, sft_no_correct=0, dpo_no_candidate=0)
    for p in sft_prompts:
        t = sft_target(by_prompt.get(p.id, []))
        if t is None:
            counts["sft_no_correct"] += 1
        else:
            data.sft.append(t)
    for p in dpo_prompts:
        rs = by_prompt.get(p.id, [])
        kind = p.kind
        cands = [c for s in sources if (c := candidate_pair([r for r in rs if r.source == s], kind))]
        if not cands:
            counts["dpo_no_candidate"] += 1
        data.candidate_gaps["same"] += [w.reward - lo.reward for w, lo in cands]
        cross_c = cross_source_pair(rs, kind, PairRule(window=None, code_window=None))
        if cross_c is not None:
            data.candidate_gaps["cross"].append(cross_c.gap)
        if (pair := same_source_pair(rs, sources, kind, rule)) is not None:
            data.same.append(pair)
        if (pair := cross_source_pair(rs, kind, rule)) is not None:
            data.cross.append(pair)
    counts.update(sft_kept=len(data.sft), same_kept=len(data.same), cross_kept=len(data.cross))
    data.counts = counts
    return data


def gap_statistics(gaps: Sequence[float], window: tuple[float, float] | None) -> dict[str, float]:
    """Count, quantiles and the share inside the window of a list of RM gaps."""
    import numpy as np

    g = np.asarray([x for x in gaps if math.isfinite(x)], dtype=float)
    if g.size == 0:
        return {"n": 0}
    inside = g.size if window is None else int(((g >= window[0]) & (g <= window[1])).sum())
    q = np.quantile(g, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"n": int(g.size), "min": float(q[0]), "q25": float(q[1]), "median": float(q[2]), "q75": float(q[3]),
            "max": float(q[4]), "negative": int((g < 0).sum()), "in_window": inside,
            "share_in_window": inside / g.size}


# ----------------------------------------------------------------------------------------------
# TRL files


def sft_record(prompt: str, r: Response) -> dict:
    """One SFT example in TRL's conversational ``messages`` format (plus provenance keys TRL ignores)."""
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": r.text}],
            "source": r.source, "reward": r.reward, "correct": r.correct}


def dpo_record(prompt: str, pair: Pair) -> dict:
    """One DPO pair in TRL's conversational preference format ``prompt`` / ``chosen`` / ``rejected``."""
    return {"prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": pair.chosen.text}],
            "rejected": [{"role": "assistant", "content": pair.rejected.text}],
            "chosen_source": pair.chosen.source, "rejected_source": pair.rejected.source,
            "gap": pair.gap, "kind": pair.kind}


def write_jsonl(path: Path | str, rows: Sequence[dict]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return p


def write_trl_jsonl(data: IMFData, problems: Sequence[Problem], out: Path | str) -> dict[str, Path]:
    """``sft.jsonl`` (messages), ``dpo.jsonl`` (same-source pairs), ``dpo_cross.jsonl`` (cross-source pairs)."""
    text = {p.id: p.prompt for p in problems}
    out = Path(out)
    return {"sft": write_jsonl(out / "sft.jsonl", [sft_record(text[r.prompt_id], r) for r in data.sft]),
            "dpo": write_jsonl(out / "dpo.jsonl", [dpo_record(text[p.prompt_id], p) for p in data.same]),
            "dpo_cross": write_jsonl(out / "dpo_cross.jsonl", [dpo_record(text[p.prompt_id], p) for p in data.cross])}


def response_from_dict(d: dict) -> Response:
    """A :class:`Response` from its JSON record (an unscored reward, stored as null, is NaN again)."""
    r = Response(**{k: d[k] for k in ("prompt_id", "source", "sample", "text", "reward", "correct", "truncated")})
    r.reward = float("nan") if r.reward is None else float(r.reward)
    return r


def response_to_dict(r: Response) -> dict:
    return asdict(r)
