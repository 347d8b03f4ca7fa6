"""The claims on synthetic measurements built to give each verdict (no training, no MCMC)."""

import numpy as np
import pytest

from paperlab.fm_inverse.claims import COVERAGE_MARGIN, make_claims
from paperlab.fm_inverse.evaluate import c2st_test, coverage, moment_comparison, normalised_ranks, sbc_ranks

LEVELS = [0.5, 0.8, 0.9, 0.95]
NAMES = ["a", "b", "c"]
N = list(range(2, 10))


def gaussian_case(label, scale=1.0, shift=0.0, converged=True, seed=0, n=1500):
    """A reference case whose 'CFM' samples are N(shift, scale^2) against an N(0, 1) reference."""
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((n, 3))
    x = shift + scale * rng.standard_normal((n, 3))
    return {"label": label, "c2st": c2st_test(x, ref, seed=seed, n=800), "reference_converged": converged,
            "moments": moment_comparison(x, ref, NAMES, n_boot=300, seed=seed)}


@pytest.fixture(scope="module")
def good_cases():
    return [gaussian_case(f"m0/N={n}", seed=n) for n in (3, 6)]


def calibration_inputs(kind: str, K: int = 600, S: int = 100, seed: int = 0):
    """Truths and posterior samples of a conjugate Gaussian model: theta ~ N(0, 1), y ~ N(theta, 0.5^2).

    ``exact``: the true posterior; ``prior``: the prior as 'posterior' (calibrated per parameter, blind to
    the data); ``narrow``: the posterior with half its spread (overconfident).
    """
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((K, 3))
    y = theta + 0.5 * rng.standard_normal((K, 3))
    post_var = 1 / (1 + 1 / 0.25)
    mean, sd = post_var * y / 0.25, np.sqrt(post_var)
    if kind == "prior":
        mean, sd = np.zeros_like(y), 1.0
    if kind == "narrow":
        sd = sd / 2
    samples = mean[:, None] + sd * rng.standard_normal((K, S, 3))
    # The log-likelihood test quantity: log p(y | theta) summed over the three coordinates.
    ll = lambda th: -0.5 * (((y[:, None] - th) / 0.5) ** 2).sum(-1)            # noqa: E731
    lik_rank = (ll(samples) < ll(theta[:, None])).sum(1)
    return {"coverage": coverage(samples, theta, LEVELS), "sbc_cases": K,
            "rank_u": normalised_ranks(sbc_ranks(samples, theta), S), "lik_u": normalised_ranks(lik_rank, S, seed=1)}


def measurements(cases, calibration=None, **over):
    truths = 10
    falling = 0.2 / np.asarray(N, dtype=float)[None] * (1 + 0.1 * np.random.default_rng(0).random((truths, len(N))))
    m = {"baseline": "reference", "param_names": NAMES, "cases": cases, "error_name": "trajectory", "eval_N": N,
         "err": falling, "timing_samples": 1000,
         "speed_cases": [{"label": "a", "cfm_seconds": 0.1, "mcmc_seconds": 30.0, "reached": True},
                         {"label": "b", "cfm_seconds": 0.12, "mcmc_seconds": 20.0, "reached": True},
                         {"label": "c", "cfm_seconds": 0.11, "mcmc_seconds": 40.0, "reached": False}]}
    return m | (calibration or calibration_inputs("exact")) | over


def claim_of(cid, cases, **over):
    return {c.id: c for c in make_claims(measurements(cases, **over))}[cid]


# ---- the two-sample tools


def test_c2st_separates_different_and_not_identical_distributions():
    rng = np.random.default_rng(0)
    same = c2st_test(rng.standard_normal((1000, 3)), rng.standard_normal((1000, 3)), permutations=3)
    lo, hi = same["null_95"]
    assert lo - 0.02 <= same["accuracy"] <= hi + 0.02 and 0.45 < lo < 0.5 < hi < 0.55
    assert all(0.4 < a < 0.6 for a in same["permutation_null"]) and same["permutation_p"] > 0.05
    wide = c2st_test(1.6 * rng.standard_normal((1000, 3)), rng.standard_normal((1000, 3)))
    assert wide["estimate"].lo > 0.6                                    # a 1.6x spread is easy to tell
    assert wide["total"] == 2000 and wide["correct"] == round(wide["accuracy"] * 2000)


def test_moment_comparison_recovers_shift_and_ratio():
    rng = np.random.default_rng(1)
    ref = rng.normal(2.0, 0.5, size=(4000, 2))
    x = rng.normal(2.1, 0.75, size=(4000, 2))
    mo = moment_comparison(x, ref, ["p", "q"], n_boot=300)
    for k in ("p", "q"):
        assert mo[k]["mean_shift"].lo < 0.2 < mo[k]["mean_shift"].hi
        assert mo[k]["std_ratio"].lo < 1.5 < mo[k]["std_ratio"].hi


# ---- cfm_matches_mcmc: two-sided, C2ST and per-parameter moments, converged reference


def test_matching_posteriors_hold(good_cases):
    c = claim_of("cfm_matches_mcmc", good_cases)
    assert c.verdict == "holds", c.values["parts_not_holding"]
    assert c.values["parts"] == 2 * (2 + 2 * len(NAMES))


@pytest.mark.parametrize("scale", [1.5, 0.6])
def test_too_wide_or_too_narrow_is_contradicted(scale):
    """Two-sided: a 1.5x too wide posterior (the old quick model) and an overconfident one both fail."""
    c = claim_of("cfm_matches_mcmc", [gaussian_case("m0/N=3", scale=scale)])
    assert c.verdict == "contradicted"
    assert any("std ratio" in k for k in c.values["parts_not_holding"])


