"""InstFol and the G-Eval score: the official rules, the fixes, and a real judge."""

from __future__ import annotations

import math

import pytest

from paperlab.core.models import ChatResult, TokenLogprob
from paperlab.ifir.instfol import Judge, content2json, geval_score, instfol, judge_params, rubric_prompt


def _answer(text: str, tokens: list[tuple[str, list[tuple[str, float]]]]) -> ChatResult:
    return ChatResult(text, logprobs=[TokenLogprob(t, top[0][1] if top else 0.0, top) for t, top in tokens])


def lp(p: float) -> float:
    return math.log(p)


def test_content2json_follows_the_official_rules():
    assert content2json('noise {"score": 2, "reason": "x"} tail') == {"score": 2, "reason": "x"}
    assert content2json('{"score": 1') == {"score": 1}          # a missing } is appended
    assert content2json("no json here") is None
    assert content2json('{"score": 1, "reason": "unterminated}') is None


def test_geval_is_the_renormalised_expected_digit():
    alts = [("2", lp(0.6)), ("3", lp(0.3)), ("1", lp(0.05)), ("two", lp(0.04)), ("0", lp(0.005))]
    r = _answer('{"score": 2, "reason": "r"}', [("{", []), ('"score', []), ('":', []), (" ", []), ("2", alts)])
    # digits 0..5 with p >= 0.01 (0.005 dropped, the word dropped): (2*.6 + 3*.3 + 1*.05) / (.6 + .3 + .05)
    assert geval_score(r) == pytest.approx((2 * 0.6 + 3 * 0.3 + 1 * 0.05) / 0.95)


def test_whitespace_digits_unparsable_and_the_zero_over_zero_fix():
    alts = [(" 3", lp(0.5)), (" 2", lp(0.5))]
    glued = _answer('{"score": 3}', [("{", []), ('"score":', []), (" 3", alts)])
    assert geval_score(glued) == pytest.approx(2.5)
    assert geval_score(glued, strip_tokens=False) == 0.0        # the literal official match finds no "3"
    assert geval_score(_answer("I think it is relevant", [("I", [])])) == 0.0
    assert geval_score(_answer('{"score": 2.5}', [("2", [("2", lp(0.9))])])) == 0.0   # not a digit string -> 0
    only_words = _answer('{"score": 2}', [("2", [("two", lp(0.9)), ("2", lp(0.001))])])
    assert geval_score(only_words) == 2.0                       # official: 0/0 = NaN; fixed: the parsed score


def test_instfol_definition():
    assert instfol([1, 1], [1, 1]) == 0.0
    assert instfol([1, 1], [2, 3]) == pytest.approx((2.5 - 1) / (3 - 1))
    assert instfol([3, 3], [2, 2]) == pytest.approx(-1.0)       # q_avg = 3: the plain difference
    assert instfol([0, 1], [1, 1]) == pytest.approx(0.5 / 2.5)  # denominator 3 even for a 0-1 rubric
    # a failed judgement (-1) drops that rank position from both lists
    assert instfol([1, -1, 0], [2, 3, 1]) == pytest.approx(instfol([1, 0], [2, 1]))
    assert math.isnan(instfol([-1], [2]))


def test_rubric_prompts_have_the_official_scales():
    p = rubric_prompt(2, "claim {x} + instruction", "passage with {braces}")
    assert "Instruction: claim {x} + instruction\nPassage: passage with {braces}\n" in p
    assert "Give a score from 0 to 2." in p and p.endswith("JSON:\n")
    assert '{\n    "score": 1,' in p and content2json(p[p.index("{\n"):p.rindex("}") + 1])["score"] == 1
    assert "from 0 to 1." in rubric_prompt(1, "i", "c") and "from 0 to 3." in rubric_prompt(3, "i", "c")
    params = judge_params()
    assert (params.temperature, params.top_p, params.max_tokens, params.top_logprobs) == (0.0, 0.7, 512, 10)


def test_the_default_judge_scores_real_passages():
    judge = Judge("default-hf", max_tokens=24, early_stop=True)
    prompts = [rubric_prompt(3, "Aspirin reduces the risk of heart attack. Only supporting abstracts.",
                             "Aspirin and myocardial infarction: a randomised trial showed fewer heart attacks."),
               rubric_prompt(1, "Aspirin reduces the risk of heart attack.", "Soil bacteria fix nitrogen in legumes.")]
    scores = judge(prompts)
    assert len(scores) == 2 and all(0.0 <= s <= 5.0 for s in scores)
    assert judge(prompts) == scores                               # cached: the same answers again
