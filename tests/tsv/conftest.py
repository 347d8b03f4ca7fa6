"""A tiny real Llama (random weights, transformers' own class) with a real WordPiece tokenizer.

Hook, prefix-cache and detector tests run on it in milliseconds; the code paths are the ones the
default SmolLM2 model takes (same ``LlamaForCausalLM`` class).
"""

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from paperlab.core.metrics import minilm_path

    tok = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=5,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    d = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    from paperlab.core.models import load_torch_model

    torch.set_num_threads(1)
    return load_torch_model(f"hf:{tiny_dir}", device="cpu")
