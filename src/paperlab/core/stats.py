"""Shared statistics: every number a claim is decided on comes with an interval from here.

Each function returns an :class:`Estimate` — the point value, a two-sided interval at
``confidence`` (default 95 %), the sample size and the method's name — so that a claim
(:func:`paperlab.core.runs.claim`) can be decided on the interval, never on the point alone.

=====================================  ====================================================
:func:`mean_ci`                        mean, Student-t interval (optionally clipped to a range)
:func:`bootstrap_ci`                   any statistic, percentile bootstrap
:func:`paired_bootstrap_diff`          ``stat(a) - stat(b)`` over paired units, bootstrap
:func:`index_bootstrap`                any statistic of several arrays on the same units, bootstrap
:func:`jackknife_ci`                   a statistic with a delete-one-group jackknife interval
:func:`auroc` / :func:`auroc_ci`       AUROC (Mann-Whitney), stratified bootstrap interval
:func:`auroc_diff`                     paired (same items) bootstrap of an AUROC difference
:func:`wilson`                         a proportion, Wilson score interval
:func:`spearman_ci`                    Spearman's rho, Fisher-z interval (Bonett-Wright SE)
:func:`permutation_test`               two-sample or paired (sign-flip) permutation p-value
:func:`exact`                          a deterministic computation: a zero-width interval
=====================================  ====================================================

Why hand-written: scipy has ``bootstrap`` and ``permutation_test`` but neither a stratified
AUROC bootstrap, nor a paired AUROC difference, nor the Wilson interval with one call; the
few lines here are the textbook formulas and are tested against textbook values
(``tests/core/test_stats.py``). Percentile bootstrap is used throughout because it respects
the range of bounded statistics (AUROC, chrF in [0, 1]) where a t-interval may leave it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Estimate:
    """A measured quantity with its two-sided confidence interval ``[lo, hi]``."""

    value: float
    lo: float
    hi: float
    n: int
    method: str
    confidence: float = 0.95

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.lo:.4g}, {self.hi:.4g}] ({int(self.confidence * 100)}% CI, n={self.n})"

    @property
    def finite(self) -> bool:
        return all(math.isfinite(x) for x in (self.value, self.lo, self.hi))


def _clean(x: ArrayLike) -> np.ndarray:
    a = np.asarray([v for v in np.ravel(np.asarray(x, dtype=object)) if v is not None], dtype=float)
    return a[np.isfinite(a)]


def _nan(n: int, method: str, confidence: float) -> Estimate:
    return Estimate(float("nan"), float("nan"), float("nan"), n, method, confidence)


def exact(value: float, method: str = "exact (deterministic computation, no sampling error)") -> Estimate:
    """A quantity computed without sampling (an identity's error, arithmetic on a configuration)."""
    v = float(value)
    return Estimate(v, v, v, 1, method, 1.0)


def mean_ci(x: ArrayLike, confidence: float = 0.95, bounds: tuple[float, float] | None = None) -> Estimate:
    """Mean with a Student-t interval ``m ± t_{(1+c)/2, n-1} s/sqrt(n)``.

    ``bounds`` clips the interval to the quantity's range (say ``(0, 1)`` for a rate); use
    :func:`bootstrap_ci` instead when the clipping would bite often. Fewer than two values give
    an undefined (NaN) interval: one value carries no information about its spread.
    """
    from scipy import stats

    a = _clean(x)
    method = "mean, Student-t interval"
    if a.size == 0:
        return _nan(0, method, confidence)
    m = float(a.mean())
    if a.size < 2:
        return Estimate(m, float("nan"), float("nan"), 1, method, confidence)
    h = float(stats.sem(a) * stats.t.ppf((1 + confidence) / 2, a.size - 1))
    lo, hi = m - h, m + h
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        method += f", clipped to [{bounds[0]}, {bounds[1]}]"
    return Estimate(m, lo, hi, int(a.size), method, confidence)


def _percentile(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    return float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))


def bootstrap_ci(x: ArrayLike, stat: Callable[[np.ndarray], float] = np.mean, n_boot: int = 2000,
                 seed: int = 0, confidence: float = 0.95) -> Estimate:
    """``stat(x)`` with a percentile-bootstrap interval over the units of ``x``."""
    a = _clean(x)
    method = f"percentile bootstrap ({n_boot} resamples)"
    if a.size < 2:
        return Estimate(float(stat(a)) if a.size else float("nan"), float("nan"), float("nan"),
                        int(a.size), method, confidence)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    boot = np.array([stat(a[i]) for i in idx], dtype=float)
    lo, hi = _percentile(boot, confidence)
    return Estimate(float(stat(a)), lo, hi, int(a.size), method, confidence)


