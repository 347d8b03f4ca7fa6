"""Textual relevance metrics of a generation against the original (paper Section 4.1).

Two conventions:

- ``standard`` (default): the generation is the hypothesis, the original the reference;
  sacrebleu BLEU and chrF (beta 2), scaled to 0-1.
- ``paper``: the conventions of the paper's released numbers (recomputed from its stored
  texts, see the fact sheet): BLEU = torchmetrics ``BLEUScore(n_gram=4)`` with the *original*
  as the hypothesis and the generation as the reference (swapped), chrF = NLTK
  ``sentence_chrf(generation, original)`` (char n-grams 1-6, beta 3). Use it to compare with
  the paper's tables.

METEOR (NLTK) and BERTScore-F1 (offline MiniLM encoder, not the paper's roberta-large) are the
same in both conventions.
"""

from __future__ import annotations

from collections.abc import Sequence

from paperlab.core import metrics as M
from paperlab.core.errors import UserError

COMPAT = ("standard", "paper")
METRICS = ("bleu", "chrf", "meteor", "bertscore")


def paper_bleu(generation: str, original: str) -> float:
    """torchmetrics BLEU-4, original as hypothesis (the paper's swapped order)."""
    from torchmetrics.functional.text import bleu_score

    return float(bleu_score([original], [[generation]], n_gram=4))


def paper_chrf(generation: str, original: str) -> float:
    """NLTK sentence chrF, called as the paper's evaluation does."""
    from nltk.translate.chrf_score import sentence_chrf

    return float(sentence_chrf(generation, original))


def score_pairs(originals: Sequence[str], generations: Sequence[str], compat: str = "standard",
                bertscore: bool = True) -> dict[str, list[float]]:
    """Every relevance metric for each (original, generation) pair."""
    if compat not in COMPAT:
        raise UserError(f"unknown --compat '{compat}'", "use standard or paper")
    if compat == "paper":
        bleu = [paper_bleu(g, o) for o, g in zip(originals, generations, strict=True)]
        chrf = [paper_chrf(g, o) for o, g in zip(originals, generations, strict=True)]
    else:
        bleu = [M.bleu(g, o) for o, g in zip(originals, generations, strict=True)]
        chrf = [M.chrf(g, o) for o, g in zip(originals, generations, strict=True)]
    out = {"bleu": bleu, "chrf": chrf,
           "meteor": [M.meteor(g, o) for o, g in zip(originals, generations, strict=True)]}
    if bertscore:
        out["bertscore"] = M.bertscore(generations, originals)
    return out


def signatures(compat: str) -> dict[str, str]:
    sig = {"meteor": M.meteor_signature(), "bertscore": M.bertscore_signature()}
    if compat == "paper":
        sig.update(bleu="torchmetrics BLEUScore(n_gram=4), hyp=original, ref=generation",
                   chrf="nltk sentence_chrf(generation, original), n=1..6, beta=3")
    else:
        sig.update(M.sacrebleu_signatures())
    return sig
