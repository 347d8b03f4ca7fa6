"""Training loops: the codec (reconstruction of log-mel crops), then the LLMVoX decoder on (bytes, codes).

Decoder optimisation follows the official ``configs/train_config.py`` / ``src/utils.py``: AdamW with betas
(0.9, 0.95), eps 1e-5, weight decay 0.1 on parameters of >= 2 dimensions only, gradient clipping at 1.0,
linear warmup then cosine decay to ``min_lr_ratio`` x lr (official: 3e-4 -> 3e-6, ratio 0.01). The step count,
warmup and peak learning rate are scaled to our budget (official: 50k warmup, 1M-2.6M iterations, lr 3e-4).

Both loops are resumable: a checkpoint (model, optimiser, step, history) is written atomically every
``checkpoint_every`` steps and at the end; batches are a pure function of (seed, step).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from paperlab.core.trainer import TrainConfig, lr_at, param_groups


@dataclass
class LoopConfig:
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    min_lr_ratio: float = 0.01
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-5
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 100

    def schedule(self) -> TrainConfig:  # the core's warmup + cosine schedule (lr_at)
        return TrainConfig(steps=self.steps, lr=self.lr, warmup_steps=self.warmup_steps,
                           min_lr_ratio=self.min_lr_ratio)


def step_rng(seed: int, step: int) -> np.random.Generator:
    h = hashlib.blake2b(f"{seed}/{step}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(h, "little"))


def _save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def run_loop(model: torch.nn.Module, loss_fn: Callable[[int], tuple[torch.Tensor, dict]], cfg: LoopConfig,
             ckpt: Path | None, key: str, decay_all: bool = False,
             on_step: Callable[[int], None] | None = None) -> dict:
    """Optimise ``loss_fn(step)`` for ``cfg.steps`` steps (resuming from ``ckpt`` written under ``key``);
    returns the history {step, loss, lr, seconds, parts}."""
    groups = ([{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": cfg.weight_decay}]
              if decay_all else param_groups(model, cfg.weight_decay))
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    hist: dict = {"step": [], "loss": [], "lr": [], "parts": [], "seconds": 0.0, "key": key}
    start = 0
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state.get("key") == key:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            hist, start = state["history"], state["step"]
    sched = cfg.schedule()
    model.train()
    t0 = time.perf_counter()

    def save(step: int) -> None:
        if ckpt is not None:
            hist["seconds"] += time.perf_counter() - t0
            _save({"model": model.state_dict(), "opt": opt.state_dict(), "history": hist, "step": step,
                   "key": key}, ckpt)

    for step in range(start, cfg.steps):
        lr = lr_at(step, sched)
        for g in opt.param_groups:
            g["lr"] = lr
        loss, parts = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        hist["step"].append(step + 1)
        hist["loss"].append(float(loss.detach()))
        hist["lr"].append(lr)
        hist["parts"].append(parts)
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            save(step + 1)
            t0 = time.perf_counter()
        if on_step is not None:
            on_step(step + 1)
    if start < cfg.steps or ckpt is None or not ckpt.exists():
        save(cfg.steps)
    else:
        hist["seconds"] += 0.0
    model.eval()
    return hist


# ------------------------------------------------------------------ codec


def train_codec(codec, mels: Sequence[np.ndarray], cfg: LoopConfig, crop: int, ckpt: Path | None, key: str) -> dict:
    """Fit the band statistics, then train on random ``crop``-frame windows of the training mels."""
    codec.fit_stats(mels)
    lengths = np.array([len(m) for m in mels])
    crop = int(min(crop, lengths.min()))
    crop -= crop % codec.config.stride

    def loss_fn(step: int):
        rng = step_rng(cfg.seed, step)
        idx = rng.integers(0, len(mels), cfg.batch_size)
        batch = []
        for i in idx:
            s = int(rng.integers(0, lengths[i] - crop + 1))
            batch.append(mels[i][s:s + crop])
        return codec.loss(torch.from_numpy(np.stack(batch)).float())

    return run_loop(codec, loss_fn, cfg, ckpt, key, decay_all=False)


# ------------------------------------------------------------------ decoder


def train_decoder(model, examples: Sequence[tuple[torch.Tensor, torch.Tensor]], cfg: LoopConfig, ckpt: Path | None,
                  key: str, on_step: Callable[[int], None] | None = None) -> dict:
    """Cross-entropy of each next code (teacher forcing) on random batches of training pairs."""
    from paperlab.llmvox.decoder import collate

    eoa = model.config.eoa_code

    def loss_fn(step: int):
        idx = step_rng(cfg.seed, step).integers(0, len(examples), cfg.batch_size)
        x, y = collate([examples[i] for i in idx], eoa)
        _, loss = model(x, y)
        return loss, {}

    return run_loop(model, loss_fn, cfg, ckpt, key, on_step=on_step)


@torch.no_grad()
def sequence_losses(model, examples: Sequence[tuple[torch.Tensor, torch.Tensor]], batch_size: int = 16) -> list[float]:
    """Mean cross-entropy of each (held-out) pair under teacher forcing."""
    from paperlab.llmvox.decoder import collate

    model.eval()
    out = []
    for s in range(0, len(examples), batch_size):
        x, y = collate(examples[s:s + batch_size], model.config.eoa_code)
        logits, _ = model(x)
        tok = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, ignore_index=-1, reduction="none")
        out += ((tok * (y >= 0)).sum(1) / (y >= 0).sum(1)).tolist()
    return out
