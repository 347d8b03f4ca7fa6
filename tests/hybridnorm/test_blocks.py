"""Norm placements of the five block variants, checked on the real modules."""

import math

import pytest
import torch

from paperlab.core.transformer import PreNormBlock, RMSNorm, TransformerConfig
from paperlab.hybridnorm.blocks import VARIANTS, HybridNormBlock, PostNormBlock, build_model

CFG = TransformerConfig(vocab_size=40, d_model=32, n_layers=3, n_heads=4, d_ff=64, max_seq_len=16, small_init=True)


def rms(t: torch.Tensor) -> torch.Tensor:
    return t.pow(2).mean(-1).sqrt()


def randomise_gains(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, RMSNorm):
                m.weight.copy_(1 + 0.5 * torch.rand(m.weight.shape, generator=g))


def block_input(model, x):
    return model.tok_emb(x)


def test_hybridnorm_attention_sees_the_raw_stream_and_normalises_qkv_per_head_before_rope():
    torch.manual_seed(0)
    model = build_model("hybrid", CFG).eval()
    block = model.blocks[1]
    assert isinstance(block, HybridNormBlock) and not hasattr(block, "attn_norm")   # no attention pre-norm
    attn = block.attn
    assert attn.q_norm.weight.shape == (8,) and attn.v_norm.weight.shape == (8,)    # per head: over head_dim

    seen = {}
    block.attn.register_forward_hook(lambda m, args, out: seen.__setitem__("attn_in", args[0]))
    for name in ("q_norm", "k_norm", "v_norm"):
        getattr(attn, name).register_forward_hook(
            lambda m, args, out, name=name: seen.__setitem__(name, (args[0], out)))
    rope_inputs = []
    orig_apply = model.rope.apply
    model.rope.apply = lambda t: (rope_inputs.append(t), orig_apply(t))[1]

    x = torch.randint(0, 40, (2, 10))
    h = block_input(model, x)
    for b in model.blocks[:1]:
        h = b(h, model.rope)
    rope_inputs.clear()
    block(h, model.rope)
    assert torch.equal(seen["attn_in"], h)                  # attention input = the stream itself
    for name in ("q_norm", "k_norm", "v_norm"):
        inp, out = seen[name]
        assert inp.shape == (2, 10, 4, 8)                    # [B, T, heads, head_dim]
        assert torch.allclose(rms(out), torch.ones(2, 10, 4), atol=1e-4)
        assert not torch.allclose(rms(inp), torch.ones(2, 10, 4), atol=1e-2)
    # RoPE receives Q and K already normalised ([B, H, T, Dh] with unit RMS per head vector)
    assert len(rope_inputs) == 2
    for t in rope_inputs:
        assert t.shape == (2, 4, 10, 8)
        assert torch.allclose(rms(t), torch.ones(2, 4, 10), atol=1e-4)


def test_hybridnorm_ffn_is_post_norm_on_the_residual_stream():
    torch.manual_seed(0)
    model = build_model("hybrid", CFG).eval()
    randomise_gains(model)
    block = model.blocks[0]
    x = block_input(model, torch.randint(0, 40, (2, 10)))
    x_prime = x + block.attn(x, model.rope)                           # X' = X + Attn_QKV(X)
    n = block.mlp_norm(x_prime)
    expected = block.mlp(n) + n                                       # FFN(Norm(X')) + Norm(X')
    assert torch.allclose(block(x, model.rope), expected, atol=1e-6)
    # and it differs from a Pre-Norm FFN X' + FFN(Norm(X'))
    assert not torch.allclose(expected, x_prime + block.mlp(n), atol=1e-3)


