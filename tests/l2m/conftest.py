"""A tiny random transformers causal LM + a byte-level BPE tokenizer trained on a Gutenberg excerpt.

It exercises the real ``hf:<path>`` loading and scoring code in seconds (the default SmolLM2 takes ~20 s
to load); its log-probs are meaningless, which the tests never rely on.
"""

import pytest

from tests_helpers import save_tiny_llama


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    from paperlab.core.data import data_path

    text = data_path("gutenberg", "174.txt").read_text(encoding="utf-8")[:60000]
    return save_tiny_llama(tmp_path_factory.mktemp("tiny_lm"), text, vocab_size=400, intermediate_size=64,
                           max_positions=512)
