"""The LM: sequence layout, forced specials, zero-initialised micro-conditions, CFG, learning a caption."""

from __future__ import annotations

import torch

from paperlab.landiff.lm import SPECIALS, LanDiffLM, LMConfig, codes_of, forced_layout, visual_sequence


def _cfg(**kw):
    return LMConfig(**({"codebook_size": 10, "n_i": 3, "n_p": 2, "max_frames": 4, "text_dim": 6, "text_len": 5,
                        "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64} | kw))


def test_visual_sequence_layout_round_trip():
    cfg = _cfg()
    codes = torch.randint(0, 10, (2, 3 + 3 * 2))
    vis = visual_sequence(cfg, codes, 4)
    names = [SPECIALS[int(t) - 10] if t >= 10 else "c" for t in vis[0]]
    assert names == ["SOI", "c", "c", "c", "EOI"] + ["SOP", "c", "c", "EOP"] * 3 + ["EOS"]
    assert vis.shape[1] == cfg.visual_len(4) == len(forced_layout(cfg, 4))
    assert torch.equal(codes_of(cfg, vis), codes)


def test_micro_conditions_start_as_no_ops():
    torch.manual_seed(0)
    lm = LanDiffLM(_cfg()).eval()
    text, mask = torch.randn(2, 5, 6), torch.ones(2, 5, dtype=torch.bool)
    vis = visual_sequence(lm.cfg, torch.randint(0, 10, (2, 7)), 3)
    no = torch.zeros(2, dtype=torch.bool)
    a = lm(vis, lm.prefix(text, mask, torch.tensor([6.0, 6.0]), torch.tensor([0.01, 0.01]), no))
    b = lm(vis, lm.prefix(text, mask, torch.tensor([16.0, 8.0]), torch.tensor([0.2, 0.04]), no))
    assert torch.allclose(a, b)                                   # zero-initialised last layers
    c = lm(vis, lm.prefix(text, mask, torch.tensor([6.0, 6.0]), torch.tensor([0.01, 0.01]), ~no))
    assert not torch.allclose(a, c)                               # the null text embedding differs


def test_generate_forces_specials_and_prefix():
    torch.manual_seed(0)
    lm = LanDiffLM(_cfg())
    text, mask = torch.randn(3, 5, 6), torch.ones(3, 5, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    codes = lm.generate(text, mask, 3, torch.full((3,), 0.02), 6, cfg_scale=7.5, generator=gen)
    assert codes.shape == (3, 3 + 2 * 2) and int(codes.max()) < 10 and int(codes.min()) >= 0
    pre = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 0, 1, 2]])
    codes = lm.generate(text, mask, 3, torch.full((3,), 0.02), 6, generator=gen, prefix_codes=pre)
    assert torch.equal(codes[:, :4], pre)


def test_lm_learns_captions_and_cfg_sharpens():
    """Each of two 'captions' always comes with its own code: after a short training the LM writes it."""
    torch.manual_seed(0)
    cfg = _cfg(codebook_size=8, n_i=2, n_p=1, max_frames=2, d_model=32, p_null=0.1)
    lm = LanDiffLM(cfg)
    text = torch.stack([torch.randn(5, 6), torch.randn(5, 6)])
    mask = torch.ones(2, 5, dtype=torch.bool)
    codes = torch.tensor([[1, 1, 1], [6, 6, 6]])
    opt = torch.optim.Adam(lm.parameters(), 3e-3)
    for step in range(150):
        g = torch.Generator().manual_seed(step)
        i = torch.randint(0, 2, (16,), generator=g)
        loss = lm.loss(visual_sequence(cfg, codes[i], 2), text[i], mask[i], torch.full((16,), 4.0),
                       torch.full((16,), 0.02), generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    gen = torch.Generator().manual_seed(1)
    i = torch.tensor([0, 1] * 20)
    out = lm.generate(text[i], mask[i], 2, torch.full((40,), 0.02), 4, cfg_scale=3.0, generator=gen)
    acc = (out == codes[i]).float().mean()
    assert acc > 0.9
    null = lm.generate(text[i], mask[i], 2, torch.full((40,), 0.02), 4, generator=gen, uncond_only=True)
    assert (null == codes[i]).float().mean() < 0.8                # without text it cannot know which
