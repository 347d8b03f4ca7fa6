"""A resumable training loop for the LanDiff stages (tokenizer, LM, detokenizer base and control, classifiers).

The core trainer (:mod:`paperlab.core.trainer`) trains a token LM on ``(x, y)`` windows; our stages have their
own inputs and losses, so this is the same recipe over an arbitrary ``batch_loss(step, generator)``: AdamW,
linear warmup then cosine decay (the core's :func:`~paperlab.core.trainer.lr_at`), gradient clipping, and
checkpoints written atomically every ``checkpoint_every`` steps. Each step's batch is drawn from a generator
seeded by ``(seed, step)``, so a run killed and restarted continues where its last checkpoint left off.
A finished stage is kept as ``<name>.pt`` (weights + history + the stage's key) and reused as is; a
checkpoint or result written under another key is ignored and the stage retrained.

(A candidate for the core: a generic "train any ``batch_loss`` resumably" next to the LM trainer.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn


def _save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(name: str, model: nn.Module, params: list[nn.Parameter],
        batch_loss: Callable[[int, torch.Generator], tuple[torch.Tensor, dict]], steps: int, lr: float,
        folder: Path | None, key: str, seed: int = 0, warmup: int | None = None, weight_decay: float = 0.0,
        checkpoint_every: int = 100, grad_clip: float = 1.0, log: Callable[[str], None] | None = None,
        on_step: Callable[[int], None] | None = None) -> dict:
    """Train ``params`` of ``model`` for ``steps`` steps of ``batch_loss``; return the history
    (``loss`` per step, the extra values ``batch_loss`` reports, ``seconds``, ``resumed_from``)."""
    from paperlab.core.trainer import TrainConfig, lr_at

    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{name}.pt" if folder is not None else None
    ckpt = folder / f"{name}.ckpt" if folder is not None else None
    if final is not None and final.exists():
        state = torch.load(final, map_location="cpu", weights_only=False)
        if state.get("key") == key:
            model.load_state_dict(state["model"])
            hist = state["history"]
            hist["reused"] = True
            return hist
    warmup = max(1, steps // 20) if warmup is None else warmup
    sched = TrainConfig(steps=steps, lr=lr, warmup_steps=min(warmup, steps), min_lr_ratio=0.1)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
    hist: dict[str, Any] = {"loss": [], "extra": [], "seconds": 0.0, "resumed_from": None, "steps": steps,
                            "lr": lr}
    start = 0
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state.get("key") == key:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            hist, start = state["history"], state["step"]
            hist["resumed_from"] = start
    model.train()
    t0 = time.perf_counter()
    for step in range(start, steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, sched)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        loss, extra = batch_loss(step, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        hist["loss"].append(loss.item())
        hist["extra"].append(extra)
        if log is not None and (step + 1) % max(1, steps // 5) == 0:
            log(f"{name}: step {step + 1}/{steps} loss {loss.item():.4f}")
        if ckpt is not None and checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            hist["seconds"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            _save({"key": key, "model": model.state_dict(), "opt": opt.state_dict(), "history": hist,
                   "step": step + 1}, ckpt)
        if on_step is not None:
            on_step(step + 1)
    hist["seconds"] += time.perf_counter() - t0
    model.eval()
    if final is not None:
        _save({"key": key, "model": model.state_dict(), "history": hist}, final)
        if ckpt is not None and ckpt.exists():
            ckpt.unlink()
    return hist
