"""A tiny random transformers causal LM + a byte-level BPE tokenizer trained on a Gutenberg excerpt.

It exercises the real ``hf:<path>`` loading and scoring code in seconds (the default SmolLM2 takes ~20 s
to load); its log-probs are meaningless, which the tests never rely on.
"""

import pytest


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from paperlab.core.data import data_path

    text = data_path("gutenberg", "174.txt").read_text(encoding="utf-8")[:60000]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=400, min_frequency=2, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>")
    out = tmp_path_factory.mktemp("tiny_lm")
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out
