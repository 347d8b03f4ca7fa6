"""The shared statistics against textbook values and their nominal coverage in simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst

from paperlab.core import stats


def test_auroc_of_known_rankings():
    y = [0, 0, 1, 1]
    assert stats.auroc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0            # perfect ranking
    assert stats.auroc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0            # reversed
    assert stats.auroc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5            # all tied
    # one discordant pair of four: (1 - 1/4)
    assert stats.auroc(y, [0.1, 0.6, 0.5, 0.9]) == pytest.approx(0.75)
    assert math.isnan(stats.auroc([1, 1], [0.2, 0.3]))


def test_auroc_equals_sklearn_on_random_data():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = rng.normal(size=300) + y * 0.7
    s[:40] = np.round(s[:40], 1)  # ties
    assert stats.auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_wilson_textbook_value():
    # Newcombe (1998), example: 81/263 -> 0.2553 .. 0.3662 (95 %)
    e = stats.wilson(81, 263)
    assert e.lo == pytest.approx(0.2553, abs=5e-4) and e.hi == pytest.approx(0.3662, abs=5e-4)
    z = stats.wilson(0, 10)
    assert z.lo == 0.0 and 0.2 < z.hi < 0.35  # 0/10: [0, 0.278]


def test_proportion_diff_newcombe_textbook_value():
    # Newcombe (1998), Table II example (a): 56/70 - 48/80 = 0.2, method 10 -> 0.0524 .. 0.3339
    e = stats.proportion_diff(56, 70, 48, 80)
    assert e.value == pytest.approx(0.2)
    assert e.lo == pytest.approx(0.0524, abs=5e-4) and e.hi == pytest.approx(0.3339, abs=5e-4)
    # swapping the groups mirrors the interval
    m = stats.proportion_diff(48, 80, 56, 70)
    assert (m.lo, m.hi) == pytest.approx((-e.hi, -e.lo))


def test_mean_ci_matches_scipy_t_interval():
    x = [2.1, 2.9, 3.3, 1.8, 2.6, 3.9, 2.2]
    e = stats.mean_ci(x)
    lo, hi = sst.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sst.sem(x))
    assert (e.lo, e.hi) == pytest.approx((lo, hi))
    assert math.isnan(stats.mean_ci([1.0]).lo)  # one value: no spread, no interval
    clipped = stats.mean_ci([0.99, 0.2, 1.0], bounds=(0, 1))
    assert clipped.hi <= 1.0 and clipped.lo >= 0.0


def test_spearman_ci_matches_fisher_z_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    e = stats.spearman_ci(x, y)
    rho = sst.spearmanr(x, y).statistic
    se = math.sqrt((1 + rho**2 / 2) / 37)
    assert e.value == pytest.approx(rho)
    assert e.lo == pytest.approx(math.tanh(math.atanh(rho) - 1.959964 * se), abs=1e-5)
    assert e.lo < rho < e.hi


def test_permutation_test_detects_shift_and_not_null():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1, 30), rng.normal(0.0, 1, 30)
    _, p = stats.permutation_test(a, b, n_perm=2000)
    assert p < 0.01
    _, p_null = stats.permutation_test(b, rng.normal(0.0, 1, 30), n_perm=2000)
    assert p_null > 0.01
    obs, p_paired = stats.permutation_test(a, a - 0.5 + rng.normal(0, 0.1, 30), paired=True, n_perm=2000,
                                           alternative="greater")
    assert obs == pytest.approx(0.5, abs=0.1) and p_paired < 0.01


@pytest.mark.parametrize("kind", ["paired_mean", "auroc_diff"])
def test_bootstrap_interval_covers_truth_at_nominal_rate(kind):
    """200 simulated experiments: the 95 % interval covers the true difference 90-100 % of the time."""
    rng = np.random.default_rng(11)
    covered = 0
    trials = 200
    for t in range(trials):
        if kind == "paired_mean":
            unit = rng.normal(0, 1, 60)                       # shared per-unit effect (the pairing)
            a = unit + 0.3 + rng.normal(0, 0.5, 60)
            b = unit + rng.normal(0, 0.5, 60)
            e = stats.paired_bootstrap_diff(a, b, n_boot=400, seed=t)
            truth = 0.3
        else:
            y = np.r_[np.zeros(100, int), np.ones(100, int)]
            latent = rng.normal(size=200)
            s1 = latent + y * 1.0                              # AUROC = Phi(1/sqrt(2)) ~ 0.760
            s2 = latent + y * 0.5 + rng.normal(0, 0.3, 200)    # correlated with s1, weaker
            e = stats.auroc_diff(y, s1, s2, n_boot=400, seed=t)
            truth = sst.norm.cdf(1 / math.sqrt(2)) - sst.norm.cdf(0.5 / math.sqrt(2 * 1.09))
        covered += e.lo <= truth <= e.hi
    rate = covered / trials
    assert 0.90 <= rate <= 1.0, rate


def test_auroc_ci_brackets_value_and_is_within_unit_interval():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 120)
    s = rng.normal(size=120) + y
    e = stats.auroc_ci(y, s, n_boot=500)
    assert 0 <= e.lo < e.value < e.hi <= 1


def test_exact_is_zero_width():
    e = stats.exact(1e-15)
    assert e.lo == e.hi == e.value


def test_mean_auroc_diff_cluster_bootstrap_is_wider_for_clustered_items():
    # 40 questions x 2 answers; scores of a question's two answers share a question effect, so answers
    # are not independent: the by-question interval must be wider than the by-answer one, and equal
    # the plain paired difference in value.
    rng = np.random.default_rng(0)
    q = np.repeat(np.arange(40), 2)
    y = np.tile([1, 0], 40)
    effect = np.repeat(rng.normal(0, 2.0, 40), 2)
    a = effect + 0.8 * y + rng.normal(0, 0.5, 80)
    b = effect + 0.4 * y + rng.normal(0, 0.5, 80)
    by_answer = stats.mean_auroc_diff(y, a, b, n_boot=400, seed=1)
    by_question = stats.mean_auroc_diff(y, a, b, groups=q, n_boot=400, seed=1)
    assert by_answer.value == pytest.approx(by_question.value)
    assert by_answer.value == pytest.approx(stats.auroc(y, a) - stats.auroc(y, b))
    assert by_question.n == 40 and by_answer.n == 80
    assert (by_question.hi - by_question.lo) > (by_answer.hi - by_answer.lo)
    # a list of identical runs averages to the single run
    same = stats.mean_auroc_diff(y, [a, a], [b], groups=q, n_boot=400, seed=1)
    assert same.value == pytest.approx(by_question.value)


def test_jackknife_of_the_mean_equals_the_t_interval():
    # for the mean, the delete-one jackknife SE is exactly s / sqrt(n)
    x = np.random.default_rng(3).normal(size=25)
    loo = np.array([np.delete(x, i).mean() for i in range(x.size)])
    e, t = stats.jackknife_ci(x.mean(), loo), stats.mean_ci(x)
    assert e.value == pytest.approx(t.value)
    assert (e.lo, e.hi) == pytest.approx((t.lo, t.hi), rel=1e-9)
    assert math.isnan(stats.jackknife_ci(1.0, [1.0]).lo)


def test_index_bootstrap_resamples_units_jointly():
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    b = a + 0.01 * rng.normal(size=200)                       # b tracks a unit by unit
    joint = stats.index_bootstrap(200, lambda i: a[i].mean() - b[i].mean(), n_boot=500)
    assert joint.hi - joint.lo < 0.01                          # pairing kept: the difference is tight
    e = stats.index_bootstrap(200, lambda i: a[i].mean(), n_boot=500)
    assert e.lo < a.mean() < e.hi and e.n == 200


def test_independent_bootstrap_diff_resamples_each_group():
    from paperlab.core.stats import independent_bootstrap_diff

    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 200)
    est = independent_bootstrap_diff(list(a) + [float("nan")], b, n_boot=1000)
    assert est.value == pytest.approx(a.mean() - b.mean()) and est.n == 500
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)  # the normal-theory width it should match
    assert est.lo < est.value < est.hi and (est.hi - est.lo) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert not independent_bootstrap_diff([1.0], b).finite


def test_crossed_bootstrap_carries_seed_variation():
    import numpy as np

    from paperlab.core.stats import bootstrap_ci, crossed_bootstrap

    rng = np.random.default_rng(0)
    hit_crossed = hit_questions = 0
    sims = 120
    for _ in range(sims):  # true mean 0; seed effects as large as question effects
        table = rng.normal(0, 1, (5, 1))[:, [0] * 60] + rng.normal(0, 1, (1, 60)) + rng.normal(0, 0.3, (5, 60))
        e = crossed_bootstrap(table, n_boot=300, seed=1)
        q = bootstrap_ci(table.mean(0), n_boot=300, seed=1)
        hit_crossed += e.lo <= 0 <= e.hi
        hit_questions += q.lo <= 0 <= q.hi
    assert hit_crossed / sims > 0.8 > hit_questions / sims  # the question-only interval misses the seed spread


def test_crossed_bootstrap_one_row_is_the_column_bootstrap():
    import numpy as np

    from paperlab.core.stats import crossed_bootstrap

    x = np.random.default_rng(3).normal(size=(1, 40))
    e = crossed_bootstrap(x, n_boot=500)
    assert e.n == 40 and "one of seeds" in e.method and e.lo < x.mean() < e.hi
    assert np.isnan(crossed_bootstrap(np.ones((3, 1))).lo)
