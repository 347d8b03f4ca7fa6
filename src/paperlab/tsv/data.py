"""TruthfulQA and the paper's split indices (packaged under ``paperlab/data/truthfulqa/``).

The official code indexes the 817-question TruthfulQA (``truthful_qa``/``generation``/``validation``,
same row order as ``TruthfulQA_v1_817.csv``) with a fixed permutation ``index``:

- wild (unlabelled training pool): ``index[:int(0.75 * 817)]`` minus its last 100 -> 512 questions;
- the last 100 of the wild slice are held out; the 32 labelled exemplars lie among them;
- test: ``index[612:]`` -> 205 questions.

The official code uses none of the 68 held-out non-exemplar questions and selects epochs on the test
set. We use those 68 questions as the **validation** split for model selection, so the test split
is touched once, at the end.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from paperlab.core.data import data_path
from paperlab.tsv.labelling import NO_COMMENT

WILD_RATIO = 0.75
HELD_OUT = 100


@dataclass
class Question:
    row: int
    question: str
    correct: list[str]
    incorrect: list[str]
    category: str


def _split(cell: str) -> list[str]:
    return [x.strip() for x in cell.split(";") if x.strip()]


def load_truthfulqa() -> list[Question]:
    """The 817 TruthfulQA v1 questions with their reference answers (correct refs: best answer,
    correct answers and "I have no comment.", de-duplicated in order)."""
    with open(data_path("truthfulqa", "TruthfulQA_v1_817.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for i, r in enumerate(rows):
        correct = list(dict.fromkeys([r["Best Answer"].strip(), *_split(r["Correct Answers"]), NO_COMMENT]))
        out.append(Question(i, r["Question"].strip(), correct, _split(r["Incorrect Answers"]), r["Category"]))
    return out


@dataclass
class Split:
    """Row indices of each split (in the paper's permutation order)."""

    exemplars: list[int]
    wild: list[int]
    val: list[int]
    test: list[int]


def paper_split(n: int = 817) -> Split:
    """The official TSV split of TruthfulQA, with the unused held-out questions as validation."""
    index = np.load(data_path("truthfulqa", "tsv_indices", "data_index_tqa.npy"))
    exemplar = [int(i) for i in np.load(data_path("truthfulqa", "tsv_indices", "exemplar_idx_tqa.npy"))]
    assert len(index) == n, "the TSV index file is for the 817-question TruthfulQA"
    n_wild = int(WILD_RATIO * n)
    wild_all = [int(i) for i in index[:n_wild]]
    held = wild_all[n_wild - HELD_OUT:]
    ex = set(exemplar)
    return Split(
        exemplars=[i for i in held if i in ex],
        wild=[i for i in wild_all[: n_wild - HELD_OUT] if i not in ex],
        val=[i for i in held if i not in ex],
        test=[int(i) for i in index[n_wild:]],
    )


# ------------------------------------------------------------------------------------------
# Answers to score: gold reference answers, or generated / given ones
# ------------------------------------------------------------------------------------------


@dataclass
class Item:
    """One (question, answer) to score; ``label`` 1 = truthful, 0 = hallucinated (None: not yet labelled)."""

    row: int
    split: str
    answer: str
    label: int | None = None
    source: str = "generated"  # generated | gold | file


SPLITS = ("exemplar", "val", "test", "wild")


def is_no_comment(text: str) -> bool:
    return " ".join(text.split()).rstrip(".").lower() == NO_COMMENT.rstrip(".").lower()


def gold_answers(q: Question, per_question: int = 2) -> list[tuple[str, int]]:
    """``per_question`` of TruthfulQA's own reference answers for ``q``, half truthful, half false.

    Truthful ones: the best answer first, then the other correct answers; false ones: the incorrect
    answers in the dataset's order. "I have no comment." is left out (it is truthful for every
    question, so it would test the refusal's wording, not the answer's truth) unless it is the
    question's only truthful reference (10 of 817 questions). Alternates truthful,
    false, truthful, ... so that any ``per_question >= 2`` has both classes.
    """
    best = q.correct[0]
    correct = list(dict.fromkeys([best, *q.correct[1:]]))
    correct = [a for a in correct if not is_no_comment(a)] or [best]
    incorrect = [a for a in q.incorrect if not is_no_comment(a)]
    out: list[tuple[str, int]] = []
    ci = ii = 0
    while len(out) < per_question and (ci < len(correct) or ii < len(incorrect)):
        if len(out) % 2 == 0 and ci < len(correct) or ii >= len(incorrect):
            out.append((correct[ci], 1))
            ci += 1
        else:
            out.append((incorrect[ii], 0))
            ii += 1
    return out


def gold_items(questions: Sequence[Question], parts: dict[str, list[int]], per_question: int = 2) -> list[Item]:
    """Gold-labelled items: every question of every split contributes ``per_question`` reference answers."""
    return [Item(r, split, a, y, "gold") for split in SPLITS for r in parts[split]
            for a, y in gold_answers(questions[r], per_question)]


def check_disjoint(items: Sequence[Item]) -> None:
    """No question may appear in two splits (the split is by question, never by answer)."""
    seen: dict[int, str] = {}
    for it in items:
        if seen.setdefault(it.row, it.split) != it.split:
            raise ValueError(f"question row {it.row} is in splits {seen[it.row]!r} and {it.split!r}")
