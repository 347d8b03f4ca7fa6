"""The detokenizer: patches, the zero-initialised control branch, clean-prefix sampling, learning."""

from __future__ import annotations

import torch

from paperlab.landiff.detokenizer import (
    DetokConfig,
    Detokenizer,
    VideoDenoiser,
    flow_loss,
    patchify,
    sample,
    semantic_to_patches,
    unpatchify,
)


def _cfg(**kw):
    return DetokConfig(**({"frames": 4, "size": 16, "feat_dim": 5, "grid": (2, 2), "stride": 2, "patch": 8,
                           "width": 32, "layers": 2, "heads": 4, "control_layers": 1} | kw))


def test_patchify_inverts():
    x = torch.randn(2, 3, 3, 16, 16)
    p = patchify(x, 8)
    assert p.shape == (2, 3, 4, 192)
    assert torch.equal(unpatchify(p, 8, 16), x)
    assert torch.equal(p[0, 0, 1].reshape(3, 8, 8), x[0, 0, :, :8, 8:])   # row-major patch order


def test_control_branch_starts_as_a_no_op_and_copies_the_base():
    torch.manual_seed(0)
    base = VideoDenoiser(_cfg())
    for p in base.parameters():                   # a "trained" base: not at its init
        p.data += 0.1 * torch.randn_like(p)
    det = Detokenizer(base)
    x, t = torch.randn(2, 4, 3, 16, 16), torch.rand(2, 4)
    sem = torch.randn(2, 2, 4, 5)
    assert torch.allclose(det(x, t, sem), base(x, t), atol=1e-6)
    assert torch.equal(det.control.blocks[0].linear1.weight, base.blocks[0].linear1.weight)
    assert not any(p.requires_grad for p in det.base.parameters())
    assert all(p.requires_grad for p in det.trainable())


def test_semantic_features_interpolate_in_time():
    cfg = _cfg(frames=4, grid=(2, 2))
    sem = torch.arange(2.0).reshape(1, 2, 1, 1).expand(1, 2, 4, 5)
    out = semantic_to_patches(sem, cfg, 4)                     # pixel frames 0..3 at semantic 0, .5, 1, 1
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.0, 0.5, 1.0, 1.0]))


def test_sampling_keeps_the_clean_prefix():
    torch.manual_seed(0)
    base = VideoDenoiser(_cfg())
    prefix = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    x = sample(base, (2, 4, 3, 16, 16), 3, torch.Generator().manual_seed(0), prefix=prefix)
    assert torch.equal(x[:, :2], prefix) and not torch.allclose(x[:, 2:], torch.zeros(1))


def test_control_learns_to_copy_the_features_into_pixels():
    """Flat frames whose value is given only by the semantic features: after the base has learnt the frames
    unconditionally (and is frozen), the control branch must carry the value in."""
    torch.manual_seed(0)
    cfg = _cfg(frames=2, stride=2, grid=(2, 2), width=32)
    base = VideoDenoiser(cfg)

    def data(g, n=16):
        c = torch.rand(n, generator=g) * 2 - 1
        x1 = c[:, None, None, None, None].expand(n, 2, 3, 16, 16).contiguous()
        sem = c[:, None, None, None].expand(n, 1, 4, 5).contiguous()
        return x1, sem

    def train(model, params, steps, offset, **kw):
        opt = torch.optim.Adam(params, 3e-3)
        for step in range(steps):
            g = torch.Generator().manual_seed(offset + step)
            x1, sem = data(g)
            loss = flow_loss(model, x1, torch.zeros(16, dtype=torch.long), g, **({"sem": sem} if kw else {}))
            opt.zero_grad()
            loss.backward()
            opt.step()

    def error(model, **kw):
        x1, sem = data(torch.Generator().manual_seed(999), 32)
        x = sample(model, x1.shape, 10, torch.Generator().manual_seed(0), **({"sem": sem} if kw else {}))
        return float((x.mean((1, 2, 3, 4)) - x1.mean((1, 2, 3, 4))).abs().mean())

    train(base, list(base.parameters()), 100, 0)
    det = Detokenizer(base)
    assert error(det, sem=True) == error(base)            # zero-initialised: exactly the base at first
    train(det, det.trainable(), 100, 1000, sem=True)
    assert error(det, sem=True) < 0.5 * error(base)       # unconditional base: ~2/3 (two uniform values)
