"""Prompts with verifiable answers, and the verifier (the paper's math rule needs correctness labels).

The paper's math prompts (OpenMathInstruct-2) come with gold answers; a response is *correct* when its
final answer equals the gold one. Here:

- :func:`arithmetic_problems` — generated small-number arithmetic word-free problems with exact answers.
  SmolLM2-135M solves GSM8K almost never, so a task it solves part of the time is needed for correct and
  incorrect responses to both exist (the math pair rule needs both).
- :func:`gsm8k_problems` — the GSM8K test subset packaged from FuseEval (``paperlab/data/math``), for larger
  source models.
- :func:`read_prompts` — a user's JSONL prompts for ``paperlab fusechat build``: ``{"prompt": ...}`` plus an optional
  gold ``"answer"`` (then verified like math) — or GSM8K's own ``{"question", "answer": "... #### 18"}``.
- :func:`final_number` / :func:`is_correct` — the verifier: the last number in a response (a ``#### x``,
  ``Answer: x`` or ``\\boxed{x}`` marker wins when present) compared with the gold number exactly.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from paperlab.core.errors import UserError


@dataclass(frozen=True)
class Problem:
    """One prompt; ``answer`` is the gold final answer (``None``: no verifier, the reward model alone decides)."""

    id: str
    prompt: str
    answer: str | None = None
    kind: str = "math"  # "math" (verified) | "general" (reward model only)


_NUM = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"
_MARKERS = (r"####\s*\$?\s*(" + _NUM + ")", r"\\boxed\{\s*\$?(" + _NUM + r")\s*\}",
            r"[Aa]nswer\s*(?:is)?\s*[:=]?\s*\$?\s*(" + _NUM + ")")


def _to_number(text: str) -> Fraction | None:
    t = text.replace(",", "").strip()
    try:
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


def final_number(response: str) -> Fraction | None:
    """The response's final answer as an exact number: the last ``#### x`` / ``\\boxed{x}`` / ``Answer: x``
    when the response has one, else its last number; ``None`` when it holds no number."""
    for pat in _MARKERS:
        hits = re.findall(pat, response)
        if hits:
            return _to_number(hits[-1])
    nums = re.findall(_NUM, response)
    return _to_number(nums[-1]) if nums else None


def is_correct(response: str, answer: str) -> bool:
    """Exact verification: the response's final number equals the gold answer's number."""
    gold = _to_number(answer)
    if gold is None:
        gold = final_number(answer)
    got = final_number(response)
    return gold is not None and got is not None and got == gold


OPS = ("+", "-", "*")


def arithmetic_problems(n: int, seed: int = 0, max_operand: int = 9, ops: tuple[str, ...] = OPS,
                        prefix: str = "arith") -> list[Problem]:
    """``n`` distinct problems ``What is a <op> b?`` with operands in ``1..max_operand`` (subtraction keeps
    ``a >= b``), drawn with ``seed``; the gold answer is computed exactly."""
    rng = random.Random(seed)
    words = {"+": "plus", "-": "minus", "*": "times"}
    seen: set[tuple[int, str, int]] = set()
    space = len(ops) * max_operand * max_operand
    if n > space // 2:
        raise UserError(f"{n} arithmetic problems asked from only {space} distinct ones",
                        "ask for fewer problems or raise max_operand")
    out = []
    while len(out) < n:
        a, b, op = rng.randint(1, max_operand), rng.randint(1, max_operand), rng.choice(ops)
        if op == "-" and a < b:
            a, b = b, a
        if (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        value = a + b if op == "+" else a - b if op == "-" else a * b
        out.append(Problem(f"{prefix}-{len(out)}", f"What is {a} {words[op]} {b}?", str(value)))
    return out


def gsm8k_answer(solution: str) -> str:
    """The gold number of a GSM8K rationale (after ``####``)."""
    return solution.rsplit("####", 1)[-1].strip().replace(",", "")


def gsm8k_problems(n: int | None = None, offset: int = 0) -> list[Problem]:
    """GSM8K test problems ``offset .. offset+n`` (packaged copy of FuseEval's ``gsm8k/test.jsonl``)."""
    from paperlab.core.data import data_path, read_jsonl

    rows = read_jsonl(data_path("math", "gsm8k_test.jsonl"))
    rows = rows[offset: None if n is None else offset + n]
    return [Problem(f"gsm8k-{r['idx']}", r["question"], gsm8k_answer(r["answer"])) for r in rows]


def read_prompts(path: Path | str) -> list[Problem]:
    """A user's prompts file (JSONL): each line ``{"prompt": str, "answer"?: str|number, "id"?: str}``, or a
    GSM8K line ``{"question": str, "answer": "... #### n"}``. One-line :class:`UserError` naming the line of any
    record without a prompt, and for duplicate ids."""
    from paperlab.core.data import read_jsonl

    rows = read_jsonl(path)
    out = []
    for i, r in enumerate(rows, 1):
        prompt = r.get("prompt", r.get("question"))
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError(f"{path}: record {i} has no non-empty \"prompt\" (or \"question\") string",
                            'write one {"prompt": "...", "answer": "..."} object per line')
        ans = r.get("answer")
        if ans is not None and not isinstance(ans, str | int | float) or isinstance(ans, bool):
            raise UserError(f"{path}: record {i} has an \"answer\" that is not a string or number",
                            "give the gold final answer as a string or number, or leave it out")
        if isinstance(ans, str) and "####" in ans:
            ans = gsm8k_answer(ans)
        if ans is not None and _to_number(str(ans)) is None and final_number(str(ans)) is None:
            raise UserError(f"{path}: record {i} answer {str(ans)[:40]!r} holds no number",
                            "the verifier compares final numbers: give a number, or leave \"answer\" out")
        pid = str(r.get("id", r.get("idx", f"p{i}")))
        out.append(Problem(pid, prompt.strip(), None if ans is None else str(ans),
                           "math" if ans is not None else "general"))
    ids = [p.id for p in out]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise UserError(f"{path}: id {dup!r} appears more than once", "give every prompt a distinct id")
    return out
