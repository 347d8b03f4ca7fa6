"""L²M: Mutual Information Scaling Law for Long-Context Language Modeling (arXiv 2503.04725).

Claim. In natural text, the *bipartite* mutual information between a block of ``L/2`` tokens and the
``L/2`` tokens that follow grows as a sub-volume power law,

    I_{L/2; L} = I(X_{1:L/2}; X_{L/2+1:L})  ~  L^beta,        0 < beta < 1,

distinct from the *two-point* mutual information ``I(d) = I(X_t; X_{t+d})`` between single tokens,
which decays with distance. A model predicting ``Y`` from ``X`` must pass that information through
its *history state* ``z_L`` (what it keeps after reading ``X``), so (the **L²M condition**)

    dim(z_L)  >~  L^beta.

A transformer's history state is its KV cache (grows linearly in ``L``: satisfied); an RNN/SSM keeps a
fixed-size state (fails it at long enough ``L``).

Estimators (Section 3). With ``q`` an LLM's autoregressive probabilities, ``X`` the first ``L_x`` tokens
and ``Y`` the next ``(r-1) L_x``:

    direct:  I = E[log q(Y|X)] - E[log q(Y)]          (q(Y) from BOS + Y, BOS-bias corrected with the
                                                       Grassberger 2-gram entropy H_2)
    vCLUB:   I = E[log q(Y_1|X_1)] - E[log q(Y_2|X_1)]  (a mismatched Y for the negative term)

Every text block opens at a paragraph start (the official code cuts PG-19 books at sentence starts), so
the scorer's document-start token never sits in front of a half sentence. ``H_2`` is counted on more text
than the scored blocks (the extra packaged novels) and its convergence with the text counted is reported:
it still rises at our sizes, and a constant error of it shifts every ``I(L_x)`` alike, so the claim's
power law is fitted from a stated smallest ``L_x`` (``fit_min_split``, default 16), with the betas of every
other fit start and of a fit ``A L^beta + c`` with a free shift reported beside it.

Two-point MI uses Grassberger's entropy estimator ``H = log N - (1/N) sum n_i G(n_i)``:
``I(d) = 2 H_1 - H_pair(d)``. Power laws are fitted in log-log space (two-point: ``A d^beta + c``).
The sub-volume Gaussian family has exact MI ``1/2 log(det S_X det S_Y / det S)`` and tests the
estimator code with exact conditional densities.

Public API
----------
- :mod:`paperlab.l2m.estimators` — :func:`grassberger_entropy`, :func:`entropy_convergence`, :func:`two_point_mi`,
  :func:`collect_logprobs` (any :class:`TokenScorer`), :func:`bipartite_mi` (direct + vCLUB, error bars).
- :mod:`paperlab.l2m.gaussian` — :class:`SubVolumeGaussian` (exact MI), :class:`GaussianScorer`.
- :mod:`paperlab.l2m.fits` — :func:`fit_power_law` (t CI), :func:`bootstrap_power_law`,
  :func:`fit_power_law_offset`, :func:`fit_power_law_shifted` (free shift ``c``).
- :mod:`paperlab.l2m.lm` — :class:`LMScorer` (transformers), :class:`VLLMScorer` (GPU, ``prompt_logprobs``),
  corpus loading, paragraph/chapter starts (:func:`tokenize_with_starts`) and block sampling.
- :mod:`paperlab.l2m.state` — KV-cache and recurrent state sizes, :func:`l2m_condition`.
- :mod:`paperlab.l2m.recurrent` — :class:`RecurrentLM`, a fixed-state GRU model for the shared trainer.
- :mod:`paperlab.l2m.train` — per-position held-out loss.
- :mod:`paperlab.l2m.experiment` — the small-scale reproduction and its claims.

CLI: ``paperlab l2m run [--quick] [--model hf:<path>] [--scorer vllm]`` and ``paperlab l2m gaussian``.
"""

_API = {
    "BipartiteMI": "estimators", "TokenScorer": "estimators", "bipartite_mi": "estimators",
    "collect_logprobs": "estimators", "entropy_convergence": "estimators", "grassberger_entropy": "estimators",
    "two_point_mi": "estimators",
    "bootstrap_power_law": "fits", "fit_power_law": "fits", "fit_power_law_offset": "fits",
    "fit_power_law_shifted": "fits",
    "GaussianScorer": "gaussian", "SubVolumeGaussian": "gaussian",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    # lazy: ``paperlab l2m --help`` must not import torch
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f"paperlab.l2m.{_API[name]}"), name)
    raise AttributeError(f"module 'paperlab.l2m' has no attribute {name!r}")
