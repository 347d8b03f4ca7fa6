"""TSV claims are decided on paired AUROC differences over test questions: synthetic scores built to
hold, to be contradicted, to be inconclusive, and ones only a paired comparison can decide."""

from __future__ import annotations

import numpy as np

from paperlab.core.stats import auroc_ci
from paperlab.tsv.experiment import BASELINES, TSVConfig, make_claims

CFG = TSVConfig(bootstrap=500)


def labels(n: int = 200, seed: int = 0) -> np.ndarray:
    y = np.zeros(n, dtype=int)
    y[np.random.default_rng(seed).choice(n, n // 3, replace=False)] = 1
    return y


def scored(y: np.ndarray, noise: dict[str, float], seed: int = 0) -> dict[str, np.ndarray]:
    """Scores = label + Gaussian noise of the given size (larger noise: lower AUROC)."""
    rng = np.random.default_rng(seed)
    return {m: y + rng.normal(0, sd, y.size) for m, sd in noise.items()}


def verdicts(y, scores) -> dict[str, str]:
    return {c.id: c.verdict for c in make_claims(y, scores, CFG)}


def test_holds_when_tsv_is_clearly_better():
    y = labels()
    s = scored(y, {"tsv": 0.3, "tsv_stage1": 1.0, "perplexity": 5.0, "raw_prototypes": 3.0, "probe": 2.0})
    assert verdicts(y, s) == {"tsv_beats_baselines": "holds", "tsv_ot_stage": "holds"}


def test_contradicted_when_tsv_is_clearly_worse():
    y = labels()
    s = scored(y, {"tsv": 5.0, "tsv_stage1": 0.3, "perplexity": 0.3, "raw_prototypes": 0.4, "probe": 0.5})
    assert verdicts(y, s) == {"tsv_beats_baselines": "contradicted", "tsv_ot_stage": "contradicted"}


def test_better_point_estimate_with_a_straddling_interval_is_inconclusive():
    # equally good methods on 40 questions; this draw happens to put TSV ahead of every other method on
    # the point estimate (a point-estimate rule would say "holds"), but no interval excludes 0
    y = labels(40, seed=1)
    s = scored(y, {"tsv": 1.0, "tsv_stage1": 1.0, "perplexity": 1.0, "raw_prototypes": 1.0, "probe": 1.0}, seed=19)
    cs = {c.id: c for c in make_claims(y, s, CFG)}
    parts = [*cs["tsv_beats_baselines"].values["evidence"].values(), cs["tsv_ot_stage"].values["evidence"]]
    assert len(parts) == 4 and all(e["value"] > 0 and e["lo"] < 0 < e["hi"] for e in parts)
    assert verdicts(y, s) == {"tsv_beats_baselines": "inconclusive", "tsv_ot_stage": "inconclusive"}


def test_every_baseline_must_be_beaten():
    y = labels()
    s = scored(y, {"tsv": 0.5, "tsv_stage1": 1.0, "perplexity": 5.0, "raw_prototypes": 3.0, "probe": 0.2})
    c = make_claims(y, s, CFG)[0]
    assert c.values["evidence"]["tsv - perplexity"]["verdict"] == "holds"
    assert c.values["evidence"]["tsv - probe"]["verdict"] == "contradicted"
    assert c.verdict == "contradicted"
    assert set(c.values["evidence"]) == {f"tsv - {b}" for b in BASELINES}


def test_difference_is_paired_over_the_same_questions():
    # stage 2 repairs a few of stage 1's misranked answers and leaves the rest untouched: the two AUROC
    # intervals overlap, so comparing them unpaired could not decide; the paired difference can
    y = labels(150, seed=4)
    rng = np.random.default_rng(5)
    stage1 = y + rng.normal(0, 1.0, y.size)
    tsv = stage1.copy()
    pos = np.flatnonzero(y == 1)
    worst = pos[np.argsort(stage1[pos])[:8]]
    tsv[worst] += 1.0
    s = {"tsv": tsv, "tsv_stage1": stage1, "perplexity": stage1, "raw_prototypes": stage1, "probe": stage1}
    a, b = auroc_ci(y, tsv), auroc_ci(y, stage1)
    assert a.lo < b.hi                                     # the unpaired intervals overlap
    c = make_claims(y, s, CFG)[1]
    assert c.id == "tsv_ot_stage" and c.verdict == "holds" and c.values["evidence"]["lo"] > 0


def test_one_class_in_the_test_split_is_inconclusive():
    y = np.ones(30, dtype=int)
    s = scored(y, {"tsv": 0.1, "tsv_stage1": 1.0, "perplexity": 5.0, "raw_prototypes": 5.0, "probe": 5.0})
    assert verdicts(y, s) == {"tsv_beats_baselines": "inconclusive", "tsv_ot_stage": "inconclusive"}
