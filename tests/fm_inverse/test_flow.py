"""Flow matching learns the known optimal velocity; the velocity field ignores token order;
checkpoints round-trip; the CLI turns bad observation files into one-line errors."""

import json

import numpy as np
import pytest
import torch

from paperlab.core.errors import UserError
from paperlab.fm_inverse.checkpoint import load_checkpoint, save_checkpoint
from paperlab.fm_inverse.cli import read_observations
from paperlab.fm_inverse.flow import cfm_loss, sample_posterior
from paperlab.fm_inverse.velocity import VelocityConfig, VelocityTransformer


class Affine(torch.nn.Module):
    """v(t, x) = a(t) x + b(t), a and b piecewise linear in t (the optimal family for Gaussians)."""

    def __init__(self, knots=21):
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros(knots))
        self.b = torch.nn.Parameter(torch.zeros(knots))

    def forward(self, t, x, tokens):
        k = len(self.a) - 1
        hat = torch.clamp(1 - torch.abs(t[:, None] * k - torch.arange(k + 1)), min=0)   # (B, knots)
        return (hat @ self.a)[:, None] * x + (hat @ self.b)[:, None]


def optimal_velocity(t, x, mu, s):
    """The minimiser of the CFM loss for N(0, 1) -> N(mu, s^2) with independent coupling.

    x_t = t x1 + (1 - t) x0 and u = x1 - x0 are jointly Gaussian, so
    v*(t, x) = E[u | x_t = x] = mu + Cov(u, x_t) / Var(x_t) (x - t mu), with
    Cov(u, x_t) = t s^2 - (1 - t) and Var(x_t) = t^2 s^2 + (1 - t)^2.
    """
    var = t ** 2 * s ** 2 + (1 - t) ** 2
    return mu + (t * s ** 2 - (1 - t)) / var * (x - t * mu)


def test_cfm_loss_learns_the_gaussian_optimal_velocity():
    torch.manual_seed(0)
    mu, s = 2.0, 0.5
    model = Affine()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1000)
    g = torch.Generator().manual_seed(0)
    for _ in range(1000):
        x1 = mu + s * torch.randn(1024, 1, generator=g)
        loss = cfm_loss(model, x1, torch.zeros(1024, 1, 3), source="gaussian", generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    t = torch.linspace(0.05, 0.95, 10).repeat_interleave(21)
    x = torch.linspace(-2, 3, 21).repeat(10)[:, None]
    with torch.no_grad():
        v = model(t, x, None)[:, 0]
    v_star = optimal_velocity(t, x[:, 0], mu, s)
    assert torch.mean(v_star ** 2) > 5                      # the target is far from the zero init
    assert torch.mean((v - v_star) ** 2) < 0.01
    # Sampling with the learned field moves N(0, 1) to N(mu, s^2).
    out = sample_posterior(_Wrap(model), np.zeros((1, 3)), 4000, method="rk4", steps=40)
    assert abs(out.mean() - mu) < 0.05 and abs(out.std() - s) < 0.05


class _Wrap(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.cfg = VelocityConfig(param_dim=1)

    def forward(self, t, x, tokens, context=None):
        return self.inner(t, x, tokens)


def test_seir_velocity_is_invariant_to_permuting_observation_tokens():
    torch.manual_seed(0)
    model = VelocityTransformer(VelocityConfig.seir()).eval()
    tokens = torch.randn(4, 7, 3)
    x, t = torch.randn(4, 6), torch.rand(4)
    perm = torch.randperm(7)
    with torch.no_grad():
        a, b = model(t, x, tokens), model(t, x, tokens[:, perm])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    s1 = sample_posterior(model, tokens[0], 64, steps=8, seed=3)
    s2 = sample_posterior(model, tokens[0, perm], 64, steps=8, seed=3)
    np.testing.assert_allclose(s1, s2, atol=1e-4)
    # ...while the observations do matter, and padding a set with masked tokens changes nothing.
    with torch.no_grad():
        assert (model(t, x, tokens + 1.0) - a).abs().max() > 1e-3
        pad = torch.cat([tokens, torch.randn(4, 3, 3)], 1)
        mask = torch.cat([torch.ones(4, 7), torch.zeros(4, 3)], 1).bool()
        torch.testing.assert_close(model(t, x, pad, mask=mask), a, atol=1e-5, rtol=1e-5)


def test_darcy_variant_runs_and_depends_on_token_order():
    torch.manual_seed(0)
    model = VelocityTransformer(VelocityConfig.darcy(zero_init=False)).eval()
    tokens, e = torch.randn(2, 5, 3), torch.rand(2, 2)
    with torch.no_grad():
        a = model(torch.rand(2), torch.randn(2, 16), tokens, e)
        b = model(torch.rand(2) * 0 + 0.5, torch.randn(2, 16), tokens[:, [4, 3, 2, 1, 0]], e)
    assert a.shape == (2, 16) and torch.isfinite(a).all() and not torch.allclose(a, b)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = VelocityTransformer(VelocityConfig.seir(n_layer=2))
    model.fit_normalisation(torch.randn(10, 4, 3) * 5 + 2)
    meta = {"problem": "seir", "param_names": ["a"] * 6, "source": "gaussian", "ode_method": "midpoint",
            "ode_steps": 4, "train_n": [4, 10]}
    save_checkpoint(tmp_path / "ck", model, meta)
    loaded, m2 = load_checkpoint(tmp_path / "ck")
    assert m2["problem"] == "seir" and loaded.cfg == model.cfg
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    toks = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(sample_posterior(model, toks, 32, steps=4), sample_posterior(loaded, toks, 32, steps=4))
    with pytest.raises(UserError):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"),
    ('{"t": [1, 2], "I": [3]}', "missing key"),
    ('{"t": [1, 2], "I": [3], "R": [1, 2]}', "different lengths"),
    ('{"t": [1, "x"], "I": [3, 4], "R": [1, 2]}', "list of numbers"),
    ('{"t": [], "I": [], "R": []}', "no observations"),
    ('{"t": [1, 9], "I": [3, 4], "R": [1, 2]}', "[0, 4]"),
    ("[1, 2, 3]", "objects"),
])
def test_bad_observation_file_is_one_line_user_error(tmp_path, content, fragment):
    p = tmp_path / "obs.json"
    p.write_text(content)
    with pytest.raises(UserError) as e:
        read_observations(p, "seir")
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_good_observation_files_in_both_layouts(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"t": [1.0, 2.0, 3.0], "I": [1, 2, 3], "R": [0.5, 1, 2]}))
    q = tmp_path / "b.json"
    q.write_text(json.dumps([{"t": 1.0, "I": 1, "R": 0.5}, {"t": 2.0, "I": 2, "R": 1}, {"t": 3.0, "I": 3, "R": 2}]))
    a, b = read_observations(p, "seir")["tokens"], read_observations(q, "seir")["tokens"]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, 2], [1, 2, 3])          # tokens are (I, R, t)


