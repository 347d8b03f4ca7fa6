"""The peers a user would try first: ``sbi``'s NPE and FMPE on the same simulator and budget.

The paper compares its flow only with MCMC. A user who has an amortised posterior estimator in
mind would first reach for the ``sbi`` package (Tejero-Cantero et al., 2020): neural posterior
estimation (NPE, a masked autoregressive flow fitted by maximum likelihood) and flow-matching
posterior estimation (FMPE, Wildberger et al., 2023: the same conditional flow matching objective
as the paper, with an MLP instead of a set transformer). Both are used here with sbi's defaults.

**What is matched.** sbi's estimators take a fixed-size observation vector, so a peer is trained
for one observation design: the reference case's times ``linspace(1, 3, N)`` with
``x = (I_1..I_N, R_1..R_N)`` under the same noisy observation model. It gets as many simulations
as the CFM training set holds in all (``train_per_n x len(train_n)``), all spent on that one
design -- a budget that favours the peer, since CFM spreads its simulations over designs and
numbers of observations and serves them all with one network. Diverged prior draws are dropped
from the peer's training set, as from CFM's.

``sbi`` is an optional extra (``pip install 'paperlab[sbi]'``); without it the run reports the
peers as not run.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

import numpy as np

#: sbi's amortised estimators compared with CFM
PEER_METHODS = ("NPE", "FMPE")


def sbi_available() -> bool:
    """Whether the optional ``sbi`` package imports."""
    try:
        import sbi  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return True


def seir_design_simulations(num: int, times: np.ndarray, obs, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``num`` finite prior draws ``theta (num, 6)`` and their observations ``x (num, 2 N)`` at the fixed
    ``times``; returns also how many diverged draws were dropped and replaced."""
    from paperlab.fm_inverse.simulators import seir_prior_sample, seir_simulate

    rng = np.random.default_rng([seed, len(times), 31])
    thetas, xs, dropped = [], [], 0
    have = 0
    while have < num:
        m = seir_prior_sample(rng, int(1.15 * (num - have)) + 16)
        d, ok = seir_simulate(m, np.broadcast_to(times, (len(m), len(times))), obs, rng)
        dropped += int((~ok).sum())
        thetas.append(m[ok])
        xs.append(design_vector(d[ok]))
        have += int(ok.sum())
    return np.concatenate(thetas)[:num], np.concatenate(xs)[:num], dropped


def design_vector(tokens: np.ndarray) -> np.ndarray:
    """Observation tokens ``(..., N, 3)`` of one design -> sbi's fixed-size ``x = (I_1..I_N, R_1..R_N)``."""
    tokens = np.asarray(tokens)
    return np.concatenate([tokens[..., 0], tokens[..., 1]], axis=-1)


@dataclass
class Peer:
    """A trained sbi posterior for one design, and what training cost."""

    method: str
    posterior: object
    simulations: int
    dropped: int
    train_seconds: float
    epochs: int

    def sample(self, x_o: np.ndarray, num: int, seed: int = 0) -> tuple[np.ndarray, float]:
        """``num`` posterior samples for the observation vector ``x_o`` and the seconds they took."""
        import torch

        torch.manual_seed(seed)
        x = torch.as_tensor(np.asarray(x_o, dtype=np.float32)).reshape(1, -1)
        t0 = time.perf_counter()
        s = self.posterior.sample((num,), x=x, show_progress_bars=False)
        return s.detach().cpu().numpy().astype(np.float64), time.perf_counter() - t0


def train_peer(method: str, theta: np.ndarray, x: np.ndarray, seed: int = 0,
               max_epochs: int | None = None) -> Peer:
    """Train sbi's ``method`` (NPE or FMPE) with its defaults on ``(theta, x)`` under the U[0,1]^d prior.

    ``max_epochs`` caps training (sbi's default: until 20 epochs without validation improvement, or
    2**31 epochs); the run reports the epochs used.
    """
    import torch
    from sbi.inference import FMPE, NPE
    from sbi.utils import BoxUniform

    if method not in PEER_METHODS:
        raise ValueError(f"unknown peer {method!r}; use one of {PEER_METHODS}")
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(seed)
    d = theta.shape[1]
    prior = BoxUniform(low=torch.zeros(d), high=torch.ones(d))
    # sbi logs to ./sbi-logs in the working directory unless given a writer: keep the user's folder clean
    with tempfile.TemporaryDirectory(prefix="paperlab-sbi-") as logs:
        writer = SummaryWriter(log_dir=logs)
        inference = (NPE if method == "NPE" else FMPE)(prior=prior, show_progress_bars=False, summary_writer=writer)
        t0 = time.perf_counter()
        inference.append_simulations(torch.as_tensor(theta, dtype=torch.float32),
                                     torch.as_tensor(x, dtype=torch.float32))
        kw = {"show_train_summary": False}
        if max_epochs is not None:
            kw["max_num_epochs"] = int(max_epochs)
        inference.train(**kw)
        seconds = time.perf_counter() - t0
        writer.close()
    epochs = int(inference.summary.get("epochs_trained", [0])[-1]) if hasattr(inference, "summary") else 0
    return Peer(method, inference.build_posterior(), len(theta), 0, seconds, epochs)
