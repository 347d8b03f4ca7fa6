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
