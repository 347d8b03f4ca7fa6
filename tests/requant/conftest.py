"""A tiny random transformers Llama with a byte-level BPE tokenizer trained on WikiText-2 (seconds to build):
it exercises the real ``hf:<path>`` loading, quantize/ppl and experiment code paths; its perplexities are
meaningless, which the tests never rely on."""

import pytest

from tests_helpers import save_tiny_llama


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory):
    from paperlab.core.data import data_path

    text = data_path("wikitext2", "valid.txt").read_text(encoding="utf-8")[:60000]
    return save_tiny_llama(tmp_path_factory.mktemp("requant_tiny_llama"), text, vocab_size=300,
                           intermediate_size=96, max_positions=256, tie_word_embeddings=True)
