"""Experiment pieces: resumable training, chunk planning, the compression arithmetic, settings checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperlab.core.errors import UserError
from paperlab.landiff.experiment import default_config, evaluate_tokenizer, lengths
from paperlab.landiff.generate import plan_chunks
from paperlab.landiff.training import fit


class _Stop(Exception):
    pass


def _problem():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0]])

    def batch_loss(step, gen):
        x = torch.randn(8, 4, generator=gen)
        return ((model(x) - x @ w.T) ** 2).mean(), {}

    return model, batch_loss


def test_fit_resumes_after_a_kill_exactly(tmp_path):
    model, bl = _problem()
    full = fit("m", model, list(model.parameters()), bl, 30, 0.05, tmp_path / "a", "k", checkpoint_every=10)
    ref = model.weight.detach().clone()

    (tmp_path / "b").mkdir()
    model, bl = _problem()

    def die(step):
        if step == 17:
            raise _Stop

    with pytest.raises(_Stop):
        fit("m", model, list(model.parameters()), bl, 30, 0.05, tmp_path / "b", "k", checkpoint_every=10, on_step=die)
    assert (tmp_path / "b" / "m.ckpt").exists() and not (tmp_path / "b" / "m.pt").exists()
    model, bl = _problem()
    hist = fit("m", model, list(model.parameters()), bl, 30, 0.05, tmp_path / "b", "k", checkpoint_every=10)
    assert hist["resumed_from"] == 10 and len(hist["loss"]) == 30
    assert torch.allclose(model.weight, ref) and np.allclose(hist["loss"], full["loss"])
    # a finished stage is reused; another key retrains
    model, bl = _problem()
    again = fit("m", model, list(model.parameters()), bl, 30, 0.05, tmp_path / "b", "k")
    assert again.get("reused") and torch.allclose(model.weight, ref)
    model, bl = _problem()
    other = fit("m", model, list(model.parameters()), bl, 5, 0.05, tmp_path / "b", "other")
    assert not other.get("reused") and len(other["loss"]) == 5


def test_plan_chunks():
    assert plan_chunks(16, 16, 4, 2) == (1, 16)
    assert plan_chunks(9, 16, 4, 2) == (1, 10)
    assert plan_chunks(17, 16, 4, 2) == (2, 16)              # 16 + 12 = 28 >= 17
    assert plan_chunks(40, 16, 4, 2) == (3, 16)              # 16 + 12 + 12 = 40
    assert plan_chunks(41, 16, 4, 2) == (4, 16)


def test_compression_arithmetic():
    cfg = default_config(True)
    k = cfg.max_k
    n_tokens = cfg.n_i + (k - 1) * cfg.n_p

    class Tok:                        # a stand-in with the tokenizer's interface: all-zero reconstructions
        @staticmethod
        def norm(z):
            return z

        @staticmethod
        def tokenize(f):
            return torch.arange(f.shape[0] * n_tokens).reshape(f.shape[0], -1) % cfg.codebook_size

        @staticmethod
        def detokenize(idx, k):
            return torch.zeros(idx.shape[0], k, 16, 64)

    r = evaluate_tokenizer(cfg, Tok(), torch.ones(5, k, 16, 64), torch.full((3, k, 16, 64), 0.5))
    assert r["tokens_per_clip"] == n_tokens == cfg.n_i + (cfg.clip_frames // cfg.stride - 1) * cfg.n_p
    bits = n_tokens * np.log2(cfg.codebook_size)
    assert r["ratio_pixels"] == pytest.approx(cfg.clip_frames * 32 * 32 * 3 * 8 / bits)
    assert r["ratio_features"] == pytest.approx(k * 16 * 64 * 32 / bits)
    assert r["mse_per_clip"] == pytest.approx([1.0] * 5)     # zeros vs ones
    assert r["mean_clip_mse_per_clip"] == pytest.approx([0.25] * 5)   # training mean 0.5 vs ones
    assert r["lm_sequence_tokens"] == n_tokens + 2 + 2 * (k - 1) + 1
    assert r["codes_used"] == min(5 * n_tokens, cfg.codebook_size)


def test_settings_are_checked():
    assert lengths(default_config(True)) == [4, 6, 8] and lengths(default_config(False)) == [8, 10, 12, 14, 16]
    for bad, needle in [({"clip_frames": 15}, "multiples of stride"), ({"prefix_frames": 3}, "prefix_frames"),
                        ({"encoder": "vit"}, "encoder"), ({"motion_quantiles": [0.5]}, "motion_quantiles"),
                        ({"judge_frames": 6}, "judge_frames"), ({"cfg_scale": 0.5}, "cfg_scale")]:
        with pytest.raises(UserError, match=needle):
            default_config(True, **bad)
