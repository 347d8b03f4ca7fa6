"""The five norm placements compared in the HybridNorm paper (its Fig. 1 and Sec. 3, "HybridNorm").

Notation: ``X`` is a block's input, ``X'`` the residual stream after attention, ``Norm`` an RMSNorm
with a learnable gain, ``Attn`` causal multi-head attention with RoPE, ``FFN`` the SwiGLU MLP.

=============  ==============================================  ===============================================
variant        attention sub-layer                             FFN sub-layer
=============  ==============================================  ===============================================
``pre``        ``X' = X + Attn(Norm(X))``                      ``X_{l+1} = X' + FFN(Norm(X'))``
``post``       ``X' = Norm(X + Attn(X))``                      ``X_{l+1} = Norm(X' + FFN(X'))``
``qknorm``     ``X' = X + Attn_QK(Norm(X))``                   ``X_{l+1} = X' + FFN(Norm(X'))``
``hybrid``     ``X' = X + Attn_QKV(X)``                        ``X_{l+1} = FFN(Norm(X')) + Norm(X')``
``hybrid_star`` block 0 ``X' = X + Attn_QKV(Norm(X))``,         block 0 ``X_{l+1} = X' + FFN(Norm(X'))``,
               other blocks as ``hybrid``                       other blocks as ``hybrid``
=============  ==============================================  ===============================================

``Attn_QK`` normalises Q and K, ``Attn_QKV`` normalises Q, K and V — each per head over ``head_dim``,
*before* RoPE: ``attn_QKV(Q, K, V) = softmax(N(Q) N(K)^T / sqrt(d_k)) N(V)``.
The attention module itself is the shared :class:`paperlab.core.transformer.CausalSelfAttention`
with ``qk_norm`` / ``v_norm`` switched on; the blocks below only place the norms.

A Post-Norm stack ends in a normalised stream, so it has no extra final norm; every other variant
keeps the final norm before the LM head.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from paperlab.core import flops as fl
from paperlab.core.transformer import (
    CausalSelfAttention,
    PreNormBlock,
    Rotary,
    SwiGLU,
    Transformer,
    TransformerConfig,
    make_norm,
)

VARIANTS = ("pre", "post", "qknorm", "hybrid", "hybrid_star")
LABELS = {"pre": "Pre-Norm", "post": "Post-Norm", "qknorm": "QK-Norm", "hybrid": "HybridNorm",
          "hybrid_star": "HybridNorm*"}


class PostNormBlock(nn.Module):
    """Post-Norm (Vaswani et al. 2017): ``X' = Norm(X + Attn(X))``, ``X_{l+1} = Norm(X' + FFN(X'))``."""

    def __init__(self, config: TransformerConfig, layer_idx: int, attn: nn.Module, mlp: nn.Module):
        super().__init__()
        self.d_model = config.d_model
        self.attn, self.attn_norm = attn, make_norm(config)
        self.mlp, self.mlp_norm = mlp, make_norm(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, rope: Rotary) -> torch.Tensor:
        x = self.attn_norm(x + self.drop(self.attn(x, rope)))
        return self.mlp_norm(x + self.mlp(x))

    def flops_per_token(self, seq_len: int) -> float:
        return fl.block_flops(self, seq_len)


class HybridNormBlock(nn.Module):
    """HybridNorm: QKV-Norm attention with no pre-norm, then a Post-Norm FFN.

    ``X' = X + Attn_QKV(X)`` ;  ``X_{l+1} = FFN(Norm(X')) + Norm(X')``

    The residual stream itself goes through ``Norm`` (that is the "post" part); ``attn`` must
    normalise Q, K and V per head (it is built with ``qk_norm=True, v_norm=True``).
    """

    def __init__(self, config: TransformerConfig, layer_idx: int, attn: nn.Module, mlp: nn.Module):
        super().__init__()
        self.d_model = config.d_model
        self.attn = attn
        self.mlp_norm, self.mlp = make_norm(config), mlp
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, rope: Rotary) -> torch.Tensor:
        # X' = X + Attn_QKV(X)        (no norm on X)
        x = x + self.drop(self.attn(x, rope))
        # X_{l+1} = FFN(Norm(X')) + Norm(X')
        h = self.mlp_norm(x)
        return h + self.mlp(h)

    def flops_per_token(self, seq_len: int) -> float:
        return fl.block_flops(self, seq_len)


def qkv_attention(config: TransformerConfig, layer_idx: int) -> CausalSelfAttention:
    """Attention with per-head RMSNorm on Q, K and V before RoPE (HybridNorm's QKV-Norm)."""
    return CausalSelfAttention(config, layer_idx, qk_norm=True, v_norm=True)


def qk_attention(config: TransformerConfig, layer_idx: int) -> CausalSelfAttention:
    """Attention with per-head RMSNorm on Q and K before RoPE (QK-Norm)."""
    return CausalSelfAttention(config, layer_idx, qk_norm=True)


def plain_attention(config: TransformerConfig, layer_idx: int) -> CausalSelfAttention:
    return CausalSelfAttention(config, layer_idx)


def factories(variant: str):
    """``(attn_factory, block_factory)`` for a variant name (see :data:`VARIANTS`)."""
    if variant == "pre":
        return plain_attention, PreNormBlock
    if variant == "post":
        return plain_attention, PostNormBlock
    if variant == "qknorm":
        return qk_attention, PreNormBlock
    if variant == "hybrid":
        return qkv_attention, HybridNormBlock
    if variant == "hybrid_star":
        # HybridNorm*: the first block keeps QKV-Norm *and* a pre-norm on X, with a Pre-Norm FFN
        def block(config, layer_idx, attn, mlp):
            cls = PreNormBlock if layer_idx == 0 else HybridNormBlock
            return cls(config, layer_idx, attn, mlp)
        return qkv_attention, block
    raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")


def build_model(variant: str, config: TransformerConfig) -> Transformer:
    """The shared :class:`Transformer` with ``variant``'s norm placement (SwiGLU MLP, RoPE)."""
    attn_factory, block_factory = factories(variant)
    if variant == "post":
        config = dataclasses.replace(config, final_norm=False)
    return Transformer(config, attn_factory=attn_factory, mlp_factory=SwiGLU, block_factory=block_factory)
