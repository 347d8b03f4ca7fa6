"""The paper's scorer: clean_answer order, alternatives, empty rules, BLEU/chrF; the human responses."""

from __future__ import annotations

import unicodedata as ud

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.lingoly.scoring import bleu, chrf, clean_answer, score


def test_clean_answer_steps_in_order():
    assert clean_answer("  ..Mala  welu   jen.. ") == "mala welu jen"
    assert clean_answer("a+b") == "ab"
    assert clean_answer("\u2018Irregular\u2019") == "'irregular'"
    assert clean_answer("\u201cB\u201d") == '"b"'
    assert clean_answer("Çitǽ:") == ud.normalize("NFD", "çitǽ:")
    assert clean_answer(" . x") == " x"           # strip() first, then strip("."): the space after the dot stays
    assert clean_answer("a\tb") == "a\tb"         # only U+0020 runs are collapsed


def test_exact_match_alternatives_and_empty_rules():
    assert score("Mala welu jen", "Mala welu jen.") == 1.0
    assert score("mala welu", "Mala welu jen.") == 0.0
    assert score("tutas", '["tuta","tutas"]') == 1.0                     # max over alternatives
    assert score("quél:o, snervá:se", '["snervá:se, quél:o", "quél:o, snervá:se"]') == 1.0
    assert score("a, b", "[['a', 'b'], ['c']]") == 1.0                   # inner lists joined with ", "
    many = str([f"w{i}" for i in range(30)])
    assert score("W7", many, "exact") == 1.0 and score("w7", many, "chrf") == 1.0   # > 24: membership
    assert score("w7x", many, "chrf") == 0.0
    assert score("anything", "") == 1.0 and score("", "ref") == 0.0 and score(None, "ref") == 0.0


def test_bleu_and_chrf_secondaries():
    assert bleu("mala welu jen", "mala welu jen") == pytest.approx(1.0)
    # a one-word prediction keeps only the unigram precision (orders truncated, no brevity penalty)
    assert bleu("mala welu jen", "mala") == pytest.approx(1.0)
    assert bleu("mala welu jen", "welu mala") == pytest.approx((1.0 * 0.0) ** 0.5)
    assert bleu("a b c d e f", "a b c d x f") == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    assert bleu("a b c d e", "a b c x e") == 0.0                         # no 4-gram match, no smoothing
    assert chrf("mala welu jen", "mala welu jen") == pytest.approx(1.0)
    assert 0 < score("mala welu jem", "Mala welu jen.", "chrf") < 1
    assert score("mala welu jem", "Mala welu jen.", "exact") == 0.0


TEXT = st.text(alphabet=st.sampled_from("abcdefgæç:' -xyzÁé"), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_a_reference_scores_itself_perfectly(ref):
    assert score(ref, ref) == 1.0
    assert score(ref.upper() + " .", ref) == 1.0 or clean_answer(ref.upper() + " .") != clean_answer(ref)


def test_human_responses_scored_by_arm():
    from paperlab.lingoly.experiment import human_scores

    rows = human_scores()
    assert len(rows) == 172
    assert sum(r["obfuscated"] for r in rows) == 86
    assert all(0 <= r["score"] <= 100 for r in rows)
    # our scorer agrees with the released per-participant scores except where the notebook's scorer
    # differs (NFKD, ɾ -> r, per-problem allowances): most participants identical
    same = sum(abs(r["score"] - r["released_score"]) < 1e-6 for r in rows)
    assert same >= 165          # measured: 169 of 172


def test_reference_answers_score_perfectly_on_every_released_version():
    from paperlab.lingoly.problems import subquestions
    from paperlab.lingoly.released import load_released
    from paperlab.lingoly.solvers import first_alternative

    for pid, r in load_released().items():
        for prob in [r.original, *r.obfuscations]:
            assert all(score(first_alternative(s.answer), s.answer) == 1.0 for s in subquestions(prob, pid, 0))
