"""A tiny random transformers Llama with a byte-level BPE tokenizer trained on WikiText-2 (seconds to build):
it exercises the real ``hf:<path>`` loading, quantize/ppl and experiment code paths; its perplexities are
meaningless, which the tests never rely on."""

import pytest


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory):
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from paperlab.core.data import data_path

    text = data_path("wikitext2", "valid.txt").read_text(encoding="utf-8")[:60000]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=300, min_frequency=2, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>")
    out = tmp_path_factory.mktemp("requant_tiny_llama")
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out