def paired_bootstrap_diff(a: ArrayLike, b: ArrayLike, stat: Callable[[np.ndarray], float] = np.mean,
                          n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> Estimate:
    """``stat(a) - stat(b)`` where ``a[i]`` and ``b[i]`` are measured on the same unit ``i``.

    The units (passages, seeds, questions) are resampled together, so the interval accounts for
    the pairing. Pairs with a missing side are dropped.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.shape} vs {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    method = f"paired percentile bootstrap ({n_boot} resamples) of a difference"
    if x.size < 2:
        v = float(stat(x) - stat(y)) if x.size else float("nan")
        return Estimate(v, float("nan"), float("nan"), int(x.size), method, confidence)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    boot = np.array([stat(x[i]) - stat(y[i]) for i in idx], dtype=float)
    lo, hi = _percentile(boot, confidence)
    return Estimate(float(stat(x) - stat(y)), lo, hi, int(x.size), method, confidence)


def crossed_bootstrap(x: ArrayLike, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
                      rows: str = "seeds", cols: str = "questions") -> Estimate:
    """The mean of a ``rows x cols`` table whose two factors are both random samples — training seeds
    crossed with test questions — with Owen's (2007) pigeonhole bootstrap: each resample draws rows and
    columns independently with replacement and keeps their crossings, so the interval carries both the
    between-seed and the between-question variation (a bootstrap over questions alone, given one seed or
    the seed average, hides the first). Paired differences: pass the per-(row, column) difference table.
    One row reduces to a plain bootstrap over columns (and the method says so)."""
    a = np.asarray(x, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"crossed_bootstrap needs a 2-D table, got shape {a.shape}")
    r, c = a.shape
    method = (f"pigeonhole bootstrap over {r} {rows} x {c} {cols} ({n_boot} resamples)" if r > 1 else
              f"percentile bootstrap over {cols} ({n_boot} resamples; one of {rows}: its variation not included)")
    if c < 2 or not np.all(np.isfinite(a)):
        return _nan(int(c), method, confidence)
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for b in range(n_boot):
        ri, ci = rng.integers(0, r, r), rng.integers(0, c, c)
        boot[b] = a[np.ix_(ri, ci)].mean()
    lo, hi = _percentile(boot, confidence)
    return Estimate(float(a.mean()), lo, hi, int(c), method, confidence)


def independent_bootstrap_diff(a: ArrayLike, b: ArrayLike, n_boot: int = 2000, seed: int = 0,
                               confidence: float = 0.95) -> Estimate:
    """``mean(a) - mean(b)`` for two independent groups (different units: human vs. model arms, derailed vs.
    non-toxic threads), each group resampled on its own. Non-finite values are dropped; fewer than two in a
    group gives NaN (no interval)."""
    x = np.asarray(a, dtype=float).ravel()
    y = np.asarray(b, dtype=float).ravel()
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    method = f"difference of two independent means, percentile bootstrap within groups ({n_boot} resamples)"
    if x.size < 2 or y.size < 2:
        return _nan(int(x.size + y.size), method, confidence)
    rng = np.random.default_rng(seed)
    boot = np.array([rng.choice(x, x.size).mean() - rng.choice(y, y.size).mean() for _ in range(n_boot)])
    lo, hi = _percentile(boot, confidence)
    return Estimate(float(x.mean() - y.mean()), lo, hi, int(x.size + y.size), method, confidence)


def index_bootstrap(n: int, stat: Callable[[np.ndarray], float], n_boot: int = 2000, seed: int = 0,
                    confidence: float = 0.95) -> Estimate:
    """``stat(indices)`` with a percentile-bootstrap interval over ``n`` units: any statistic of several
    arrays measured on the same units (a ratio of means, a perplexity pooled over windows); ``stat``
    receives the resampled unit indices (an int array, repeats included)."""
    return bootstrap_ci(np.arange(n, dtype=float), stat=lambda x: stat(x.astype(int)), n_boot=n_boot, seed=seed,
                        confidence=confidence)


def jackknife_ci(full: float, leave_one_out: ArrayLike, confidence: float = 0.95, unit: str = "groups") -> Estimate:
    """A statistic with a delete-one-group jackknife interval ``value ± t_{K-1} SE_jack``,
    ``SE_jack^2 = (K-1)/K sum_k (theta_(k) - mean theta_(.))^2``, from its ``K`` leave-one-out values."""
    from scipy import stats

    loo = np.asarray(leave_one_out, dtype=float)
    k = loo.size
    method = f"delete-one jackknife over {k} {unit}, Student-t"
    if k < 2:
        return Estimate(float(full), float("nan"), float("nan"), k, method, confidence)
    se = math.sqrt((k - 1) / k * float(np.sum((loo - loo.mean()) ** 2)))
    h = se * float(stats.t.ppf((1 + confidence) / 2, k - 1))
    return Estimate(float(full), full - h, full + h, k, method, confidence)


# ------------------------------------------------------------------ AUROC


def auroc(y: ArrayLike, s: ArrayLike) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties count 1/2.

    Computed as the Mann-Whitney U statistic over average ranks; NaN when a class is missing.
    """
    from scipy.stats import rankdata

    y = np.asarray(y).astype(int)
    s = np.asarray(s, dtype=float)
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _strat_indices(y: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap index rows that resample positives and negatives separately (class counts kept)."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    return np.concatenate([rng.choice(pos, size=(n_boot, pos.size)), rng.choice(neg, size=(n_boot, neg.size))], 1)


def auroc_ci(y: ArrayLike, s: ArrayLike, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> Estimate:
    """AUROC with a stratified percentile-bootstrap interval."""
    y, s = np.asarray(y).astype(int), np.asarray(s, dtype=float)
    method = f"AUROC, stratified percentile bootstrap ({n_boot} resamples)"
    value = auroc(y, s)
    if not math.isfinite(value):
        return _nan(len(y), method, confidence)
    idx = _strat_indices(y, np.random.default_rng(seed), n_boot)
    boot = np.array([auroc(y[i], s[i]) for i in idx])
    lo, hi = _percentile(boot, confidence)
    return Estimate(value, lo, hi, len(y), method, confidence)


def auroc_diff(y: ArrayLike, s1: ArrayLike, s2: ArrayLike, n_boot: int = 2000, seed: int = 0,
               confidence: float = 0.95) -> Estimate:
    """``AUROC(s1) - AUROC(s2)`` on the same items, paired stratified bootstrap."""
    y = np.asarray(y).astype(int)
    a, b = np.asarray(s1, dtype=float), np.asarray(s2, dtype=float)
    method = f"AUROC difference, paired stratified percentile bootstrap ({n_boot} resamples)"
    value = auroc(y, a) - auroc(y, b)
    if not math.isfinite(value):
        return _nan(len(y), method, confidence)
    idx = _strat_indices(y, np.random.default_rng(seed), n_boot)
    boot = np.array([auroc(y[i], a[i]) - auroc(y[i], b[i]) for i in idx])
    lo, hi = _percentile(boot, confidence)
    return Estimate(value, lo, hi, len(y), method, confidence)


def mean_auroc_diff(y: ArrayLike, a, b, groups: ArrayLike | None = None, n_boot: int = 2000, seed: int = 0,
                    confidence: float = 0.95) -> Estimate:
    """``mean_s AUROC(a_s) - mean_s AUROC(b_s)`` on the same items, paired percentile bootstrap.

    ``a`` and ``b`` are score vectors or lists of them (e.g. one per training seed; the AUROCs of a
    list are averaged). Without ``groups`` each resample draws positives and negatives with
    replacement (class counts kept, as :func:`auroc_diff`, which this equals for one vector a side).
    With ``groups`` (one cluster label per item, e.g. the question an answer belongs to) whole
    clusters are resampled, so items of one cluster are not counted as independent; resamples that
    lack a class are drawn again.
    """
    def runs(x) -> list[np.ndarray]:
        if isinstance(x, np.ndarray) and x.ndim == 1 or (len(x) and np.isscalar(x[0])):
            return [np.asarray(x, dtype=float)]
        return [np.asarray(r, dtype=float) for r in x]

    y = np.asarray(y).astype(int)
    ra, rb = runs(a), runs(b)
    if groups is None and len(ra) == 1 and len(rb) == 1:
        return auroc_diff(y, ra[0], rb[0], n_boot=n_boot, seed=seed, confidence=confidence)

    def stat(i: np.ndarray) -> float:
        return float(np.mean([auroc(y[i], s[i]) for s in ra]) - np.mean([auroc(y[i], s[i]) for s in rb]))

    unit = "clusters" if groups is not None else "stratified"
    method = (f"mean AUROC difference ({len(ra)} vs {len(rb)} score runs), paired {unit} percentile bootstrap "
              f"({n_boot} resamples)")
    value = stat(np.arange(len(y)))
    if not math.isfinite(value):
        return _nan(len(y), method, confidence)
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = list(_strat_indices(y, rng, n_boot))
        n = len(y)
    else:
        g = np.asarray(groups)
        members = [np.flatnonzero(g == u) for u in np.unique(g)]
        n = len(members)
        idx = []
        while len(idx) < n_boot:
            i = np.concatenate([members[k] for k in rng.integers(0, n, n)])
            if 0 < y[i].sum() < len(i):
                idx.append(i)
    boot = np.array([stat(i) for i in idx])
    lo, hi = _percentile(boot, confidence)
    return Estimate(value, lo, hi, int(n), method + (f" over {n} clusters" if groups is not None else ""),
                    confidence)


# ------------------------------------------------------------------ proportions, correlations, tests


def wilson(k: int, n: int, confidence: float = 0.95) -> Estimate:
    """A proportion ``k/n`` with the Wilson score interval."""
    from scipy.stats import norm

    method = "proportion, Wilson score interval"
    if n <= 0:
        return _nan(0, method, confidence)
    z = float(norm.ppf((1 + confidence) / 2))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), int(n), method, confidence)


def proportion_diff(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> Estimate:
    """``k1/n1 - k2/n2`` for two independent proportions, with Newcombe's hybrid score interval
    (method 10 of Newcombe 1998: the two Wilson intervals combined in quadrature)."""
    method = "difference of two independent proportions, Newcombe hybrid score interval"
    a, b = wilson(k1, n1, confidence), wilson(k2, n2, confidence)
    if n1 <= 0 or n2 <= 0:
        return _nan(min(n1, n2), method, confidence)
    d = a.value - b.value
    lo = d - math.sqrt((a.value - a.lo) ** 2 + (b.hi - b.value) ** 2)
    hi = d + math.sqrt((a.hi - a.value) ** 2 + (b.value - b.lo) ** 2)
    return Estimate(d, lo, hi, int(min(n1, n2)), method, confidence)


def spearman_ci(x: ArrayLike, y: ArrayLike, confidence: float = 0.95) -> Estimate:
    """Spearman's rho with a Fisher-z interval, ``SE = sqrt((1 + rho^2/2) / (n - 3))`` (Bonett & Wright 2000).

    Needs n >= 4; rho = ±1 exactly gives a zero-width interval at ±1.
    """
    from scipy.stats import norm, spearmanr

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    method = "Spearman rho, Fisher-z interval (Bonett-Wright SE)"
    if n < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return _nan(n, method, confidence)
    rho = float(spearmanr(a, b).statistic)
    if n < 4:
        return Estimate(rho, float("nan"), float("nan"), n, method, confidence)
    if abs(rho) >= 1.0:
        return Estimate(rho, rho, rho, n, method, confidence)
    z = math.atanh(rho)
    se = math.sqrt((1 + rho * rho / 2) / (n - 3))
    q = float(norm.ppf((1 + confidence) / 2))
    return Estimate(rho, math.tanh(z - q * se), math.tanh(z + q * se), n, method, confidence)


def permutation_test(a: ArrayLike, b: ArrayLike, paired: bool = False, n_perm: int = 10000, seed: int = 0,
                     alternative: str = "two-sided") -> tuple[float, float]:
    """Permutation test of ``mean(a) - mean(b)``: returns ``(observed difference, p-value)``.

    Unpaired: labels are shuffled between the pooled samples. Paired: the sign of each unit's
    difference is flipped at random. ``alternative`` is ``"two-sided"``, ``"greater"`` or ``"less"``;
    the p-value counts the observed arrangement (``(1 + #extreme) / (1 + n_perm)``), so it is never 0.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, not {alternative!r}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    if paired:
        d = x - y
        obs = float(d.mean())
        signs = rng.choice([-1.0, 1.0], size=(n_perm, d.size))
        null = (signs * d).mean(1)
    else:
        pooled = np.concatenate([x, y])
        obs = float(x.mean() - y.mean())
        null = np.empty(n_perm)
        for i in range(n_perm):
            p = rng.permutation(pooled)
            null[i] = p[: x.size].mean() - p[x.size:].mean()
    if alternative == "greater":
        extreme = (null >= obs - 1e-12).sum()
    elif alternative == "less":
        extreme = (null <= obs + 1e-12).sum()
    else:
        extreme = (np.abs(null) >= abs(obs) - 1e-12).sum()
    return obs, float((1 + extreme) / (1 + n_perm))
