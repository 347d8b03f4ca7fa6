"""The byte stream: ByT5 ids, word separators, EOS / PAD alignment, training vs. streaming consistency."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.llmvox.bytes import (
    EOS_ID,
    PAD_ID,
    SEP_ID,
    aligned_stream,
    decode_ids,
    text_ids,
    token_ids,
    training_stream,
)
from paperlab.llmvox.decoder import collate, make_example


def test_byt5_ids_and_separators():
    ids = text_ids("Hi  yo.")
    assert ids == [ord("H") + 3, ord("i") + 3, SEP_ID, ord("y") + 3, ord("o") + 3, ord(".") + 3, SEP_ID, EOS_ID]
    assert text_ids("é") == [0xC3 + 3, 0xA9 + 3, SEP_ID, EOS_ID]  # UTF-8 bytes, not code points


words = st.lists(st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_categories=("Z", "C")),
                         min_size=1, max_size=6),
                 min_size=1, max_size=8)


@given(words, st.integers(1, 80))
@settings(max_examples=60, deadline=None)
def test_aligned_stream_pads_or_truncates(ws, n):
    text = " ".join(ws)
    ids = text_ids(text)
    s = training_stream(text, n)
    assert len(s) == n
    assert s[: min(n, len(ids))] == ids[:n]
    assert all(x == PAD_ID for x in s[len(ids):])
    assert ids.count(SEP_ID) == len(ws) and ids[-1] == EOS_ID
    assert decode_ids(ids) == text


@given(words)
@settings(max_examples=40, deadline=None)
def test_streamed_word_tokens_give_the_training_ids(ws):
    """An LLM streaming whole words (with leading spaces) produces exactly the ids the decoder was trained on."""
    toks = [(" " if i else "") + w for i, w in enumerate(ws)]
    streamed = [i for k, t in enumerate(toks) for i in token_ids(t, end_of_sentence=k == len(toks) - 1)]
    assert streamed == text_ids(" ".join(ws))


def test_make_example_drops_natural_end_codes_and_shifts():
    x, y = make_example("ab c.", [5, 7, 3, 7, 9], eoa=7)
    assert y.tolist() == [5, 3, 9, 7]  # natural 7s dropped, 7 appended
    assert x[:, 1].tolist() == [-1, 5, 3, 9]  # previous code, none at t = 0
    assert x[:, 0].tolist() == aligned_stream(text_ids("ab c."), 4)  # truncated to the speech length
    x2, y2 = make_example("a.", [1, 2, 3, 4, 5, 6], eoa=0)
    assert len(y2) == 7 and x2[:, 0].tolist() == text_ids("a.") + [PAD_ID] * 3


def test_collate_pads_bytes_speech_and_targets():
    a, b = make_example("a b.", [1, 2], 9), make_example("c.", [1, 2, 3, 4, 5], 9)
    x, y = collate([a, b], eoa=9)
    assert x.shape == (2, 6, 2) and y.shape == (2, 6)
    assert torch.equal(x[0, 3:, 0], torch.full((3,), PAD_ID)) and torch.equal(x[0, 3:, 1], torch.full((3,), 9))
    assert y[0, 3:].tolist() == [-1, -1, -1] and y[1].tolist() == [1, 2, 3, 4, 5, 9]
