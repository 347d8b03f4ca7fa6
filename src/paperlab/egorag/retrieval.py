"""EgoRAG retrieval (paper §4.2, Eq. 2-3; released ``RagAgent.py``), and the flat baseline.

A query at time ``T`` sees only clips and summary sentences from before ``T``.

``hierarchical`` (default; the released code's text-only rule)
    1. *day*: score every day by its daily summary, pick the best ``top_days`` (1);
    2. *hour*: score that day's hours by their hourly summaries, keep the best ``top_hours`` (2);
    3. *clips*: inside those hours, ``R = TopK_i sim(q, d_i)`` with ``d_i`` the caption, ``k = 3``.
    The summaries only choose the window: no summary term enters the clip score (the corrected fact sheet).
    The released code has an LLM read the summaries and name the day and hours; our default stand-in needs no
    LLM: a day summary is scored by BM25 of the question (:meth:`~paperlab.egorag.memory.SummaryLevel.bm25`),
    an hour summary by its sentence nearest the question (cosine; ``top_m`` = 1). Why BM25 for days: a day
    summary is long (1,500 words) and a question mixes a cue naming the day ("on the day we baked the cake")
    with its target ("where did I leave the scissors"); a bag of words adds up evidence from different
    sentences and its IDF discounts what every day shares (the scissors are handled daily, the cake was baked
    once), which is what a reader of the summaries does. A dense max- or top-m-sentence score lets the target,
    matched every day, decide the day (measured on the simulator: the day was right for 61 % of questions
    with dense top-3 scores, 79 % with BM25). ``day_scorer="dense"`` keeps the dense score.
``eq2``
    the same window, then Eq. 2 as printed, ``s_i = Sim(q, c_i) + λ·Sim(q, d_i)``, where ``c_i`` -- a clip
    feature in the paper (visual) -- is here the embedding of the clip's structured scene record (the
    simulator's, or a ``scene`` field in your captions). As printed, ``λ = 0`` keeps only the clip feature and
    ``λ -> ∞`` ranks as ``hierarchical``; the paper's text says its experiments set λ = 0 and retrieve by text,
    which Eq. 2 contradicts (see the fact sheet), so we sweep λ.
``llm``
    the released code's LLM-guided selection: an LLM reads the day summaries (earlier days and today) and names
    a day, then reads that day's hour summaries and names an hour range; then step 3. A reply we cannot parse
    falls back to the similarity choice (counted in ``info['fallback']``).
``flat`` (baseline)
    ``TopK`` by caption cosine over every clip before ``T`` (a faiss search).

Not implemented from the released code: the "last time" path (keyword extraction, Chroma's top 50 before a
time bound, an LLM picking the most recent id) and the ±10-sentence evidence expansion checked by a video
model: both need a video model or hand-tuned prompts beyond the paper's description.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from paperlab.egorag.memory import DAY_S, HOUR_S, MemoryIndex

METHODS = ("hierarchical", "flat", "eq2", "llm")


@dataclass
class Retrieval:
    """Retrieved clip positions (index order) with scores, and the window they were drawn from."""

    positions: np.ndarray
    scores: np.ndarray
    method: str
    days: list[int] = field(default_factory=list)
    hours: list[int] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def times(self, index: MemoryIndex) -> list[float]:
        return [float(index.times[p]) for p in self.positions]


@dataclass
class RetrievalConfig:
    k: int = 3
    top_days: int = 1
    top_hours: int = 2
    day_scorer: str = "bm25"         # how a day summary is scored against the question: bm25 | dense
    top_m: int = 1                   # dense summary score: mean of the top_m sentence cosines
    lam: float = 1.0                 # Eq. 2's λ (method eq2)
    llm_chars_day: int = 300         # characters of each day summary shown to the LLM selector
    llm_chars_hour: int = 160


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest finite scores, best first (ties: earlier index first)."""
    ok = np.flatnonzero(np.isfinite(scores))
    if not len(ok):
        return ok
    order = ok[np.argsort(-scores[ok], kind="stable")]
    return order[:k]


def select_days(index: MemoryIndex, q: np.ndarray, before: float, cfg: RetrievalConfig, question: str = "") -> list[int]:
    """Step 1: the ``top_days`` days whose summaries best match the question (only sentences before ``before``):
    BM25 of the question's words (``day_scorer="bm25"``, default; ties go to the earlier day) or the dense score."""
    if cfg.day_scorer == "bm25":
        s = index.days.bm25(question, before)
    else:
        s = index.days.scores(q, before, cfg.top_m)
    return [int(index.days.keys[i]) for i in _top(s, cfg.top_days)]


def select_hours(index: MemoryIndex, q: np.ndarray, day: int, before: float, cfg: RetrievalConfig) -> list[int]:
    """Step 2: the ``top_hours`` hours of ``day`` whose summaries best match ``q``."""
    keys = index.hours.keys
    lo, hi = np.searchsorted(keys, day * 24), np.searchsorted(keys, (day + 1) * 24)
    rows = np.arange(lo, hi)
    if not len(rows):
        return []
    s = index.hours.scores(q, before, cfg.top_m, rows)
    return [int(keys[rows[i]]) for i in _top(s, cfg.top_hours)]


