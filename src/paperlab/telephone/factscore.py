"""FActScore (paper Section 4.2): atomic facts of each GENERATION, checked against the original.

The paper scores a generation ``y`` with FActScore (Min et al. 2023), the original passage ``x_0``
as the knowledge source (looked up by title in the official ``eval.py``):

    FActScore(y) = (1/|A(y)|) · Σ_{a ∈ A(y)} 1[a is supported by x_0]        (a precision)

where ``A(y)`` are the atomic facts extracted from the generation; ``|A(y)|`` is reported as
``num_facts_per_response`` and varies with the generation (44-60 in the stored results; generation 0
scores about 0.94, not 1, because the judge rejects some facts of the original itself). An empty
generation scores 0, as in the official evaluation. FActScore's length penalty (gamma = 10) is 1 at
the paper's fact counts, so ``score`` and ``init_score`` coincide there; we report the unpenalised
precision.

The reverse direction is reported as an extra, ``fact_recall``: the original's facts found in the
generation, ``(1/|A(x_0)|) · Σ_{a ∈ A(x_0)} 1[a is supported by y]``. It is not the paper's number
(it falls when the chain drops content, where the precision falls when the chain adds or changes it).

Two judges implement both directions:

1. :class:`LLMFactJudge` — FActScore's two LLM steps against any backend: extraction (each sentence
   broken into "- " bulleted atomic facts) and verification ("<context> Input: <fact> True or False?").
2. :class:`LexicalFactJudge` — the documented offline fallback (the small offline model can do
   neither step reliably):

   - atomic facts = clauses (sentences split at ``;``, ``:`` and ", and/but/while ...", fragments of
     fewer than 3 content words merged back);
   - a fact is supported by a text when (a) the cosine similarity of its MiniLM embedding to the
     best-matching sentence or clause of that text is at least ``threshold`` (0.7) **and** (b) every
     number in it appears in that text. (b) catches the number and date drift that embeddings miss.

   Its facts are clauses (a handful per passage, not ~50 atomic facts), so its absolute values are
   not the paper's; its trend over iterations is the quantity of interest, and any OpenAI-compatible
   judge (``--judge openai:…``) runs the real FActScore procedure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from paperlab.core.metrics import embed
from paperlab.core.models import GenerationParams, LanguageModel
from paperlab.core.translate import split_paragraphs, split_sentences

_CLAUSE = re.compile(r";\s+|:\s+|,\s+(?=(?:and|but|while|whereas|although|which|who)\s)")
_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
_STOP = frozenset("the a an and or but of to in on at for with by from as is was were be been are it its this "
                  "that these those he she they his her their him them which who while".split())


def sentences(text: str) -> list[str]:
    return [s for p in split_paragraphs(text) for s in split_sentences(p)]


def _content_words(s: str) -> int:
    return sum(1 for w in _WORD.findall(s.lower()) if w not in _STOP)


def clause_facts(text: str, min_words: int = 3) -> list[str]:
    """Offline atomic facts: clauses of each sentence, short fragments merged into the previous."""
    facts: list[str] = []
    for s in sentences(text):
        parts = [p.strip(" ,;:") for p in _CLAUSE.split(s) if p.strip(" ,;:")]
        merged: list[str] = []
        for p in parts:
            if merged and _content_words(p) < min_words:
                merged[-1] = f"{merged[-1]}, {p}"
            else:
                merged.append(p)
        if len(merged) > 1 and _content_words(merged[0]) < min_words:
            merged[1] = f"{merged[0]}, {merged[1]}"
            merged = merged[1:]
        facts += merged
    return facts


@dataclass
class FactResult:
    """Both directions for one (original, generation) pair.

    ``score`` is FActScore (the paper's precision: the generation's facts supported by the original),
    ``n_facts`` the generation's fact count (``num_facts_per_response``), ``supported`` one flag per
    generation fact; ``recall`` is the share of the original's ``n_original_facts`` facts supported by
    the generation.
    """

    score: float
    n_facts: int
    supported: list[bool]
    recall: float = float("nan")
    n_original_facts: int = 0


def _share(flags: Sequence[bool]) -> float:
    return float(np.mean(flags)) if len(flags) else 0.0   # no facts: 0, as the official eval.py records it


class LexicalFactJudge:
    """The offline fallback judge (see the module docstring).

    Facts and embeddings are memoised by text: chains revisit the same sentences (a deterministic chain
    at its fixed point repeats every one), so each distinct sentence is split and encoded once.
    """

    name = "lexical-minilm"

    def __init__(self, threshold: float = 0.7):
        self.threshold = threshold
        self._facts: dict[str, list[str]] = {}
        self._units: dict[str, list[str]] = {}
        self._emb: dict[str, np.ndarray] = {}

    def facts(self, text: str) -> list[str]:
        """Atomic facts (clauses) of a text."""
        if text not in self._facts:
            self._facts[text] = clause_facts(text)
        return self._facts[text]

    def _evidence(self, text: str) -> list[str]:
        """What a fact is matched against: the text's sentences and clauses."""
        if text not in self._units:
            self._units[text] = list(dict.fromkeys(sentences(text) + clause_facts(text))) or [text or " "]
        return self._units[text]

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._emb]
        if new:
            self._emb.update(zip(new, embed(new), strict=True))
        return np.stack([self._emb[t] for t in texts])

    def supported(self, facts: Sequence[str], source: str) -> list[bool]:
        """Which ``facts`` the ``source`` text supports (similarity and number check)."""
        if not facts:
            return []
        best = (self._embed(facts) @ self._embed(self._evidence(source)).T).max(axis=1)  # unit vectors: cosine
        nums = set(_NUM.findall(source))
        return [bool(best[i] >= self.threshold and set(_NUM.findall(f)) <= nums) for i, f in enumerate(facts)]

    def score_pairs(self, originals: Sequence[str], generations: Sequence[str]) -> list[FactResult]:
        """FActScore (and the recall) of each generation against its original, all texts embedded in one batch."""
        texts = list(dict.fromkeys([*originals, *generations]))
        self._embed([u for t in texts for u in (*self.facts(t), *self._evidence(t))])
        return fact_results(self, originals, generations)

    def score(self, original: str, generations: Sequence[str]) -> list[FactResult]:
        return self.score_pairs([original] * len(generations), generations)


