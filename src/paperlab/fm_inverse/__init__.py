"""Flow matching + transformers for Bayesian inverse problems.

Paper: *Combining Flow Matching and Transformers for Efficient Solution of Bayesian Inverse Problems*,
arXiv 2503.01375 (2025), https://arxiv.org/abs/2503.01375. Official code:
``FlowMatchingInverseProblems/Bayesian-Inverse-Meet-FM``.

**The claim.** A Bayesian inverse problem asks for the posterior :math:`p(m \\mid d) \\propto
p(d \\mid m)\\, p(m)` of model parameters :math:`m` given observations :math:`d = F(m, e) + \\varepsilon`.
MCMC pays for every posterior with thousands of sequential forward solves. The paper trains one
conditional generative model *once* on simulated pairs :math:`(m, d)` and then draws posterior
samples for any new :math:`d` by integrating an ODE -- up to ~2,000x faster than MCMC at comparable
error -- and, because the observations enter as a set of transformer tokens, one model serves any
number of observations, including counts never seen in training.

**Conditional flow matching** (rectified flow, :math:`\\sigma = 0`). For :math:`x_0 \\sim p_0`,
:math:`x_1 = m` and :math:`t \\sim U[0, 1]`,

.. math::

    x_t = t\\, x_1 + (1 - t)\\, x_0, \\qquad
    \\mathcal{L}(\\theta) = \\mathbb{E}\\, \\| v_\\theta(t, x_t \\mid d) - (x_1 - x_0) \\|^2 ,

and posterior samples are :math:`x(1)` for :math:`\\dot x = v_\\theta(t, x \\mid d)`, :math:`x(0) \\sim p_0`
(the same :math:`p_0` as in training).

**The velocity field** is a transformer over the tokens [time embedding, :math:`x_t`,
(design :math:`e`), :math:`d_1, \\dots, d_n`] with the velocity read at the :math:`x_t` token; no
positional encoding for SEIR (exactly permutation-invariant in the observations), RoPE + QK-norm
for Darcy.

**Problems.** A time-varying SEIR epidemic model (6 parameters, observations of :math:`I, R` at
:math:`n` times) and a Darcy permeability field (16 Karhunen-Loeve coefficients, observations of
the pressure at :math:`n` points). See :mod:`.simulators`.

**Public API**

- simulators: :func:`seir_solve`, :func:`seir_simulate`, :func:`stratified_times`,
  :class:`SEIRObservationModel`, :func:`seir_dataset`, :class:`KLExpansion`, :func:`darcy_solve`,
  :class:`DarcyObservationModel`, :func:`darcy_dataset`, ``SEIR_PARAMS`` (the parameter order)
- model: :class:`VelocityConfig`, :class:`VelocityTransformer`; :func:`to_flow_space`,
  :func:`from_flow_space` (the flow of a box prior lives in logit space: samples never leave the box)
- flow: :func:`cfm_loss`, :class:`TrainConfig`, :func:`train_cfm`, :func:`sample_posterior`
- checkpoints: :func:`save_checkpoint`, :func:`load_checkpoint`
- baselines: :class:`SEIRPosterior`, :class:`DarcyPosterior`, :func:`metropolis_hastings`,
  :func:`emcee_reference` (stopped by an autocorrelation rule), :func:`seir_log_likelihood`
- peers (not in the paper): :func:`train_peer` (sbi's NPE / FMPE for one observation design, same
  simulator and budget), :func:`seir_design_simulations`
- evaluation: :func:`c2st_test` (with its null), :func:`moment_comparison`, :func:`coverage`,
  :func:`sbc_ranks`; claims: :func:`make_claims`
- experiment: :func:`reproduce` (``paperlab fm_inverse run``); CLI ``paperlab fm_inverse sample
  --checkpoint RUN --obs obs.json --n 4000 --out samples.npy``

Imports are lazy so that ``paperlab`` starts quickly.
"""

from __future__ import annotations

import importlib

_API = {
    "simulators": ("seir_solve", "seir_simulate", "stratified_times", "SEIRObservationModel", "seir_dataset",
                   "seir_prior_sample", "KLExpansion", "darcy_solve", "DarcyObservationModel", "darcy_dataset",
                   "darcy_grid_points", "SEIR_PARAMS"),
    "velocity": ("VelocityConfig", "VelocityTransformer", "to_flow_space", "from_flow_space"),
    "flow": ("cfm_loss", "TrainConfig", "train_cfm", "sample_posterior", "sample_source"),
    "checkpoint": ("save_checkpoint", "load_checkpoint"),
    "mcmc": ("SEIRPosterior", "DarcyPosterior", "metropolis_hastings", "emcee_reference", "seir_log_likelihood"),
    "evaluate": ("c2st_test", "moment_comparison", "coverage", "sbc_ranks"),
    "peers": ("train_peer", "seir_design_simulations", "sbi_available"),
    "claims": ("make_claims",),
    "experiment": ("reproduce", "default_config"),
}
_WHERE = {name: mod for mod, names in _API.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
