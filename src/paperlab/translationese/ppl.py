"""§4-5 of the paper: perplexity of a target text alone under a base LM, and perplexity filtering of SFT data.

**Perplexity** as in the official ``Evaluation/eval_ppl.ipynb``: the text alone (no source, no chat
template) is tokenised with the tokenizer's default special tokens, and

.. math:: \\mathrm{PPL}(y) = \\exp\\Big(-\\frac{1}{T-1} \\sum_{t=2}^{T} \\log p(y_t \\mid y_{<t})\\Big)

(``model(ids, labels=ids).loss``: every token but the first is scored). A system's score is the arithmetic
mean of per-item PPL (not token-pooled); we report the median beside it because the mean is dominated by very
short outputs. A text of a single token has no scored token: its PPL is undefined (NaN, left out of the
summaries and counted).

**Perplexity filtering**: drop the fraction ``X`` of SFT pairs whose reference has the highest PPL. The
released ``merge_raw.ppl_0.8.json`` keeps 3,282 en-zh pairs (PPL <= 10.53) and 3,043 de-en pairs
(PPL <= 11.52): two thresholds, so the cut is made per language direction; :func:`ppl_filter` cuts per
group (``group`` = the direction) for that reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def perplexities(model, tokenizer, texts: Sequence[str], batch_size: int = 8,
                 progress: Callable[[int], None] | None = None) -> list[float]:
    """Per-text PPL under ``model`` (default special tokens, first token unscored; NaN for < 2 tokens)."""
    import torch

    from paperlab.core.internals import token_logprobs

    out: list[float] = []
    with torch.no_grad():
        for s in range(0, len(texts), batch_size):
            chunk = texts[s: s + batch_size]
            ids = [tokenizer(t)["input_ids"] for t in chunk]  # default special tokens, as the notebook
            lps = token_logprobs(model, tokenizer, ids, start=None, batch_size=batch_size)
            out += [float(math.exp(-lp.double().mean().item())) if lp.numel() else float("nan") for lp in lps]
            if progress is not None:
                progress(len(chunk))
    return out


def summarize(ppl: Sequence[float]) -> dict[str, Any]:
    """Mean (the paper's system score) and median of the defined per-item PPLs, and how many were undefined."""
    a = np.asarray(ppl, dtype=float)
    ok = a[np.isfinite(a)]
    return {"n": int(a.size), "n_undefined": int(a.size - ok.size),
            "mean": float(ok.mean()) if ok.size else float("nan"),
            "median": float(np.median(ok)) if ok.size else float("nan")}


def ppl_filter(ppl: Sequence[float], drop: float, groups: Sequence[str] | None = None) -> np.ndarray:
    """Boolean mask of the pairs kept when the fraction ``drop`` with the highest PPL is removed in each group.

    Within a group of ``n`` pairs the ``round(n * (1 - drop))`` lowest-PPL pairs are kept (ties broken by
    position, undefined PPL counted as highest).
    """
    if not 0 <= drop < 1:
        raise ValueError(f"drop must be in [0, 1), not {drop}")
    a = np.asarray(ppl, dtype=float)
    a = np.where(np.isfinite(a), a, np.inf)
    g = np.asarray(groups if groups is not None else ["all"] * a.size)
    keep = np.zeros(a.size, dtype=bool)
    for name in dict.fromkeys(g.tolist()):
        idx = np.flatnonzero(g == name)
        n_keep = int(round(idx.size * (1 - drop)))
        order = idx[np.argsort(a[idx], kind="stable")]
        keep[order[:n_keep]] = True
    return keep
