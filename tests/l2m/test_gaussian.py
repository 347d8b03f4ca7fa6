"""The sub-volume Gaussian: exact MI, exact conditionals, and the estimators recovering it."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from paperlab.l2m.estimators import bipartite_mi, collect_logprobs
from paperlab.l2m.fits import fit_power_law
from paperlab.l2m.gaussian import GaussianScorer, SubVolumeGaussian, autocovariance_from_pacf


def test_logdet_mi_equals_innovation_closed_form():
    g = SubVolumeGaussian(256, gamma=0.4, a=1.5, seed=3)
    for k in (1, 2, 8, 32, 64):
        for r in (2, 3, 4):
            assert g.exact_bipartite_mi(k, r) == pytest.approx(g.innovation_bipartite_mi(k, r), rel=1e-7, abs=1e-9)


def test_pacf_construction_has_the_prescribed_innovations():
    g = SubVolumeGaussian(128, gamma=0.5, a=2.0, seed=1)
    assert np.allclose(np.diag(g.chol) ** 2, g.innovations, rtol=1e-8)
    # an AR(1) with coefficient phi: autocovariance phi^k / (1 - phi^2) for innovation variance 1
    phi = 0.6
    pacf = np.zeros(10)
    pacf[1] = phi
    c = autocovariance_from_pacf(pacf, 1 / (1 - phi ** 2))
    assert np.allclose(c, phi ** np.arange(10) / (1 - phi ** 2))


def test_scorer_conditionals_sum_to_the_joint_density():
    g = SubVolumeGaussian(40, seed=0)
    x = g.sample(5, seed=2)
    lp = GaussianScorer(g.cov).token_logprobs(x)
    ref = multivariate_normal(np.zeros(40), g.cov).logpdf(x)
    assert np.allclose(lp.sum(1), ref, atol=1e-8)
    # prefixes are marginals of the leading block
    assert np.allclose(lp[:, :10].sum(1), multivariate_normal(np.zeros(10), g.cov[:10, :10]).logpdf(x[:, :10]))


def test_bipartite_mi_is_sub_volume_and_two_point_mi_decays():
    g = SubVolumeGaussian(1024, gamma=0.5, a=2.0, seed=0)
    splits = [2 ** k for k in range(1, 10)]
    exact = [g.exact_bipartite_mi(k) for k in splits]
    assert np.all(np.diff(exact) > 0)
    beta = fit_power_law(splits, exact).beta
    assert 0.5 < beta < 1.0                                   # sub-volume: between 1 - gamma and 1
    tp = g.two_point_mi(np.array([1, 512]))
    assert tp[1] < 0.01 * tp[0]


def test_estimators_recover_exact_mi_with_exact_densities():
    g = SubVolumeGaussian(128, gamma=0.5, a=2.0, seed=0)
    splits = [2, 4, 8, 16, 32, 64]
    lp = collect_logprobs(GaussianScorer(g.cov), g.sample(1500, seed=5), splits, 2, batch_size=500)
    est = bipartite_mi(lp, 2)
    for k, m, e, v, ve in zip(splits, est.direct, est.direct_err, est.vclub, est.vclub_err, strict=True):
        exact = g.exact_bipartite_mi(k)
        assert abs(m - exact) < 4 * e, (k, m, exact, e)       # direct: unbiased
        assert v > exact - 4 * ve                             # vCLUB: an upper bound
        assert e < 0.05 * exact + 0.02                        # and the check is tight enough to mean something
