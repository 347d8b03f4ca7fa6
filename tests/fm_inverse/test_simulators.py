"""The forward problems against hand-computed cases and independent solves."""

import numpy as np
from scipy.integrate import solve_ivp

from paperlab.fm_inverse.simulators import (
    SEIR_TRAJ_T,
    KLExpansion,
    SEIRObservationModel,
    darcy_grid_points,
    darcy_solve,
    seir_simulate,
    seir_solve,
    stratified_times,
)


def classic_seir(beta, alpha, gamma, t_eval):
    """Constant-rate SEIR written out by hand (no tanh switch)."""
    def rhs(t, y):
        S, E, I, R = y  # noqa: E741
        return [-beta * S * I, beta * S * I - alpha * E, alpha * E - gamma * I, gamma * I]
    return solve_ivp(rhs, (0, 4), [99, 1, 0, 0], t_eval=t_eval, rtol=1e-10, atol=1e-10).y


def test_constant_beta_is_classic_seir_and_conserves_population():
    # beta1 = beta2 and gamma_d1 = gamma_d2 make beta(t), gamma(t) constant: the classic SEIR model.
    m = np.array([[0.02, 0.5, 0.2, 0.1, 0.02, 0.1]])
    y, valid = seir_solve(m, SEIR_TRAJ_T)
    assert valid.all()
    np.testing.assert_allclose(y[0].sum(0), 100.0, atol=1e-9)          # S + E + I + R = 100
    ref = classic_seir(0.02, 0.5, 0.3, SEIR_TRAJ_T)
    np.testing.assert_allclose(y[0], ref, atol=2e-3)
    # Hand-checked early behaviour: E decays from 1 and feeds I; R stays non-negative and grows.
    assert y[0, 3, -1] > y[0, 3, 1] >= 0


def test_batched_solve_matches_one_by_one_and_flags_divergence():
    rng = np.random.default_rng(3)
    m = rng.uniform(size=(40, 6))
    times = stratified_times(rng, 40, 6)
    y, valid = seir_solve(m, times, chunk=16)
    for j in range(40):
        yj, vj = seir_solve(m[j], times[j])
        assert vj[0] == valid[j]
        if valid[j]:
            np.testing.assert_allclose(y[j], yj[0], atol=1e-2)
            assert np.all(np.abs(y[j].sum(0) - 100) < 1e-6)
        else:
            assert np.isnan(y[j]).all()
    # Negative rates (beta(0) = (3 beta1 - beta2) / 2 < 0) make a few per cent of prior draws diverge.
    m = rng.uniform(size=(400, 6))
    _, valid = seir_solve(m, SEIR_TRAJ_T)
    assert 0.005 < (~valid).mean() < 0.15
    assert np.all(3 * m[~valid, 0] < m[~valid, 4])          # every diverged draw starts with beta(0) < 0


def test_stratified_times_one_per_bin():
    t = stratified_times(np.random.default_rng(0), 500, 5, 1.0, 3.0)
    edges = np.linspace(1, 3, 6)
    assert np.all((t >= edges[:-1]) & (t < edges[1:]))
    assert np.allclose(t.mean(0), (edges[:-1] + edges[1:]) / 2, atol=0.03)


def test_observation_noise_has_the_stated_scale():
    rng = np.random.default_rng(1)
    m = np.tile([[0.4, 0.3, 0.3, 0.1, 0.15, 0.6]], (2000, 1))
    times = np.full((2000, 1), 2.0)
    d, ok = seir_simulate(m, times, SEIRObservationModel(), rng, chunk=2000)
    clean, _ = seir_simulate(m[:1], times[:1], SEIRObservationModel.noise_free(), rng)
    assert ok.all()
    assert abs((d[:, 0, 0] - clean[0, 0, 0]).std() - 2.0) < 0.1
    assert abs((d[:, 0, 1] - clean[0, 0, 1]).std() - 1.0) < 0.05
    assert np.all(d[:, 0, 2] == 2.0)


def test_kl_basis_is_eigenbasis_of_the_kernel_matrix():
    kl = KLExpansion(grid=12, terms=10)
    x = np.linspace(0, 1, 12)
    X, Y = np.meshgrid(x, x)
    p = np.column_stack([X.ravel(), Y.ravel()])
    K = np.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / 0.2)
    np.testing.assert_allclose(K @ kl.eigenvectors, kl.eigenvectors * kl.eigenvalues, atol=1e-10)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(K))[::-1][:10], kl.eigenvalues, rtol=1e-10)


def test_darcy_constant_permeability_is_harmonic_and_meets_boundaries():
    u = darcy_solve(np.ones((64, 64)), 0.5, 0.5)
    y = np.linspace(0, 1, 64)
    np.testing.assert_allclose(u[:, 0], np.exp(-0.5 * (y - 0.5) ** 2))
    np.testing.assert_allclose(u[:, -1], -np.exp(-0.5 * (y - 0.5) ** 2))
    # Symmetric boundary data -> u is odd about x = 1/2; the five-point Laplacian vanishes inside.
    np.testing.assert_allclose(u, -u[:, ::-1], atol=1e-10)
    lap = u[1:-1, :-2] + u[1:-1, 2:] + u[:-2, 1:-1] + u[2:, 1:-1] - 4 * u[1:-1, 1:-1]
    assert np.abs(lap[1:-1]).max() < 1e-10
    np.testing.assert_allclose(u[0, 1:-1], u[1, 1:-1])                    # zero flux at y = 0


def test_darcy_points_fall_in_distinct_cells():
    rng = np.random.default_rng(0)
    for n in range(1, 10):
        pts = darcy_grid_points(rng, n)
        cells = {(r // 21, c // 21) for r, c in pts}
        assert len(cells) == n and pts.min() >= 0 and pts.max() < 64
