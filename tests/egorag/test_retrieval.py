"""Retrieval: time bounds, the window, Eq. 2's limits, BM25 day selection, the LLM-guided path."""

from __future__ import annotations

import numpy as np
import pytest

from paperlab.egorag.memory import Caption, MemoryStore
from paperlab.egorag.prompts import parse_day, parse_hours, parse_letter
from paperlab.egorag.retrieval import RetrievalConfig, retrieve, select_days
from paperlab.egorag.simulator import DAY_S, make_questions, simulate


@pytest.fixture(scope="module")
def hashed(tmp_path_factory):
    """A 3-day store at 12 clips/h with the hashing embedder (fast)."""
    log = simulate(3, 12, seed=0)
    st = MemoryStore.open(tmp_path_factory.mktemp("h") / "s", embedder="hash:256")
    st.ingest([Caption(c.t_start, c.t_end, c.text, c.scene_text) for c in log.clips])
    yield st, log
    st.close()


def test_nothing_from_after_the_query_time(hashed):
    st, log = hashed
    idx = st.index
    q = st.embedder.embed(["where did I leave the scissors"])[0]
    before = DAY_S + 15 * 3600 + 7
    for method in ("flat", "hierarchical", "eq2"):
        r = retrieve(idx, q, before, method, RetrievalConfig(k=20), "where did I leave the scissors")
        assert len(r.positions) == 20 and max(r.times(idx)) < before
        if method != "flat":
            assert r.days and all(d <= 1 for d in r.days)
            assert all(int(t // 3600) in r.hours for t in r.times(idx))
            assert len(r.hours) <= 2
    # summary sentences from later than the query are invisible: days after it score -inf
    assert np.isneginf(idx.days.bm25("scissors", DAY_S + 1)[2])
    assert np.isfinite(idx.days.bm25("scissors", DAY_S + 1)[0])


def test_eq2_limits(hashed):
    st, _ = hashed
    idx = st.index
    text = "who did I play badminton with"
    q = st.embedder.embed([text])[0]
    end = float(idx.times[-1]) + 1
    big = retrieve(idx, q, end, "eq2", RetrievalConfig(k=5, lam=1e6), text)
    caption_only = retrieve(idx, q, end, "hierarchical", RetrievalConfig(k=5), text)
    # λ -> ∞: ranked by caption (repeated captions tie; the scene term only orders the tied ones)
    assert np.allclose(idx.emb[big.positions] @ q, idx.emb[caption_only.positions] @ q, atol=1e-5)
    zero = retrieve(idx, q, end, "eq2", RetrievalConfig(k=5, lam=0.0), text)
    pos = idx.window([(h * 3600, h * 3600 + 3600) for h in zero.hours], end)
    best_scene = pos[np.argsort(-(idx.scene_emb[pos] @ q), kind="stable")[:5]]
    assert set(zero.positions) == set(best_scene)                        # λ = 0: the clip feature only


def test_bm25_day_selection_finds_the_day_a_question_names(tmp_path):
    """MiniLM store of 4 days: questions naming a day by its theme mostly get that day."""
    log = simulate(4, 6, seed=1)
    with MemoryStore.open(tmp_path / "s") as st:
        st.ingest([Caption(c.t_start, c.t_end, c.text) for c in log.clips])
        idx = st.index
        qs = [q for q in make_questions(log, 12, seed=1) if q.anchored]
        vec = st.embedder.embed([q.question for q in qs])
        right = {m: 0 for m in ("bm25", "dense")}
        for q, v in zip(qs, vec, strict=True):
            for m in right:
                day = select_days(idx, v, q.query_time, RetrievalConfig(day_scorer=m), q.question)[0]
                right[m] += day == int(q.evidence[0] // DAY_S)
    assert len(qs) >= 10
    assert right["bm25"] >= 0.6 * len(qs) and right["bm25"] > right["dense"]


def test_parsers():
    assert parse_day("DAY3", [0, 1, 2]) == 2 and parse_day("day 9", [0, 1]) is None and parse_day("hm", [0]) is None
    assert parse_hours("14-16") == (14, 16) and parse_hours("from 9:00 to 11:00") == (9, 11)
    assert parse_hours("15") == (15, 16) and parse_hours("none") is None
    assert parse_letter("B") == "B" and parse_letter("(C) on the sofa") == "C" and parse_letter("no idea") is None


@pytest.mark.slow
def test_llm_guided_selection_with_the_default_model(hashed):
    from paperlab.core.models import load_lm

    st, log = hashed
    idx = st.index
    text = "On the day we had the hotpot meal, where did I leave the umbrella?"
    q = st.embedder.embed([text])[0]
    r = retrieve(idx, q, float(idx.times[-1]) + 1, "llm", RetrievalConfig(k=3, llm_chars_day=120,
                                                                           llm_chars_hour=40),
                 text, load_lm("default"))
    assert r.method == "llm" and len(r.info["replies"]) == 2 and len(r.days) == 1 and r.hours
    assert set(r.info["fallback"]) <= {"day", "hour"} and len(r.positions) <= 3
