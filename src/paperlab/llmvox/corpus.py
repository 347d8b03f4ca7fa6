"""Training speech: sentences of the packaged Gutenberg novels spoken by espeak-ng (one synthetic voice, as
LLMVoX trains on single-speaker synthetic speech), encoded to codec tokens.

Sentences are cut at ``.``/``!``/``?``, kept when they are plain (letters, spaces, commas, apostrophes; no capitalised word after the
first but "I", so no proper names), 5 to
``max_words`` words long, de-duplicated, shuffled with the seed and split into disjoint training and held-out
sets. Each ends with ``.`` so the streaming engine's sentence boundary rule applies to them too.
"""

from __future__ import annotations

import random
import re

import numpy as np

from paperlab.core.data import data_path

BOOKS = ("105.txt", "121.txt", "174.txt", "564-0.txt")
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z ,']*$")


def sentences(min_words: int = 5, max_words: int = 12) -> list[str]:
    """All plain sentences of the packaged novels, in book order, de-duplicated."""
    out, seen = [], set()
    for book in BOOKS:
        text = " ".join(data_path("gutenberg", book).read_text(encoding="utf-8").split())
        text = text.replace("_", "").replace("’", "'")
        for s in re.split(r"(?<=[.!?])\s+", text):
            s = s.rstrip(".!?").strip()
            if not _PLAIN.match(s) or "''" in s or s.endswith(","):
                continue
            if any(w[0].isupper() and w != "I" for w in s.split()[1:]):  # no proper names (Whisper misspells them)
                continue
            n = len(s.split())
            if min_words <= n <= max_words and s.lower() not in seen:
                seen.add(s.lower())
                out.append(s + ".")
    return out


def split_sentences(n_train: int, n_test: int, seed: int = 0, max_words: int = 12) -> tuple[list[str], list[str]]:
    """Disjoint training and held-out sentences (a seeded shuffle of :func:`sentences`)."""
    pool = sentences(max_words=max_words)
    if n_train + n_test > len(pool):
        from paperlab.core.errors import UserError

        raise UserError(f"asked for {n_train + n_test} sentences, the corpus has {len(pool)}",
                        "lower --sentences / --test-sentences")
    random.Random(seed).shuffle(pool)
    return pool[:n_train], pool[n_train:n_train + n_test]


def synthesise(texts: list[str], rate: int = 175) -> list[np.ndarray]:
    """espeak-ng speech (16 kHz) of each text, leading/trailing silence trimmed (cached on disk by the core)."""
    from paperlab.core.audio import speak

    return [trim(speak(t, rate=rate)) for t in texts]


def trim(wave: np.ndarray, threshold: float = 1e-3, margin: int = 800) -> np.ndarray:
    """Cut leading and trailing near-silence (keeping ``margin`` samples = 50 ms)."""
    idx = np.flatnonzero(np.abs(wave) > threshold)
    if idx.size == 0:
        return wave
    return wave[max(0, idx[0] - margin): idx[-1] + 1 + margin]
