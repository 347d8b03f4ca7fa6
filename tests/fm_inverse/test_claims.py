"""``make_claims`` on synthetic measurements built to give each verdict (no training, no MCMC)."""

import numpy as np
import pytest

from paperlab.fm_inverse.experiment import COVERAGE_MARGIN, ERROR_RATIO_BOUND, make_claims

LEVELS = [0.5, 0.8, 0.9, 0.95]
RNG = np.random.default_rng(0)
BASE = 0.05 + 0.01 * RNG.random(11)                       # MCMC errors of 11 reference cases
N = list(range(2, 10))


def measurements(**over):
    truths = 10
    falling = 0.2 / np.asarray(N, dtype=float)[None] * (1 + 0.1 * RNG.random((truths, len(N))))
    m = {"problem": "seir", "baseline": "reference (emcee)", "error_name": "trajectory",
         "case_labels": [f"m{i % 4}/N={2 + i % 8}" for i in range(11)], "cfm_err": 1.1 * BASE, "base_err": BASE,
         "eval_N": N, "err": falling, "coverage": {"levels": LEVELS, "empirical": LEVELS}, "sbc_cases": 2000,
         "cfm_seconds": [0.10, 0.11, 0.12], "mcmc_seconds": [30.0, 33.0, 29.0, 31.0], "mh_key": 10000,
         "timing_samples": 1000}
    return m | over


def claim_of(cid, **over):
    return {c.id: c for c in make_claims(measurements(**over))}[cid]


# ---- cfm_matches_mcmc: ratio of mean errors, bootstrap over reference cases, expected < 1.5


@pytest.mark.parametrize(("factor", "verdict"), [(1.1, "holds"), (2.5, "contradicted")])
def test_error_ratio(factor, verdict):
    c = claim_of("cfm_matches_mcmc", cfm_err=factor * BASE * (1 + 0.05 * RNG.standard_normal(11)))
    assert c.verdict == verdict
    assert c.values["test"] == {"expect": "less", "null": ERROR_RATIO_BOUND}
    assert c.values["evidence"]["n"] == 11 and "4 distinct truth" in c.values["note"]


def test_error_ratio_straddling_the_bound_is_inconclusive():
    cfm = BASE * np.where(np.arange(11) % 2, 0.6, 2.6)        # per-case ratios 0.6 and 2.6: mean ratio ~1.5
    c = claim_of("cfm_matches_mcmc", cfm_err=cfm)
    assert c.verdict == "inconclusive"


def test_one_reference_case_is_inconclusive_not_the_point_ratio():
    c = claim_of("cfm_matches_mcmc", cfm_err=[0.01], base_err=[0.05], case_labels=["m0/N=4"])
    assert c.verdict == "inconclusive" and c.values["cfm_error"] == pytest.approx(0.01)


# ---- error_falls_with_n: Spearman over (truth, N) and the largest-vs-smallest-N difference over truths


def test_error_falls_with_n_holds():
    c = claim_of("error_falls_with_n")
    assert c.verdict == "holds" and c.values["evidence"]["Spearman rho(N, error)"]["n"] == 80


def test_error_rising_with_n_is_contradicted():
    c = claim_of("error_falls_with_n", err=measurements()["err"][:, ::-1])
    assert c.verdict == "contradicted"


def test_flat_noisy_error_is_inconclusive():
    c = claim_of("error_falls_with_n", err=0.05 + 0.01 * np.random.default_rng(3).random((10, len(N))))
    assert c.verdict == "inconclusive"


# ---- coverage_calibrated: per level, Wilson interval over cases within nominal +- margin


def test_coverage_calibrated_holds_with_many_cases():
    c = claim_of("coverage_calibrated")
    assert c.verdict == "holds" and len(c.values["evidence"]) == 4
    assert c.values["test"] == {"expect": "within", "null": 0.0, "margin": COVERAGE_MARGIN}


def test_coverage_far_off_is_contradicted():
    cov = {"levels": LEVELS, "empirical": [0.2, 0.4, 0.5, 0.6]}       # overconfident
    c = claim_of("coverage_calibrated", coverage=cov)
    assert c.verdict == "contradicted"


def test_coverage_on_few_cases_is_inconclusive():
    c = claim_of("coverage_calibrated", sbc_cases=30)             # exact coverage, but 30 cases only
    assert c.verdict == "inconclusive"


# ---- cfm_faster_than_mcmc: bootstrap over timed chains, or one exact timing


def test_faster_holds_and_slower_is_contradicted():
    assert claim_of("cfm_faster_than_mcmc").verdict == "holds"
    slow = claim_of("cfm_faster_than_mcmc", cfm_seconds=[100.0, 110.0])
    assert slow.verdict == "contradicted"


def test_timing_straddling_one_is_inconclusive():
    c = claim_of("cfm_faster_than_mcmc", cfm_seconds=[1.0], mcmc_seconds=[0.2, 0.3, 2.0, 2.5])
    assert c.verdict == "inconclusive"


def test_one_mcmc_timing_is_exact_and_says_so():
    c = claim_of("cfm_faster_than_mcmc", mcmc_seconds=[30.0])
    assert c.verdict == "holds" and c.values["evidence"]["n"] == 1
    assert "single timing" in c.values["note"]
