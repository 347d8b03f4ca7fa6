"""A tiny random transformers Llama with a chat template (seconds to build): it runs the real TRL/peft training and
generation code paths of the student; its outputs are meaningless, which the tests never rely on."""

import pytest

from tests_helpers import save_tiny_llama

CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                 "{% endif %}")


@pytest.fixture(scope="session")
def tiny_chat_dir(tmp_path_factory):
    from transformers import AutoTokenizer

    from paperlab.core.data import data_path

    text = data_path("wikitext2", "valid.txt").read_text(encoding="utf-8")[:40000]
    text += " What is 3 plus 4? 3 + 4 = 7. Answer: 12. Yes No " * 50
    out = save_tiny_llama(tmp_path_factory.mktemp("fusechat_tiny_llama"), text, vocab_size=320,
                          intermediate_size=64, max_positions=512, tie_word_embeddings=True)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = CHAT_TEMPLATE
    tok.pad_token = tok.eos_token
    tok.save_pretrained(out)
    return out
