"""The two forward problems of the paper: the time-varying SEIR model and the Darcy permeability problem.

Both map parameters :math:`m` and an experiment design :math:`e` to observations :math:`d`.
A draw of the training set is ``m ~ p(m)``, ``e ~ p(e)``, ``d = F(m, e) + noise``; the
flow is then trained on the pairs ``(m, d)``.

**SEIR (Section 4.2).** With the population in four compartments,

.. math::

    S' = -\\beta(t) S I,\\quad E' = \\beta(t) S I - \\alpha E,\\quad
    I' = \\alpha E - \\gamma(t) I,\\quad R' = \\gamma(t) I,

    \\beta(t) = \\beta_1 + \\tfrac12 \\tanh(7 (t - \\tau)) (\\beta_2 - \\beta_1),\\qquad
    \\gamma(t) = \\gamma_r + \\gamma_{d1} + \\tfrac12 \\tanh(7 (t - \\tau)) (\\gamma_{d2} - \\gamma_{d1}),

:math:`\\tau = 2.1`, :math:`(S, E, I, R)(0) = (99, 1, 0, 0)`, :math:`t \\in [0, 4]`, RK45, and
:math:`m = (\\beta_1, \\alpha, \\gamma_r, \\gamma_{d1}, \\beta_2, \\gamma_{d2}) \\sim U[0, 1]^6`.
The observations are :math:`(I, R)` at :math:`n` times drawn by stratified sampling on
:math:`[1, 3]` (one uniform draw in each of :math:`n` equal bins).

:math:`S + E + I + R = 100` is conserved for any rates. Parts of the prior make :math:`\\beta(t)`
negative (it runs from :math:`(3\\beta_1 - \\beta_2)/2` to :math:`(\\beta_1 + \\beta_2)/2`) and
some of those trajectories diverge in finite time. We integrate over the full :math:`[0, 4]` and
declare a trajectory *diverged* when a compartment leaves :math:`[-10^3, 10^3]` (ten times the
population); diverged draws are dropped from training data (the count is reported) and have zero
likelihood in MCMC.

**Darcy (Section 4.3).** :math:`-\\nabla\\cdot(\\kappa \\nabla u) = 0` on the unit square, a
64 x 64 finite-difference grid, :math:`u(0, y) = \\exp(-\\tfrac12 (y - e_1)^2)`,
:math:`u(1, y) = -\\exp(-\\tfrac12 (y - e_2)^2)`, zero flux at :math:`y = 0, 1`;
:math:`\\log\\kappa = \\sum_{k=1}^{16} m_k \\sqrt{\\lambda_k} \\phi_k` (Karhunen-Loeve expansion of
the kernel :math:`\\exp(-\\|x - x'\\|^2 / 0.2)`), :math:`m \\sim N(0, I_{16})`, :math:`e \\sim U[0, 1]^2`.
Observations are :math:`u` at :math:`n` jittered points in distinct cells of a 3 x 3 grid.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------------------------
# SEIR
# ---------------------------------------------------------------------------------------------

#: The documented parameter order (the order of every sample array this package writes).
SEIR_PARAMS = ("beta1", "alpha", "gamma_r", "gamma_d1", "beta2", "gamma_d2")
SEIR_TAU = 2.1
SEIR_Y0 = (99.0, 1.0, 0.0, 0.0)
SEIR_T_END = 4.0
#: A compartment beyond this magnitude (10 x the population) marks a diverged trajectory.
SEIR_GUARD = 1e3
#: The paper's evaluation grid: the full trajectory on 50 points over [0, 4].
SEIR_TRAJ_T = np.linspace(0.0, SEIR_T_END, 50)


def seir_rates(m: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """:math:`\\beta(t)` and :math:`\\gamma(t)` for parameters ``m`` of shape ``(B, 6)``."""
    s = 0.5 * np.tanh(7.0 * (t - SEIR_TAU))
    beta = m[:, 0] + s * (m[:, 4] - m[:, 0])
    gamma = m[:, 2] + m[:, 3] + s * (m[:, 5] - m[:, 3])
    return beta, gamma


def _seir_rhs(t: float, y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The stacked right-hand side of ``B`` independent SEIR systems (``y`` is ``4 B`` long)."""
    S, E, I, R = y.reshape(4, -1)  # noqa: E741 (the paper's compartment names)
    beta, gamma = seir_rates(m, t)
    infection = beta * S * I          # beta(t) S I
    incubation = m[:, 1] * E          # alpha E
    removal = gamma * I               # gamma(t) I
    d = np.stack([-infection, infection - incubation, incubation - removal, removal])
    # A diverged member is frozen (zero derivative) so it cannot stall the shared step size.
    d *= np.all(np.abs(y.reshape(4, -1)) < SEIR_GUARD, axis=0)
    return d.ravel()


