"""A tiny random transformers Llama with a chat template (seconds to build): it runs the real hf:<path> scoring,
LoRA and generation code paths; its outputs are meaningless, which the tests never rely on."""

import pytest

from tests_helpers import save_tiny_llama

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="session")
def tiny_chat_dir(tmp_path_factory):
    from transformers import AutoTokenizer

    from paperlab.core.data import data_path

    text = data_path("wikitext2", "valid.txt").read_text(encoding="utf-8")[:60000]
    out = save_tiny_llama(tmp_path_factory.mktemp("translationese_tiny_llama"), text, vocab_size=300,
                          intermediate_size=64, max_positions=1024, tie_word_embeddings=True)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)
    return out