def test_darcy_observation_file(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"e": [0.9, 0.2], "u": [0.1, -0.2], "row": [0.2, 0.5], "col": [0.3, 0.8]}))
    parsed = read_observations(p, "darcy")
    np.testing.assert_array_equal(parsed["tokens"], [[0.1, 0.2, 0.3], [-0.2, 0.5, 0.8]])
    np.testing.assert_array_equal(parsed["context"], [0.9, 0.2])
    p.write_text(json.dumps({"u": [0.1], "row": [0.2], "col": [0.3]}))
    with pytest.raises(UserError, match="need 'e'"):
        read_observations(p, "darcy")


@pytest.mark.parametrize("strategy", ["per_n", "accumulate"])
def test_both_variable_length_strategies_reduce_the_loss(strategy):
    from paperlab.fm_inverse.flow import TrainConfig, train_cfm, validation_loss

    g = torch.Generator().manual_seed(0)

    def make(n, k=256):
        m = torch.rand(k, 6, generator=g)
        t = torch.rand(k, n, 1, generator=g)
        # Each token sees (m0 * t, m1 + t, t): the parameters are recoverable from any n >= 1.
        d = torch.cat([m[:, None, :1] * t, m[:, None, 1:2] + t, t], -1)
        return {"m": m, "d": d}

    train = {n: make(n) for n in (2, 3, 4)}
    val = {n: make(n, 128) for n in (2, 3, 4)}
    torch.manual_seed(0)
    model = VelocityTransformer(VelocityConfig.seir(n_layer=1, time_freq_dim=16))
    before = validation_loss(model, val, "gaussian")
    hist = train_cfm(model, train, TrainConfig(steps=60, batch_size=96, lr=3e-3, val_every=30, strategy=strategy),
                     val=val, progress=False)
    assert hist["best_val_loss"] < 0.8 * before
    assert validation_loss(model, val, "gaussian") == pytest.approx(hist["best_val_loss"])


def test_observation_warnings_name_what_leaves_the_training_range(tmp_path):
    from paperlab.fm_inverse.cli import observation_warnings

    p = tmp_path / "d.json"
    p.write_text(json.dumps({"e": [1.4, 0.2], "u": [0.1, -0.2, 0.3], "row": [0.1, 0.15, 0.9], "col": [0.1, 0.2, 0.9]}))
    meta = {"problem": "darcy", "train_n": [3, 10]}
    warns = observation_warnings(read_observations(p, "darcy"), meta)
    assert any("design e = (1.4, 0.2) outside" in w for w in warns)
    assert any("share a cell" in w for w in warns)
    q = tmp_path / "s.json"
    q.write_text(json.dumps({"t": [1.0, 2.0, 3.5], "I": [1, 2, 3], "R": [0.5, 1, 2]}))
    meta = {"problem": "seir", "train_n": [4, 10], "observation_model": {"t_low": 1.0, "t_high": 3.0}}
    warns = observation_warnings(read_observations(q, "seir"), meta)
    assert len(warns) == 2 and "3 observations" in warns[0] and "1..3.5 leave" in warns[1]
    q.write_text(json.dumps({"t": [1.0, 2.0, 3.0, 1.5], "I": [1, 2, 3, 1], "R": [0.5, 1, 2, 1]}))
    assert observation_warnings(read_observations(q, "seir"), meta) == []
