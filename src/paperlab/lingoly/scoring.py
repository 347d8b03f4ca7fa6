"""Scoring (the paper's ``testing/code/scoring_methods.py``, re-implemented from its definition).

``clean_answer``, in this order: ``strip()``; ``strip(".")`` (all leading and trailing full
stops); runs of U+0020 collapsed to one; lower case; every ``+`` deleted; curly quotes
straightened (‘ ’ -> ', “ ” -> "); NFD. The primary metric is exact match of cleaned strings.

A reference is read with ``ast.literal_eval``; a list is a set of alternatives and the score is
the maximum over them (an inner list is joined with ", "); more than 24 string alternatives are
scored by membership of the cleaned prediction (any-order answers), for every metric. An empty
reference scores 1, an empty prediction 0.

Secondary metrics (as the paper, on cleaned strings): BLEU = geometric mean of the n-gram
precisions (13a tokenizer, orders 1-4, no smoothing, no brevity penalty) truncated to the first
``len(prediction.split())`` orders; chrF = chrF (char order 6, beta 2) / 100. Both come from
sacrebleu, whose 13a tokenizer and chrF are the ones HF ``evaluate`` wraps; the BLEU precisions are
sacrebleu's ``precisions`` (``evaluate`` "bleu" computes them with its own 13a tokenisation; for
plain text the two agree). ``evaluate`` is not installed offline.
"""

from __future__ import annotations

import ast
import functools
import math
import re
import unicodedata as ud
from collections.abc import Callable

QUOTES = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}
MAX_ALTERNATIVES = 24


def clean_answer(answer) -> str:
    """The paper's answer normalisation (order matters: see the module docstring)."""
    clean = str(answer).strip().strip(".")
    clean = re.sub(r"[ ]+", " ", clean)
    clean = clean.lower()
    clean = clean.replace("+", "")
    for k, v in QUOTES.items():
        clean = clean.replace(k, v)
    return ud.normalize("NFD", clean)


def exact(ref: str, pred: str) -> float:
    if len(ref) == 0:
        return 1.0
    if len(pred) == 0:
        return 0.0
    return float(ref == pred)


def bleu(ref: str, pred: str) -> float:
    """Geometric mean of the first ``len(pred.split())`` BLEU n-gram precisions (no brevity penalty)."""
    if not ref.strip():
        return 1.0
    if not pred.strip():
        return 0.0
    # one-sentence corpus score: the same counts as sentence_score, without its effective-order warning
    precisions = [p / 100.0 for p in _bleu().corpus_score([pred], [[ref]]).precisions][: len(pred.split())]
    if any(p == 0 for p in precisions):
        return 0.0
    return float(math.exp(sum(math.log(p) for p in precisions) / len(precisions)))


def chrf(ref: str, pred: str) -> float:
    if len(ref) == 0:
        return 1.0
    if len(pred) == 0:
        return 0.0
    return _chrf().sentence_score(pred, [ref]).score / 100.0


@functools.cache
def _bleu():
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize="13a", max_ngram_order=4, smooth_method="none", effective_order=False)


@functools.cache
def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF()


METRICS: dict[str, Callable[[str, str], float]] = {"exact": exact, "bleu": bleu, "chrf": chrf}


def reference_alternatives(reference: str) -> tuple[list[str] | str, bool]:
    """The reference as a list of alternatives when it is a Python/JSON list literal (else itself),
    and whether every alternative was a string (only then does the >24 membership rule apply)."""
    try:
        value = ast.literal_eval(reference)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return reference, True
    if isinstance(value, list):
        alts = [", ".join(map(str, v)) if isinstance(v, list) else str(v) for v in value]
        return alts, all(isinstance(v, str) for v in value)
    return reference, True


def score(prediction, reference: str, metric: str = "exact") -> float:
    """One sub-question's score: max over the reference's alternatives (see the module docstring)."""
    fn = METRICS[metric]
    pred = "" if prediction is None else str(prediction)
    if len(reference) == 0:
        return 1.0
    if len(pred) == 0:
        return 0.0
    alts, all_str = reference_alternatives(reference)
    if isinstance(alts, str):
        return fn(clean_answer(alts), clean_answer(pred))
    if all_str and len(alts) > MAX_ALTERNATIVES:
        return float(clean_answer(pred) in {clean_answer(a) for a in alts})
    return max((fn(clean_answer(a), clean_answer(pred)) for a in alts), default=0.0)


def sacrebleu_signature() -> dict[str, str]:
    return {"bleu": str(_bleu().get_signature()), "chrf": str(_chrf().get_signature())}