def test_shifted_posterior_is_contradicted():
    c = claim_of("cfm_matches_mcmc", [gaussian_case("m0/N=3", shift=0.5)])
    assert c.verdict == "contradicted" and any("mean shift" in k for k in c.values["parts_not_holding"])


def test_unconverged_reference_cannot_support_the_claim():
    c = claim_of("cfm_matches_mcmc", [gaussian_case("m0/N=3", converged=False)])
    assert c.verdict == "inconclusive"
    assert c.values["parts_not_holding"] == ["m0/N=3: reference converged (autocorrelation rule)"]


# ---- coverage_calibrated: per parameter, SBC uniformity, the likelihood as a test quantity


def test_exact_posterior_is_calibrated():
    c = claim_of("coverage_calibrated", [], calibration=calibration_inputs("exact"))
    assert c.verdict == "holds", c.values["parts_not_holding"]
    assert c.values["parts"] == len(LEVELS) * len(NAMES) + len(NAMES) + 2


def test_prior_as_posterior_fails_on_the_likelihood_rank():
    """The prior is calibrated per parameter -- only a data-dependent test quantity exposes it."""
    c = claim_of("coverage_calibrated", [], calibration=calibration_inputs("prior"))
    assert c.verdict == "contradicted"
    failing = c.values["parts_not_holding"]
    assert failing and all(k.startswith("log-likelihood") for k in failing)


def test_overconfident_posterior_fails_per_parameter_coverage():
    c = claim_of("coverage_calibrated", [], calibration=calibration_inputs("narrow"))
    assert c.verdict == "contradicted"
    assert any("coverage - nominal" in k for k in c.values["parts_not_holding"])
    assert c.values["test"]["expect"].startswith("every part")
    assert COVERAGE_MARGIN == 0.1


def test_few_calibration_cases_are_inconclusive():
    c = claim_of("coverage_calibrated", [], calibration=calibration_inputs("exact", K=40))
    assert c.verdict == "inconclusive"


# ---- error_falls_with_n


def test_error_falls_with_n_holds_and_reverses(good_cases):
    assert claim_of("error_falls_with_n", good_cases).verdict == "holds"
    rising = measurements(good_cases)["err"][:, ::-1]
    assert claim_of("error_falls_with_n", good_cases, err=rising).verdict == "contradicted"


# ---- cfm_faster_than_mcmc: at matched accuracy, lower bounds named


def test_faster_at_matched_accuracy(good_cases):
    c = claim_of("cfm_faster_than_mcmc", good_cases)
    assert c.verdict == "holds" and c.values["lower_bound_cases"] == 1
    assert "lower bound" in c.values["evidence"]["method"]
    slow = [{"label": x, "cfm_seconds": 10.0, "mcmc_seconds": 1.0, "reached": True} for x in "abc"]
    assert claim_of("cfm_faster_than_mcmc", good_cases, speed_cases=slow).verdict == "contradicted"


def peer_case(label, cfm_correct, peer_correct, cfm_seconds, peer_seconds, total=2000):
    return {"label": label, "cfm_correct": cfm_correct, "cfm_total": total, "cfm_c2st": cfm_correct / total,
            "cfm_seconds": cfm_seconds,
            "peers": {"NPE": {"status": "ok", "c2st": peer_correct / total, "c2st_correct": peer_correct,
                              "c2st_total": total, "sample_seconds": peer_seconds, "train_seconds": 60.0,
                              "epochs": 80, "simulations": 14336}}}


def test_peer_claims_follow_the_intervals(good_cases):
    by_id = lambda m: {c.id: c for c in make_claims(m)}             # noqa: E731
    # CFM clearly closer (C2ST 0.55 vs 0.70) and faster (0.1 s vs 0.3 s) on both cases -> both hold
    better = [peer_case("a", 1100, 1400, [0.10, 0.11, 0.10], [0.30, 0.31, 0.29]),
              peer_case("b", 1120, 1380, [0.10, 0.10, 0.12], [0.33, 0.30, 0.31])]
    c = by_id(measurements(good_cases, peer_cases=better))
    assert c["cfm_closer_than_sbi"].verdict == "holds"
    assert c["cfm_samples_faster_than_sbi"].verdict == "holds"
    # the peer closer on one case -> contradicted; CFM slower -> contradicted
    worse = [better[0], peer_case("b", 1400, 1100, [0.50, 0.52, 0.51], [0.05, 0.05, 0.06])]
    c = by_id(measurements(good_cases, peer_cases=worse))
    assert c["cfm_closer_than_sbi"].verdict == "contradicted"
    assert c["cfm_samples_faster_than_sbi"].verdict == "contradicted"
    # equal C2STs are not a win: inconclusive
    tie = [peer_case("a", 1150, 1160, [0.1, 0.1, 0.1], [0.3, 0.3, 0.3])]
    assert by_id(measurements(good_cases, peer_cases=tie))["cfm_closer_than_sbi"].verdict == "inconclusive"
    # sbi missing: both peer claims are inconclusive and say why; no peer_cases at all: no peer claims
    missing = [{"label": "a", "cfm_correct": 1, "cfm_total": 2, "cfm_c2st": 0.5, "cfm_seconds": [0.1],
                "peers": {"NPE": {"status": "not run: sbi missing"}}}]
    c = by_id(measurements(good_cases, peer_cases=missing))
    assert c["cfm_closer_than_sbi"].verdict == "inconclusive"
    assert "sbi missing" in str(c["cfm_closer_than_sbi"].values)
    assert "cfm_closer_than_sbi" not in by_id(measurements(good_cases))
