"""Exact equivalence: the decomposed MLP / attention with every expert and token selected is the dense layer,
forward and backward (float64)."""

import pytest
import torch

from paperlab.core.transformer import CausalSelfAttention, Rotary, SwiGLU, TransformerConfig
from paperlab.uoe.decompose import DecomposedMLP
from paperlab.uoe.model import UoEConfig, build_model
from paperlab.uoe.smha import SelectiveMultiHeadAttention
from paperlab.uoe.uome import UnionOfMLPExperts

CFG = TransformerConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=24)


def _x(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 24, 32, generator=g, dtype=torch.float64, requires_grad=True)


def _grads(module, x, out, upstream):
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.autograd.grad(out, [x, *params], upstream, allow_unused=True)


def test_decomposed_mlp_sums_to_dense_forward_and_backward():
    torch.manual_seed(0)
    dense = SwiGLU(CFG).double()
    dec = DecomposedMLP.from_dense(dense.w1.weight, dense.w3.weight, dense.w2.weight, n_experts=4)
    x = _x()
    up = torch.randn(3, 24, 32, dtype=torch.float64)
    y_d, y_e = dense(x), dec(x)
    assert torch.allclose(y_d, y_e, atol=1e-12, rtol=0)
    gx_d, g1, g3, g2 = _grads(dense, x, y_d, up)
    gx_e, g_in, g_out = _grads(dec, x, y_e, up)
    assert torch.allclose(gx_d, gx_e, atol=1e-12, rtol=0)
    # the experts' weight gradients are the column/row blocks of the dense gradients
    ref = DecomposedMLP.from_dense(g1, g3, g2, n_experts=4)
    assert torch.allclose(g_in, ref.w_in, atol=1e-12, rtol=0)
    assert torch.allclose(g_out, ref.w_out, atol=1e-12, rtol=0)


@pytest.mark.parametrize("gate", ["straight_through", "multiply", "none"])
def test_uome_all_selected_equals_dense_mlp(gate):
    torch.manual_seed(1)
    dense = SwiGLU(CFG).double()
    uome = UnionOfMLPExperts(32, 64, n_experts=4, top_k=4, capacity=1.0, gate=gate).double()
    uome.load_dense(dense)
    if gate == "multiply":      # the standard product equals the ungated sum only for uniform scores
        torch.nn.init.zeros_(uome.router.w_r.weight)
    x = _x(1)
    up = torch.randn_like(x)
    y_d, y_u = dense(x), uome(x)
    assert torch.allclose(y_d, y_u, atol=1e-12, rtol=0)
    gx_d = torch.autograd.grad(y_d, x, up)[0]
    gx_u, g_router = torch.autograd.grad(y_u, [x, uome.router.w_r.weight], up, allow_unused=True)
    if gate == "none":          # no router path: the input gradient is the dense one
        assert g_router is None
        assert torch.allclose(gx_d, gx_u, atol=1e-12, rtol=0)
    else:                       # the router's scores add their own path to dL/dx
        assert g_router is not None and g_router.abs().sum() > 0


@pytest.mark.parametrize("rope_positions", ["compressed", "original"])
def test_smha_all_selected_equals_dense_attention(rope_positions):
    torch.manual_seed(2)
    dense = CausalSelfAttention(CFG).double()
    smha = SelectiveMultiHeadAttention(32, 4, top_k=4, capacity=1.0, rope_positions=rope_positions).double()
    smha.load_dense(dense)
    rope = Rotary(CFG.head_dim, CFG.max_seq_len).double()
    x = _x(2)
    up = torch.randn_like(x)
    y_d, y_s = dense(x, rope), smha(x, rope)
    assert torch.allclose(y_d, y_s, atol=1e-12, rtol=0)
    gx_d, gq, gk, gv, go = _grads(dense, x, y_d, up)
    gx_s, g_router, g_qkv, g_o = _grads(smha, x, y_s, up)
    # with the straight-through gate the router's scores add a term to dL/dx; compare the rest
    assert g_router is not None and g_router.abs().sum() > 0
    ref = SelectiveMultiHeadAttention(32, 4, top_k=4, capacity=1.0).double()
    ref.heads.load_dense(gq, gk, gv, go)
    assert torch.allclose(g_qkv, ref.heads.w_qkv, atol=1e-12, rtol=0)
    assert torch.allclose(g_o, ref.heads.w_o, atol=1e-12, rtol=0)
    smha.router.gate = "none"          # no router path: the input gradient is the dense one
    gx_none = torch.autograd.grad(smha(x, rope), x, up)[0]
    assert torch.allclose(gx_d, gx_none, atol=1e-12, rtol=0)


def test_whole_uoe_model_with_full_selection_is_the_dense_model():
    torch.manual_seed(3)
    dense = build_model("dense", CFG).double()
    full = UoEConfig(attn_top_k=4, attn_capacity=1.0, mlp_top_k=4, mlp_capacity=1.0)
    uoe = build_model("uoe", CFG, full).double()
    state = {k: v for k, v in dense.state_dict().items() if ".attn." not in k and ".mlp." not in k}
    uoe.load_state_dict(state, strict=False)
    for bd, bu in zip(dense.blocks, uoe.blocks, strict=True):
        bu.attn.load_dense(bd.attn)
        bu.mlp.load_dense(bd.mlp)
    idx = torch.randint(0, 50, (2, 24))
    ld, lu = dense(idx)[0], uoe(idx)[0]
    assert torch.allclose(ld, lu, atol=1e-10, rtol=0)
