"""Tasks with an exact reward, and reading a user's prompts file.

The paper scores open-ended answers on Arena Hard with a GPT-4 judge. Offline we need a reward the
selector cannot game and we can compute exactly, so the claims are measured on problems with a
numeric answer; the *reported* reward is exact correctness of the selected answer's final number,
while the *selector* is an LM judge that never sees the reference (:mod:`.pipeline`).

- ``gsm8k``: GSM8K test problems (packaged with the other math sets; ``paperlab/data/math/SOURCE.md``).
- ``onestep`` (default): one-step word problems generated from a seed (half ``a + b``, half ``a * b``,
  single digits). SmolLM2-135M-Instruct solves about a third of them (measured 2026-12-02: 4/12 of
  each kind at temperature 0.7), so selection and editing have room to move the reward both ways;
  it solves almost no GSM8K problem and no two-step problem, where every setting scores 0.
- ``arithmetic``: two-step word problems generated from a seed (``a - b + c`` and ``a * b - c`` with
  small numbers), for models a step larger.

The final answer of a response is the number after its last "answer is", else its last number.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from paperlab.core.data import data_path, read_jsonl
from paperlab.core.errors import UserError
from paperlab.feedback_edit.prompts import MATH_SUFFIX

TASKS = ("onestep", "arithmetic", "gsm8k")


@dataclass(frozen=True)
class Problem:
    """One prompt: its id (seeds its requests), the text the generator sees, the reference answer."""

    uid: str
    prompt: str
    answer: str | None = None


_NUM = r"-?\d[\d,]*(?:\.\d+)?"


def _clean_number(s: str) -> str:
    s = s.replace(",", "").rstrip(".")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s.lstrip("+") or "0"


def final_answer(text: str) -> str | None:
    """The final number of a response: after the last "answer is", else the last number (commas and
    trailing zeros of decimals dropped); None when there is no number."""
    m = list(re.finditer(r"answer\s*(?:is|:)\s*\$?\s*(" + _NUM + ")", text, flags=re.IGNORECASE))
    if m:
        return _clean_number(m[-1].group(1))
    nums = re.findall(_NUM, text)
    return _clean_number(nums[-1]) if nums else None


def reward(response: str, answer: str | None) -> float:
    """Exact reward: 1.0 when the response's final number equals the reference number, else 0.0."""
    if answer is None:
        return float("nan")
    got = final_answer(response)
    return float(got is not None and got == _clean_number(answer))


def gsm8k(n: int, offset: int = 0) -> list[Problem]:
    """The first ``n`` GSM8K test problems after ``offset`` (reference: the number after ``####``)."""
    rows = read_jsonl(data_path("math", "gsm8k_test.jsonl"))
    if offset + n > len(rows):
        raise UserError(f"gsm8k has {len(rows)} packaged problems, asked for {offset}+{n}",
                        f"use at most {len(rows)} problems")
    return [Problem(f"gsm8k-{r['idx']}", r["question"] + MATH_SUFFIX, r["answer"].split("####")[-1].strip())
            for r in rows[offset:offset + n]]


_ITEMS = ("apples", "pencils", "books", "marbles", "stickers", "cookies", "coins", "cards")
_NAMES = ("Tom", "Anna", "Ravi", "Mia", "Lee", "Sara", "Omar", "Nina")


def arithmetic(n: int, seed: int = 0) -> list[Problem]:
    """``n`` two-step word problems drawn from ``seed`` (half ``a - b + c``, half ``a * b - c``)."""
    rng = random.Random(f"arithmetic/{seed}")
    out = []
    for i in range(n):
        name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
        if i % 2 == 0:
            a, b, c = rng.randint(12, 40), rng.randint(2, 11), rng.randint(2, 20)
            text, ans = (f"{name} has {a} {item}. {name} gives away {b} {item} and then gets {c} more. "
                         f"How many {item} does {name} have now?"), a - b + c
        else:
            a, b, c = rng.randint(2, 9), rng.randint(3, 9), rng.randint(1, 9)
            text, ans = (f"{name} buys {a} boxes with {b} {item} in each box, then loses {c} {item}. "
                         f"How many {item} does {name} have left?"), a * b - c
        out.append(Problem(f"arith-{seed}-{i}", text + MATH_SUFFIX, str(ans)))
    return out


def onestep(n: int, seed: int = 0) -> list[Problem]:
    """``n`` one-step word problems drawn from ``seed`` (half ``a + b``, half ``a * b``, digits 2-9)."""
    rng = random.Random(f"onestep/{seed}")
    out = []
    for i in range(n):
        name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        if i % 2 == 0:
            text, ans = f"{name} has {a} {item} and gets {b} more {item}. How many {item} does {name} have now?", a + b
        else:
            text, ans = f"{name} buys {a} boxes with {b} {item} in each box. How many {item} does {name} have?", a * b
        out.append(Problem(f"onestep-{seed}-{i}", text + MATH_SUFFIX, str(ans)))
    return out


def load_task(task: str, n: int, seed: int = 0) -> list[Problem]:
    if task == "onestep":
        return onestep(n, seed)
    if task == "gsm8k":
        return gsm8k(n)
    if task == "arithmetic":
        return arithmetic(n, seed)
    raise UserError(f"unknown task {task!r}", f"use one of: {', '.join(TASKS)}")


def read_prompts(path: Path | str) -> list[Problem]:
    """A user's prompts: JSONL with a ``prompt`` (or ``question`` / ``instruction``) string per line,
    optional ``id`` and ``answer`` (a number: the exact reward is reported when given)."""
    rows = read_jsonl(path)
    out, seen = [], set()
    for i, r in enumerate(rows, 1):
        text = next((r[k] for k in ("prompt", "question", "instruction") if k in r), None)
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{path}:{i} has no non-empty 'prompt' string",
                            'write one {"prompt": "...", "answer": "42"} object per line')
        uid = str(r.get("id", i))
        if uid in seen:
            raise UserError(f"{path}:{i} repeats id {uid!r}", "give every prompt its own id")
        seen.add(uid)
        ans = r.get("answer")
        if ans is not None and not (isinstance(ans, (int, float, str)) and re.fullmatch(_NUM, str(ans).strip())):
            raise UserError(f"{path}:{i} answer {ans!r} is not a number", "give a number, or leave 'answer' out")
        out.append(Problem(uid, text, None if ans is None else str(ans).strip()))
    return out
