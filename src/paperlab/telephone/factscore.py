"""FActScore-style factuality (paper Section 4.2): atomic facts of the original, checked
against each generation.

    FActScore(y) = (1/|A(x_0)|) · Σ_{a ∈ A(x_0)} 1[a is supported by y]

where ``A(x_0)`` are the atomic facts of the original passage. The paper uses FActScore with an
LLM judge and the original passage as the knowledge source; we implement the same two steps
against any backend:

1. **Extraction** — :class:`LLMFactJudge` asks a model to break each sentence of the original
   into independent atomic facts (one per line, "- " bullets).
2. **Verification** — it asks whether each fact is true given the generation (True/False).

The small offline default model cannot do either reliably, so the default judge is
:class:`LexicalFactJudge`, a documented offline fallback:

- atomic facts = the original's clauses (sentences split at ``;``, ``:`` and ", and/but/while
  ...", fragments of fewer than 3 content words merged back);
- a fact is supported when (a) the cosine similarity of its MiniLM embedding to the best-matching
  sentence or clause of the generation is at least ``threshold`` (0.7) **and** (b) every number in it appears in
  the generation. (b) catches the number and date drift that embeddings miss.

Its absolute values are not the paper's (no LLM judge); its trend over iterations is the
quantity of interest, and any OpenAI-compatible judge (``--judge openai:…``) gives the real
FActScore procedure.
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
    score: float
    n_facts: int
    supported: list[bool]


class LexicalFactJudge:
    """The offline fallback judge (see the module docstring).

    Embeddings are memoised by text: chains revisit the same sentences (a deterministic chain at
    its fixed point repeats every one), so each distinct sentence is encoded once.
    """

    name = "lexical-minilm"

    def __init__(self, threshold: float = 0.7):
        self.threshold = threshold
        self._facts: dict[str, list[str]] = {}
        self._emb: dict[str, np.ndarray] = {}

    def facts(self, original: str) -> list[str]:
        if original not in self._facts:
            self._facts[original] = clause_facts(original)
        return self._facts[original]

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._emb]
        if new:
            self._emb.update(zip(new, embed(new), strict=True))
        return np.stack([self._emb[t] for t in texts])

    def score_pairs(self, originals: Sequence[str], generations: Sequence[str]) -> list[FactResult]:
        """FActScore of each generation against its original (all texts embedded in one batch)."""
        units = [list(dict.fromkeys(sentences(g) + clause_facts(g))) or [g or " "] for g in generations]
        facts = [self.facts(o) for o in originals]
        self._embed([t for group in (*facts, *units) for t in group])
        out = []
        for fs, us, g in zip(facts, units, generations, strict=True):
            if not fs:
                out.append(FactResult(float("nan"), 0, []))
                continue
            best = (self._embed(fs) @ self._embed(us).T).max(axis=1)  # unit vectors: cosine similarity
            g_nums = set(_NUM.findall(g))
            ok = [bool(best[i] >= self.threshold and set(_NUM.findall(f)) <= g_nums) for i, f in enumerate(fs)]
            out.append(FactResult(float(np.mean(ok)), len(fs), ok))
        return out

    def score(self, original: str, generations: Sequence[str]) -> list[FactResult]:
        return self.score_pairs([original] * len(generations), generations)


class LLMFactJudge:
    """FActScore's two LLM steps (extraction, verification) against any backend."""

    def __init__(self, lm: LanguageModel, params: GenerationParams | None = None):
        self.lm = lm
        self.params = params or GenerationParams(temperature=0.0, max_tokens=256)
        self.name = f"llm:{lm.id}"
        self._facts: dict[str, list[str]] = {}

    def facts(self, original: str) -> list[str]:
        if original not in self._facts:
            sents = sentences(original)
            prompts = [[{"role": "user", "content":
                         "Break the following sentence into independent atomic facts, one short fact per "
                         f"line, each starting with '- '. Output the list only.\n\nSentence: {s}"}] for s in sents]
            replies = [r.text for r in self.lm.chat(prompts, self.params)]
            facts = [ln.strip()[2:].strip() for r in replies for ln in r.splitlines() if ln.strip().startswith("- ")]
            self._facts[original] = facts or clause_facts(original)
        return self._facts[original]

    def score(self, original: str, generations: Sequence[str]) -> list[FactResult]:
        facts = self.facts(original)
        out = []
        verify = self.params.replace(max_tokens=4)
        for g in generations:
            prompts = [[{"role": "user", "content":
                         f"Answer the question based on the given context.\n\nContext: {g}\n\n"
                         f"Input: {f} True or False?\nOutput:"}] for f in facts]
            replies = [r.text for r in self.lm.chat(prompts, verify)]
            ok = [r.strip().lower().startswith("true") for r in replies]
            out.append(FactResult(float(np.mean(ok)) if ok else float("nan"), len(facts), ok))
        return out

    def score_pairs(self, originals: Sequence[str], generations: Sequence[str]) -> list[FactResult]:
        return [self.score(o, [g])[0] for o, g in zip(originals, generations, strict=True)]
