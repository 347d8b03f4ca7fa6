"""The five models compared, all built from the shared :class:`paperlab.core.transformer.Transformer`
by swapping its attention and/or MLP (``attn_factory`` / ``mlp_factory``):

=========  ======================  ==================================
variant    attention               MLP
=========  ======================  ==================================
``dense``  multi-head (core)       SwiGLU (core)
``moe``    multi-head (core)       top-k MoE with load balancing
``uome``   multi-head (core)       UoME, data selection (Eq. 6)
``smha``   SMHA (Eq. 5)            SwiGLU (core)
``uoe``    SMHA (Eq. 5)            UoME, data selection (Eq. 6)
=========  ======================  ==================================

Budget matching: the top-``k`` MoE has ``E`` experts of ``d_ff/2`` hidden units (top-2 of 4 costs one dense
MLP per token, with twice its parameters). UoME with ``uome_d_ff_mult=2`` splits a ``2 d_ff`` MLP into the
same ``E`` experts of ``d_ff/2``: the same parameters as that MoE, exactly, and — at capacity ``T/2`` with
fillers, or dropless — exactly its expert passes per token.
"""

from __future__ import annotations

from dataclasses import dataclass

from paperlab.core.transformer import Transformer, TransformerConfig
from paperlab.uoe.moe import TopKMoE
from paperlab.uoe.smha import SelectiveMultiHeadAttention
from paperlab.uoe.uome import UnionOfMLPExperts

VARIANTS = ("dense", "moe", "uome", "smha", "uoe")


@dataclass
class UoEConfig:
    """Routing hyper-parameters. Defaults: the official code's routing — SMHA top-H/2 heads per token,
    dropping nothing (``SMHA_v3``: buffers as long as the busiest head); UoME 4 experts, top-2 per token,
    each expert computing exactly T/2 tokens with filler tokens (``UoME_DS``)."""

    attn_top_k: int | None = None          # heads per token; None = n_heads // 2
    attn_capacity: float | None = None     # tokens per head, fraction of T (None: no selection dropped)
    mlp_experts: int = 4
    mlp_top_k: int = 2
    mlp_capacity: float | None = 0.5       # tokens per expert, fraction of T (None: dropless, causal)
    mlp_filler: bool = True                # free slots hold filler tokens that are computed (official)
    uome_d_ff_mult: int = 1                # UoME hidden size = uome_d_ff_mult * d_ff (2: the MoE's parameters)
    gate: str = "straight_through"         # "straight_through" | "multiply" | "none" (official)
    rope_positions: str = "compressed"     # "compressed" (official) | "original"
    moe_experts: int = 4
    moe_top_k: int = 2
    moe_d_expert: int | None = None        # None = d_ff // 2: top-2 of 4 then costs one dense MLP
    moe_aux_weight: float = 0.01


def smha_factory(ucfg: UoEConfig):
    def make(config: TransformerConfig, layer_idx: int) -> SelectiveMultiHeadAttention:
        if config.kv_heads != config.n_heads:
            raise ValueError("SMHA needs n_kv_heads == n_heads")
        return SelectiveMultiHeadAttention(config.d_model, config.n_heads, ucfg.attn_top_k, ucfg.attn_capacity,
                                           ucfg.gate, ucfg.rope_positions, config.dropout)
    return make


def uome_factory(ucfg: UoEConfig):
    def make(config: TransformerConfig, layer_idx: int) -> UnionOfMLPExperts:
        return UnionOfMLPExperts(config.d_model, ucfg.uome_d_ff_mult * config.d_ff, ucfg.mlp_experts,
                                 ucfg.mlp_top_k, ucfg.mlp_capacity, ucfg.gate,
                                 ucfg.mlp_filler and ucfg.mlp_capacity is not None)
    return make


def moe_factory(ucfg: UoEConfig):
    def make(config: TransformerConfig, layer_idx: int) -> TopKMoE:
        d_expert = ucfg.moe_d_expert or config.d_ff // 2
        return TopKMoE(config.d_model, d_expert, ucfg.moe_experts, ucfg.moe_top_k, ucfg.moe_aux_weight)
    return make


def build_model(variant: str, config: TransformerConfig, ucfg: UoEConfig | None = None) -> Transformer:
    """A :class:`Transformer` with the attention/MLP of ``variant`` (one of :data:`VARIANTS`)."""
    ucfg = ucfg or UoEConfig()
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    attn = smha_factory(ucfg) if variant in ("smha", "uoe") else None
    mlp = {"moe": moe_factory(ucfg), "uome": uome_factory(ucfg), "uoe": uome_factory(ucfg)}.get(variant)
    return Transformer(config, attn_factory=attn, mlp_factory=mlp)
