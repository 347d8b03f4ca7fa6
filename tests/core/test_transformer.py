"""The shared small transformer: shapes, causality, RoPE, init, tying, plug-in contract."""

import math

import pytest
import torch
import torch.nn as nn

from paperlab.core.transformer import (
    CausalSelfAttention,
    PreNormBlock,
    RMSNorm,
    Rotary,
    Transformer,
    TransformerConfig,
)


def tiny(**kw) -> TransformerConfig:
    base = dict(vocab_size=50, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=16)
    return TransformerConfig(**{**base, **kw})


def test_forward_shapes_and_initial_loss_near_uniform():
    torch.manual_seed(0)
    m = Transformer(tiny(small_init=True))
    x, y = torch.randint(0, 50, (3, 16)), torch.randint(0, 50, (3, 16))
    logits, loss = m(x, y)
    assert logits.shape == (3, 16, 50)
    assert abs(loss.item() - math.log(50)) < 0.3          # small logits at init: close to uniform
    assert m(x)[1] is None


def test_causal_future_tokens_do_not_change_past_logits():
    torch.manual_seed(0)
    m = Transformer(tiny()).eval()
    x = torch.randint(0, 50, (1, 12))
    y = x.clone()
    y[0, 8:] = (y[0, 8:] + 1) % 50
    a, b = m(x)[0], m(y)[0]
    assert torch.allclose(a[0, :8], b[0, :8], atol=1e-5)
    assert not torch.allclose(a[0, 8:], b[0, 8:], atol=1e-3)


def test_rope_scores_depend_only_on_relative_position():
    rope = Rotary(head_dim=8, max_seq_len=32)
    torch.manual_seed(0)
    q, k = torch.randn(8), torch.randn(8)
    seq_q = q.expand(1, 1, 32, 8).contiguous()
    seq_k = k.expand(1, 1, 32, 8).contiguous()
    rq, rk = rope.apply(seq_q)[0, 0], rope.apply(seq_k)[0, 0]
    s = rq @ rk.T                                         # s[m, n] = <R_m q, R_n k>
    assert torch.allclose(s[5, 2], s[20, 17], atol=1e-5)
    assert torch.allclose(s[3, 3], q @ k, atol=1e-5)       # zero offset = plain dot product
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(32), atol=1e-5)    # a rotation


def test_tied_and_untied_embeddings():
    m = Transformer(tiny(tie_embeddings=True))
    assert m.lm_head.weight is m.tok_emb.weight
    u = Transformer(tiny(tie_embeddings=False))
    assert u.lm_head.weight is not u.tok_emb.weight
    n_tok = 50 * 32
    assert sum(p.numel() for p in u.parameters()) - sum(p.numel() for p in m.parameters()) == n_tok


@pytest.mark.parametrize("small_init", [True, False])
def test_init_std_and_residual_output_scaling(small_init):
    torch.manual_seed(0)
    cfg = tiny(d_model=256, n_heads=4, d_ff=512, n_layers=8, small_init=small_init)
    m = Transformer(cfg)
    std = math.sqrt(2 / (5 * 256)) if small_init else 0.02
    attn = m.blocks[3].attn
    assert abs(attn.wq.weight.std().item() / std - 1) < 0.05
    out_std = std / math.sqrt(2 * 8)
    assert abs(attn.wo.weight.std().item() / out_std - 1) < 0.05
    assert abs(m.blocks[0].mlp.w2.weight.std().item() / out_std - 1) < 0.05
    if small_init:                       # truncated at 3 std
        assert attn.wq.weight.abs().max().item() <= 3 * std + 1e-6


def test_grouped_query_attention_has_fewer_kv_parameters():
    m = Transformer(tiny(n_heads=4, n_kv_heads=2))
    a = m.blocks[0].attn
    assert a.wk.weight.shape == (16, 32) and a.wq.weight.shape == (32, 32)
    x = torch.randint(0, 50, (2, 10))
    assert torch.isfinite(m(x, x)[1])


def test_pluggable_attention_mlp_block_and_aux_loss():
    seen = {}

    class RecordingAttention(CausalSelfAttention):
        def forward(self, x, rope):
            seen["rope"] = rope
            return super().forward(x, rope)

    class AuxMLP(nn.Module):
        def __init__(self, config, layer_idx):
            super().__init__()
            self.lin = nn.Linear(config.d_model, config.d_model, bias=False)
            self.aux_loss = None

        def forward(self, x):
            self.aux_loss = torch.tensor(0.25)
            return self.lin(x)

        def flops_per_token(self, seq_len):
            return 2.0 * 32 * 32

    blocks_made = []

    def block_factory(config, i, attn, mlp):
        blocks_made.append(i)
        return PreNormBlock(config, i, attn, mlp)

    torch.manual_seed(0)
    m = Transformer(tiny(), attn_factory=RecordingAttention, mlp_factory=AuxMLP, block_factory=block_factory)
    x = torch.randint(0, 50, (2, 8))
    _, loss = m(x, x)
    assert seen["rope"] is m.rope and blocks_made == [0, 1]
    assert m.last_aux_loss.item() == pytest.approx(0.5)       # two layers x 0.25
    m2 = Transformer(tiny(), attn_factory=RecordingAttention, mlp_factory=AuxMLP)
    m2.load_state_dict(m.state_dict())
    logits, _ = m2(x)
    ce = nn.functional.cross_entropy(logits.reshape(-1, 50), x.reshape(-1))
    assert loss.item() == pytest.approx(ce.item() + 0.5, abs=1e-5)


def test_rmsnorm_normalises_rms_and_applies_gain():
    n = RMSNorm(16)
    x = torch.randn(4, 16) * 7
    assert torch.allclose(n(x).pow(2).mean(-1), torch.ones(4), atol=1e-4)
    with torch.no_grad():
        n.weight.fill_(2.0)
    assert torch.allclose(n(x).pow(2).mean(-1), torch.full((4,), 4.0), atol=1e-3)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        tiny(d_model=30, n_heads=4)
    with pytest.raises(ValueError):
        tiny(norm="batch")
    m = Transformer(tiny())
    with pytest.raises(ValueError):
        m(torch.zeros(1, 17, dtype=torch.long))
