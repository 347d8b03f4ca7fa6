"""STORM's token reductions (Eq. 6, spatial pooling, Eq. 8), token counts, the scan order's effect on what a
pooled token knows, and the answer model's padding invariance."""

from __future__ import annotations

import pytest
import torch

from paperlab.storm.model import (
    Storm,
    StormConfig,
    Vocab,
    spatial_pool,
    temporal_pool,
    temporal_sample,
    tokens_per_video,
    words,
)


def test_temporal_pool_is_mean_of_consecutive_frames():
    x = torch.randn(2, 8, 3, 5)
    y = temporal_pool(x, 4)
    assert y.shape == (2, 2, 3, 5)
    torch.testing.assert_close(y[:, 1], x[:, 4:8].mean(1))
    odd = temporal_pool(torch.randn(1, 6, 2, 3), 4)          # a shorter last window is its own mean
    assert odd.shape == (1, 2, 2, 3)
    assert temporal_pool(x, 1) is x


def test_spatial_pool_averages_grid_blocks_row_major():
    # token index = row * 4 + col on a 4x4 grid; value = index
    x = torch.arange(16.0).view(1, 1, 16, 1)
    y = spatial_pool(x, (4, 4), 2).view(-1)
    torch.testing.assert_close(y, torch.tensor([(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4,
                                                (8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]))


def test_temporal_sample_keeps_every_sth_frame():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert temporal_sample(x, 2).view(-1).tolist() == [0, 2, 4, 6]


@pytest.mark.parametrize("projector", ["linear", "mamba"])
@pytest.mark.parametrize("k,p,s", [(1, 1, 1), (4, 1, 1), (4, 1, 2), (4, 1, 4), (1, 2, 1)])
def test_visual_token_counts(projector, k, p, s):
    cfg = StormConfig(feat_dim=8, grid=(4, 4), n_frames=16, projector=projector, d_model=16, mamba_layers=1,
                      temporal_pool=k, spatial_pool=p)
    vis = Storm(cfg).video(torch.randn(2, 16, 16, 8), sample=s)
    assert vis.shape == (2, tokens_per_video(16, (4, 4), k, p, s), 16) == (2, cfg.visual_tokens(s), 16)
    assert tokens_per_video(16, (4, 4), 4, 1, 2) == 256 // 8


def test_pooled_first_frame_sees_later_frames_only_through_mamba():
    torch.manual_seed(0)
    feats = torch.randn(1, 8, 4, 8)
    later = feats.clone()
    later[:, 6] += 1.0                                          # change frame 6 only
    for projector, expect in (("linear", False), ("mamba", True)):
        cfg = StormConfig(feat_dim=8, grid=(2, 2), n_frames=8, projector=projector, d_model=16, mamba_layers=1,
                          temporal_pool=4)
        video = Storm(cfg).video
        with torch.no_grad():
            first = (video(feats)[:, :4] - video(later)[:, :4]).abs().max()   # pooled frames 0-3
        assert bool(first > 1e-6) is expect


def test_answer_ignores_right_padding_and_masks_missing_choices():
    torch.manual_seed(0)
    cfg = StormConfig(feat_dim=8, grid=(2, 2), n_frames=4, d_model=16, mamba_layers=1, vocab_size=12)
    m = Storm(cfg).eval()
    feats = torch.randn(1, 4, 4, 8)
    q = torch.tensor([[3, 4, 5]])
    qpad = torch.tensor([[3, 4, 5, 0, 0]])
    ch = torch.tensor([[6, 7, -1]])
    with torch.no_grad():
        a = m(feats, torch.tensor([0]), q, torch.tensor([3]), ch)
        b = m(feats, torch.tensor([0]), qpad, torch.tensor([3]), ch)
    torch.testing.assert_close(a, b)
    assert torch.isinf(a[0, 2]) and torch.isfinite(a[0, :2]).all()


def test_vocab_words_and_unknowns():
    v = Vocab.build(["Which way does the red circle move at first?"], ["left", "right"])
    assert words("Does the RED square appear?") == ["does", "the", "red", "square", "appear", "?"]
    assert v.encode("the blue circle")[1] == 1                 # unknown word -> <unk>
    assert v.choice("left") == v.stoi["left"] and len(v) == len(v.itos)


def test_bad_spatial_pool_refused():
    with pytest.raises(ValueError):
        StormConfig(grid=(4, 4), spatial_pool=3)


@pytest.mark.slow
def test_hf_vision_encoder_by_path(tmp_path):
    """A transformers vision tower by path (a tiny random SigLIP saved here): row-major patch tokens."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from paperlab.storm.encoders import grid_of, make_encoder

    torch.manual_seed(0)
    SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, image_size=32, patch_size=8)).save_pretrained(tmp_path)
    enc = make_encoder(f"hf:{tmp_path}", size=16)
    assert enc.grid == (4, 4) and enc.dim == 32
    out = enc(torch.rand(3, 3, 16, 16))
    assert out.shape == (3, 16, 32) and grid_of(out.shape[1]) == (4, 4)
    assert not any(p.requires_grad for p in enc.parameters())
