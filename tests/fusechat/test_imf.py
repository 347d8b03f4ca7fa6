"""IMF data construction: the verifier, the SFT target, the same-/cross-source pair rules and the RM-gap window,
on hand-made scored responses (pure data logic, no model)."""

import json
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.core.errors import UserError
from paperlab.fusechat.imf import (
    PairRule,
    Response,
    Source,
    build_imf,
    candidate_pair,
    cross_source_pair,
    gap_statistics,
    same_source_pair,
    sft_target,
    split_prompts,
    write_trl_jsonl,
    yes_probability,
)
from paperlab.fusechat.problems import (
    Problem,
    arithmetic_problems,
    final_number,
    gsm8k_answer,
    is_correct,
    read_prompts,
)

SOURCES = ["a", "b", "c"]


def R(source, reward, correct=None, k=0, pid="p", text=None):
    return Response(pid, source, k, text or f"{source}{k}", reward=reward, correct=correct)


# ---------------------------------------------------------------- verifier


@pytest.mark.parametrize("text,num", [("8 + 7 = 15", 15), ("The answer is 12.", 12), ("#### 1,234", 1234),
                                      ("so \\boxed{3/4} and 7", Fraction(3, 4)), ("Answer: -3 (check: 2 - 5)", -3),
                                      ("no digits here", None), ("2.50 dollars", Fraction(5, 2))])
def test_final_number(text, num):
    assert final_number(text) == num


def test_is_correct_is_exact():
    assert is_correct("3 times 4 = 12", "12") and not is_correct("3 times 4 = 13", "12")
    assert not is_correct("twelve", "12")
    assert is_correct("she makes $18", gsm8k_answer("9 * 2 = 18\n#### 18"))


def test_arithmetic_problems_are_distinct_and_correctly_answered():
    ps = arithmetic_problems(60, seed=4)
    assert len({p.prompt for p in ps}) == 60
    for p in ps:
        a, word, b = p.prompt.removeprefix("What is ").rstrip("?").split()
        value = {"plus": int(a) + int(b), "minus": int(a) - int(b), "times": int(a) * int(b)}[word]
        assert int(p.answer) == value >= 0
    assert arithmetic_problems(60, seed=4) == ps and arithmetic_problems(60, seed=5) != ps
    with pytest.raises(UserError):
        arithmetic_problems(200, max_operand=9)


def test_read_prompts_formats_and_errors(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "Say hi"}\n{"question": "2+2?", "answer": "x #### 4", "idx": 7}\n{"prompt": "1+1", '
                 '"answer": 2}\n')
    ps = read_prompts(f)
    assert [(p.kind, p.answer) for p in ps] == [("general", None), ("math", "4"), ("math", "2")]
    assert ps[1].id == "7"
    for bad in ('{"answer": "3"}\n', '{"prompt": "a", "answer": "none"}\n', '{"prompt": "a", "id": 1}\n{"prompt": '
                '"b", "id": 1}\n', '{"prompt": "a", "answer": [1]}\n'):
        f.write_text(bad)
        with pytest.raises(UserError):
            read_prompts(f)


# ---------------------------------------------------------------- selection rules


def test_sft_target_general_and_verified():
    assert sft_target([R("a", 0.2), R("b", 0.9), R("c", 0.5)]).source == "b"
    # verified: the best *correct* response, even when an incorrect one has a higher reward
    assert sft_target([R("a", 0.2, True), R("b", 0.9, False), R("c", 0.5, True)]).source == "c"
    assert sft_target([R("a", 0.2, False), R("b", 0.9, False)]) is None
    assert sft_target([R("a", float("nan"), True)]) is None


def test_same_source_pair_stays_within_a_source_and_respects_the_window():
    rule = PairRule(window=(0.01, 0.1))
    rs = [R("a", 0.50, k=0), R("a", 0.45, k=1), R("a", 0.47, k=2),     # gap 0.05: in the window
          R("b", 0.90, k=0), R("b", 0.20, k=1),                          # gap 0.70: outside
          R("c", 0.30, k=0), R("c", 0.295, k=1)]                         # gap 0.005: outside
    pair = same_source_pair(rs, SOURCES, "general", rule)
    assert pair.same_source and pair.chosen.source == "a"
    assert (pair.chosen.sample, pair.rejected.sample) == (0, 1) and pair.gap == pytest.approx(0.05)
    assert same_source_pair(rs, SOURCES, "general", PairRule(window=None)).chosen.source == "b"  # highest chosen
    assert same_source_pair(rs[3:], SOURCES, "general", rule) is None


def test_math_pairs_need_a_correct_chosen_and_an_incorrect_rejected():
    rule = PairRule(window=(0.01, 0.1))
    rs = [R("a", 0.60, True, 0), R("a", 0.58, True, 1), R("a", 0.55, False, 2), R("a", 0.62, False, 3)]
    pair = same_source_pair(rs, SOURCES, "math", rule)
    assert pair.chosen.correct and pair.rejected.correct is False
    assert (pair.chosen.sample, pair.rejected.sample) == (0, 2)  # best correct vs worst incorrect
    assert candidate_pair([R("a", 0.6, True), R("a", 0.5, True)], "math") is None
    # a negative gap (the incorrect response scored higher) never passes the window
    assert same_source_pair([R("a", 0.5, True), R("a", 0.55, False)], SOURCES, "math", rule) is None


