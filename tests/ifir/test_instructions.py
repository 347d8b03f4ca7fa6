"""Instructed SciFact: reproducible, nested gold sets, the anchor's words, subset-independent."""

from __future__ import annotations

from paperlab.ifir.data import load_scifact
from paperlab.ifir.instructions import build_units, labels


def test_units_are_reproducible_nested_and_grounded():
    data = load_scifact("subset")
    units = build_units(data, seed=0)
    assert units == build_units(data, seed=0)
    assert units != build_units(data, seed=1)
    by = {}
    for u in units:
        by.setdefault(u.qid, {})[u.level] = u
    assert by and all(set(v) == {1, 2, 3} for v in by.values())
    for qid, lv in by.items():
        g1, g2, g3 = (set(lv[k].gold) for k in (1, 2, 3))
        assert g3 <= g2 <= g1 == {d for d, g in data.qrels[qid].items() if g > 0}
        anchor = lv[3].anchor
        assert anchor in g3 and lv[2].relation in labels(data.metadata[qid], anchor)
        assert lv[1].instruction in lv[2].instruction and lv[2].instruction in lv[3].instruction
        claim = data.queries[qid].lower()
        for w in lv[3].words:
            assert w in data.corpus[anchor].lower() and w not in claim.split()
    # every claim with labelled evidence takes part, no other
    assert set(by) == {q for q in data.judged_queries() if any(labels(data.metadata[q], d) for d in data.qrels[q])}


def test_a_claims_instructions_do_not_depend_on_the_other_claims():
    data = load_scifact("subset")
    full = {u.uid: u for u in build_units(data, seed=0)}
    some = build_units(data, list(data.judged_queries())[5:9], seed=0)
    assert some and all(full[u.uid] == u for u in some)
