"""Counted FLOPs follow the selection ratio; full selection costs the dense layer plus the routing overhead."""

import pytest
import torch

from paperlab.core import flops as fl
from paperlab.core.transformer import CausalSelfAttention, SwiGLU, TransformerConfig
from paperlab.uoe.model import build_model
from paperlab.uoe.moe import TopKMoE
from paperlab.uoe.smha import SelectiveMultiHeadAttention
from paperlab.uoe.uome import UnionOfMLPExperts

CFG = TransformerConfig(vocab_size=50, d_model=64, n_layers=2, n_heads=8, d_ff=128, max_seq_len=64)
T = 64


def test_full_selection_costs_dense_plus_routing():
    D, H, E = 64, 8, 4
    smha = SelectiveMultiHeadAttention(D, H, top_k=H, capacity=1.0)
    router = fl.linear_flops(D, H) + fl.SOFTMAX_PER_SCORE * H
    assert smha.flops_per_token(T) == pytest.approx(CausalSelfAttention(CFG).flops_per_token(T) + router + 2 * H * D)
    uome = UnionOfMLPExperts(D, 128, n_experts=E, top_k=E, capacity=1.0)
    router = fl.linear_flops(D, E) + fl.SOFTMAX_PER_SCORE * E
    assert uome.flops_per_token(T) == pytest.approx(SwiGLU(CFG).flops_per_token(T) + router + 2 * E * D)


@pytest.mark.parametrize("c", [0.25, 0.5, 0.75])
def test_flops_scale_with_selection_ratio(c):
    D, H = 64, 8
    full = SelectiveMultiHeadAttention(D, H, capacity=1.0)
    part = SelectiveMultiHeadAttention(D, H, capacity=c)
    router = full.router.flops_per_token(T)
    C = c * T
    Dh = D // H
    # projections (+RoPE, gate, scatter) scale with C/T; the score matrix with (C/T) * (C+1)/(T+1)
    per_token_proj = fl.linear_flops(D, 3 * Dh) + fl.rope_flops(2 * Dh) + fl.linear_flops(Dh, D) + 2 * D
    expect = router + H * (C / T) * (per_token_proj + fl.attention_core_flops(1, Dh, (C + 1) / 2))
    assert part.flops_per_token(T) == pytest.approx(expect)
    u_full = UnionOfMLPExperts(D, 128, capacity=1.0)
    u_part = UnionOfMLPExperts(D, 128, capacity=c)
    r = u_full.router.flops_per_token(T)
    assert (u_part.flops_per_token(T) - r) == pytest.approx(c * (u_full.flops_per_token(T) - r))


def test_capacity_none_counts_the_measured_capacity():
    layer = UnionOfMLPExperts(64, 128, n_experts=4, top_k=2, capacity=None)
    layer(torch.randn(2, T, 64))
    C = layer.router.last_capacity
    assert T // 2 <= C <= T
    r = layer.router.flops_per_token(T)
    assert layer.flops_per_token(T) - r == pytest.approx(4 * C / T * (layer.experts.expert_flops() + 2 * 64))


def test_model_ordering_and_moe_cost():
    f = {v: build_model(v, CFG).flops_per_token(T) for v in ("dense", "moe", "uome", "smha", "uoe")}
    assert f["uoe"] < f["uome"] < f["dense"] and f["uoe"] < f["smha"] < f["dense"]
    moe = TopKMoE(64, 64, n_experts=4, top_k=2)        # two experts of d_ff/2: one dense MLP of compute
    dense_mlp = SwiGLU(CFG).flops_per_token(T)
    assert moe.flops_per_token(T) == pytest.approx(dense_mlp + moe.w_r.out_features * (2 * 64 + 5) + 2 * 2 * 64)
