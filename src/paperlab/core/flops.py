"""Analytic forward FLOPs per token of the shared transformer and of any plugged block.

Conventions (every count is *per token of a length-``T`` sequence, forward pass only*; a training
step costs about 3x the forward):

- a matrix multiply costs 2 FLOPs per multiply-add: ``Linear(n_in, n_out)`` is ``2 n_in n_out``;
- causal attention really compares query ``t`` (0-based) with keys ``0..t``, so a token sees
  ``(T + 1) / 2`` keys on average: ``QK^T`` and ``softmax . V`` cost ``2 Dh (T+1)/2`` each per head;
- element-wise work is counted too, because the norm placements differ exactly there:
  RMSNorm ``4`` FLOPs per element (square, sum, scale, gain), LayerNorm ``6`` (also mean and centring),
  RoPE ``3`` per rotated element (two products and a sum), softmax ``5`` per score (scale, max-subtract,
  exp, sum, divide), SwiGLU activation ``6`` per hidden unit (SiLU 5, gate product 1), residual add ``1``;
- the embedding lookup is a gather (0 FLOPs); the LM head is ``2 d V``.

Every attention/MLP/block module reports ``flops_per_token(seq_len)``; routed layers (Union of Experts,
MoE) count what they actually compute, possibly from statistics of their last forward.
:func:`model_flops_per_token` sums them with the embeddings, final norm and head.
"""

from __future__ import annotations

from typing import Any

RMSNORM_PER_ELEMENT = 4
LAYERNORM_PER_ELEMENT = 6
ROPE_PER_ELEMENT = 3
SOFTMAX_PER_SCORE = 5
SWIGLU_PER_UNIT = 6
RESIDUAL_ADD_PER_ELEMENT = 1


def linear_flops(n_in: int, n_out: int) -> float:
    """``y = W x`` with ``W[n_out, n_in]``: ``2 n_in n_out``."""
    return 2.0 * n_in * n_out


def norm_flops(dim: int, layer_norm: bool = False) -> float:
    """One RMSNorm (or LayerNorm) over ``dim`` elements."""
    return float((LAYERNORM_PER_ELEMENT if layer_norm else RMSNORM_PER_ELEMENT) * dim)


def rope_flops(n_elements: int) -> float:
    """RoPE on ``n_elements`` query/key elements of one token."""
    return float(ROPE_PER_ELEMENT * n_elements)


def mean_causal_keys(seq_len: int) -> float:
    """Average number of keys a query attends to under a causal mask: ``(T + 1) / 2``."""
    return (seq_len + 1) / 2.0


def attention_core_flops(n_heads: int, head_dim: int, n_keys: float) -> float:
    """Scores ``QK^T``, softmax and ``softmax . V`` for one query over ``n_keys`` keys, all heads."""
    return n_heads * (2 * 2.0 * head_dim * n_keys + SOFTMAX_PER_SCORE * n_keys)


def causal_attention_flops(n_heads: int, head_dim: int, seq_len: int) -> float:
    """:func:`attention_core_flops` with the causal mean ``(T+1)/2`` keys per query."""
    return attention_core_flops(n_heads, head_dim, mean_causal_keys(seq_len))


def swiglu_act_flops(d_ff: int) -> float:
    """``SiLU(W_1 x) * W_3 x`` on ``d_ff`` hidden units."""
    return float(SWIGLU_PER_UNIT * d_ff)


def block_flops(block: Any, seq_len: int, n_residual_adds: int = 2) -> float:
    """A block's FLOPs: its children's ``flops_per_token`` (attention, MLP, norms) + residual adds."""
    f = sum(child.flops_per_token(seq_len) for child in block.children() if hasattr(child, "flops_per_token"))
    return f + n_residual_adds * RESIDUAL_ADD_PER_ELEMENT * block.d_model


def model_flops_breakdown(model: Any, seq_len: int) -> dict[str, float]:
    """Forward FLOPs per token by part: ``blocks`` (with each block's ``attention``/``mlp`` share),
    ``final_norm``, ``lm_head`` and ``total``."""
    c = model.config
    out = {"attention": 0.0, "mlp": 0.0, "blocks": 0.0}
    for block in model.blocks:
        out["blocks"] += block.flops_per_token(seq_len) if hasattr(block, "flops_per_token") \
            else block_flops(block, seq_len)
        if hasattr(block, "attn") and hasattr(block.attn, "flops_per_token"):
            out["attention"] += block.attn.flops_per_token(seq_len)
        if hasattr(block, "mlp") and hasattr(block.mlp, "flops_per_token"):
            out["mlp"] += block.mlp.flops_per_token(seq_len)
    out["norms_and_residuals"] = out["blocks"] - out["attention"] - out["mlp"]
    out["final_norm"] = model.norm.flops_per_token(seq_len) if hasattr(model.norm, "flops_per_token") else 0.0
    out["embedding"] = 0.0
    out["lm_head"] = linear_flops(c.d_model, c.vocab_size)
    out["total"] = out["blocks"] + out["final_norm"] + out["embedding"] + out["lm_head"]
    return out


def model_flops_per_token(model: Any, seq_len: int) -> float:
    """Forward FLOPs per token of a :class:`paperlab.core.transformer.Transformer` (any plugged parts)."""
    return model_flops_breakdown(model, seq_len)["total"]


def train_flops_per_token(model: Any, seq_len: int) -> float:
    """Forward + backward: the usual ``3 x forward`` estimate."""
    return 3.0 * model_flops_per_token(model, seq_len)