def seir_solve(m: np.ndarray, t_eval: np.ndarray, rtol: float = 1e-6, atol: float = 1e-6,
               chunk: int = 256, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Solve the SEIR model for many parameter vectors at once.

    ``m``: ``(B, 6)`` (or ``(6,)``). ``t_eval``: shared times ``(T,)`` or per-member times
    ``(B, T)``, all in ``[0, 4]``. Returns ``y`` of shape ``(B, 4, T)`` (compartments S, E, I, R)
    and ``valid`` ``(B,)`` (False where the trajectory diverged; its ``y`` is then NaN).

    Vectorised: ``chunk`` members are stacked into one ``4 * chunk``-dimensional system and
    integrated by one ``scipy.integrate.solve_ivp(method="RK45")`` call; a single parameter
    vector (``chunk`` = 1) is the paper's per-sample solve.
    """
    from scipy.integrate import solve_ivp

    m = np.atleast_2d(np.asarray(m, dtype=np.float64))
    B = m.shape[0]
    t_eval = np.asarray(t_eval, dtype=np.float64)
    per_member = t_eval.ndim == 2
    T = t_eval.shape[-1]
    y_out = np.full((B, 4, T), np.nan)
    valid = np.zeros(B, dtype=bool)
    bar = _progress(progress, "SEIR solves", B)
    for s in range(0, B, chunk):
        mb = m[s:s + chunk]
        b = mb.shape[0]
        want = t_eval[s:s + chunk] if per_member else np.broadcast_to(t_eval, (b, T))
        # Always integrate to t = 4: a member that diverges after its last observation is diverged.
        times = np.union1d(want, [SEIR_T_END])
        y0 = np.repeat(np.asarray(SEIR_Y0), b)
        sol = solve_ivp(_seir_rhs, (0.0, SEIR_T_END), y0, method="RK45", t_eval=times,
                        args=(mb,), rtol=rtol, atol=atol)
        if sol.status != 0:  # pragma: no cover - the guard keeps every stacked solve finite
            raise RuntimeError(f"SEIR solve failed: {sol.message}")
        ys = sol.y.reshape(4, b, -1).transpose(1, 0, 2)              # (b, 4, len(times))
        ok = np.all(np.isfinite(ys), axis=(1, 2)) & np.all(np.abs(ys) < SEIR_GUARD, axis=(1, 2))
        idx = np.searchsorted(times, want)                            # (b, T)
        ys = np.take_along_axis(ys, np.repeat(idx[:, None, :], 4, axis=1), axis=2)
        ys[~ok] = np.nan
        y_out[s:s + b] = ys
        valid[s:s + b] = ok
        if bar is not None:
            bar[0].update(bar[1], advance=b)
    if bar is not None:
        bar[0].stop()
    return y_out, valid


def stratified_times(rng: np.random.Generator, batch: int, n: int, low: float = 1.0,
                     high: float = 3.0) -> np.ndarray:
    """``(batch, n)`` observation times: one uniform draw in each of ``n`` equal bins of ``[low, high]``."""
    edges = np.linspace(low, high, n + 1)
    return edges[:-1] + (edges[1:] - edges[:-1]) * rng.uniform(size=(batch, n))


@dataclass(frozen=True)
class SEIRObservationModel:
    """:math:`d_j = (I(t_j) + \\varepsilon_I, R(t_j) + \\varepsilon_R, t_j)` with independent Gaussian noise.

    The default is the noisy model (``sigma_I = 2``, ``sigma_R = 1``); ``noise_free()`` gives the
    official training set's noise-free observations. MCMC uses the matching Gaussian likelihood.
    """

    sigma_I: float = 2.0
    sigma_R: float = 1.0
    t_low: float = 1.0
    t_high: float = 3.0

    @classmethod
    def noise_free(cls) -> SEIRObservationModel:
        return cls(sigma_I=0.0, sigma_R=0.0)

    @property
    def noisy(self) -> bool:
        return self.sigma_I > 0 or self.sigma_R > 0

    def observe(self, y: np.ndarray, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Tokens ``(B, n, 3)`` = (I_obs, R_obs, t) from trajectories ``y`` ``(B, 4, n)`` at ``times``."""
        I_obs = y[:, 2] + self.sigma_I * rng.standard_normal(y[:, 2].shape)
        R_obs = y[:, 3] + self.sigma_R * rng.standard_normal(y[:, 3].shape)
        return np.stack([I_obs, R_obs, np.broadcast_to(times, I_obs.shape)], axis=-1)


def seir_simulate(m: np.ndarray, times: np.ndarray, obs: SEIRObservationModel, rng: np.random.Generator,
                  **solve_kw) -> tuple[np.ndarray, np.ndarray]:
    """Observation tokens ``(B, n, 3)`` for parameters ``(B, 6)`` at times ``(B, n)``, and validity."""
    y, valid = seir_solve(m, times, **solve_kw)
    return obs.observe(y, times, rng), valid


def seir_prior_sample(rng: np.random.Generator, size: int) -> np.ndarray:
    """``m ~ U[0, 1]^6``."""
    return rng.uniform(size=(size, 6))


# ---------------------------------------------------------------------------------------------
# Datasets (cached to disk)
# ---------------------------------------------------------------------------------------------

def dataset_cache_dir() -> Path:
    """``<paperlab cache dir>/fm_inverse`` (next to the request cache, ``$PAPERLAB_CACHE``)."""
    from paperlab.core.cache import default_cache_path

    p = Path(default_cache_path()).parent / "fm_inverse"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _cache_file(kind: str, spec: dict) -> Path:
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return dataset_cache_dir() / f"{kind}-{key}.npz"


def seir_dataset(n_values: list[int], per_n: int, seed: int, obs: SEIRObservationModel,
                 progress: bool = True, cache: bool = True) -> dict:
    """Training/validation pairs for each observation count ``n``.

    Returns ``{"m": {n: (per_n, 6)}, "d": {n: (per_n, n, 3)}, "dropped": int, "drawn": int}``:
    ``dropped`` diverged draws were replaced by fresh prior draws. Cached on disk by spec.
    """
    spec = {"v": 1, "n": list(n_values), "per_n": per_n, "seed": seed, "obs": asdict(obs)}
    path = _cache_file("seir", spec)
    if cache and path.exists():
        z = np.load(path)
        return {"m": {n: z[f"m{n}"] for n in n_values}, "d": {n: z[f"d{n}"] for n in n_values},
                "dropped": int(z["dropped"]), "drawn": int(z["drawn"]), "cached": True}
    rng = np.random.default_rng(seed)
    out_m, out_d, dropped, drawn = {}, {}, 0, 0
    bar = _progress(progress, "SEIR training set", per_n * len(n_values))
    for n in n_values:
        ms, ds, have = [], [], 0
        while have < per_n:
            k = int((per_n - have) * 1.08) + 8  # ~5 % of the prior diverges
            m = seir_prior_sample(rng, k)
            times = stratified_times(rng, k, n, obs.t_low, obs.t_high)
            d, valid = seir_simulate(m, times, obs, rng)
            drawn += k
            dropped += int((~valid).sum())
            ms.append(m[valid])
            ds.append(d[valid])
            have += int(valid.sum())
            if bar is not None:
                bar[0].update(bar[1], advance=min(int(valid.sum()), per_n))
        out_m[n] = np.concatenate(ms)[:per_n]
        out_d[n] = np.concatenate(ds)[:per_n]
    if bar is not None:
        bar[0].stop()
    if cache:
        np.savez(path, dropped=dropped, drawn=drawn, **{f"m{n}": out_m[n] for n in n_values},
                 **{f"d{n}": out_d[n] for n in n_values})
    return {"m": out_m, "d": out_d, "dropped": dropped, "drawn": drawn, "cached": False}


# ---------------------------------------------------------------------------------------------
# Darcy
# ---------------------------------------------------------------------------------------------

DARCY_GRID = 64
DARCY_TERMS = 16


class KLExpansion:
    """:math:`\\log\\kappa(x) = \\sum_k m_k \\sqrt{\\lambda_k}\\, \\phi_k(x)`: the truncated Karhunen-Loeve
    expansion of a zero-mean Gaussian field with kernel :math:`\\sigma^2 \\exp(-\\|x - x'\\|^2 / (2 \\ell))`
    (:math:`\\sigma = 1`, :math:`2\\ell = 0.2`) from the eigenpairs :math:`(\\lambda_k, \\phi_k)` of the
    kernel matrix on the 64 x 64 grid nodes (unit-norm eigenvectors, as in the official code).

    The squared-exponential kernel factorises over the axes, so the 4096 x 4096 kernel matrix is
    :math:`K = K_1 \\otimes K_1` (:math:`K_1` the 64 x 64 one-dimensional kernel matrix); its
    eigenpairs are :math:`(\\lambda_i \\lambda_j, v_i \\otimes v_j)`, and we take the 16 largest
    instead of diagonalising :math:`K` (same eigenvalues; within a degenerate pair
    :math:`\\lambda_i\\lambda_j = \\lambda_j\\lambda_i` any orthonormal basis gives the same field prior).
    """

    def __init__(self, grid: int = DARCY_GRID, terms: int = DARCY_TERMS, sigma: float = 1.0,
                 two_ell: float = 0.2):
        self.grid, self.terms = grid, terms
        x = np.linspace(0.0, 1.0, grid)
        K1 = np.exp(-((x[:, None] - x[None, :]) ** 2) / two_ell)
        lam, vec = np.linalg.eigh(K1)
        lam, vec = lam[::-1], vec[:, ::-1]
        # Fix each 1-D eigenvector's sign (largest-magnitude entry positive) for a reproducible basis.
        vec = vec * np.sign(vec[np.abs(vec).argmax(0), np.arange(grid)])
        prod = sigma ** 2 * np.outer(lam, lam)                        # eigenvalue of v_i (x) v_j
        flat = np.argsort(-prod, axis=None, kind="stable")[:terms]
        ii, jj = np.unravel_index(flat, prod.shape)
        self.eigenvalues = prod[ii, jj]
        # Row-major grid: node (row = y index, col = x index) -> phi[row * grid + col] = v_i[row] v_j[col].
        self.eigenvectors = np.stack([np.outer(vec[:, i], vec[:, j]).ravel() for i, j in zip(ii, jj, strict=True)], 1)

    def log_kappa(self, m: np.ndarray) -> np.ndarray:
        """``(..., 16)`` coefficients -> ``(..., grid, grid)`` log-permeability."""
        m = np.asarray(m, dtype=np.float64)
        field = (m * np.sqrt(self.eigenvalues)) @ self.eigenvectors.T
        return field.reshape(*m.shape[:-1], self.grid, self.grid)


@functools.lru_cache(maxsize=4)
def _darcy_pattern(Ny: int, Nx: int):
    """The fixed sparsity of the finite-difference matrix: COO (rows, cols) and their CSR order."""
    import scipy.sparse as sp

    idx = np.arange(Ny * Nx).reshape(Ny, Nx)
    rows, cols = [], []
    for col in (0, Nx - 1):                                   # Dirichlet rows: u_k = g_k
        rows.append(idx[:, col]), cols.append(idx[:, col])
    for row, nb in ((0, 1), (Ny - 1, Ny - 2)):                # zero-flux rows: u_k - u_nb = 0
        rows += [idx[row, 1:-1]] * 2
        cols += [idx[row, 1:-1], idx[nb, 1:-1]]
    inner = idx[1:-1, 1:-1].ravel()
    for dj, di in _FACES:                                     # interior: -a_f / h^2 to each neighbour
        rows.append(inner), cols.append(idx[1 + dj:Ny - 1 + dj, 1 + di:Nx - 1 + di].ravel())
    rows.append(inner), cols.append(inner)                    # interior diagonal
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    order = sp.csr_matrix((np.arange(1, rows.size + 1, dtype=np.float64), (rows, cols)), shape=(Ny * Nx,) * 2)
    return order.indices.copy(), order.indptr.copy(), order.data.astype(np.int64) - 1


_FACES = ((0, -1), (0, 1), (-1, 0), (1, 0))


def darcy_solve(kappa: np.ndarray, e1: float, e2: float) -> np.ndarray:
    """Finite-difference solution ``u`` ``(Ny, Nx)`` of :math:`-\\nabla\\cdot(\\kappa\\nabla u) = 0`.

    Rows of the grid are :math:`y`, columns :math:`x`, spacing :math:`h = 1 / (N - 1)`. Dirichlet
    columns :math:`u(0, y) = \\exp(-\\tfrac12 (y - e_1)^2)`, :math:`u(1, y) = -\\exp(-\\tfrac12 (y - e_2)^2)`;
    one-sided zero flux :math:`u_{0,i} = u_{1,i}` and :math:`u_{N-1,i} = u_{N-2,i}`; interior nodes

    .. math::

        \\sum_{f \\in \\{W, E, S, N\\}} a_f\\, (u_k - u_f) / h^2 = 0, \\qquad a_f = \\tfrac12 (\\kappa_k + \\kappa_f).
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    Ny, Nx = kappa.shape
    h2 = (1.0 / (Nx - 1)) ** 2
    indices, indptr, perm = _darcy_pattern(Ny, Nx)
    y = np.linspace(0.0, 1.0, Ny)
    kc = kappa[1:-1, 1:-1]
    faces = [0.5 * (kc + kappa[1 + dj:Ny - 1 + dj, 1 + di:Nx - 1 + di]) / h2 for dj, di in _FACES]
    # Entries in the order of _darcy_pattern: Dirichlet, zero flux (+1 node, -1 neighbour) at
    # y = 0 and y = 1, the four interior off-diagonals, the interior diagonal sum_f a_f / h^2.
    neu = np.concatenate([np.ones(Nx - 2), -np.ones(Nx - 2)])
    vals = np.concatenate([np.ones(2 * Ny), neu, neu] + [-a.ravel() for a in faces] + [sum(faces).ravel()])
    A = sp.csr_matrix((vals[perm], indices, indptr), shape=(Ny * Nx,) * 2)
    b = np.zeros(Ny * Nx)
    b[np.arange(Ny) * Nx] = np.exp(-0.5 * (y - e1) ** 2)
    b[np.arange(Ny) * Nx + Nx - 1] = -np.exp(-0.5 * (y - e2) ** 2)
    return spsolve(A, b, permc_spec="MMD_AT_PLUS_A").reshape(Ny, Nx)


def darcy_grid_points(rng: np.random.Generator, n: int, grid: int = DARCY_GRID) -> np.ndarray:
    """``(n, 2)`` integer (row, col) observation points: jittered centres of ``n`` distinct cells.

    The domain is split into ``div x div`` cells (``div = 3 + n // 10``: a 3 x 3 grid up to
    ``n = 9``); each point is a cell centre moved by up to ``cell // 7`` nodes in each direction.
    """
    div = 3 + n // 10
    cell = grid // div
    cells = rng.choice(div * div, size=n, replace=False)
    ci, cj = np.divmod(cells, div)
    j = cell // 7
    r = ci * cell + cell // 2 + rng.integers(-j, j + 1, size=n)
    c = cj * cell + cell // 2 + rng.integers(-j, j + 1, size=n)
    return np.stack([r, c], axis=1)


@dataclass(frozen=True)
class DarcyObservationModel:
    """:math:`d_j = (u(x_j) + \\varepsilon, \\text{row}_j / 63, \\text{col}_j / 63)`, :math:`\\varepsilon \\sim N(0, \\sigma^2)`."""

    sigma: float = 0.01

    def observe(self, u: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        vals = u[points[:, 0], points[:, 1]] + self.sigma * rng.standard_normal(len(points))
        g = u.shape[0] - 1
        return np.stack([vals, points[:, 0] / g, points[:, 1] / g], axis=-1)


def darcy_dataset(n_values: list[int], per_n: int, seed: int, obs: DarcyObservationModel,
                  kl: KLExpansion, progress: bool = True, cache: bool = True) -> dict:
    """``{"m": {n: (K, 16)}, "e": {n: (K, 2)}, "d": {n: (K, n, 3)}}``; one PDE solve per pair, cached."""
    spec = {"v": 1, "n": list(n_values), "per_n": per_n, "seed": seed, "obs": asdict(obs), "terms": kl.terms}
    path = _cache_file("darcy", spec)
    if cache and path.exists():
        z = np.load(path)
        return {k: {n: z[f"{k}{n}"] for n in n_values} for k in ("m", "e", "d")} | {"cached": True}
    rng = np.random.default_rng(seed)
    out = {"m": {}, "e": {}, "d": {}}
    bar = _progress(progress, "Darcy training set (PDE solves)", per_n * len(n_values))
    for n in n_values:
        m = rng.standard_normal((per_n, kl.terms))
        e = rng.uniform(size=(per_n, 2))
        d = np.zeros((per_n, n, 3))
        for i in range(per_n):
            u = darcy_solve(np.exp(kl.log_kappa(m[i])), e[i, 0], e[i, 1])
            d[i] = obs.observe(u, darcy_grid_points(rng, n), rng)
            if bar is not None:
                bar[0].update(bar[1], advance=1)
        out["m"][n], out["e"][n], out["d"][n] = m, e, d
    if bar is not None:
        bar[0].stop()
    if cache:
        np.savez(path, **{f"{k}{n}": out[k][n] for k in out for n in n_values})
    return out | {"cached": False}


def _progress(enabled: bool, desc: str, total: int):
    """A started rich progress bar and its task id, or None."""
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    p = Progress(TextColumn(desc), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
    p.start()
    return p, p.add_task(desc, total=total)
