"""Hierarchical routing: selection properties, trainable router, batched == per-expert loop, causality."""

import pytest
import torch

from paperlab.core.transformer import Rotary, TransformerConfig
from paperlab.uoe.experiment import future_leak
from paperlab.uoe.model import UoEConfig, build_model
from paperlab.uoe.moe import TopKMoE
from paperlab.uoe.routing import hierarchical_route, load_balancing_loss
from paperlab.uoe.smha import SelectiveMultiHeadAttention
from paperlab.uoe.uome import UnionOfMLPExperts, UoMEExpertSelection


def test_hierarchical_selection_properties():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(3, 20, 4, generator=g), -1)
    r = hierarchical_route(probs, top_k=2, capacity=0.5)
    assert r.index.shape == (4, 3, 10)
    chosen = torch.zeros(3, 20, 4, dtype=torch.bool).scatter_(-1, probs.topk(2, -1).indices, True)
    assert torch.equal(r.chosen, chosen)
    for e in range(4):
        for b in range(3):
            idx, ok = r.index[e, b], r.valid[e, b]
            sel = idx[ok]
            assert torch.all(sel[1:] > sel[:-1])                      # sequence order kept
            assert torch.all(chosen[b, sel, e])                       # only tokens that chose e are valid
            choosers = chosen[b, :, e].nonzero().flatten()
            if len(choosers) <= 10:                                   # everyone fits
                assert set(sel.tolist()) == set(choosers.tolist())
            else:                                                     # the C best choosers are kept
                best = probs[b, choosers, e].topk(10).indices
                assert set(sel.tolist()) == set(choosers[best].tolist())
            assert torch.all(r.weight[e, b][~ok] == 0)


def test_capacity_none_keeps_every_selection():
    layer = UnionOfMLPExperts(16, 32, n_experts=4, top_k=2, capacity=None)
    layer(torch.randn(2, 12, 16))
    assert layer.router.last_kept == 1.0
    layer = UnionOfMLPExperts(16, 32, n_experts=4, top_k=2, capacity=0.25)
    layer(torch.randn(2, 12, 16))
    assert layer.router.last_kept < 1.0


@pytest.mark.parametrize("gate", ["straight_through", "multiply"])
def test_router_gets_gradient(gate):
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=16)
    model = build_model("uoe", cfg, UoEConfig(gate=gate))
    idx = torch.randint(0, 40, (2, 16))
    model(idx, idx)[1].backward()
    for block in model.blocks:
        for router in (block.attn.router, block.mlp.router):
            assert router.w_r.weight.grad is not None and router.w_r.weight.grad.abs().sum() > 0


def test_official_gate_gives_router_no_gradient():
    cfg = TransformerConfig(vocab_size=40, d_model=32, n_layers=1, n_heads=4, d_ff=64, max_seq_len=16)
    model = build_model("uoe", cfg, UoEConfig(gate="none"))
    idx = torch.randint(0, 40, (2, 16))
    model(idx, idx)[1].backward()
    g = model.blocks[0].mlp.router.w_r.weight.grad
    assert g is None or g.abs().sum() == 0


@pytest.mark.parametrize("rope_positions", ["compressed", "original"])
@pytest.mark.parametrize("capacity", [0.5, None])
def test_batched_equals_per_expert_loop(capacity, rope_positions):
    torch.manual_seed(0)
    x = torch.randn(2, 12, 32, dtype=torch.float64, requires_grad=True)
    rope = Rotary(8, 12).double()
    smha = SelectiveMultiHeadAttention(32, 4, capacity=capacity, rope_positions=rope_positions).double()
    y_b = smha(x, rope)
    smha.batched = False
    y_l = smha(x, rope)
    assert torch.allclose(y_b, y_l, atol=1e-12, rtol=0)
    uome = UnionOfMLPExperts(32, 64, capacity=capacity).double()
    y_b = uome(x)
    uome.batched = False
    y_l = uome(x)
    assert torch.allclose(y_b, y_l, atol=1e-12, rtol=0)
    g_b = torch.autograd.grad(y_b.sum(), x)[0]
    uome.batched = True
    g_l = torch.autograd.grad(uome(x).sum(), x)[0]
    assert torch.allclose(g_b, g_l, atol=1e-12, rtol=0)


