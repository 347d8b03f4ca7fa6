"""Verifiable problems: generated multi-digit arithmetic (where a code interpreter clearly helps) and the
packaged math sets (GSM8K, MATH-500, AMC23, AIME24; ``paperlab/data/math/SOURCE.md``), and user JSONL."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from paperlab.core.errors import UserError

SETS = ("arith", "gsm8k", "math500", "amc23", "aime24")


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str          # the gold final answer ("" when unknown: user problems without answers)
    source: str


def arithmetic(n: int, seed: int = 0, offset: int = 0) -> list[Problem]:
    """``n`` problems like "What is 4821 * 377 - 1290?": exact answers a tiny LM gets wrong by heart and a
    one-line program gets right. ``offset`` shifts the stream (disjoint training problems for Hint-RFT)."""
    rng = random.Random(f"start-arith-{seed}")
    out = []
    for i in range(offset + n):
        a, b, c = rng.randint(101, 9999), rng.randint(11, 999), rng.randint(100, 9999)
        form = rng.randrange(3)
        if form == 0:
            q, v = f"What is {a} * {b}?", a * b
        elif form == 1:
            q, v = f"What is {a} * {b} - {c}?", a * b - c
        else:
            q, v = f"What is the sum of {a}, {b * 7} and {c * 13}, multiplied by {b % 17 + 3}?", (a + b * 7 + c * 13) * (b % 17 + 3)
        if i >= offset:
            out.append(Problem(f"arith-{seed}-{i}", q, str(v), "arith"))
    return out


def _gsm8k_answer(text: str) -> str:
    return text.split("####")[-1].strip().replace(",", "")


def load_set(name: str, n: int | None = None, offset: int = 0, seed: int = 0) -> list[Problem]:
    """Problems ``offset .. offset+n`` of a set (files in their stored order; arith generated)."""
    if name == "arith":
        return arithmetic(n or 100, seed, offset)
    from paperlab.core.data import data_path, read_jsonl

    files = {"gsm8k": "gsm8k_test.jsonl", "math500": "math500_test.jsonl", "amc23": "amc23_test.jsonl",
             "aime24": "aime24_test.jsonl"}
    if name not in files:
        raise UserError(f"unknown problem set {name!r}", f"use one of: {', '.join(SETS)}")
    rows = read_jsonl(data_path("math", files[name]))
    out = []
    for i, r in enumerate(rows):
        if name == "gsm8k":
            q, a = r["question"], _gsm8k_answer(r["answer"])
        elif name == "math500":
            q, a = r["problem"], r["gt_answer"]
        else:
            q, a = r["problem"], r["answer"]
        if isinstance(a, float) and a.is_integer():
            a = int(a)
        out.append(Problem(f"{name}-{r.get('idx', r.get('id', i))}", q, str(a), name))
    end = None if n is None else offset + n
    return out[offset:end]


def read_user_problems(path: Path | str) -> list[Problem]:
    """A JSONL file of ``{"question"|"problem": ..., "answer": optional, "id": optional}``; one-line errors."""
    from paperlab.core.data import read_jsonl

    rows = read_jsonl(path)
    out, seen = [], set()
    for i, r in enumerate(rows, 1):
        q = r.get("question", r.get("problem"))
        if not isinstance(q, str) or not q.strip():
            raise UserError(f"{path}:{i}: no 'question' (or 'problem') text",
                            'give each line {"question": "...", "answer": "..." (optional)}')
        a = r.get("answer", "")
        if a is None:
            a = ""
        if not isinstance(a, str | int | float):
            raise UserError(f"{path}:{i}: 'answer' must be a string or a number", "e.g. \"answer\": \"42\"")
        pid = str(r.get("id", i))
        if pid in seen:
            raise UserError(f"{path}:{i}: id {pid!r} repeats", "give each problem a distinct id")
        seen.add(pid)
        if isinstance(a, float) and a.is_integer():
            a = int(a)
        out.append(Problem(pid, q.strip(), str(a).strip(), "user"))
    return out


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def numeric(text: str) -> bool:
    return bool(re.fullmatch(r"-?\d+(\.\d+)?", text.strip()))
