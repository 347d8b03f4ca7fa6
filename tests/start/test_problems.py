"""Problem sets and user problem files."""

import json

import pytest

from paperlab.core.errors import UserError
from paperlab.start.problems import arithmetic, load_set, read_user_problems


def test_arithmetic_is_seeded_exact_and_offsets_are_disjoint():
    a, b = arithmetic(20, seed=3), arithmetic(20, seed=3)
    assert a == b
    for p in a:
        expr = p.question.removeprefix("What is ").rstrip("?")
        if "sum of" not in p.question:
            assert eval(expr) == int(p.answer)
    later = arithmetic(10, seed=3, offset=20)
    assert not {p.id for p in a} & {p.id for p in later}
    assert [p.id for p in arithmetic(30, seed=3)[20:]] == [p.id for p in later]


@pytest.mark.parametrize("name,n", [("gsm8k", 1319), ("math500", 500), ("amc23", 40), ("aime24", 30)])
def test_packaged_sets_load_with_answers(name, n):
    probs = load_set(name)
    assert len(probs) == n and all(p.question and p.answer for p in probs)
    assert len({p.id for p in probs}) == n


def test_gsm8k_answer_is_the_final_number():
    p = load_set("gsm8k", 1)[0]
    assert p.answer == "18" and "Janet" in p.question


def test_user_file(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"question": "What is 2+2?", "answer": 4}) + "\n" + json.dumps({"problem": "x?"}) + "\n")
    ps = read_user_problems(f)
    assert [(p.id, p.answer) for p in ps] == [("1", "4"), ("2", "")]
    f.write_text(json.dumps({"answer": 1}) + "\n")
    with pytest.raises(UserError, match="question"):
        read_user_problems(f)
    f.write_text(json.dumps({"question": "a", "id": 1}) + "\n" + json.dumps({"question": "b", "id": 1}) + "\n")
    with pytest.raises(UserError, match="repeats"):
        read_user_problems(f)