def test_cross_source_pair_uses_two_sources():
    rule = PairRule(window=None)
    rs = [R("a", 0.9, True, 0), R("a", 0.1, False, 1), R("b", 0.3, False, 0), R("c", 0.8, True, 0)]
    pair = cross_source_pair(rs, "math", rule)
    assert not pair.same_source and pair.chosen.source == "a" and pair.rejected.source == "b"
    # same-source would pick a's own incorrect response instead
    assert same_source_pair(rs, SOURCES, "math", rule).rejected.source == "a"
    assert cross_source_pair([R("a", 0.9, True), R("a", 0.1, False)], "math", rule) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SOURCES), st.floats(0, 1), st.booleans()), min_size=1, max_size=12),
       st.floats(0, 0.2), st.floats(0, 0.3))
def test_pair_properties(items, lo, width):
    rule = PairRule(window=(lo, lo + width))
    rs = [R(s, r, c, k) for k, (s, r, c) in enumerate(items)]
    for pair in (same_source_pair(rs, SOURCES, "math", rule), cross_source_pair(rs, "math", rule)):
        if pair is not None:
            assert pair.chosen.correct and pair.rejected.correct is False
            assert lo <= pair.gap <= lo + width
    same = same_source_pair(rs, SOURCES, "math", rule)
    if same is not None:
        assert same.same_source
        # nothing in that source beats the chosen among the correct ones, nor undercuts the rejected
        src = [r for r in rs if r.source == same.chosen.source]
        assert same.chosen.reward == max(r.reward for r in src if r.correct)
        assert same.rejected.reward == min(r.reward for r in src if not r.correct)
    best = sft_target(rs)
    if best is not None:
        assert best.correct and best.reward == max(r.reward for r in rs if r.correct)


def test_yes_probability():
    assert yes_probability([("Yes", math.log(0.6)), ("No", math.log(0.2)), (" yes", math.log(0.1))]) == \
        pytest.approx(0.7 / 0.9)
    assert yes_probability([("No", math.log(0.5)), ("The", math.log(0.1))]) == pytest.approx(0.1 / 0.6)
    assert math.isnan(yes_probability([("The", -1.0)]))


# ---------------------------------------------------------------- the whole construction


def _scored_world():
    problems = [Problem(f"q{i}", f"What is {i} plus 1?", str(i + 1)) for i in range(10)]
    responses = []
    for i, p in enumerate(problems):
        for s_i, s in enumerate(SOURCES):
            for k in range(3):
                good = (i + k + s_i) % 2 == 0
                responses.append(Response(p.id, s, k, f"{i} + 1 = {i + 1 if good else i + 2}",
                                          reward=0.5 + 0.03 * k - 0.2 * s_i, correct=good))
    return problems, responses


def test_build_imf_split_counts_and_trl_files(tmp_path):
    problems, responses = _scored_world()
    assert [len(x) for x in split_prompts(problems)] == [4, 6]
    data = build_imf(problems, responses, SOURCES, PairRule(window=(0.01, 0.1)))
    assert data.counts["sft_prompts"] == 4 and data.counts["dpo_prompts"] == 6
    assert {r.prompt_id for r in data.sft} <= {p.id for p in problems[:4]}
    assert all(p.prompt_id in {q.id for q in problems[4:]} for p in data.same + data.cross)
    assert data.counts["same_kept"] == len(data.same) > 0 and all(p.same_source for p in data.same)
    assert all(not p.same_source for p in data.cross)
    assert len(data.candidate_gaps["same"]) >= len(data.same)
    files = write_trl_jsonl(data, problems, tmp_path)
    sft = [json.loads(x) for x in files["sft"].read_text().splitlines()]
    dpo = [json.loads(x) for x in files["dpo"].read_text().splitlines()]
    assert [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
    assert all(is_correct(r["messages"][1]["content"], str(int(r["messages"][0]["content"].split()[2]) + 1))
               for r in sft)
    assert set(dpo[0]) >= {"prompt", "chosen", "rejected"} and dpo[0]["chosen_source"] == dpo[0]["rejected_source"]
    stats = gap_statistics(data.candidate_gaps["same"], (0.01, 0.1))
    assert stats["n"] == len(data.candidate_gaps["same"]) and 0 <= stats["share_in_window"] <= 1


def test_sources_get_the_papers_sampling_settings():
    from paperlab.fusechat.build import make_sources

    srcs = make_sources(["default", "hf:/models/Qwen2.5-72B-Instruct", "default"], [None, None, "Be brief."], 64)
    assert [s.name for s in srcs] == ["s0:default", "s1:hf:/models/Qwen2.5-72B-Instruct", "s2:default"]
    assert (srcs[0].temperature, srcs[0].top_p, srcs[0].repetition_penalty) == (0.8, 0.95, 1.0)
    assert (srcs[1].temperature, srcs[1].top_p, srcs[1].repetition_penalty) == (0.7, 0.8, 1.05)
    assert srcs[2].messages("Hi")[0] == {"role": "system", "content": "Be brief."}
    demo = Source("d", examples=(("Q1", "A1"),))
    assert [m["role"] for m in demo.messages("Q2")] == ["user", "assistant", "user"]


def test_packaged_gsm8k_problems_have_numeric_gold_answers():
    from paperlab.fusechat.problems import gsm8k_problems

    ps = gsm8k_problems(50)
    assert len(ps) == 50 and ps[0].answer == "18" and ps[0].id == "gsm8k-0"
    assert all(final_number(p.answer) is not None for p in ps)


def test_source_specs():
    from paperlab.fusechat.experiment import SourceConfig

    for spec in ("default-hf", "default"):
        assert SourceConfig(name="s", spec=spec).spec == spec
    with pytest.raises(UserError):
        SourceConfig(name="s", spec="nonsense")