def hour_ranges(hours: list[int]) -> list[tuple[float, float]]:
    return [(h * HOUR_S, (h + 1) * HOUR_S) for h in hours]


def top_in_window(index: MemoryIndex, scores_fn, ranges, before: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: the ``k`` best clips in the window by ``scores_fn(positions)``."""
    pos = index.window(ranges, before)
    if not len(pos):
        return pos, np.zeros(0, np.float32)
    s = scores_fn(pos)
    best = _top(s, k)
    return pos[best], s[best]


def caption_scores(index: MemoryIndex, q: np.ndarray):
    return lambda pos: index.emb[pos] @ q


def eq2_scores(index: MemoryIndex, q: np.ndarray, lam: float):
    """Eq. 2: ``s_i = Sim(q, c_i) + λ·Sim(q, d_i)`` (c_i: scene-record embedding, d_i: caption embedding)."""
    return lambda pos: index.scene_emb[pos] @ q + lam * (index.emb[pos] @ q)


def hierarchical(index: MemoryIndex, q: np.ndarray, before: float, cfg: RetrievalConfig,
                 method: str = "hierarchical", days: list[int] | None = None,
                 hours: list[int] | None = None, question: str = "") -> Retrieval:
    """Day -> hour window from the summaries, then top-k clips inside it (caption, or Eq. 2 for ``eq2``)."""
    if days is None:
        days = select_days(index, q, before, cfg, question)
    if hours is None:
        hours = [h for d in days for h in select_hours(index, q, d, before, cfg)]
    fn = eq2_scores(index, q, cfg.lam) if method == "eq2" else caption_scores(index, q)
    pos, s = top_in_window(index, fn, hour_ranges(hours), before, cfg.k)
    return Retrieval(pos, s, method, days, hours)


def flat(index: MemoryIndex, q: np.ndarray, before: float, cfg: RetrievalConfig) -> Retrieval:
    pos, s = index.flat(q, cfg.k, before)
    return Retrieval(pos, s, "flat")


def llm_guided(index: MemoryIndex, q: np.ndarray, question: str, before: float, cfg: RetrievalConfig, lm,
               max_tokens: int = 12) -> Retrieval:
    """The released code's LLM-selected day, then hour range (greedy decoding here; the released code samples
    at T = 0.8), then the top-k captions inside; unparsable replies fall back to the similarity choice."""
    from paperlab.core.models import GenerationParams
    from paperlab.egorag.prompts import parse_day, parse_hours, select_day_prompt, select_hours_prompt

    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    cand = [(int(k), _visible_text(index.days, i, before)) for i, k in enumerate(index.days.keys)
            if k * DAY_S < before]
    info = {"fallback": [], "replies": []}
    day = None
    if cand:
        reply = lm.chat([[{"role": "user", "content": select_day_prompt(question, before, cand,
                                                                       cfg.llm_chars_day)}]], params)[0].text
        info["replies"].append(reply)
        day = parse_day(reply, [d for d, _ in cand])
    if day is None:
        info["fallback"].append("day")
        days = select_days(index, q, before, cfg, question)[:1]
        day = days[0] if days else None
    if day is None:
        return Retrieval(np.zeros(0, np.int64), np.zeros(0), "llm", info=info)
    keys = index.hours.keys
    rows = [i for i in range(np.searchsorted(keys, day * 24), np.searchsorted(keys, (day + 1) * 24))
            if keys[i] * HOUR_S < before]
    hours = None
    if rows:
        listing = [(int(keys[i]), _visible_text(index.hours, i, before)) for i in rows]
        reply = lm.chat([[{"role": "user", "content": select_hours_prompt(question, day, listing,
                                                                         cfg.llm_chars_hour)}]], params)[0].text
        info["replies"].append(reply)
        rng = parse_hours(reply)
        if rng is not None:
            hours = [day * 24 + h for h in range(rng[0], rng[1])]
    if hours is None:
        info["fallback"].append("hour")
        hours = select_hours(index, q, day, before, cfg)
    r = hierarchical(index, q, before, cfg, days=[day], hours=hours)
    r.method, r.info = "llm", info
    return r


def _visible_text(level, row: int, before: float) -> str:
    """A summary's sentences timed before ``before``, joined."""
    return " ".join(s for s, t in zip(level.sentences[row], level.times[row], strict=False) if t < before)


def retrieve(index: MemoryIndex, q: np.ndarray, before: float, method: str = "hierarchical",
             cfg: RetrievalConfig | None = None, question: str = "", lm=None) -> Retrieval:
    """One entry point for every method (``q``: the L2-normalised query embedding)."""
    cfg = cfg or RetrievalConfig()
    if method == "flat":
        return flat(index, q, before, cfg)
    if method in ("hierarchical", "eq2"):
        return hierarchical(index, q, before, cfg, method=method, question=question)
    if method == "llm":
        return llm_guided(index, q, question, before, cfg, lm)
    raise ValueError(f"unknown retrieval method {method!r}")
