"""PQI and ReQuant — "Identifying Sensitive Weights via Post-quantization Integral", arXiv:2503.01901 (2025).
https://arxiv.org/abs/2503.01901 (no official code; this is our reference implementation).

**Claim.** Sensitivity metrics used to decide which weights to keep in full precision — the gradient
(first-order Taylor) or the diagonal Fisher / Hessian (second-order) at the full-precision weights — badly
mispredict the loss change that quantization causes, because the quantized weights are far from ``w``
(Llama-3.2-1B: first order 8.9e-4, second order -6.1e-5, measured 0.100). The *Post-quantization
Integral* integrates the gradient along the path to the quantized weights and is accurate; it is also
concentrated on few weights. Spending a sparse budget on the weights PQI points at (ReQuant) lowers
perplexity at equal bits (AWQ 3-bit 16.74 -> 15.36, QTIP 2-bit 18.67 -> 16.01 on Llama-3.2-1B).

**Equations** (``F``: calibration loss, ``w~ = Q(w)``, ``dw = w~ - w``):

    dF = F(w~) - F(w)                                                     measured change
    dF_1 = g . dw,   dF_2 = dF_1 + 1/2 sum_i F_ii dw_i^2                  Taylor (g, F at w)
    dF = int_0^1 grad F(w + t dw) . dw dt ~ (1/N) sum_k grad F(w + t_k dw) . dw        (PQI)
    dF_i = dw_i int_0^1 d_i F(w + t dw) dt                                per-weight PQI, sum_i dF_i = dF
    k_l = K_o n_l rho_l^T / sum_j n_j rho_j^T,  rho_l = sum_{i in l} |dF_i| / n_l      outlier allocation
    W = D + S_outliers + S_significant                                   dense low-bit + sparse fp16

**Modules** (in the order of the paper):

- :mod:`~paperlab.requant.quantizers` — group-wise RTN (2/3/4 bits, any group size), AWQ-style
  activation-aware scaling, one :class:`Quantizer` interface, bit-packing, :class:`BitAccount`
  (codes + 32 bits per group + 16 per AWQ channel + 48 per sparse entry).
- :mod:`~paperlab.requant.pqi` — :func:`path_scan` (per-sequence gradients along ``w + t dw``),
  :func:`quadrature` (left/right rectangle, midpoint, trapezoid), :func:`pqi`, :func:`taylor_estimates`,
  :func:`top_share` (concentration).
- :mod:`~paperlab.requant.requant` — :func:`requant` (allocation with temperature, outlier removal and
  re-quantization, step-wise significant-weight detach), the magnitude and Fisher baselines
  (:func:`select_per_layer`), :class:`DenseSparse`.
- :mod:`~paperlab.requant.layers` — :class:`SparseDenseLinear` (packed codes dequantized in the forward
  pass + a CSR sparse matmul), :func:`convert` / :func:`restore` a model's ``nn.Linear`` layers.
- :mod:`~paperlab.requant.lm` — target layers of a transformers LM or the shared small transformer,
  WikiText-2 windows, sliding-window perplexity.
- :mod:`~paperlab.requant.export` — quantize a model to a folder, load it, score it.
- :mod:`~paperlab.requant.experiment` / :mod:`~paperlab.requant.report` — ``paperlab requant run``.

**Our choices where the paper (as we could read it) is unspecified:** the rectangle rule at right
endpoints for the paper's PQI (its Table 3 errors halve per doubling of N from above); the allocation
``pqi^T / sum pqi^T`` on the per-weight PQI density weighted by layer size (``T = 0``: uniform ratio), not a
softmax; outliers by magnitude within a layer; significant weights ranked by ``|dF_i|`` over all layers (it
contains ``dw``; not multiplied by ``|dw|`` again; the signed ranking is run beside as an ablation); ``N = 4``
midpoint points for ReQuant's own
scans (cost); the Fisher of the second-order estimate is the empirical Fisher of sequence losses;
concentration is measured on ``|dF_i|`` (about half of the ``dF_i`` are negative at our scale, so shares of
the signed total exceed 100% and are reported but not tested); outliers that the per-layer cap refuses are
spent on significant weights, so every method spends the same total budget.

API::

    from paperlab.requant import Quantizer, requant, ReQuantConfig, SparseDenseLinear, convert, pqi
    q = Quantizer("rtn", bits=3, group_size=128)
    res = requant(target, q, calib_ids, ReQuantConfig(r_outlier=0.0025, r_significant=0.0025))
    convert(model, res.layers)           # model now runs on dense-and-sparse layers

    paperlab requant run --quick                                     # claims + report
    paperlab requant quantize --model default --bits 3 --out DIR     # your model -> DIR (+ bit accounting)
    paperlab requant ppl --model DIR                                 # WikiText-2 perplexity (JSON)
"""

# The API is imported lazily (PEP 562) so that ``paperlab.requant.cli`` stays cheap to import (no torch).
_API = {
    "BitAccount": "quantizers", "QuantizedTensor": "quantizers", "Quantizer": "quantizers",
    "rtn_quantize": "quantizers", "awq_quantize": "quantizers", "pack_codes": "quantizers",
    "unpack_codes": "quantizers", "equal_bits_sparse_ratio": "quantizers",
    "PathScan": "pqi", "path_scan": "pqi", "pqi": "pqi", "quadrature": "pqi", "taylor_estimates": "pqi",
    "top_share": "pqi",
    "DenseSparse": "requant", "ReQuantConfig": "requant", "ReQuantResult": "requant", "requant": "requant",
    "dense_and_sparse": "requant", "select_per_layer": "requant", "allocate": "requant",
    "SparseDenseLinear": "layers", "convert": "layers", "restore": "layers", "to_linear": "layers",
    "TargetModel": "lm", "hf_target": "lm", "tiny_target": "lm",
    "quantize_to_dir": "export", "load_quantized": "export", "perplexity_report": "export",
    "reproduce": "experiment", "default_config": "experiment",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f"paperlab.requant.{_API[name]}"), name)
    raise AttributeError(f"module 'paperlab.requant' has no attribute {name!r}")