def fact_results(judge, originals: Sequence[str], generations: Sequence[str]) -> list[FactResult]:
    """Per pair: the paper's FActScore (the generation's facts checked against the original), its fact
    count, and the recall (the original's facts checked in the generation), with any judge that has
    ``facts(text)`` and ``supported(facts, source)``. An empty generation has no facts and recalls none."""
    out = []
    for o, g in zip(originals, generations, strict=True):
        g_facts = judge.facts(g) if g.strip() else []
        ok = judge.supported(g_facts, o)
        back = judge.supported(judge.facts(o), g) if g.strip() else [False] * len(judge.facts(o))
        out.append(FactResult(_share(ok), len(g_facts), ok, _share(back) if back else float("nan"),
                              len(judge.facts(o))))
    return out


class LLMFactJudge:
    """FActScore's two LLM steps (extraction, verification) against any backend."""

    def __init__(self, lm: LanguageModel, params: GenerationParams | None = None):
        self.lm = lm
        self.params = params or GenerationParams(temperature=0.0, max_tokens=256)
        self.name = f"llm:{lm.id}"
        self._facts: dict[str, list[str]] = {}

    def facts(self, text: str) -> list[str]:
        """Atomic facts of a text: each sentence broken into "- " bullets by the model."""
        if text not in self._facts:
            sents = sentences(text)
            prompts = [[{"role": "user", "content":
                         "Break the following sentence into independent atomic facts, one short fact per "
                         f"line, each starting with '- '. Output the list only.\n\nSentence: {s}"}] for s in sents]
            replies = [r.text for r in self.lm.chat(prompts, self.params)]
            facts = [ln.strip()[2:].strip() for r in replies for ln in r.splitlines() if ln.strip().startswith("- ")]
            self._facts[text] = facts or clause_facts(text)
        return self._facts[text]

    def supported(self, facts: Sequence[str], source: str) -> list[bool]:
        """FActScore's verification prompt, ``source`` as the retrieved knowledge."""
        if not facts:
            return []
        prompts = [[{"role": "user", "content":
                     f"Answer the question based on the given context.\n\nContext: {source}\n\n"
                     f"Input: {f} True or False?\nOutput:"}] for f in facts]
        replies = [r.text for r in self.lm.chat(prompts, self.params.replace(max_tokens=4))]
        return [r.strip().lower().startswith("true") for r in replies]

    def score_pairs(self, originals: Sequence[str], generations: Sequence[str]) -> list[FactResult]:
        return fact_results(self, originals, generations)

    def score(self, original: str, generations: Sequence[str]) -> list[FactResult]:
        return self.score_pairs([original] * len(generations), generations)
