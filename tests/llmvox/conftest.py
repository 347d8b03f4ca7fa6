"""A tiny trained codec + decoder shared by the tests: 8 espeak-ng sentences, the codec trained briefly, the
decoder trained until it reproduces the sentences' codes (seconds on 2 cores)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

SENTENCES = ["The cat sat on the mat.", "A bird can fly.", "We like warm bread.", "Rain falls on the hill.",
             "She reads a book.", "The sun is bright.", "Open the red door.", "Fish swim in the lake."]


@pytest.fixture(scope="session")
def tiny():
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from paperlab.core.threads import torch_threads

    with torch_threads(1):  # tiny models: one thread is fastest, above all on a busy machine
        return _train_tiny()


def _train_tiny():
    from paperlab.llmvox.codec import CodecConfig, MelVQCodec, mel_of
    from paperlab.llmvox.corpus import synthesise
    from paperlab.llmvox.decoder import DecoderConfig, LLMVoXDecoder, make_example
    from paperlab.llmvox.train import LoopConfig, train_codec, train_decoder

    torch.manual_seed(0)
    waves = synthesise(SENTENCES, rate=200)
    mels = [mel_of(w) for w in waves]
    codec = MelVQCodec(CodecConfig(stride=2, channels=32, code_dim=16, codebook_size=32, res_blocks=1))
    chist = train_codec(codec, mels, LoopConfig(steps=60, batch_size=8, lr=3e-3, warmup_steps=5, weight_decay=0.0,
                                                checkpoint_every=0), crop=32, ckpt=None, key="t")
    codes = [codec.encode(m) for m in mels]
    counts = np.bincount(np.concatenate(codes), minlength=32)
    eoa = int(np.argmin(counts))
    dec = LLMVoXDecoder(DecoderConfig(n_layer=2, n_head=2, n_embd=64, code_dim=16, codebook_size=32,
                                      block_size=256, eoa_code=eoa), codec.codebook)
    examples = [make_example(t, c, eoa) for t, c in zip(SENTENCES, codes, strict=True)]
    dhist = train_decoder(dec, examples, LoopConfig(steps=150, batch_size=8, lr=3e-3, warmup_steps=10,
                                                    checkpoint_every=0), None, "t")
    return {"sentences": SENTENCES, "codec": codec, "decoder": dec, "codes": codes, "eoa": eoa, "examples": examples, "mels": mels,
            "codec_hist": chist, "decoder_hist": dhist}
