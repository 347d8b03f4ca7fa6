"""XATTN-Dense and the representation transform: zero gates are an exact identity, masks and RoPE behave."""

import pytest
import torch

from paperlab.af2.flamingo import (
    FlamingoLM,
    GatedXAttnDense,
    PartialRotary,
    RepresentationTransform,
    answer_logprob,
    embedding_row_mask,
)
from paperlab.core.transformer import Transformer, TransformerConfig


def _lm(seed=0):
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(vocab_size=50, d_model=32, n_layers=3, n_heads=4, d_ff=64, max_seq_len=32,
                                         tie_embeddings=False)).eval()


def _inputs(B=2, W=3, T=4, d=16, L=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50, (B, L), generator=g)
    tokens = torch.randn(B, W, T, d, generator=g)
    mask = torch.ones(B, W, dtype=torch.bool)
    mask[1, 2:] = False
    return ids, tokens, mask


def test_zero_gates_leave_lm_logits_exactly_unchanged():
    lm = _lm()
    model = FlamingoLM(lm, d_audio=16, heads=2, dim_head=8).eval()
    ids, tokens, mask = _inputs()
    with torch.no_grad():
        plain = lm(ids)[0]
        gated = model(ids, tokens, mask)
        assert torch.equal(plain, gated)                      # bit for bit, gates at their init value 0
        assert all(g == (0.0, 0.0) for g in model.gates())
        other = model(ids, torch.randn_like(tokens) * 100, mask)
        assert torch.equal(plain, other)                      # the audio cannot leak through closed gates
        model.set_gates(0.5)
        opened = model(ids, tokens, mask)
    assert not torch.allclose(plain, opened)                  # an open gate does change the LM


def test_one_open_gate_makes_the_output_depend_on_audio():
    model = FlamingoLM(_lm(), d_audio=16, heads=2, dim_head=8).eval()
    ids, tokens, mask = _inputs()
    with torch.no_grad():
        model.xattn[1].attn_gate.fill_(0.3)
        a = model(ids, tokens, mask)
        b = model(ids, tokens + torch.randn_like(tokens), mask)
    assert (a - b).abs().max() > 1e-4


def test_padded_windows_are_invisible():
    model = FlamingoLM(_lm(), d_audio=16, heads=2, dim_head=8).eval()
    model.set_gates(0.7)
    ids, tokens, mask = _inputs()
    changed = tokens.clone()
    changed[1, 2:] = torch.randn_like(changed[1, 2:]) * 10   # sample 1's padded window
    with torch.no_grad():
        a, b = model(ids, tokens, mask), model(ids, changed, mask)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        changed[1, 0] += torch.randn_like(changed[1, 0])         # a real window does matter
        assert (model(ids, changed, mask) - a).abs().max() > 1e-4
        # the same clip alone (no padding) gives the same result as inside the padded batch
        alone = model(ids[1:], tokens[1:, :2], mask[1:, :2])
    torch.testing.assert_close(alone, a[1:], rtol=1e-5, atol=1e-5)


def test_partial_rope_rotates_half_and_is_relative():
    rope = PartialRotary(head_dim=16, base=4096.0)
    x = torch.randn(1, 2, 10, 16)
    y = rope(x)
    assert torch.equal(y[..., 8:], x[..., 8:])                 # second half untouched
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))  # a rotation
    q, k = torch.randn(16), torch.randn(16)
    seq = torch.stack([q] * 10)[None, None]
    seqk = torch.stack([k] * 10)[None, None]
    rq, rk = rope(seq)[0, 0], rope(seqk)[0, 0]
    torch.testing.assert_close(rq[2] @ rk[5], rq[4] @ rk[7])    # depends only on the offset
    assert not torch.allclose(rq[2] @ rk[5], rq[2] @ rk[6])


def test_transform_shapes_and_order_sensitivity():
    tr = RepresentationTransform(16, layers=3, heads=2).eval()
    tokens = torch.randn(2, 3, 4, 16)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    out, key_mask = tr(tokens, mask)
    assert out.shape == (2, 12, 16) and key_mask.tolist()[1] == [True] * 4 + [False] * 8
    swapped = tokens[:, [1, 0, 2]]                              # exchange two windows
    out2, _ = tr(swapped, torch.ones(2, 3, dtype=torch.bool))
    out1, _ = tr(tokens, torch.ones(2, 3, dtype=torch.bool))
    # without positions the set of outputs would just be permuted; RoPE makes them differ
    assert (out2[0, 4:8] - out1[0, 0:4]).abs().max() > 1e-3


def test_embedding_row_mask_and_answer_logprob():
    emb = torch.nn.Embedding(10, 4)
    before = emb.weight.detach().clone()
    hook = embedding_row_mask(emb.weight, [3, 7])
    opt = torch.optim.SGD(emb.parameters(), lr=1.0)
    emb(torch.arange(10)).pow(2).sum().backward()
    opt.step()
    hook.remove()
    changed = (emb.weight.detach() != before).any(1).nonzero().flatten().tolist()
    assert changed == [3, 7]
    logits = torch.zeros(1, 4, 5)
    ids = torch.tensor([[0, 1, 2, 3]])
    mask = torch.tensor([[False, False, True, True]])
    assert float(answer_logprob(logits, ids, mask)) == pytest.approx(2 * torch.log(torch.tensor(0.2)).item())


def test_gated_block_gates_start_at_zero_and_learn():
    block = GatedXAttnDense(8, 6, heads=2, dim_head=4)
    x, media = torch.randn(2, 5, 8), torch.randn(2, 7, 6)
    m = torch.ones(2, 7, dtype=torch.bool)
    assert torch.equal(block(x, media, m), x)
    block(x, media, m).pow(2).sum().backward()
    assert block.attn_gate.grad is not None and block.attn_gate.grad.abs() > 0  # d tanh(a)/da = 1 at 0
