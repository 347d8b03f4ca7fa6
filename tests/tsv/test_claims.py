"""TSV claims are decided on paired AUROC differences over test questions: synthetic scores built to
hold, to be contradicted, to be inconclusive, and ones only a paired comparison can decide."""

from __future__ import annotations

import numpy as np

from paperlab.core.stats import auroc_ci, auroc_diff
from paperlab.tsv.experiment import BASELINES, TSVConfig, make_claims, mean_auroc_diff, plain_verdicts

CFG = TSVConfig(bootstrap=500)
SEED_TSV_AHEAD = 29  # a noise draw that puts TSV ahead of every other method on the point estimate


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
    s = scored(y, {"tsv": 0.3, "tsv_stage1": 1.0, "perplexity": 5.0, "pmi": 4.0, "qa_cosine": 4.0, "raw_prototypes": 3.0, "probe": 2.0})
    assert verdicts(y, s) == {"tsv_beats_baselines": "holds", "tsv_ot_stage": "holds"}


def test_contradicted_when_tsv_is_clearly_worse():
    y = labels()
    s = scored(y, {"tsv": 5.0, "tsv_stage1": 0.3, "perplexity": 0.3, "pmi": 0.3, "qa_cosine": 0.4, "raw_prototypes": 0.4, "probe": 0.5})
    assert verdicts(y, s) == {"tsv_beats_baselines": "contradicted", "tsv_ot_stage": "contradicted"}


def test_better_point_estimate_with_a_straddling_interval_is_inconclusive():
    # equally good methods on 40 questions; this draw happens to put TSV ahead of every other method on
    # the point estimate (a point-estimate rule would say "holds"), but no interval excludes 0
    y = labels(40, seed=1)
    s = scored(y, {m: 1.0 for m in ("tsv", "tsv_stage1", *BASELINES)}, seed=SEED_TSV_AHEAD)
    cs = {c.id: c for c in make_claims(y, s, CFG)}
    parts = [*cs["tsv_beats_baselines"].values["evidence"].values(), cs["tsv_ot_stage"].values["evidence"]]
    assert len(parts) == len(BASELINES) + 1 and all(e["value"] > 0 and e["lo"] < 0 < e["hi"] for e in parts)
    assert verdicts(y, s) == {"tsv_beats_baselines": "inconclusive", "tsv_ot_stage": "inconclusive"}


def test_every_baseline_must_be_beaten():
    y = labels()
    s = scored(y, {"tsv": 0.5, "tsv_stage1": 1.0, "perplexity": 5.0, "pmi": 5.0, "qa_cosine": 5.0,
                      "raw_prototypes": 3.0, "probe": 0.2})
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
    s = {"tsv": tsv, "tsv_stage1": stage1, **{b: stage1 for b in BASELINES}}
    a, b = auroc_ci(y, tsv), auroc_ci(y, stage1)
    assert a.lo < b.hi                                     # the unpaired intervals overlap
    c = make_claims(y, s, CFG)[1]
    assert c.id == "tsv_ot_stage" and c.verdict == "holds" and c.values["evidence"]["lo"] > 0


def test_one_class_in_the_test_split_is_inconclusive():
    y = np.ones(30, dtype=int)
    s = scored(y, {"tsv": 0.1, "tsv_stage1": 1.0, "perplexity": 5.0, "pmi": 5.0, "qa_cosine": 5.0,
                      "raw_prototypes": 5.0, "probe": 5.0})
    assert verdicts(y, s) == {"tsv_beats_baselines": "inconclusive", "tsv_ot_stage": "inconclusive"}


def test_the_user_baselines_are_in_the_claim():
    assert {"pmi", "qa_cosine"} <= set(BASELINES)
    y = labels()
    # TSV beats the old three baselines but not the question-answer cosine: the claim must not hold
    s = scored(y, {"tsv": 0.5, "tsv_stage1": 1.0, "perplexity": 5.0, "pmi": 5.0, "qa_cosine": 0.2,
                   "raw_prototypes": 3.0, "probe": 3.0})
    c = make_claims(y, s, CFG)
    assert c[0].verdict == "contradicted"
    text = "\n".join(plain_verdicts(c))
    assert "TSV is **worse than** the question-answer cosine" in text and "not yet useful" in text
    assert "TSV **beats** the PMI of answer and question" in text


def test_mean_auroc_diff_is_core_auroc_diff_for_one_run_and_for_identical_seeds():
    y = labels(120, seed=2)
    s = scored(y, {"a": 1.0, "b": 1.5}, seed=3)
    core = auroc_diff(y, s["a"], s["b"], n_boot=300, seed=4)
    one = mean_auroc_diff(y, s["a"], s["b"], n_boot=300, seed=4)
    same = mean_auroc_diff(y, [s["a"], s["a"], s["a"]], s["b"], n_boot=300, seed=4)
    assert (one.value, one.lo, one.hi) == (core.value, core.lo, core.hi)
    np.testing.assert_allclose([same.value, same.lo, same.hi], [core.value, core.lo, core.hi], atol=1e-12)


def test_claim_averages_the_seeds():
    # three seeds: one excellent, two useless; the claim is about their mean, not the best seed
    y = labels(200, seed=6)
    rng = np.random.default_rng(7)
    good, bad1, bad2 = y + rng.normal(0, 0.3, y.size), rng.normal(0, 1, y.size), rng.normal(0, 1, y.size)
    base = {b: y + rng.normal(0, 1.0, y.size) for b in BASELINES}
    cs = make_claims(y, {"tsv": [good, bad1, bad2], "tsv_stage1": [good, bad1, bad2], **base}, CFG)
    assert cs[0].verdict == "contradicted"
    assert make_claims(y, {"tsv": [good], "tsv_stage1": [good], **base}, CFG)[0].verdict == "holds"
