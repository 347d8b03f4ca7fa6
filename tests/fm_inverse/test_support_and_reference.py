"""The flow respects the prior's box; the emcee reference stops by its autocorrelation rule; the
calibration check fails a barely-trained model."""

import numpy as np
import pytest
import torch

from paperlab.fm_inverse.flow import TrainConfig, sample_posterior, train_cfm
from paperlab.fm_inverse.mcmc import SEIRPosterior, emcee_reference, seir_log_likelihood
from paperlab.fm_inverse.velocity import VelocityConfig, VelocityTransformer, from_flow_space, to_flow_space


def test_logit_map_round_trips_and_seir_default_is_the_box():
    m = torch.tensor([[1e-9, 0.3, 0.5, 0.9, 1.0, 0.999999]], dtype=torch.float64)
    z = to_flow_space(m, "unit_box")
    assert torch.isfinite(z).all()
    back = from_flow_space(z, "unit_box")
    torch.testing.assert_close(back[:, 1:4], m[:, 1:4])
    assert VelocityConfig.seir().support == "unit_box" and VelocityConfig.darcy().support == "real"
    with pytest.raises(ValueError):
        VelocityTransformer(VelocityConfig.seir(support="sphere"))


def test_samples_stay_in_the_prior_box_even_untrained():
    """A flow in parameter space with a wide velocity leaves the box; the logit-space flow cannot."""
    torch.manual_seed(0)
    toks = np.random.default_rng(0).normal(size=(5, 3))
    inside = {}
    for support in ("real", "unit_box"):
        model = VelocityTransformer(VelocityConfig.seir(n_layer=1, support=support))
        with torch.no_grad():
            model.head.weight.mul_(20.0)                # a large random velocity field
        s = sample_posterior(model, toks, 2000, steps=4)
        inside[support] = np.mean(np.all((s >= 0) & (s <= 1), axis=1))
    assert inside["real"] < 0.5                         # the old behaviour: most samples outside
    assert inside["unit_box"] == 1.0


def test_flow_in_logit_space_learns_a_posterior_at_the_edge_of_the_box():
    """Parameters piled up near 0 (a posterior at the prior's edge): the learnt samples stay inside and
    follow the target's spread."""
    g = torch.Generator().manual_seed(0)

    def make(k):
        m = torch.rand(k, 6, generator=g) * 0.1      # U[0, 0.1]^6
        return {"m": m, "d": torch.zeros(k, 2, 3)}

    torch.manual_seed(0)
    model = VelocityTransformer(VelocityConfig.seir(n_layer=1, time_freq_dim=16))
    train_cfm(model, {2: make(2048)}, TrainConfig(steps=300, batch_size=256, lr=3e-3, val_every=100),
              val={2: make(256)}, progress=False)
    s = sample_posterior(model, np.zeros((2, 3)), 4000, steps=16)
    assert np.all((s >= 0) & (s <= 1))
    assert abs(s.mean() - 0.05) < 0.02 and np.quantile(s, 0.99) < 0.2