def test_post_norm_block_output_is_normalised():
    torch.manual_seed(0)
    model = build_model("post", CFG).eval()
    block = model.blocks[0]
    assert isinstance(block, PostNormBlock)
    x = block_input(model, torch.randint(0, 40, (2, 10))) * 5
    y = block(x, model.rope)
    assert torch.allclose(rms(y), torch.ones(2, 10), atol=1e-4)      # Norm(X' + FFN(X')), gain 1
    with torch.no_grad():
        block.mlp_norm.weight.fill_(3.0)
    assert torch.allclose(rms(block(x, model.rope)), torch.full((2, 10), 3.0), atol=1e-3)
    assert isinstance(model.norm, torch.nn.Identity)                   # the stream is already normalised
    x_prime = block.attn_norm(x + block.attn(x, model.rope))           # X' = Norm(X + Attn(X))
    assert torch.allclose(block(x, model.rope), block.mlp_norm(x_prime + block.mlp(x_prime)), atol=1e-6)


def test_pre_norm_block_keeps_an_unnormalised_identity_path():
    torch.manual_seed(0)
    model = build_model("pre", CFG).eval()
    block = model.blocks[0]
    x = 3 * torch.randn(2, 10, 32)                                    # a stream with RMS ~3
    y = block(x, model.rope)
    assert block.attn.q_norm is None and block.attn.v_norm is None
    x_prime = x + block.attn(block.attn_norm(x), model.rope)
    assert torch.allclose(y, x_prime + block.mlp(block.mlp_norm(x_prime)), atol=1e-6)
    assert rms(y).mean() > 2.5                                         # not normalised: the stream passes through


def test_qknorm_normalises_q_and_k_but_not_v_and_keeps_pre_norm():
    model = build_model("qknorm", CFG)
    for b in model.blocks:
        assert isinstance(b, PreNormBlock)
        assert b.attn.q_norm is not None and b.attn.k_norm is not None and b.attn.v_norm is None


def test_hybridnorm_star_first_block_is_special():
    torch.manual_seed(0)
    model = build_model("hybrid_star", CFG).eval()
    first, rest = model.blocks[0], model.blocks[1:]
    assert isinstance(first, PreNormBlock) and first.attn.v_norm is not None     # pre-norm + QKV-norm
    assert all(isinstance(b, HybridNormBlock) for b in rest)
    x = block_input(model, torch.randint(0, 40, (2, 10)))
    x_prime = x + first.attn(first.attn_norm(x), model.rope)
    assert torch.allclose(first(x, model.rope), x_prime + first.mlp(first.mlp_norm(x_prime)), atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_trains_a_step_and_reports_flops(variant):
    torch.manual_seed(0)
    model = build_model(variant, CFG)
    x = torch.randint(0, 40, (2, 16))
    _, loss = model(x, torch.roll(x, -1, 1))
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert model.flops_per_token(16) > 0


def test_flops_differ_only_by_the_norms():
    f = {v: build_model(v, CFG).flops_per_token(16) for v in VARIANTS}
    d, dh, L = 32, 8, 3
    # per block: QKV-norm adds 3 x 4 heads x 4 dh, and drops the attention pre-norm (4 d)
    assert f["hybrid"] - f["pre"] == pytest.approx(L * (3 * 4 * 4 * dh - 4 * d))
    assert f["qknorm"] - f["pre"] == pytest.approx(L * 2 * 4 * 4 * dh)
    assert f["post"] - f["pre"] == pytest.approx(-4 * d)                # no final norm
    assert f["hybrid_star"] - f["hybrid"] == pytest.approx(4 * d)       # block 0 keeps its pre-norm


def test_small_init_follows_megatron():
    torch.manual_seed(0)
    big = TransformerConfig(vocab_size=40, d_model=256, n_layers=12, n_heads=4, d_ff=688, max_seq_len=16,
                            small_init=True)
    model = build_model("hybrid", big)
    std = math.sqrt(2 / (5 * 256))
    assert model.blocks[5].mlp.w1.weight.std().item() == pytest.approx(std, rel=0.05)
    assert model.blocks[5].mlp.w2.weight.std().item() == pytest.approx(std / math.sqrt(24), rel=0.05)
    assert model.blocks[5].attn.wo.weight.std().item() == pytest.approx(std / math.sqrt(24), rel=0.05)
