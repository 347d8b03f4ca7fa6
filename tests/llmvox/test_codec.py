"""The codec: shapes, training lowers reconstruction loss, chunked decoding lengths, Griffin-Lim."""

from __future__ import annotations

import numpy as np

from paperlab.llmvox.codec import griffin_lim


def test_codec_shapes_and_training(tiny):
    codec, mels = tiny["codec"], tiny["mels"]
    s = codec.config.stride
    for m, c in zip(mels, tiny["codes"], strict=True):
        assert len(c) == -(-len(m) // s) and c.min() >= 0 and c.max() < codec.config.codebook_size
    h = tiny["codec_hist"]["loss"]
    assert np.mean(h[-5:]) < 0.7 * np.mean(h[:3])
    assert codec.codebook.shape == (codec.config.codebook_size, codec.config.code_dim)
    mel = codec.codes_to_mel(tiny["codes"][0])
    assert mel.shape == (len(tiny["codes"][0]) * s, 64)


def test_decode_chunk_returns_only_the_new_samples(tiny):
    codec, codes = tiny["codec"], [int(c) for c in tiny["codes"][0]]
    spt = codec.config.samples_per_token
    whole = codec.decode(codes, n_iter=4)
    assert len(whole) == len(codes) * spt
    part = codec.decode_chunk(codes[5:9], context=codes[:5], n_iter=4)
    assert len(part) == 4 * spt and np.isfinite(part).all()


def test_griffin_lim_length_and_energy_follow_the_mel():
    from paperlab.core.audio import log_mel

    t = np.arange(16000) / 16000
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    wave[8000:] = 0
    mel = log_mel(wave)
    out = griffin_lim(mel, n_iter=8)
    assert len(out) == len(mel) * 160
    assert np.abs(out[1000:7000]).mean() > 20 * np.abs(out[9500:15000]).mean()