def test_expert_selection_routes_whole_sequences():
    torch.manual_seed(0)
    layer = UoMEExpertSelection(16, 32, n_experts=4, top_k=2)
    x = torch.randn(6, 10, 16)
    y = layer(x)
    assert layer.last_share == 3 / 6                        # ceil(k B / E) = 3 sequences per expert
    # sequence b's output is the sum of the experts that kept it, each applied to all of b's tokens
    r = hierarchical_route(torch.softmax(layer.w_r(x.mean(1)), -1)[None], 2, 3)
    per_expert = [layer.experts.experts_loop([x[b]] * 4) for b in range(6)]
    ref = torch.zeros_like(y)
    for e in range(4):
        for slot, b in enumerate(r.index[e, 0].tolist()):
            if r.valid[e, 0, slot]:
                ref[b] += per_expert[b][e]
    assert torch.allclose(y, ref, atol=1e-5)


def test_topk_moe_matches_explicit_mixture_and_balances():
    torch.manual_seed(0)
    moe = TopKMoE(16, 24, n_experts=4, top_k=2)
    x = torch.randn(2, 8, 16)
    y = moe(x)
    probs = torch.softmax(moe.w_r(x), -1)
    p, i = probs.topk(2, -1)
    g = p / p.sum(-1, keepdim=True)
    ref = torch.zeros_like(x)
    for b in range(2):
        for t in range(8):
            for j in range(2):
                e = int(i[b, t, j])
                ref[b, t] += g[b, t, j] * moe.experts.experts_loop([x[b, t][None]] * 4)[e][0]
    assert torch.allclose(y, ref, atol=1e-5)
    assert moe.aux_loss is not None and moe.aux_loss > 0      # training mode: load balancing is on
    uniform = torch.full((10, 4), 0.25)
    chosen = torch.zeros(10, 4, dtype=torch.bool)
    chosen[torch.arange(10), torch.arange(10) % 4] = True
    chosen[torch.arange(10), (torch.arange(10) + 1) % 4] = True
    assert abs(float(load_balancing_loss(uniform, chosen)) - 1.0) < 1e-6


def test_future_leak_zero_for_causal_routing_positive_with_capacity_drops():
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=32)
    idx = torch.randint(0, 40, (4, 32))
    assert future_leak(build_model("dense", cfg), idx) < 1e-5
    assert future_leak(build_model("uoe", cfg, UoEConfig(attn_capacity=None, mlp_capacity=None)), idx) < 1e-5
    assert future_leak(build_model("uoe", cfg, UoEConfig(attn_capacity=0.25, mlp_capacity=0.25)), idx) > 1e-4


def test_filler_tokens_fill_every_slot_and_are_added():
    """Official UoME: each expert computes exactly C tokens; when fewer chose it, other tokens fill the slots
    and their outputs are added too (unlike padding)."""
    torch.manual_seed(0)
    layer = UnionOfMLPExperts(16, 32, n_experts=4, top_k=2, capacity=0.5, filler=True).double()
    padded = UnionOfMLPExperts(16, 32, n_experts=4, top_k=2, capacity=0.5, filler=False).double()
    padded.load_state_dict(layer.state_dict())
    x = torch.randn(3, 20, 16, dtype=torch.float64)
    r = layer.router(x)
    assert bool(r.used.all()) and r.index.shape == (4, 3, 10)
    for e in range(4):
        for b in range(3):
            assert torch.all(r.index[e, b, 1:] > r.index[e, b, :-1])          # sequence order
            choosers = r.chosen[b, :, e].nonzero().flatten()
            if len(choosers) < 10:          # all choosers kept, the rest are the best-scoring others
                sel = set(r.index[e, b].tolist())
                assert set(choosers.tolist()) <= sel
                others = [t for t in range(20) if t not in set(choosers.tolist())]
                best = sorted(others, key=lambda t: -float(r.probs[b, t, e].detach()))[:10 - len(choosers)]
                assert sel - set(choosers.tolist()) == set(best)
    y_fill, y_pad = layer(x), padded(x)
    assert layer.router.last_filled > 0 and padded.router.last_filled == 0
    # the difference is exactly the fillers' expert outputs
    ref = torch.zeros_like(x)
    for e in range(4):
        for b in range(3):
            for t in r.index[e, b][~r.valid[e, b]].tolist():
                ref[b, t] += layer.experts.experts_loop([x[b, t][None]] * 4)[e][0]
    assert torch.allclose(y_fill - y_pad, ref, atol=1e-12)
    layer.batched = False
    assert torch.allclose(layer(x), y_fill, atol=1e-12)


def test_paper_routing_leaks_and_causal_routing_does_not():
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=32)
    idx = torch.randint(0, 40, (4, 32))
    assert future_leak(build_model("uoe", cfg, UoEConfig(uome_d_ff_mult=2)), idx) > 1e-4      # fillers
    assert future_leak(build_model("uoe", cfg, UoEConfig(uome_d_ff_mult=2, mlp_capacity=None)), idx) < 1e-5
    assert future_leak(build_model("smha", cfg), idx) < 1e-5                  # SMHA dropping nothing
