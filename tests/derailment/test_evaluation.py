"""P/R/F1 against scikit-learn, intervals, sweeps and the early-warning bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from paperlab.derailment.evaluation import (
    PrefixScores,
    early_warning,
    f1_difference,
    prefix_lengths,
    prf,
    prf_estimates,
    threshold_sweep,
)


@pytest.mark.parametrize("seed", range(5))
def test_prf_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y, pred = rng.integers(0, 2, 40), rng.integers(0, 2, 40)
    want = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)[:3]
    assert prf(y, pred) == pytest.approx(want)
    assert prf(y, np.zeros(40)) == (0.0, 0.0, 0.0)


def test_intervals_and_paired_difference():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    good = np.clip(y * 0.6 + rng.uniform(0, 0.5, 120), 0, 1)
    noise = rng.uniform(0, 1, 120)
    est = prf_estimates(y, good, 0.5, n_boot=300)
    assert all(e.lo <= e.value <= e.hi for e in est.values())
    assert est["auroc"].lo > 0.8
    assert f1_difference(y, good, good, n_boot=300).value == 0.0
    assert f1_difference(y, good, noise, n_boot=300).lo > 0
    sweep = threshold_sweep(y, good, [0.1, 0.3, 0.5, 0.7, 0.9])
    recalls = [r["recall"] for r in sweep]
    assert recalls == sorted(recalls, reverse=True)


def test_prefix_lengths_keep_the_latest():
    assert prefix_lengths(4) == [1, 2, 3, 4]
    assert prefix_lengths(7, 3) == [5, 6, 7]
    assert prefix_lengths(2, 3) == [1, 2]


def test_early_warning_leads_and_false_alarms():
    recs = [
        PrefixScores("a", 1, 4, [1, 2, 3, 4], [0.1, 0.6, 0.2, 0.9]),  # fires after comment 2: lead 4 + 1 - 2 = 3
        PrefixScores("b", 1, 3, [1, 2, 3], [0.1, 0.2, 0.7]),          # fires on the last comment: lead 1
        PrefixScores("c", 1, 2, [1, 2], [0.1, 0.2]),                  # never warned
        PrefixScores("d", 0, 5, [1, 2, 3, 4, 5], [0.1, 0.1, 0.8, 0.1, 0.1]),  # a false alarm
        PrefixScores("e", 0, 2, [1, 2], [0.1, 0.4]),
    ]
    assert [r.lead(0.5) for r in recs[:3]] == [3, 1, None]
    ew = early_warning(recs, 0.5)
    assert (ew["k_warned"], ew["n_toxic"], ew["k_false_alarm"], ew["n_clean"]) == (2, 3, 1, 2)
    assert ew["lead_distribution"] == {"1": 1, "3": 1, "none": 1}
    assert ew["warned"].value == pytest.approx(2 / 3) and ew["difference"].value == pytest.approx(2 / 3 - 1 / 2)
    assert early_warning(recs, 0.5, min_lead=2)["k_warned"] == 1
