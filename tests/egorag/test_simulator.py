"""The life-log simulator: seeded, questions of the five kinds with evidence the log really holds."""

from __future__ import annotations

from collections import Counter

from paperlab.egorag.simulator import DAY_S, KINDS, make_questions, simulate


def test_same_seed_same_log_and_questions_other_seed_differs():
    a, b, c = simulate(3, 6, seed=1), simulate(3, 6, seed=1), simulate(3, 6, seed=2)
    assert [x.text for x in a.clips] == [x.text for x in b.clips]
    assert [x.text for x in a.clips] != [x.text for x in c.clips]
    qa, qb = make_questions(a, 5, seed=1), make_questions(b, 5, seed=1)
    assert [(q.question, q.answer, q.query_time) for q in qa] == [(q.question, q.answer, q.query_time) for q in qb]


def test_clip_grid_and_density():
    log = simulate(2, 12, seed=0)
    assert len(log.clips) == 2 * 16 * 12
    starts = [c.t_start for c in log.clips]
    assert starts == sorted(starts) and all(c.t_end - c.t_start == 30 for c in log.clips)
    assert all(8 * 3600 <= t % DAY_S < 24 * 3600 for t in starts)
    # captions paraphrase: far fewer repeats than clips, and a scene record for every clip
    assert len({c.text for c in log.clips}) > len(log.clips) / 3
    assert all(c.scene_text.startswith("place: ") for c in log.clips)


def test_questions_cover_kinds_with_real_evidence_and_old_ages():
    log = simulate(7, 12, seed=0)
    qs = make_questions(log, 12, seed=0)
    assert Counter(q.kind for q in qs) == dict.fromkeys(KINDS, 12)
    times = {c.t_start for c in log.clips}
    for q in qs:
        assert q.evidence and set(q.evidence) <= times
        assert max(q.evidence) < q.query_time <= log.end_time
        assert len(q.options) == 4 and len(set(q.options)) == 4 and q.answer in "ABCD"
    ages = Counter(q.age_bucket for q in qs)
    assert ages[">24h"] >= 5 and ages["<2h"] >= 5
    # the evidence caption states the keyed answer for entity questions
    text = {c.t_start: c.text for c in log.clips}
    for q in qs:
        if q.kind == "TaskMaster":
            person = q.question.split("what did ")[1].split(" ask")[0]
            assert text[q.evidence[0]].startswith(person + " asks me to")


def test_scales_to_many_days():
    log = simulate(40, 1, seed=3)
    assert len(log.clips) == 40 * 16 and len(log.days) == 40
