"""MCMC baselines: the paper's random-walk Metropolis-Hastings and a converged emcee reference.

The unnormalised posterior is :math:`\\log p(m \\mid d) = \\log p(m) + \\log p(d \\mid m) + c` with
the Gaussian likelihood of the observation model,

.. math::

    \\log p(d \\mid m) = -\\tfrac12 \\sum_j \\Big(\\frac{I_j - I(t_j; m)}{\\sigma_I}\\Big)^2
                        + \\Big(\\frac{R_j - R(t_j; m)}{\\sigma_R}\\Big)^2 + c,

zero likelihood (:math:`-\\infty`) for a diverged trajectory, and the prior :math:`U[0, 1]^6`
(SEIR) or :math:`N(0, I_{16})` (Darcy). For noise-free observations we use the paper's MCMC
likelihood width :math:`\\sigma = 0.09` (SEIR) / :math:`0.01` (Darcy).

- :func:`metropolis_hastings` is the paper's baseline: one chain, Gaussian random-walk proposal
  (:math:`\\sigma_q = 0.02` SEIR, :math:`0.01` Darcy), one forward solve per step.
- :func:`emcee_reference` is a well-kept sampler run long (affine-invariant ensemble with
  differential-evolution moves, vectorised likelihood over walkers); its integrated
  autocorrelation time :math:`\\hat\\tau` is reported, and a run counts as converged when it is
  longer than :math:`50\\,\\hat\\tau`.

The official Darcy MCMC re-draws the observation locations inside every likelihood call; here the
locations are fixed by the data, as they must be.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from paperlab.fm_inverse.simulators import KLExpansion, darcy_solve, seir_solve

#: The paper's MCMC likelihood widths, used when the observations are noise-free.
PAPER_SIGMA_SEIR = 0.09
PAPER_SIGMA_DARCY = 0.01


class SEIRPosterior:
    """Unnormalised log posterior of SEIR parameters given tokens ``(n, 3)`` = (I, R, t)."""

    def __init__(self, tokens: np.ndarray, sigma_I: float, sigma_R: float, rtol: float = 1e-6,
                 atol: float = 1e-6):
        tokens = np.asarray(tokens, dtype=np.float64)
        order = np.argsort(tokens[:, 2])
        self.times = tokens[order, 2]
        self.I, self.R = tokens[order, 0], tokens[order, 1]
        self.sigma_I = sigma_I if sigma_I > 0 else PAPER_SIGMA_SEIR
        self.sigma_R = sigma_R if sigma_R > 0 else PAPER_SIGMA_SEIR
        self.rtol, self.atol = rtol, atol
        self.evaluations = 0

    def log_prob(self, m: np.ndarray) -> np.ndarray:
        """Vectorised over rows of ``m`` ``(B, 6)``: one stacked solve for all in-prior rows."""
        m = np.atleast_2d(m)
        out = np.full(m.shape[0], -np.inf)
        inside = np.all((m >= 0) & (m <= 1), axis=1)
        if inside.any():
            y, valid = seir_solve(m[inside], self.times, rtol=self.rtol, atol=self.atol, chunk=max(1, int(inside.sum())))
            self.evaluations += int(inside.sum())
            ll = -0.5 * (((self.I - y[:, 2]) / self.sigma_I) ** 2 + ((self.R - y[:, 3]) / self.sigma_R) ** 2).sum(1)
            out[inside] = np.where(valid, ll, -np.inf)
        return out

    def __call__(self, m: np.ndarray) -> float:
        return float(self.log_prob(np.asarray(m)[None])[0])


class DarcyPosterior:
    """Unnormalised log posterior of the 16 KL coefficients given design ``e`` and tokens (u, row, col)."""

    def __init__(self, tokens: np.ndarray, e: np.ndarray, sigma: float, kl: KLExpansion):
        tokens = np.asarray(tokens, dtype=np.float64)
        g = kl.grid - 1
        self.rows = np.rint(tokens[:, 1] * g).astype(int)
        self.cols = np.rint(tokens[:, 2] * g).astype(int)
        self.u = tokens[:, 0]
        self.e = np.asarray(e, dtype=np.float64)
        self.sigma = sigma if sigma > 0 else PAPER_SIGMA_DARCY
        self.kl = kl
        self.evaluations = 0

    def __call__(self, m: np.ndarray) -> float:
        u = darcy_solve(np.exp(self.kl.log_kappa(m)), self.e[0], self.e[1])
        self.evaluations += 1
        if not np.all(np.isfinite(u)):
            return -np.inf
        log_prior = -0.5 * float(np.sum(m ** 2))
        return log_prior - 0.5 * float(np.sum(((self.u - u[self.rows, self.cols]) / self.sigma) ** 2))

    def log_prob(self, m: np.ndarray) -> np.ndarray:
        return np.array([self(x) for x in np.atleast_2d(m)])


def metropolis_hastings(log_post: Callable[[np.ndarray], float], m0: np.ndarray, n_steps: int,
                        proposal_std: float, rng: np.random.Generator, progress: bool = False) -> dict:
    """Random-walk Metropolis-Hastings (the paper's baseline).

    Propose :math:`m' = m + \\sigma_q \\varepsilon`, accept with probability
    :math:`\\min(1, p(m' \\mid d) / p(m \\mid d))`. Returns the whole chain (the paper averages it
    without burn-in), the acceptance rate and the wall-clock seconds.
    """
    t0 = time.perf_counter()
    m = np.array(m0, dtype=np.float64)
    lp = log_post(m)
    chain = np.empty((n_steps, m.size))
    accepted = 0
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("MH chain", total=n_steps)
    for i in range(n_steps):
        prop = m + proposal_std * rng.standard_normal(m.size)
        lp_prop = log_post(prop)
        if np.log(rng.uniform()) < lp_prop - lp:
            m, lp = prop, lp_prop
            accepted += 1
        chain[i] = m
        if bar is not None and (i + 1) % 200 == 0:
            bar.update(task, completed=i + 1)
    if bar is not None:
        bar.stop()
    return {"samples": chain, "acceptance": accepted / n_steps, "seconds": time.perf_counter() - t0,
            "evaluations": n_steps + 1}


def emcee_reference(log_prob: Callable[[np.ndarray], np.ndarray], prior_sample: Callable[[int], np.ndarray],
                    rng: np.random.Generator, walkers: int = 32, steps: int = 4000, burn: int | None = None,
                    init_pool: int = 20, progress: bool = False) -> dict:
    """A long ensemble-MCMC run (emcee, DE + snooker moves) with a vectorised ``log_prob``.

    Walkers start at the ``walkers`` best of ``init_pool * walkers`` prior draws; the first
    ``burn`` steps (default: half) are discarded. Returns the flat samples, the autocorrelation
    time estimate, whether ``steps > 50 tau``, the likelihood evaluations and the seconds.
    """
    import emcee

    t0 = time.perf_counter()
    pool = prior_sample(init_pool * walkers)
    lp = log_prob(pool)
    ok = np.isfinite(lp)
    pool, lp = pool[ok], lp[ok]
    init = pool[np.argsort(lp)[::-1][:walkers]]
    ndim = init.shape[1]
    sampler = emcee.EnsembleSampler(walkers, ndim, log_prob, vectorize=True,
                                    moves=[(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)])
    sampler._random = np.random.mtrand.RandomState(int(rng.integers(2**31)))
    sampler.run_mcmc(init, steps, progress=progress)
    burn = steps // 2 if burn is None else burn
    chain = sampler.get_chain(discard=burn)                       # (steps - burn, walkers, ndim)
    tau = emcee.autocorr.integrated_time(chain, tol=0)
    return {"samples": chain.reshape(-1, ndim), "tau": tau, "tau_max": float(np.max(tau)),
            "converged": bool(chain.shape[0] > 50 * np.max(tau)),
            "acceptance": float(np.mean(sampler.acceptance_fraction)),
            "evaluations": int(init_pool * walkers + steps * walkers), "seconds": time.perf_counter() - t0}
