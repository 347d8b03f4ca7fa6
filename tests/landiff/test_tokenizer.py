"""The semantic tokenizer: the paper's attention masks, causality in frames, the VQ settings, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperlab.landiff.tokenizer import SemanticTokenizer, TokenizerConfig, _layout, decoder_mask, encoder_mask

K, P, NI, NP = 4, 4, 3, 2


def _kinds():
    kind, frame, rank = _layout(K, P, NI, NP)
    return kind.numpy(), frame.numpy(), rank.numpy()


def test_encoder_mask_follows_the_paper():
    m = encoder_mask(K, P, NI, NP).numpy()
    kind, frame, rank = _kinds()
    for q in range(len(kind)):
        for k in range(len(kind)):
            if kind[q] == 0:      # patch: patches of frames <= own
                want = kind[k] == 0 and frame[k] <= frame[q]
            elif kind[q] == 1:    # I-query: frame-0 patches, I-queries up to itself
                want = (kind[k] == 0 and frame[k] == 0) or (kind[k] == 1 and rank[k] <= rank[q])
            else:                 # P-query of frame f: patches of frames <= f, queries up to itself
                want = (kind[k] == 0 and frame[k] <= frame[q]) or (kind[k] > 0 and rank[k] <= rank[q])
            assert m[q, k] == want, (q, k)
    assert m.shape == (K * P + NI + (K - 1) * NP,) * 2


def test_decoder_mask_patch_rows():
    m = decoder_mask(K, P, NI, NP).numpy()
    kind, frame, _ = _kinds()
    for q in np.flatnonzero(kind == 0):
        for k in range(len(kind)):
            want = (kind[k] == 0 and frame[k] <= frame[q]) or kind[k] == 1 or (kind[k] == 2 and frame[k] <= frame[q])
            assert m[q, k] == want
    assert m.diagonal().all()      # every row sees itself: no empty softmax


def _tok(**kw):
    torch.manual_seed(0)
    cfg = TokenizerConfig(feat_dim=8, grid=(2, 2), max_frames=K, width=16, heads=2, n_i=NI, n_p=NP, codebook_size=16,
                          codebook_dim=4, **kw)
    return SemanticTokenizer(cfg)


def test_tokens_of_early_frames_ignore_later_frames():
    tok = _tok().eval()
    f = torch.randn(3, K, P, 8)
    g = f.clone()
    g[:, -1] += 5.0 * torch.randn(3, P, 8)                                          # change only the last semantic frame
    h_f, h_g = tok.encode(f), tok.encode(g)
    n_early = NI + (K - 2) * NP
    assert torch.allclose(h_f[:, :n_early], h_g[:, :n_early], atol=1e-5)
    assert not torch.allclose(h_f[:, n_early:], h_g[:, n_early:], atol=1e-3)
    # decoder: features of frames < K-1 do not depend on the last frame's P-tokens
    zq = torch.randn(3, NI + (K - 1) * NP, 16)
    zq2 = zq.clone()
    zq2[:, -NP:] += 3.0 * torch.randn(3, NP, 16)     # (a constant shift would vanish in LayerNorm)
    a, b = tok.decode_latents(zq, K), tok.decode_latents(zq2, K)
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-5) and not torch.allclose(a[:, -1], b[:, -1], atol=1e-3)
    # a clip cut after k frames decodes to the first k frames of the whole clip
    assert torch.allclose(tok.decode_latents(zq[:, : NI + NP], 2), a[:, :2], atol=1e-5)


def test_vq_settings_are_the_papers():
    vq = _tok().vq
    cb = vq._codebook
    assert cb.decay == pytest.approx(0.8) and vq.rotation_trick and vq.commitment_weight == 1.0
    assert cb.threshold_ema_dead_code == 2 and not bool(cb.initted) and not vq.use_cosine_sim
    assert vq.project_in.in_features == 16 and vq.project_in.out_features == 4      # codebook_dim projection


def test_training_lowers_the_reconstruction_error_of_real_features():
    from paperlab.core.video import VideoConfig, encode_frames, frame_encoder, video_dataset

    vids = video_dataset(48, VideoConfig(n_frames=8, size=32, min_objects=1, max_objects=1), seed=5)
    enc = frame_encoder("random", 32)
    feats = encode_frames(enc, np.stack([v.frames[::2] for v in vids]))          # (48, 4, 16, 64)
    cfg = TokenizerConfig(feat_dim=64, grid=enc.grid, max_frames=4, width=32, heads=4, n_i=4, n_p=2,
                          codebook_size=32, codebook_dim=8)
    torch.manual_seed(0)
    tok = SemanticTokenizer(cfg)
    tok.norm.fit(feats)
    z = tok.norm(feats)
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 0.05
    opt = torch.optim.Adam(tok.parameters(), 2e-3)
    losses = []
    for step in range(80):
        loss, extra = tok.loss(z[torch.randint(0, 48, (16,), generator=torch.Generator().manual_seed(step))])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(extra["mse"])
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])
    idx = tok.tokenize(feats)
    assert idx.shape == (48, cfg.n_tokens(4)) and int(idx.max()) < 32
    rec = tok.detokenize(idx, 4)
    assert rec.shape == z.shape
