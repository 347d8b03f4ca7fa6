"""sbi's NPE and FMPE as peers: trained on real SEIR simulations of one design (tiny budget)."""

import numpy as np
import pytest

from paperlab.fm_inverse import peers
from paperlab.fm_inverse.simulators import SEIRObservationModel

pytestmark = pytest.mark.skipif(not peers.sbi_available(), reason="the optional sbi package is not installed")


def test_design_vector_orders_infected_then_recovered():
    toks = np.array([[[1.0, 10.0, 1.0], [2.0, 20.0, 2.0], [3.0, 30.0, 3.0]]])
    assert peers.design_vector(toks).tolist() == [[1.0, 2.0, 3.0, 10.0, 20.0, 30.0]]


def test_npe_learns_the_seir_posterior_location():
    obs = SEIRObservationModel()
    times = np.linspace(1.0, 3.0, 5)
    theta, x, dropped = peers.seir_design_simulations(1500, times, obs, seed=0)
    assert theta.shape == (1500, 6) and x.shape == (1500, 10) and np.isfinite(x).all()
    assert ((theta >= 0) & (theta <= 1)).all() and dropped >= 0
    peer = peers.train_peer("NPE", theta, x, seed=0, max_epochs=30)
    assert peer.epochs >= 1 and peer.simulations == 1500
    # posterior for a held-out draw: inside the prior box, and on the best-identified parameter (alpha or
    # beta1) much closer to the truth than the prior's spread
    truth_theta, truth_x, _ = peers.seir_design_simulations(1, times, obs, seed=99)
    s, seconds = peer.sample(truth_x[0], 500, seed=0)
    assert s.shape == (500, 6) and seconds > 0
    assert ((s >= 0) & (s <= 1)).all()
    err = np.abs(s.mean(0) - truth_theta[0])[:2]
    assert err.min() < 0.15   # the prior mean is off by 0.29 on average


def test_unknown_peer_is_refused():
    with pytest.raises(ValueError, match="unknown peer"):
        peers.train_peer("SNLE", np.zeros((4, 6)), np.zeros((4, 2)))
