"""Evaluation: precision / recall / F1 with bootstrap intervals, threshold sweeps, early warning.

Positive class = toxic thread; an alarm is ``p >= threshold`` (the stored results use 0.5). Intervals
are percentile bootstraps over held-out threads (the unit of the split); a difference between two
predictors is bootstrapped on the same resampled threads (paired).

**Early warning** (prefix-wise prediction). A toxic thread whose first toxic comment is comment
``t + 1`` (``t`` comments before it) is scored after each of its prefixes of length ``k = 1 .. t``; the
alarm fires at the first ``k`` with ``p_k >= threshold``, that is ``lead = t + 1 - k`` comments before the
toxic one (``lead = 1``: raised on the comment just before it; no alarm: not warned). A non-toxic thread
of ``n`` comments is scored after each prefix ``k = 1 .. n``: any alarm is a false alarm. With
``max_prefixes`` only the last that many prefixes of each thread are scored, so leads above it are not
observed (they count as the largest observed lead).

F1 and precision are written by hand (three lines of numpy) because they run inside 2000-resample
bootstraps where scikit-learn's per-call checks would dominate; ``tests/derailment`` checks them against
scikit-learn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from paperlab.core.stats import Estimate, auroc_ci, index_bootstrap, proportion_diff, wilson


def prf(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall, F1 of the positive class (0 where undefined, as scikit-learn's zero_division=0)."""
    y, pred = np.asarray(y, dtype=bool), np.asarray(pred, dtype=bool)
    tp = float(np.sum(y & pred))
    fp, fn = float(np.sum(~y & pred)), float(np.sum(y & ~pred))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return p, r, f


def _boot(n: int, stat: Callable[[np.ndarray], float], n_boot: int, seed: int, what: str) -> Estimate:
    e = index_bootstrap(n, stat, n_boot=n_boot, seed=seed)
    return Estimate(e.value, e.lo, e.hi, e.n, f"{what}, {e.method} over threads")


def prf_estimates(y: Sequence[int], prob: Sequence[float], threshold: float = 0.5, n_boot: int = 2000,
                  seed: int = 0) -> dict[str, Estimate]:
    """Precision, recall, F1 at ``threshold`` and AUROC, each with its interval."""
    y, prob = np.asarray(y, dtype=int), np.asarray(prob, dtype=float)
    pred = prob >= threshold
    out = {name: _boot(len(y), lambda i, j=j: prf(y[i], pred[i])[j], n_boot, seed, name)
           for j, name in enumerate(("precision", "recall", "f1"))}
    out["auroc"] = auroc_ci(y, prob, n_boot=n_boot, seed=seed)
    return out


def f1_difference(y: Sequence[int], prob_a: Sequence[float], prob_b: Sequence[float], threshold_a: float = 0.5,
                  threshold_b: float = 0.5, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """``F1(a) - F1(b)`` on the same threads, paired percentile bootstrap."""
    y = np.asarray(y, dtype=int)
    pa, pb = np.asarray(prob_a) >= threshold_a, np.asarray(prob_b) >= threshold_b
    return _boot(len(y), lambda i: prf(y[i], pa[i])[2] - prf(y[i], pb[i])[2], n_boot, seed,
                 "F1 difference (paired)")


def threshold_sweep(y: Sequence[int], prob: Sequence[float], thresholds: Sequence[float]) -> list[dict]:
    """Precision, recall, F1 and the alarm rate at each threshold."""
    y, prob = np.asarray(y, dtype=int), np.asarray(prob, dtype=float)
    rows = []
    for t in thresholds:
        p, r, f = prf(y, prob >= t)
        rows.append({"threshold": float(t), "precision": p, "recall": r, "f1": f,
                     "alarm_rate": float(np.mean(prob >= t))})
    return rows


# ---------------------------------------------------------------------------------------------- early warning


def prefix_lengths(n_prefix: int, max_prefixes: int | None = None) -> list[int]:
    """The prefix lengths scored for a thread with ``n_prefix`` usable comments (the last ``max_prefixes``)."""
    start = 1 if max_prefixes is None else max(1, n_prefix - max_prefixes + 1)
    return list(range(start, n_prefix + 1))


@dataclass
class PrefixScores:
    """One thread's prefix-wise scores. ``lengths[i]`` comments gave probability ``probs[i]``."""

    id: str
    label: int
    n_prefix: int
    lengths: list[int]
    probs: list[float]

    def alarm_at(self, threshold: float) -> int | None:
        """The prefix length at which the alarm first fires (None: never)."""
        return next((k for k, p in zip(self.lengths, self.probs, strict=True) if p >= threshold), None)

    def lead(self, threshold: float) -> int | None:
        """Comments before the first toxic one at which the alarm fires (toxic threads; None: not warned)."""
        k = self.alarm_at(threshold)
        return None if k is None else self.n_prefix + 1 - k


def early_warning(records: Sequence[PrefixScores], threshold: float = 0.5, min_lead: int = 1) -> dict:
    """Warned share of toxic threads (lead >= ``min_lead``) vs. false-alarm share of non-toxic ones."""
    toxic = [r for r in records if r.label]
    clean = [r for r in records if not r.label]
    leads = [r.lead(threshold) for r in toxic]
    warned = sum(x is not None and x >= min_lead for x in leads)
    false_alarms = sum(r.alarm_at(threshold) is not None for r in clean)
    dist = Counter("none" if x is None else str(x) for x in leads)
    order = sorted((k for k in dist if k != "none"), key=int) + (["none"] if "none" in dist else [])
    return {
        "threshold": threshold, "min_lead": min_lead,
        "warned": wilson(warned, len(toxic)), "false_alarm": wilson(false_alarms, len(clean)),
        "difference": proportion_diff(warned, len(toxic), false_alarms, len(clean)),
        "n_toxic": len(toxic), "n_clean": len(clean), "k_warned": warned, "k_false_alarm": false_alarms,
        "lead_distribution": {k: dist[k] for k in order},
        "mean_lead_of_warned": float(np.mean([x for x in leads if x is not None])) if any(
            x is not None for x in leads) else float("nan"),
        "mean_comments_before_toxic": float(np.mean([r.n_prefix for r in toxic])) if toxic else float("nan"),
    }


def early_warning_curve(records: Sequence[PrefixScores], thresholds: Sequence[float]) -> list[dict]:
    """Warned share of toxic threads and false-alarm share of non-toxic ones at each threshold."""
    rows = []
    for t in thresholds:
        e = early_warning(records, t)
        rows.append({"threshold": float(t), "warned": e["warned"].value, "false_alarm": e["false_alarm"].value})
    return rows


def max_score_auroc(records: Sequence[PrefixScores], n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Threshold-free early warning: AUROC of each thread's highest prefix probability (toxic vs. non-toxic)."""
    return auroc_ci([r.label for r in records], [max(r.probs) for r in records], n_boot=n_boot, seed=seed)