def test_emcee_reference_stops_by_the_autocorrelation_rule():
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    prec = np.linalg.inv(cov)

    def log_prob(x):
        x = np.atleast_2d(x)
        return -0.5 * np.einsum("bi,ij,bj->b", x, prec, x)

    rng = np.random.default_rng(0)
    ref = emcee_reference(log_prob, lambda n: rng.uniform(-3, 3, size=(n, 2)), np.random.default_rng(1),
                          walkers=16, max_steps=20_000, check_every=200, tau_factor=50)
    assert ref["converged"] and ref["steps"] < 20_000
    half = ref["steps"] - ref["steps"] // 2
    assert half > 50 * ref["trace"][-1]["tau_max"]
    assert len(ref["samples"]) == 16 * (-(-half // ref["thin"]))
    np.testing.assert_allclose(np.cov(ref["samples"].T), cov, atol=0.15)
    capped = emcee_reference(log_prob, lambda n: rng.uniform(-3, 3, size=(n, 2)), np.random.default_rng(1),
                             walkers=16, max_steps=100, check_every=50)
    assert not capped["converged"] and capped["steps"] == 100


def test_batched_log_likelihood_matches_the_posterior_class():
    rng = np.random.default_rng(0)
    toks = np.stack([np.column_stack([rng.uniform(0, 20, 4), rng.uniform(0, 20, 4), np.sort(rng.uniform(1, 3, 4))])
                     for _ in range(3)])
    m = rng.uniform(size=(3, 5, 6))
    ll = seir_log_likelihood(m, toks, 2.0, 1.0)
    for k in range(3):
        np.testing.assert_allclose(ll[k], SEIRPosterior(toks[k], 2.0, 1.0).log_prob(m[k]), rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_barely_trained_model_fails_calibration(tmp_path):
    """A 30-step model (which passed the old pooled-coverage claim) must not pass ``coverage_calibrated``."""
    from paperlab.fm_inverse.claims import claim_calibrated
    from paperlab.fm_inverse.experiment import ExperimentConfig, _seir_calibration
    from paperlab.fm_inverse.simulators import SEIR_PARAMS, SEIRObservationModel, seir_dataset

    obs = SEIRObservationModel()
    data = seir_dataset([4, 6], 256, 0, obs)
    torch.manual_seed(0)
    model = VelocityTransformer(VelocityConfig.seir(n_layer=2))
    model.fit_normalisation(torch.as_tensor(np.concatenate([data["d"][n].reshape(-1, 3) for n in (4, 6)]),
                                            dtype=torch.float32))
    train = {n: {"m": torch.as_tensor(data["m"][n], dtype=torch.float32),
                 "d": torch.as_tensor(data["d"][n], dtype=torch.float32)} for n in (4, 6)}
    train_cfm(model, train, TrainConfig(steps=30, batch_size=64, val_every=15), progress=False)
    cfg = ExperimentConfig(sbc_cases=300, sbc_N=[3, 5, 7], sbc_samples=60, ode_steps=4)
    calib = _seir_calibration(cfg, model, obs)
    c = claim_calibrated({"coverage": calib["coverage"], "sbc_cases": calib["cases"], "param_names": list(SEIR_PARAMS),
                          "rank_u": calib["rank_u"], "lik_u": calib["lik_u"]})
    assert c.verdict == "contradicted"
    assert calib["lik_rank_mean"] > 0.6


def test_quick_cases_find_their_packaged_converged_references():
    # the quick tier stays within its time budget only if its emcee references are found: the packaged
    # files must be keyed exactly as the quick run computes the key, and hold converged draws in the box
    from paperlab.fm_inverse.experiment import (
        SEIR_M_TRUE,
        _packaged_reference,
        default_config,
        reference_spec,
    )
    from paperlab.fm_inverse.mcmc import SEIRPosterior
    from paperlab.fm_inverse.simulators import SEIRObservationModel, _cache_file, seir_simulate

    cfg = default_config("seir", quick=True)
    obs = SEIRObservationModel()
    for k, N in cfg.ref_cases:
        assert k == 0
        r = np.random.default_rng([cfg.seed, k, N])
        d, _ = seir_simulate(np.asarray(SEIR_M_TRUE)[None], np.linspace(1.0, 3.0, N)[None], obs, r)
        post = SEIRPosterior(d[0], obs.sigma_I, obs.sigma_R)
        path = _packaged_reference(_cache_file("reference", reference_spec(cfg, post, k, N)).name)
        assert path is not None, f"no packaged reference for m{k}/N={N}"
        z = np.load(path)
        assert bool(z["converged"]) and z["samples"].shape[1] == 6 and len(z["samples"]) > 1000
        assert ((z["samples"] >= 0) & (z["samples"] <= 1)).all()
        # the posterior concentrates near the truth on the identified rate alpha
        assert abs(np.median(z["samples"][:, 1]) - SEIR_M_TRUE[1]) < 0.15
    # another seed is another observation: no packaged file, the run computes it
    other = default_config("seir", quick=True)
    other.seed = 1
    assert _packaged_reference(_cache_file("reference", reference_spec(other, post, 0, N)).name) is None
