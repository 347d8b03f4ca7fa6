"""The two reference solvers: memorisation breaks under obfuscation, rule induction is equivariant."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.lingoly.obfuscation import apply_mapping, count_mappings, mapping_at
from paperlab.lingoly.problems import obfuscate_problem, subquestions
from paperlab.lingoly.released import load_released, load_templates
from paperlab.lingoly.scoring import clean_answer, score
from paperlab.lingoly.solvers import MemorisingSolver, RuleInducingSolver, analogy, suffix_analogy


@pytest.fixture(scope="module")
def data():
    return load_released(), load_templates()


def _em(solver, prob, pid):
    ans = solver.answer(prob, pid)
    return [score(ans[s.key], s.answer) for s in subquestions(prob, pid, 0)]


def test_memoriser_perfect_on_originals_and_breaks_on_obfuscations(data):
    released, _ = data
    mem = MemorisingSolver({p: r.original for p, r in released.items()})
    og = [x for p, r in released.items() for x in _em(mem, r.original, p)]
    obf = [x for p, r in released.items() for o in r.obfuscations for x in _em(mem, o, p)]
    assert sum(og) == len(og) == 51
    assert sum(obf) / len(obf) < 0.3          # only answers obfuscation leaves unchanged ("B", "Irregular")


def test_rule_inducer_scores_something_from_the_sheet_alone(data):
    released, _ = data
    ind = RuleInducingSolver()
    assert sum(_em(ind, released["207"].original, "207")) >= 4      # -ngka / -rla by suffix analogy
    assert sum(_em(ind, released["88"].original, "88")) >= 1        # word substitution


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["88", "147", "207"]), st.integers(0, 10**9))
def test_rule_inducer_is_equivariant_under_letter_obfuscation(data, pid, pick):
    """For a mapping whose graphemes are single letters (88, 147) the solver's answers on the obfuscated
    sheet are exactly its original answers obfuscated; for 207 (digraphs) its score is what is kept."""
    released, templates = data
    tpl = templates[pid]
    m = mapping_at(tpl.normalised(), pick % count_mappings(tpl.normalised()))
    obf = obfuscate_problem(released[pid].original, m, tpl, 1)
    ind = RuleInducingSolver()
    a0, a1 = ind.answer(released[pid].original, pid), ind.answer(obf, pid)
    if pid != "207":
        for k in a0:
            assert clean_answer(a1[k]) == clean_answer(apply_mapping(a0[k], m)), k
    assert abs(sum(_em(ind, obf, pid)) - sum(_em(ind, released[pid].original, pid))) <= (0 if pid != "207" else 2)


def test_analogy_helpers():
    pairs = [("wati", "watingka"), ("maliki", "malikirla"), ("minija", "minijarla"), ("rtaka", "rtakangka"),
             ("yaparranji", "yaparranjirla")]
    assert suffix_analogy("jika", pairs)[0] == "jikangka"
    assert suffix_analogy("yamarri", pairs)[0] == "yamarrirla"     # majority among equally long endings
    assert analogy("maliki", pairs)[0] == "malikirla"               # a seen example is copied
    sent = [("He ate the mango.", "Uqa welu jen."), ("Qilol gave him the chicken.", "Qilol mala uten."),
            ("He gave me the papaya.", "Uqa fafa iten."), ("We two ate the chicken.", "Ele mala jicwa.")]
    assert analogy("The chicken ate the mango.", sent)[0] == "mala welu jen"
