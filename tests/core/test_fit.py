"""core.trainer.fit: learns, resumes exactly after an interruption, reuses a finished model only under its key."""

import pytest
import torch
from torch import nn

from paperlab.core.errors import UserError
from paperlab.core.trainer import FitConfig, fit, step_generator


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(4, 1, generator=g)
    x = torch.randn(256, 4, generator=g)
    y = x @ w_true + 0.01 * torch.randn(256, 1, generator=g)
    return x, y, w_true


class Stop(Exception):
    pass


def _train(folder, steps=60, stop_at=None, key="a", calls=None, seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(4, 1)
    x, y, _ = _problem()

    def loss_at(step):
        if calls is not None:
            calls.append(step)
        idx = torch.randint(0, 256, (16,), generator=step_generator(seed, step))
        loss = ((model(x[idx]) - y[idx]) ** 2).mean()
        return loss, {"mse": loss.item()}

    def on_step(step):
        if stop_at is not None and step == stop_at:
            raise Stop

    hist = fit(model, loss_at, FitConfig(steps=steps, lr=0.05, checkpoint_every=10), folder, "lin", key,
               on_step=on_step)
    return model, hist


def test_fit_learns_the_regression():
    model, hist = _train(None, steps=300)
    _, _, w_true = _problem()
    assert torch.allclose(model.weight.detach().T, w_true, atol=0.05)
    assert hist["loss"][-1] < 0.05 * hist["loss"][0]
    assert len(hist["parts"]) == 300 and "mse" in hist["parts"][0]


def test_killed_run_resumes_to_the_same_result(tmp_path):
    ref_model, ref_hist = _train(tmp_path / "ref")
    with pytest.raises(Stop):
        _train(tmp_path / "killed", stop_at=37)
    calls: list[int] = []
    model, hist = _train(tmp_path / "killed", calls=calls)
    assert hist["resumed_from"] == 30          # the last checkpoint before the kill
    assert calls[0] == 30 and len(calls) == 30  # nothing before the checkpoint is recomputed
    assert hist["loss"] == ref_hist["loss"]
    assert torch.equal(model.weight, ref_model.weight)
    assert not (tmp_path / "killed" / "lin.ckpt").exists()


def test_finished_model_is_reused_only_under_its_key(tmp_path):
    model, _ = _train(tmp_path)
    calls: list[int] = []
    again, hist = _train(tmp_path, calls=calls, seed=1)   # another init: the loaded weights must replace it
    assert hist["reused"] and calls == []
    assert torch.equal(again.weight, model.weight)
    calls2: list[int] = []
    _, hist2 = _train(tmp_path, calls=calls2, key="b")
    assert not hist2["reused"] and len(calls2) == 60


def test_checkpoint_of_another_key_is_not_resumed(tmp_path):
    with pytest.raises(Stop):
        _train(tmp_path, stop_at=25, key="a")
    calls: list[int] = []
    _, hist = _train(tmp_path, key="b", calls=calls)
    assert hist["resumed_from"] is None and calls[0] == 0


def test_only_the_given_params_move():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    frozen = model[0].weight.detach().clone()
    x = torch.randn(32, 3)
    fit(model, lambda s: model(x).pow(2).mean(), FitConfig(steps=5, lr=0.1), params=model[1].parameters())
    assert torch.equal(model[0].weight, frozen)


def test_non_finite_loss_is_a_one_line_error():
    model = nn.Linear(2, 1)
    with pytest.raises(UserError, match="loss is nan"):
        fit(model, lambda s: model.weight.sum() * float("nan"), FitConfig(steps=3, lr=0.1))
