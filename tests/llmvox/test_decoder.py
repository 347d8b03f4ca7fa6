"""The decoder: Eq. 1 inputs, causality, KV-cache decoding = full recomputation, learning the task."""

from __future__ import annotations

import torch

from paperlab.llmvox.bytes import text_ids
from paperlab.llmvox.decoder import (
    DecoderConfig,
    DecodeState,
    LLMVoXDecoder,
    greedy_decode,
    greedy_decode_recompute,
)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = DecoderConfig(**({"n_layer": 2, "n_head": 2, "n_embd": 48, "code_dim": 16, "codebook_size": 40,
                            "block_size": 128, "eoa_code": 3} | kw))
    return LLMVoXDecoder(cfg, torch.randn(cfg.codebook_size, cfg.code_dim)).eval()


def test_inputs_are_unit_norm_with_zero_speech_half_at_start():
    m = _model()
    x = torch.tensor([[[70, -1], [71, 5], [384, 3]]])
    v = m.inputs(x)
    assert torch.allclose(v.norm(dim=-1), torch.ones(1, 3), atol=1e-6)
    assert torch.all(v[0, 0, m.config.byte_dim:] == 0) and torch.any(v[0, 1, m.config.byte_dim:] != 0)
    # the speech half is the normalised codebook vector: proportional to F(c)
    half = v[0, 1, m.config.byte_dim:]
    assert torch.allclose(half / half.norm(), m.codebook[5] / m.codebook[5].norm(), atol=1e-5)


def test_causal_a_later_input_leaves_earlier_logits_unchanged():
    m = _model()
    x = torch.tensor([[[70, -1], [71, 5], [72, 6], [73, 7]]])
    y = x.clone()
    y[0, 3] = torch.tensor([99, 1])
    with torch.no_grad():
        a, _ = m(x)
        b, _ = m(y)
    assert torch.allclose(a[0, :3], b[0, :3], atol=1e-6) and not torch.allclose(a[0, 3], b[0, 3])


def test_kv_cache_decoding_equals_full_recomputation():
    from paperlab.llmvox.decoder import byte_schedule

    for seed in range(2):
        m = _model(seed)
        ids = text_ids("Hello there.")
        # 30 steps, past the end of the text (ignoring the end code): each cached step's logits equal a full
        # forward pass over the whole prefix
        state, rows = DecodeState(m), []
        for _, b in zip(range(30), byte_schedule(ids), strict=False):
            rows.append([b, state.prev])
            x = torch.tensor([[[b, state.prev]]])
            with torch.no_grad():
                lg, _, state.cache = m(x, cache=state.cache or [], start=state.t)
                full, _ = m(torch.tensor([rows]))
            state.t += 1
            state.prev = int(lg[0, -1].argmax())
            assert torch.allclose(lg[0, -1], full[0, -1], atol=1e-4)
            assert state.prev == int(full[0, -1].argmax())
        # and the two greedy decoders agree, the end code included (pick one the model emits)
        m.config.eoa_code = int(rows[25][1])  # emitted at step 24
        fast = greedy_decode(m, ids, max_steps=30)
        slow, _ = greedy_decode_recompute(m, ids, max_steps=30)
        assert fast == slow and m.config.eoa_code not in fast


def test_chunked_prefill_with_cache_matches_full_forward():
    m = _model()
    x = torch.tensor([[[70 + i, (i * 7) % 40 if i else -1] for i in range(12)]])
    with torch.no_grad():
        full, _ = m(x)
        a, _, cache = m(x[:, :5], cache=[], start=0)
        b, _, _ = m(x[:, 5:], cache=cache, start=5)
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-5)


def test_trained_decoder_speaks_its_sentences_and_stops(tiny):
    """Trained on 8 sentences, greedy decoding from text alone reproduces most of each sentence's codes and
    ends with the end-of-audio code."""
    SENTENCES = tiny["sentences"]

    dec, codes, eoa = tiny["decoder"], tiny["codes"], tiny["eoa"]
    assert tiny["decoder_hist"]["loss"][-1] < 0.3 * tiny["decoder_hist"]["loss"][0]
    for text, ref in zip(SENTENCES, codes, strict=True):
        ref = [int(c) for c in ref if c != eoa]
        gen = greedy_decode(dec, text_ids(text), max_steps=3 * len(ref))
        assert len(gen) < 3 * len(ref)  # stopped by the end-of-audio code
        n = min(len(gen), len(ref))
        assert sum(g == r for g, r in zip(gen[:n], ref[:n], strict=True)) >= 0.8 * len(ref)
