"""A sub-volume Gaussian: a sequence distribution with exactly known bipartite mutual information.

For a Gaussian vector with covariance ``S`` split into ``X`` and ``Y``::

    I(X; Y) = 1/2 log( det S_X det S_Y / det S )                                    (exact MI)

We build a *stationary* Gaussian process ``x_1, x_2, ...`` whose bipartite MI follows a sub-volume
(power) law, so that it mimics natural language and exercises the estimators exactly as text does.
A stationary Gaussian process is fixed by its partial autocorrelations ``phi_k`` (any values in
``(-1, 1)``), which set its one-step prediction (innovation) variances
``sigma_k^2 = sigma_{k-1}^2 (1 - phi_k^2)``. We choose the innovations directly::

    sigma_j^2 = s (1 + a (j + 1)^(-gamma)),        j = 0, 1, 2, ...

Since ``log det S_L = sum_{j<L} log sigma_j^2``, the bipartite MI of two adjacent blocks of length
``L_x`` is ``1/2 sum_{j<L_x} (log sigma_j^2 - log sigma_{j+L_x}^2) ~ L_x^(1-gamma)``: a power law with
exponent ``beta -> 1 - gamma`` for large ``L_x`` (larger at small ``L_x``). The signs of ``phi_k`` are drawn
at random (seeded): they do not change any bipartite MI but make the autocorrelation, hence the
two-point MI ``-1/2 log(1 - rho(d)^2)``, decay with distance ``d`` — bipartite MI grows while two-point MI
vanishes, the paper's point that the two are distinct.

:class:`GaussianScorer` gives the exact autoregressive conditionals ``log p(x_j | x_<j)`` from the
Cholesky factor of ``S`` (the leading block of the factor of ``S`` is the factor of its leading block),
so the LM estimators of :mod:`paperlab.l2m.estimators` run on it unchanged; by stationarity,
scoring ``Y`` "from the start" is its exact marginal, as ``<start> + Y`` is for a language model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cholesky, solve_triangular, toeplitz


def autocovariance_from_pacf(pacf: np.ndarray, var0: float) -> np.ndarray:
    """Autocovariances ``c(0..N-1)`` of the stationary process with partial autocorrelations ``pacf[1:]``.

    Durbin–Levinson run backwards: ``c(k) = phi_kk sigma_{k-1}^2 + sum_i phi_{k-1,i} c(k-i)`` with
    ``phi_{k,i} = phi_{k-1,i} - phi_kk phi_{k-1,k-i}`` and ``sigma_k^2 = sigma_{k-1}^2 (1 - phi_kk^2)``.
    """
    n = len(pacf)
    c = np.zeros(n)
    c[0] = var0
    coef = np.zeros(0)
    sig2 = var0
    for k in range(1, n):
        c[k] = pacf[k] * sig2 + (coef @ c[k - 1:0:-1] if k > 1 else 0.0)
        coef = np.concatenate([coef - pacf[k] * coef[::-1], [pacf[k]]])
        sig2 *= 1.0 - pacf[k] ** 2
    return c


@dataclass
class SubVolumeGaussian:
    """Stationary Gaussian process of length ``n`` with innovations ``s (1 + a (j+1)^-gamma)``."""

    n: int
    gamma: float = 0.5
    a: float = 2.0
    s: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.gamma:
            raise ValueError("gamma must be > 0")
        if self.a <= 0 or self.s <= 0:
            raise ValueError("a and s must be > 0")
        j = np.arange(self.n, dtype=np.float64)
        # sigma_j^2 = s (1 + a (j+1)^-gamma), decreasing in j
        self.innovations = self.s * (1.0 + self.a * (j + 1.0) ** (-self.gamma))
        signs = np.random.default_rng(self.seed).choice([-1.0, 1.0], self.n)
        # phi_k^2 = 1 - sigma_k^2 / sigma_{k-1}^2
        pacf = np.zeros(self.n)
        pacf[1:] = np.sqrt(1.0 - self.innovations[1:] / self.innovations[:-1]) * signs[1:]
        self.pacf = pacf
        self.autocov = autocovariance_from_pacf(pacf, self.innovations[0])
        self.cov = toeplitz(self.autocov)
        self.chol = cholesky(self.cov, lower=True)

    @property
    def asymptotic_beta(self) -> float:
        """The large-``L`` exponent ``1 - gamma`` of the bipartite MI (for ``gamma < 1``)."""
        return 1.0 - self.gamma

    def logdet(self, length: int) -> float:
        """``log det S_L`` of the leading ``L x L`` block, computed by ``slogdet``."""
        sign, val = np.linalg.slogdet(self.cov[:length, :length])
        if sign <= 0:
            raise ValueError("covariance block is not positive definite")
        return float(val)

    def exact_bipartite_mi(self, split: int, ratio: int = 2) -> float:
        """``1/2 (log det S_X + log det S_Y - log det S_XY)`` for ``X`` = first ``Lx``, ``Y`` = next ``(r-1) Lx``."""
        if ratio * split > self.n:
            raise ValueError(f"r * Lx = {ratio * split} exceeds the process length {self.n}")
        return 0.5 * (self.logdet(split) + self.logdet((ratio - 1) * split) - self.logdet(ratio * split))

    def innovation_bipartite_mi(self, split: int, ratio: int = 2) -> float:
        """The same MI from the innovations: ``log det S_L = sum_{j<L} log sigma_j^2`` (closed form)."""
        cs = np.concatenate([[0.0], np.cumsum(np.log(self.innovations))])
        return 0.5 * (cs[split] + cs[(ratio - 1) * split] - cs[ratio * split])

    def two_point_mi(self, d: int | np.ndarray) -> np.ndarray:
        """``I(x_t; x_{t+d}) = -1/2 log(1 - rho(d)^2)``."""
        rho = self.autocov[np.asarray(d)] / self.autocov[0]
        return -0.5 * np.log1p(-rho ** 2)

    def sample(self, n_samples: int, seed: int = 0) -> np.ndarray:
        """``n_samples`` draws ``x = L z`` of the whole sequence, shape ``[n_samples, n]``."""
        z = np.random.default_rng(seed).standard_normal((self.n, n_samples))
        return (self.chol @ z).T


class GaussianScorer:
    """Exact autoregressive conditionals ``log p(x_j | x_<j)`` of a zero-mean Gaussian with covariance ``cov``.

    With ``S = L L^T`` and ``w = L^{-1} x``: ``log p(x_j | x_<j) = -w_j^2/2 - log L_jj - log(2 pi)/2``.
    """

    def __init__(self, cov: np.ndarray):
        self.chol = cholesky(np.asarray(cov, dtype=np.float64), lower=True)

    def token_logprobs(self, seqs: np.ndarray) -> np.ndarray:
        x = np.asarray(seqs, dtype=np.float64)
        T = x.shape[1]
        if T > self.chol.shape[0]:
            raise ValueError(f"sequence length {T} exceeds the covariance size {self.chol.shape[0]}")
        lower = self.chol[:T, :T]
        w = solve_triangular(lower, x.T, lower=True).T
        return -0.5 * w ** 2 - np.log(np.diag(lower))[None, :] - 0.5 * np.log(2 * np.pi)
