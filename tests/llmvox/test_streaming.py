"""The streaming engine: sentence order across the two replicas, streamed codes = offline codes, adaptive
chunk sizes, progressive WAV, the first audio before the LLM finishes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from paperlab.llmvox.bytes import text_ids
from paperlab.llmvox.decoder import greedy_decode
from paperlab.llmvox.streaming import ChunkPolicy, ProgressiveWav, StreamingEngine, clean_token


def tokens(sentences, delay=0.0):
    for s in sentences:
        for k, w in enumerate(s.split()):
            if delay:
                time.sleep(delay)
            yield (" " if k else " ") + w


@pytest.mark.parametrize("delay", [0.0, 0.01])
def test_sentence_order_and_codes_match_offline_decoding(tiny, delay):
    SENTENCES = tiny["sentences"]

    sents = SENTENCES[:5] + SENTENCES[2:4]  # 7 sentences: replicas 1 and 2 alternate (4 + 3)
    eng = StreamingEngine(tiny["decoder"], tiny["codec"], ChunkPolicy((3, 20), 2.0, 40), griffin_lim_iters=2)
    res = eng.run(tokens(sents, delay))
    assert res.sentence_order == sorted(res.sentence_order) and set(res.sentence_order) == set(range(7))
    assert [c.replica for c in res.chunks] == [c.sentence % 2 for c in res.chunks]
    for k, s in enumerate(sents):  # every sentence's streamed codes equal its offline (non-streaming) decoding
        assert res.sentence_codes[k] == greedy_decode(tiny["decoder"], text_ids(s))
    spt = tiny["codec"].config.samples_per_token
    assert len(res.audio) == sum(len(c) for c in res.sentence_codes.values()) * spt
    assert res.text == " ".join(w for s in sents for w in s.split())


def test_chunks_grow_per_replica(tiny):
    SENTENCES = tiny["sentences"]

    pol = ChunkPolicy((2, 5), 3.0, 30)
    eng = StreamingEngine(tiny["decoder"], tiny["codec"], pol, griffin_lim_iters=2)
    res = eng.run(tokens(SENTENCES[:4]))
    for rep in (0, 1):  # after every chunk and at every sentence end: size <- min(size * 3, 30)
        size = pol.initial[rep]
        for s in sorted({c.sentence for c in res.chunks if c.replica == rep}):
            chunks = [c.tokens for c in res.chunks if c.sentence == s]
            for j, n in enumerate(chunks):
                assert n == size if j < len(chunks) - 1 else n <= size
                size = pol.grow(size)
            size = pol.grow(size)
    assert pol.grow(20) == 30 and pol.grow(30) == 30


def test_slow_llm_first_audio_before_last_token_and_unfinished_sentence(tiny, tmp_path):
    SENTENCES = tiny["sentences"]

    sents = SENTENCES[:4] + ["And then the"]  # the stream stops mid-sentence: it is closed with EOS + PAD
    eng = StreamingEngine(tiny["decoder"], tiny["codec"], ChunkPolicy((3, 20), 2.0, 40), griffin_lim_iters=2)
    wav = tmp_path / "s.wav"
    res = eng.run(tokens(sents, delay=0.03), wav=wav)
    assert res.first_audio < res.t_last_token
    assert set(res.sentence_order) == set(range(5))
    data, sr = sf.read(str(wav))
    assert sr == 16000 and len(data) == len(res.audio)
    assert np.isfinite(res.rtf) and res.stall_seconds >= 0


def test_progressive_wav_is_readable_while_written(tmp_path):
    p = tmp_path / "a.wav"
    w = ProgressiveWav(p)
    w.write(np.full(800, 0.1, np.float32))
    w.write(np.full(400, -0.1, np.float32))
    data, sr = sf.read(str(p))  # before close
    assert sr == 16000 and len(data) == 1200
    w.close()


def test_clean_token_and_policy_validation():
    assert clean_token(" **Hello**") == "Hello" and clean_token("well-known") == "well known"
    assert clean_token("5.") == "5" and clean_token("a/b") == "a slash b" and clean_token("  ") == ""
    with pytest.raises(ValueError):
        ChunkPolicy((0, 10))
    with pytest.raises(ValueError):
        ChunkPolicy((10, 160), 0.5)
