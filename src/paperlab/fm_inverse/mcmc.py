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
- :func:`emcee_reference` is a well-kept sampler run until converged (ensemble MCMC with
  differential-evolution moves, vectorised likelihood over walkers), stopped by an
  autocorrelation rule: the post-burn-in half is longer than :math:`50\\,\\hat\\tau` and
  :math:`\\hat\\tau` has stabilised; the rule, :math:`\\hat\\tau` and the steps are reported.

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


def seir_log_likelihood(samples: np.ndarray, tokens: np.ndarray, sigma_I: float, sigma_R: float,
                        chunk: int = 512) -> np.ndarray:
    """:math:`\\log p(d_k \\mid m_{k,s})` up to a constant for ``samples`` ``(K, S, 6)`` and
    observation sets ``tokens`` ``(K, n, 3)`` (one stacked solve per ``chunk`` rows); ``-inf`` for a
    diverged trajectory. The likelihood of :class:`SEIRPosterior`, vectorised over many data sets."""
    samples, tokens = np.asarray(samples, dtype=np.float64), np.asarray(tokens, dtype=np.float64)
    K, S, P = samples.shape
    times = np.repeat(tokens[:, :, 2], S, axis=0)                      # (K S, n)
    y, valid = seir_solve(samples.reshape(K * S, P), times, chunk=chunk)
    I_obs, R_obs = np.repeat(tokens[:, :, 0], S, axis=0), np.repeat(tokens[:, :, 1], S, axis=0)
    ll = -0.5 * (((I_obs - y[:, 2]) / sigma_I) ** 2 + ((R_obs - y[:, 3]) / sigma_R) ** 2).sum(1)
    return np.where(valid, ll, -np.inf).reshape(K, S)


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
                    rng: np.random.Generator, walkers: int = 32, max_steps: int = 20_000, check_every: int = 250,
                    tau_factor: float = 50.0, tau_rtol: float = 0.05, min_steps: int = 500, init_pool: int = 20,
                    progress: bool = False) -> dict:
    """An ensemble-MCMC reference (emcee, DE + snooker moves) run until it has converged.

    Walkers start at the ``walkers`` best of ``init_pool * walkers`` prior draws. **Stop rule** (the
    one of emcee's documentation, on the second half of the chain): every ``check_every`` steps the
    integrated autocorrelation time :math:`\\hat\\tau` of every parameter is estimated on the second
    half of the chain so far (the first half is burn-in); the run stops when that half is longer than
    ``tau_factor`` :math:`\\max\\hat\\tau` *and* :math:`\\max\\hat\\tau` moved by less than ``tau_rtol``
    (relative) since the last check -- or at ``max_steps``, reported as not converged.

    Returns the second half thinned by :math:`\\lceil\\max\\hat\\tau\\rceil` (nearly independent draws),
    :math:`\\hat\\tau` per parameter, the steps run, ``converged``, the trace of the rule, the
    likelihood evaluations and the seconds.
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
    state, old_tau, converged, trace = init, np.inf, False, []
    while sampler.iteration < max_steps:
        state = sampler.run_mcmc(state, min(check_every, max_steps - sampler.iteration), progress=progress)
        it = sampler.iteration
        tau = emcee.autocorr.integrated_time(sampler.get_chain(discard=it // 2), tol=0)
        tau_max = float(np.max(tau))
        trace.append({"steps": it, "tau_max": tau_max})
        if (it >= min_steps and (it - it // 2) > tau_factor * tau_max
                and abs(old_tau - tau_max) / tau_max < tau_rtol):
            converged = True
            break
        old_tau = tau_max
    it = sampler.iteration
    chain = sampler.get_chain(discard=it // 2)                       # (steps - burn, walkers, ndim)
    tau = emcee.autocorr.integrated_time(chain, tol=0)
    thin = max(1, int(np.ceil(np.max(tau))))
    return {"samples": chain[::thin].reshape(-1, ndim), "tau": tau, "tau_max": float(np.max(tau)),
            "steps": int(it), "thin": thin, "converged": converged, "trace": trace,
            "rule": f"second half > {tau_factor:g} tau_max and tau_max stable within {tau_rtol:g} (checked every "
                    f"{check_every} steps, at most {max_steps})",
            "acceptance": float(np.mean(sampler.acceptance_fraction)),
            "evaluations": int(init_pool * walkers + it * walkers), "seconds": time.perf_counter() - t0}
