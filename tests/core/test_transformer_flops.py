"""Analytic FLOPs: the counter matches a count done by hand for a tiny config."""

import pytest

from paperlab.core import flops as fl
from paperlab.core.transformer import Transformer, TransformerConfig

# d=8, 2 heads of 4, SwiGLU 16, vocab 10, one layer, sequence of 4 tokens
CFG = dict(vocab_size=10, d_model=8, n_layers=1, n_heads=2, d_ff=16, max_seq_len=4)
T = 4


def hand_attention() -> float:
    qkv = 2 * 8 * 24                      # three 8x8 projections
    rope = 3 * (8 + 8)                    # 3 FLOPs per rotated element of Q and K
    keys = (T + 1) / 2                    # causal: 1, 2, 3, 4 keys -> mean 2.5
    core = 2 * (2 * 2 * 4 * keys + 5 * keys)   # per head: QK^T and AV (2 Dh each per key) + softmax 5/score
    out = 2 * 8 * 8
    return qkv + rope + core + out        # 384 + 48 + 105 + 128 = 665


def hand_mlp() -> float:
    return 3 * 2 * 8 * 16 + 6 * 16        # three matmuls + SiLU/gate 6 per hidden unit = 864


def test_attention_and_mlp_match_hand_count():
    m = Transformer(TransformerConfig(**CFG))
    assert hand_attention() == 665
    assert m.blocks[0].attn.flops_per_token(T) == pytest.approx(665)
    assert m.blocks[0].mlp.flops_per_token(T) == pytest.approx(864)


def test_prenorm_model_total_matches_hand_count():
    m = Transformer(TransformerConfig(**CFG))
    norms = 2 * 4 * 8                     # two RMSNorms in the block, 4 FLOPs/element
    residual = 2 * 8                      # two residual adds
    block = hand_attention() + hand_mlp() + norms + residual
    total = block + 4 * 8 + 2 * 8 * 10    # final norm + LM head (embedding lookup: 0)
    assert total == 1801
    assert fl.model_flops_per_token(m, T) == pytest.approx(1801)
    br = fl.model_flops_breakdown(m, T)
    assert br["attention"] == pytest.approx(665) and br["mlp"] == pytest.approx(864)
    assert br["norms_and_residuals"] == pytest.approx(norms + residual)


def test_attention_flops_grow_linearly_with_context():
    m = Transformer(TransformerConfig(**{**CFG, "max_seq_len": 64}))
    a = m.blocks[0].attn
    d1 = a.flops_per_token(33) - a.flops_per_token(17)
    d2 = a.flops_per_token(49) - a.flops_per_token(33)
    assert d1 == pytest.approx(d2) and d1 > 0
    assert fl.train_flops_per_token(m, 8) == pytest.approx(3 * fl.model_flops_per_token(m, 8))
