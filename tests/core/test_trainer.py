"""The shared trainer: LR schedule, learning on real text, per-layer grad norms, kill-and-resume."""

import json
import math

import pytest
import torch

from paperlab.core.errors import UserError
from paperlab.core.lm_data import lm_datasets
from paperlab.core.trainer import TrainConfig, lr_at, train
from paperlab.core.transformer import Transformer, TransformerConfig


@pytest.fixture(scope="module")
def shakespeare():
    return lm_datasets("tinyshakespeare", "char")


def model_for(tok, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=tok.vocab_size, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=32)
    return Transformer(TransformerConfig(**{**cfg, **kw}))


def test_lr_schedule_warmup_then_cosine_to_floor():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)          # linear warmup
    assert all(b > a for a, b in zip(lrs[:10], lrs[1:10], strict=False))
    assert all(b <= a for a, b in zip(lrs[10:], lrs[11:], strict=False))               # then non-increasing
    assert lrs[-1] == pytest.approx(1e-4)                                                 # floor = 0.1 lr
    mid = 10 + (99 - 10) // 2
    assert lrs[mid] == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * (mid - 10) / 89)))


def test_training_lowers_validation_loss_and_logs_layer_grad_norms(shakespeare, tmp_path):
    tr, va, tok = shakespeare
    cfg = TrainConfig(steps=30, batch_size=8, seq_len=32, lr=3e-3, warmup_steps=5, eval_every=15,
                      eval_tokens=1024, grad_norm_every=10)
    h = train(model_for(tok), tr, va, cfg, tmp_path)
    assert h["val_step"] == [0, 15, 30]
    assert h["val_loss"][-1] < h["val_loss"][0] - 0.7          # from ~ln 65 = 4.17 to the unigram level
    assert h["layer_grad_norms"]["step"] == [1, 10, 20, 30]
    assert all(len(r) == 2 and all(x > 0 for x in r) for r in h["layer_grad_norms"]["norms"])
    assert h["tokens"] == 30 * 8 * 32 and h["train_flops"] == pytest.approx(3 * h["flops_per_token"] * h["tokens"])
    assert json.loads((tmp_path / "history.json").read_text())["val_loss"] == pytest.approx(h["val_loss"])


class Killed(Exception):
    pass


def test_killed_run_resumes_from_checkpoint_with_identical_losses(shakespeare, tmp_path):
    tr, va, tok = shakespeare
    cfg = TrainConfig(steps=16, batch_size=4, seq_len=32, lr=3e-3, warmup_steps=3, eval_every=4,
                      eval_tokens=1024, grad_norm_every=2, checkpoint_every=5, seed=7)
    kw = dict(dropout=0.1)                       # dropout: the RNG state must be restored too
    ref = train(model_for(tok, **kw), tr, va, cfg, tmp_path / "ref")

    def kill_at_8(step, record):                  # dies abruptly after step 8; last checkpoint: step 5
        if step == 8:
            raise Killed

    with pytest.raises(Killed):
        train(model_for(tok, **kw), tr, va, cfg, tmp_path / "run", on_step=kill_at_8)
    resumed = train(model_for(tok, seed=123, **kw), tr, va, cfg, tmp_path / "run")   # fresh process state
    assert resumed["resumed_from"] == 5
    assert resumed["train_loss"] == ref["train_loss"]          # bit-identical, steps 1..16
    assert resumed["val_loss"] == ref["val_loss"]
    assert resumed["layer_grad_norms"] == ref["layer_grad_norms"]


def test_bf16_autocast_trains(shakespeare):
    tr, va, tok = shakespeare
    cfg = TrainConfig(steps=4, batch_size=2, seq_len=16, lr=1e-3, warmup_steps=1, eval_every=4,
                      eval_tokens=256, precision="bf16")
    h = train(model_for(tok), tr, va, cfg)
    assert all(math.isfinite(x) for x in h["train_loss"]) and len(h["val_loss"]) == 2


def test_divergence_stops_the_run(shakespeare):
    tr, va, tok = shakespeare
    cfg = TrainConfig(steps=30, batch_size=2, seq_len=16, lr=1e-3, warmup_steps=1, eval_every=10,
                      eval_tokens=256, diverge_loss=0.5)        # any loss above 0.5 counts as a blow-up
    h = train(model_for(tok), tr, va, cfg)
    assert h["diverged"] and h["diverged_step"] == 1 and h["steps_done"] == 1


def test_bad_train_config_is_a_user_error(shakespeare):
    with pytest.raises(UserError):
        TrainConfig(precision="fp8")
    tr, va, tok = shakespeare
    with pytest.raises(UserError):
        train(model_for(tok), tr, va, TrainConfig(steps=1, seq_len=64))    # model max_seq_len is 32


def test_checkpoint_of_another_configuration_is_refused_and_finished_runs_reused_by_key(shakespeare, tmp_path):
    from paperlab.core.trainer import finished_training

    tr, va, tok = shakespeare
    cfg = TrainConfig(steps=6, batch_size=4, seq_len=32, lr=3e-3, warmup_steps=2, eval_every=3,
                      eval_tokens=512, checkpoint_every=3)
    first = model_for(tok)
    h = train(first, tr, va, cfg, tmp_path)
    again = model_for(tok, seed=1)                                   # other init, same architecture
    reused = finished_training(again, cfg, tmp_path)
    assert reused is not None and reused["key"] == h["key"]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values(),
                                                  strict=True))     # the trained weights were loaded
    longer = TrainConfig(**{**cfg.__dict__, "steps": 9})
    assert finished_training(model_for(tok), longer, tmp_path) is None   # another setup: not reused
    assert finished_training(model_for(tok, d_model=48), cfg, tmp_path) is None
    with pytest.raises(UserError, match="another model or training configuration"):
        train(model_for(tok), tr, va, longer, tmp_path)             # resuming it would mix two setups
