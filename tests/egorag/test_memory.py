"""The persistent store: idempotent, incremental, consistent after a kill, summaries within their bounds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from paperlab.core.errors import UserError
from paperlab.egorag.memory import Caption, MemoryStore, diverse_subset, read_captions
from paperlab.egorag.simulator import simulate


def _caps(days=2, cph=12, seed=0):
    return [Caption(c.t_start, c.t_end, c.text, c.scene_text) for c in simulate(days, cph, seed).clips]


def test_reingest_adds_nothing_and_incremental_ingest_updates_summaries(tmp_path):
    caps = _caps()
    half = len(caps) // 2 + 48                                # day 2 (key 1) ingested in two parts
    with MemoryStore.open(tmp_path / "s", embedder="hash:64") as st:
        first = st.ingest(caps[:half] + caps[:10])          # duplicates inside one batch too
        assert first["added"] == half and st.count() == half
        assert st.check()["ok"]
        day1 = st.conn.execute("SELECT n_clips FROM summaries WHERE level='day' AND key=1").fetchone()
        again = st.ingest(caps)                             # the first half again + the rest
        assert again["already_stored"] == half and again["added"] == len(caps) - half
        assert st.ingest(caps)["added"] == 0
        assert st.count() == len(caps) and st.check()["ok"]
        day1_after = st.conn.execute("SELECT n_clips FROM summaries WHERE level='day' AND key=1").fetchone()
        assert day1 == (48,) and day1_after == (len(caps) // 2,)
        assert len(st.index) == len(caps)
    # reopened: same clips, same index
    with MemoryStore.open(tmp_path / "s") as st:
        assert st.count() == len(caps) and st.embedder.id == "hash:64"


def test_other_embedder_refused_before_anything_is_written(tmp_path):
    with MemoryStore.open(tmp_path / "s", embedder="hash:64") as st:
        st.ingest(_caps(1, 2))
    with pytest.raises(UserError, match="made with embedder"):
        MemoryStore.open(tmp_path / "s", embedder="hash:128")
    with pytest.raises(UserError, match="bad embedder spec"):
        MemoryStore.open(tmp_path / "new", embedder="hash:x")
    assert not (tmp_path / "new").exists()
    with pytest.raises(UserError, match="no memory store"):
        MemoryStore.open(tmp_path / "none", create=False)


def test_extractive_summaries_respect_budget_and_keep_rare_captions(tmp_path):
    with MemoryStore.open(tmp_path / "s", embedder="hash:256", hour_words=60, day_words=200) as st:
        st.ingest(_caps(1, 60))
        rows = st.conn.execute("SELECT level, key, sentences FROM summaries").fetchall()
        for level, key, sj in rows:
            d = json.loads(sj)
            words = sum(len(s.split()) for s in d["sentences"])
            assert words <= (60 if level == "hour" else 200)
            span = 3600 if level == "hour" else 86400
            assert all(key * span <= t < (key + 1) * span for t in d["times"])
        assert {r[0] for r in rows} == {"hour", "day"} and len(rows) == 16 + 1


def test_diverse_subset_drops_duplicates_first():
    e = np.eye(4, dtype=np.float32)[[0, 0, 0, 1, 2]]
    idx = diverse_subset(e, [1] * 5, budget=10, dup_threshold=0.95)
    assert len(idx) == 3 and len({tuple(e[i]) for i in idx}) == 3


CHILD = textwrap.dedent("""
    import sys, time
    from paperlab.egorag.memory import Caption, MemoryStore
    from paperlab.egorag.simulator import simulate
    caps = [Caption(c.t_start, c.t_end, c.text) for c in simulate(3, 40, 0).clips]
    def tick(done, total):
        print(done, flush=True)
        time.sleep(0.05)
    with MemoryStore.open(sys.argv[1], embedder="hash:64") as st:
        st.ingest(caps, chunk=100, on_chunk=tick)
""")


def test_killed_mid_ingest_reopens_consistent_and_resumes(tmp_path):
    store = tmp_path / "s"
    total = 3 * 16 * 40
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(store)], stdout=subprocess.PIPE, text=True,
                         env=os.environ | {"OMP_NUM_THREADS": "1"})
    for _ in range(3):                         # three chunks committed, then kill it hard
        assert p.stdout.readline().strip()
    p.send_signal(signal.SIGKILL)
    p.wait()
    with MemoryStore.open(store) as st:
        n = st.count()
        assert 300 <= n < total and n % 100 == 0          # whole chunks only
        assert st.check()["ok"]                           # every stored clip's hour and day summarised
        caps = [Caption(c.t_start, c.t_end, c.text) for c in simulate(3, 40, 0).clips]
        stats = st.ingest(caps, chunk=500)
        assert stats["already_stored"] == n and stats["added"] == total - n
        assert st.count() == total and st.check()["ok"]


def _write(tmp_path, lines):
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_read_captions_checks_every_line(tmp_path):
    ok = _write(tmp_path, ['{"t_start": 0, "t_end": 30, "text": "I cook."}',
                           '{"t_start": "2025-03-01T14:05:30", "t_end": "2025-03-01T14:06:00", "text": "I eat.", '
                           '"scene": "kitchen"}'])
    caps = read_captions(ok)
    assert caps[1].t_end - caps[1].t_start == 30 and caps[1].scene == "kitchen"
    for bad, msg in ((['{"t_start": 0, "text": "x"}'], "lacks t_end"), (["not json"], "not JSON"),
                     (['{"t_start": 5, "t_end": 1, "text": "x"}'], "before t_start"),
                     (['{"t_start": "noon", "t_end": 1, "text": "x"}'], "not a time"),
                     (['{"t_start": 0, "t_end": 1, "text": ""}'], "empty"), ([""], "no captions")):
        with pytest.raises(UserError, match=msg):
            read_captions(_write(tmp_path, bad))


@pytest.mark.slow
def test_llm_summaries_with_the_default_model(tmp_path):
    caps = [c for c in _caps(1, 6) if c.t_start < 10 * 3600]           # two hours, 12 clips
    with MemoryStore.open(tmp_path / "s", embedder="hash:64", summarizer="default", max_tokens=60) as st:
        st.ingest(caps)
        rows = st.conn.execute("SELECT level, text, sentences FROM summaries ORDER BY level, key").fetchall()
        assert [r[0] for r in rows] == ["day", "hour", "hour"] and all(r[1] for r in rows)
        assert st.check()["ok"] and len(st.index.hours.keys) == 2
    with pytest.raises(UserError, match="summarizer"):
        MemoryStore.open(tmp_path / "s", summarizer="extractive")
