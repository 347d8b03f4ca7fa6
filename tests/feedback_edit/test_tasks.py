"""Answer extraction, the exact reward, the generated arithmetic task, reading a prompts file."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paperlab.core.errors import UserError
from paperlab.feedback_edit.tasks import (
    TASKS,
    arithmetic,
    final_answer,
    gsm8k,
    load_task,
    onestep,
    read_prompts,
    reward,
)


@given(st.integers(-10**9, 10**9), st.text(alphabet="abc .,!?", max_size=30))
def test_answer_after_the_phrase_wins_over_later_numbers(n, noise):
    text = f"First 3 + 4 = 7.{noise} The answer is {n}. Check: 12 apples."
    assert final_answer(text) == str(n)


@given(st.integers(0, 10**7))
def test_thousands_separators_and_trailing_zeros_are_normalised(n):
    assert final_answer(f"so we get {n:,}.00 in total") == str(n)
    assert reward(f"The answer is {n:,}.", str(n)) == 1.0


def test_final_answer_cases():
    assert final_answer("no digits here") is None
    assert final_answer("It is 5, then 8") == "8"
    assert final_answer("The answer is: $1,250.50") == "1250.5"
    assert final_answer("the ANSWER IS -3") == "-3"
    assert reward("The answer is 41.", "42") == 0.0
    assert reward("nothing", "42") == 0.0
    assert reward("The answer is 42", None) != reward("The answer is 42", None)  # nan: no reference


def test_arithmetic_is_seeded_and_its_references_are_right():
    a, b = arithmetic(10, seed=3), arithmetic(10, seed=3)
    assert a == b and arithmetic(10, seed=4) != a
    assert len({p.uid for p in a}) == 10
    for p in a:
        x, y, z = map(int, re.findall(r"\d+", p.prompt.split("\n")[0]))
        expected = x - y + z if "gives away" in p.prompt else x * y - z
        assert p.answer == str(expected)


def test_onestep_is_seeded_and_its_references_are_right():
    a = onestep(12, seed=1)
    assert a == onestep(12, seed=1) and onestep(12, seed=2) != a
    assert len({p.uid for p in a}) == 12
    for p in a:
        x, y = map(int, re.findall(r"\d+", p.prompt.split("\n")[0]))
        assert p.answer == str(x * y if "in each box" in p.prompt else x + y)
    assert {("in each box" in p.prompt) for p in a} == {True, False}


def test_every_task_loads_with_references():
    for t in TASKS:
        ps = load_task(t, 4)
        assert len(ps) == 4 and all(p.answer is not None for p in ps)


def test_gsm8k_references_are_the_numbers_after_hashes():
    ps = gsm8k(3)
    assert [p.answer for p in ps] == ["18", "3", "70000"]
    assert ps[0].prompt.startswith("Janet") and "The answer is" in ps[0].prompt
    with pytest.raises(UserError):
        gsm8k(5000)


def _write(tmp_path, rows):
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return p


def test_read_prompts_accepts_prompt_question_instruction(tmp_path):
    ps = read_prompts(_write(tmp_path, [{"prompt": "a", "answer": 3}, {"question": "b", "id": "x"},
                                        {"instruction": "c", "answer": "1,000"}]))
    assert [(p.uid, p.prompt, p.answer) for p in ps] == [("1", "a", "3"), ("x", "b", None), ("3", "c", "1,000")]


@pytest.mark.parametrize("rows, word", [
    ([{"text": "a"}], "no non-empty 'prompt'"),
    ([{"prompt": "  "}], "no non-empty 'prompt'"),
    ([{"prompt": "a", "id": 1}, {"prompt": "b", "id": 1}], "repeats id"),
    ([{"prompt": "a", "answer": "forty"}], "not a number"),
    (["[1, 2]"], "not an object"),
])
def test_read_prompts_rejects_bad_rows(tmp_path, rows, word):
    with pytest.raises(UserError, match=word):
        read_prompts(_write(tmp_path, rows))


def test_cli_task_list_mirrors_the_tasks_module():
    from paperlab.feedback_edit import cli

    assert cli.TASKS == TASKS
