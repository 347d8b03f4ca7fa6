r"""HybridNorm: Towards Stable and Efficient Transformer Training via Hybrid Normalization.

Zhuo, Zeng, Wang, Zhang, Yang, Li, Zhou, Ma (2025), https://arxiv.org/abs/2503.04598 ,
official code ``BryceZhuo/HybridNorm`` (OLMo-2 / OLMoE forks).

Where the layer norm sits in a transformer block decides how it trains. **Post-Norm** normalises the
residual stream after each sub-layer,

    X' = Norm(X + Attn(X)),          X_{l+1} = Norm(X' + FFN(X')),

which regularises well but weakens the identity path, so deep Post-Norm stacks need long warm-ups and
diverge at high learning rates. **Pre-Norm** normalises only the sub-layer inputs,

    X' = X + Attn(Norm(X)),          X_{l+1} = X' + FFN(Norm(X')),

which keeps a clean identity path and trains stably, but the stream grows with depth and later layers
contribute less. **HybridNorm** takes one from each:

- *attention*: no norm on ``X``; instead Q, K and V are each normalised (per head, with a learnable
  gain, before RoPE) — QKV-Norm:

      attn_QKV(Q, K, V) = softmax( Norm(Q) Norm(K)^T / sqrt(d_k) ) Norm(V),
      X' = X + W_O attn_QKV(X W_Q, X W_K, X W_V);

- *FFN*: Post-Norm, the residual stream itself passes through the norm:

      X_{l+1} = FFN(Norm(X')) + Norm(X').

The final norm before the LM head is kept. **HybridNorm\*** treats the first block specially: it adds a
pre-norm on ``X`` before the (QKV-normed) attention and uses a Pre-Norm FFN ``X' + FFN(Norm(X'))``.
Both use Megatron **SmallInit**: weights ~ N(0, 2/(5d)), output projections scaled by ``1/sqrt(2L)``.

Claims tested by ``paperlab hybridnorm run``:

- ``hybridnorm_lower_loss``: at the deeper setting, HybridNorm or HybridNorm* reaches a lower
  validation loss than Pre-Norm after the same number of steps and tokens;
- ``hybridnorm_stable_high_lr``: HybridNorm (or HybridNorm*) trains stably at a learning rate at which
  Post-Norm diverges.

Public API::

    from paperlab.hybridnorm import VARIANTS, build_model, reproduce
    model = build_model("hybrid", TransformerConfig(vocab_size=65, d_model=128, n_layers=24, n_heads=4,
                                                    d_ff=344, small_init=True))

``blocks.py`` has the five placements (``pre``, ``post``, ``qknorm``, ``hybrid``, ``hybrid_star``) on
the shared :mod:`paperlab.core.transformer`; ``experiment.py`` trains them with
:mod:`paperlab.core.trainer` and writes the report.
"""

__all__ = ["LABELS", "VARIANTS", "HybridNormBlock", "PostNormBlock", "build_model", "reproduce"]


def __getattr__(name: str):
    # lazy: ``paperlab.hybridnorm.cli`` must import without torch
    if name == "reproduce":
        from paperlab.hybridnorm.experiment import reproduce

        return reproduce
    if name in __all__:
        from paperlab.hybridnorm import blocks

        return getattr(blocks, name)
    raise AttributeError(f"module 'paperlab.hybridnorm' has no attribute {name!r}")
