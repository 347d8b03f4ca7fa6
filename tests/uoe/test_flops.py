"""Counted FLOPs follow the selection ratio; full selection costs the dense layer plus the routing overhead."""

import pytest
import torch

from paperlab.core import flops as fl
from paperlab.core.transformer import CausalSelfAttention, SwiGLU, TransformerConfig
from paperlab.uoe.model import UoEConfig, build_model
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


def test_dropless_uome_counts_the_selected_pairs():
    """Dropless UoME: k expert passes per token (a top-k MoE's cost), not the padded buffers."""
    layer = UnionOfMLPExperts(64, 128, n_experts=4, top_k=2, capacity=None)
    layer(torch.randn(2, T, 64))
    assert layer.router.last_capacity > T // 2          # the batched buffers are padded beyond k T / E ...
    r = layer.router.flops_per_token(T)                  # ... but only the selected pairs are counted
    assert layer.flops_per_token(T) - r == pytest.approx(2 * (layer.experts.expert_flops() + 2 * 64))


def test_dropless_smha_counts_measured_head_loads_under_its_bound():
    D, H = 64, 8
    smha = SelectiveMultiHeadAttention(D, H, capacity=None)          # top-4 of 8 heads, nothing dropped
    dense = CausalSelfAttention(CFG).flops_per_token(T)
    router = smha.router.flops_per_token(T)
    bound = smha.flops_per_token(T)                                   # before any forward: k heads x all tokens
    assert bound - router == pytest.approx(0.5 * (dense + 2 * H * D))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, T, D, generator=g)
    from paperlab.core.transformer import Rotary
    smha(x, Rotary(D // H, T))
    n = smha.router.last_routed
    assert n == pytest.approx(4.0)                                    # every token reached its 4 heads
    measured = smha.flops_per_token(T)
    assert router < measured <= bound
    # the score part: sum over heads of n_h (n_h + 1) / 2 causal pairs, per token
    Dh = D // H
    per_slot = fl.linear_flops(D, 3 * Dh) + fl.rope_flops(2 * Dh) + fl.linear_flops(Dh, D) + 2 * D
    pairs = smha.router.last_pairs
    assert measured == pytest.approx(router + 4 * per_slot + pairs * fl.attention_core_flops(1, Dh, 1))
    assert pairs < 4 * (T + 1) / 2


def test_model_ordering_and_moe_cost():
    f = {v: build_model(v, CFG).flops_per_token(T) for v in ("dense", "moe", "uome", "smha", "uoe")}
    # the default routing is the official code's: SMHA dropping nothing (bounded by k/H of dense
    # attention before any forward), UoME at T/2 with fillers (half the dense MLP)
    assert f["uoe"] < f["uome"] < f["dense"] and f["uoe"] < f["smha"] < f["dense"]
    moe = TopKMoE(64, 64, n_experts=4, top_k=2)        # two experts of d_ff/2: one dense MLP of compute
    dense_mlp = SwiGLU(CFG).flops_per_token(T)
    assert moe.flops_per_token(T) == pytest.approx(dense_mlp + moe.w_r.out_features * (2 * 64 + 5) + 2 * 2 * 64)


@pytest.mark.parametrize(("vocab", "params"), [
    (137, 1_339_648),     # the quick tier: WikiText-2 characters (the "1.34M" MoE)
    (283, 1_358_336),     # the figure: the same widths with a 283-symbol vocabulary
])
def test_uome_at_twice_d_ff_has_the_moe_parameters_and_flops_exactly(vocab, params):
    # the quick widths: d 128, 4 layers, 8 heads, d_ff 344
    BUDGET = TransformerConfig(vocab_size=vocab, d_model=128, n_layers=4, n_heads=8, d_ff=344, max_seq_len=128)
    moe = build_model("moe", BUDGET)
    uome = build_model("uome", BUDGET, UoEConfig(uome_d_ff_mult=2))
    dropless = build_model("uome", BUDGET, UoEConfig(uome_d_ff_mult=2, mlp_capacity=None))
    n = [sum(p.numel() for p in m.parameters()) for m in (moe, uome, dropless)]
    assert n == [params] * 3
    assert sum(p.numel() for p in build_model("uome", BUDGET).parameters()) < params   # 1x: fewer
    mlp = [sum(b.mlp.flops_per_token(128) for b in m.blocks) for m in (moe, uome, dropless)]
    assert mlp[1] == pytest.approx(mlp[0], rel=1e-12) and mlp[2] == pytest.approx(mlp[0], rel=1e-12)
    # UoE adds SMHA's routers (d x H per layer) and computes fewer attention FLOPs
    uoe = build_model("uoe", BUDGET, UoEConfig(uome_d_ff_mult=2))
    assert sum(p.numel() for p in uoe.parameters()) == params + 4 * 128 * 8
    assert uoe.flops_per_token(128) < moe.flops_per_token(128)
