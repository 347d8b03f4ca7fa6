"""Power-law fits with confidence intervals for the exponent.

Bipartite MI (the paper's fit): ordinary least squares in log-log space::

    log I(L) = log A + beta log L            ->   I(L) = A L^beta

``beta``'s confidence interval comes from the regression's standard error and Student's ``t`` with
``k - 2`` degrees of freedom (``k`` points), and — because the points themselves are noisy means —
from a bootstrap over the samples (:func:`bootstrap_power_law`: resample the samples, recompute every
mean, refit), which propagates the per-point error bars.

A constant bias of every point (for the direct estimator: an error of the BOS correction's ``H_2``,
which shifts every ``I(L_x)`` by the same ``weight * (H_2 true - H_2 estimated)``) bends the log-log line
at small ``L``; :func:`fit_power_law_shifted` fits ``I = A L^beta + c`` with a free ``c`` of either sign
to absorb it, and the bipartite claim fits from a stated smallest ``L_x`` for the same reason.

Two-point MI decays towards the estimator's bias floor, so the paper fits ``I(d) = A d^beta + c`` with
``0 < c < min I`` (:func:`fit_power_law_offset`; least squares on ``I`` rather than on ``log(I - c)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats


@dataclass
class PowerLawFit:
    """``y = A x^beta`` fitted in log-log space over the ``x`` whose ``y > 0``."""

    A: float
    beta: float
    beta_se: float
    beta_ci: tuple[float, float]
    r2: float
    x: list[float]
    y: list[float]
    confidence: float = 0.95
    dropped: int = 0            # points left out because y <= 0 (no logarithm)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.A * np.asarray(x, dtype=np.float64) ** self.beta


def fit_power_law(x, y, confidence: float = 0.95) -> PowerLawFit:
    """Least-squares fit of ``log y = log A + beta log x``; ``beta_ci`` from the t distribution."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = (y > 0) & (x > 0)
    if keep.sum() < 3:
        raise ValueError(f"a power-law fit needs >= 3 positive points, got {int(keep.sum())}")
    res = stats.linregress(np.log(x[keep]), np.log(y[keep]))
    t = stats.t.ppf(0.5 + confidence / 2, keep.sum() - 2)
    return PowerLawFit(float(np.exp(res.intercept)), float(res.slope), float(res.stderr),
                       (float(res.slope - t * res.stderr), float(res.slope + t * res.stderr)),
                       float(res.rvalue ** 2), x[keep].tolist(), y[keep].tolist(), confidence,
                       int((~keep).sum()))


