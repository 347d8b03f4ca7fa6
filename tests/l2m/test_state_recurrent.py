"""History-state sizes (KV cache grows linearly, the RNN state is constant) and the fixed-state model."""

import torch

from paperlab.core.trainer import TrainConfig, train
from paperlab.core.transformer import Transformer, TransformerConfig
from paperlab.l2m.recurrent import RecurrentLM, matched_config, transformer_params
from paperlab.l2m.state import (
    hf_kv_cache_size,
    l2m_condition,
    measured_kv_cache_size,
    measured_rnn_state_size,
)
from paperlab.l2m.train import byte_datasets, late_improvement, per_position_loss


def test_kv_cache_grows_linearly_and_matches_the_formula(tiny_lm_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    sizes = [measured_kv_cache_size(model, L) for L in (8, 16, 32, 64)]
    assert sizes == [hf_kv_cache_size(model.config, L) for L in (8, 16, 32, 64)]
    assert sizes[1] == 2 * sizes[0] and sizes[3] == 8 * sizes[0]
    # 2 (K, V) x 2 layers x 2 KV heads x head_dim 8 per token
    assert sizes[0] == 8 * 2 * 2 * 2 * 8


def test_rnn_state_is_constant_and_fails_the_l2m_condition():
    cfg = matched_config(TransformerConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=88))
    model = RecurrentLM(cfg)
    lengths = [8, 32, 128]
    sizes = [measured_rnn_state_size(model, L) for L in lengths]
    assert sizes == [cfg.state_size] * 3 == [2 * 32] * 3
    assert not l2m_condition(lengths, sizes, beta=0.5).satisfied
    kv = [2 * 2 * 32 * L for L in lengths]
    cond = l2m_condition(lengths, kv, beta=0.5)
    assert cond.satisfied and abs(cond.state_exponent - 1.0) < 1e-9


def test_matched_config_has_the_transformers_parameter_count():
    for d, layers in ((64, 2), (128, 4)):
        tcfg = TransformerConfig(vocab_size=256, d_model=d, n_layers=layers, n_heads=2, d_ff=int(8 * d / 3))
        n_tr = sum(p.numel() for p in Transformer(tcfg).parameters())
        assert n_tr == transformer_params(tcfg)
        n_rnn = sum(p.numel() for p in RecurrentLM(matched_config(tcfg)).parameters())
        assert abs(n_rnn - n_tr) / n_tr < 0.01


def test_recurrent_model_trains_with_the_shared_trainer(tmp_path):
    from paperlab.core.data import data_path

    torch.manual_seed(0)
    text = data_path("gutenberg", "121.txt").read_text(encoding="utf-8")[:60000]
    train_data, val_data = byte_datasets([text])
    cfg = matched_config(TransformerConfig(vocab_size=256, d_model=32, n_layers=1, n_heads=2, d_ff=88, max_seq_len=64))
    model = RecurrentLM(cfg)
    hist = train(model, train_data, val_data, TrainConfig(steps=30, batch_size=8, seq_len=64, lr=1e-2, warmup_steps=3,
                                                         eval_every=30, eval_tokens=2048), tmp_path)
    assert hist["val_loss"][-1] < hist["val_loss"][0] - 1.0      # learns byte statistics
    assert hist["flops_per_token"] > 0
    pos = per_position_loss(model, val_data, 64, 8)
    assert pos.shape == (8, 64)
    li = late_improvement(pos)
    assert abs(li.value) < 5 and li.err >= 0