def bootstrap_power_law(x, samples: np.ndarray, n_boot: int = 1000, confidence: float = 0.95,
                        seed: int = 0) -> tuple[float, float, np.ndarray]:
    """Percentile CI of ``beta`` from resampling the rows of ``samples[n, k]`` (per-sample values at each ``x``).

    Only the columns whose full-sample mean is positive enter the fits (as in :func:`fit_power_law`);
    a bootstrap replicate whose mean at a kept ``x`` falls to ``<= 0`` is fitted without that point.
    Returns ``(low, high, betas)``.
    """
    x = np.asarray(x, dtype=np.float64)
    samples = np.asarray(samples, dtype=np.float64)
    cols = samples.mean(0) > 0
    rng = np.random.default_rng(seed)
    n = samples.shape[0]
    betas = []
    for _ in range(n_boot):
        m = samples[rng.integers(0, n, n)].mean(0)
        ok = cols & (m > 0)
        if ok.sum() >= 3:
            betas.append(np.polyfit(np.log(x[ok]), np.log(m[ok]), 1)[0])
    betas = np.asarray(betas)
    if betas.size == 0:
        return float("nan"), float("nan"), betas
    lo, hi = np.quantile(betas, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return float(lo), float(hi), betas


@dataclass
class OffsetPowerLawFit:
    """``y = A x^beta + c`` with ``0 < c < min y``."""

    A: float
    beta: float
    c: float
    beta_ci: tuple[float, float]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.A * np.asarray(x, dtype=np.float64) ** self.beta + self.c


def _offset_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares of ``y - (A x^beta + c)`` with ``A >= 0``, ``beta <= 0``, ``0 <= c <= min y``."""
    ymin = float(y.min())
    p0 = (max(float(y[0] - ymin), 1e-6), -0.5, 0.5 * ymin)
    popt, _ = optimize.curve_fit(lambda t, a, b, c: a * t ** b + c, x, y, p0=p0,
                                 bounds=([0.0, -10.0, 0.0], [np.inf, 0.0, ymin + 1e-12]), maxfev=20000)
    return float(popt[0]), float(popt[1]), float(popt[2])


def fit_power_law_offset(x, y, err=None, n_boot: int = 200, confidence: float = 0.95,
                         seed: int = 0) -> OffsetPowerLawFit:
    """Fit ``y = A d^beta + c`` (``0 <= c <= min y``) by least squares on ``y`` itself.

    The official code minimises the squared error of ``log(y - c)``; on a small corpus the Grassberger
    two-point MI reaches its bias floor after a few tokens, where ``log(y - c)`` is dominated by noise and
    that objective picks ``c = 0`` and a curve that misses the data, so we fit ``y`` directly.
    ``beta_ci`` is a parametric bootstrap: refit on ``y + err * N(0, 1)`` (``err`` the per-point standard
    errors; without them the CI is ``(beta, beta)``).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if (y <= 0).any():
        raise ValueError("the offset power law needs y > 0 everywhere")
    A, beta, c = _offset_fit(x, y)
    ci = (beta, beta)
    if err is not None:
        rng = np.random.default_rng(seed)
        betas = []
        for _ in range(n_boot):
            yb = y + np.asarray(err) * rng.standard_normal(y.shape)
            if (yb > 0).all():
                betas.append(_offset_fit(x, yb)[1])
        if betas:
            lo, hi = np.quantile(betas, [0.5 - confidence / 2, 0.5 + confidence / 2])
            ci = (float(lo), float(hi))
    return OffsetPowerLawFit(A, beta, c, ci)


@dataclass
class ShiftedPowerLawFit:
    """``y = A x^beta + c`` with ``A > 0``, ``0 < beta < 3`` and a free shift ``c`` (any sign)."""

    A: float
    beta: float
    c: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.A * np.asarray(x, dtype=np.float64) ** self.beta + self.c


def fit_power_law_shifted(x, y) -> ShiftedPowerLawFit:
    """Least squares of the relative residuals ``(y - A x^beta - c) / y`` (so the small-``x`` points count as
    much as the large ones, as in the log-log fit); needs ``>= 4`` points."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 4 or (y <= 0).any():
        raise ValueError("a shifted power-law fit needs >= 4 points, all positive")
    b0 = fit_power_law(x, y).beta
    b0 = float(np.clip(b0, 0.05, 2.5))
    a0 = float(y[-1] / x[-1] ** b0)
    popt, _ = optimize.curve_fit(lambda t, a, b, c: a * t ** b + c, x, y, p0=(a0, b0, 0.0), sigma=y,
                                 bounds=([1e-12, 1e-3, -np.inf], [np.inf, 3.0, float(y.min())]), maxfev=20000)
    return ShiftedPowerLawFit(float(popt[0]), float(popt[1]), float(popt[2]))


def bootstrap_shifted_power_law(x, samples: np.ndarray, n_boot: int = 500, confidence: float = 0.95,
                                seed: int = 0) -> tuple[float, float, np.ndarray]:
    """Percentile CI of the shifted fit's ``beta`` from resampling the rows of ``samples[n, k]``."""
    x = np.asarray(x, dtype=np.float64)
    samples = np.asarray(samples, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = samples.shape[0]
    betas = []
    for _ in range(n_boot):
        m = samples[rng.integers(0, n, n)].mean(0)
        try:
            betas.append(fit_power_law_shifted(x, m).beta)
        except (ValueError, RuntimeError):
            continue
    betas = np.asarray(betas)
    if betas.size == 0:
        return float("nan"), float("nan"), betas
    lo, hi = np.quantile(betas, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return float(lo), float(hi), betas
