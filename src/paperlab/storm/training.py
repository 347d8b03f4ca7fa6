"""Training and evaluating one STORM variant on cached frame-encoder tokens (resumable).

Not part of the paper: a small supervised loop for multiple-choice video QA (the core trainer is built for
next-token language modelling on token streams). Candidate for the core as a generic "classification trainer
with atomic checkpoints": AdamW, linear warmup + cosine decay, gradient clipping, batches a pure function of
``(seed, step)`` so a killed run resumed from its checkpoint follows the same path.

Data layout (:class:`QASet`): ``feats (n_videos, T, P, C)`` and one row per question — the video it asks
about, its word ids (right-padded), its length, the choice word ids (-1 padded), the answer index and kind.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from paperlab.storm.model import Storm, StormConfig, Vocab


@dataclass
class QASet:
    feats: torch.Tensor        # (n_videos, T, P, C) float
    video: torch.Tensor        # (Q,) long
    q_ids: torch.Tensor        # (Q, Lq) long
    q_len: torch.Tensor        # (Q,) long
    choice_ids: torch.Tensor   # (Q, K) long, -1 pads
    answer: torch.Tensor       # (Q,) long
    kind: list[str]

    @property
    def n_videos(self) -> int:
        return self.feats.shape[0]

    def __len__(self) -> int:
        return len(self.answer)

    def subset(self, videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                    torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch of ``videos``: their features, every question about them (with the position of its video
        in the batch), and the question rows taken."""
        pos = torch.full((self.n_videos,), -1, dtype=torch.long)
        pos[videos] = torch.arange(len(videos))
        rows = torch.nonzero(pos[self.video] >= 0).squeeze(1)
        return (self.feats[videos], pos[self.video[rows]], self.q_ids[rows], self.q_len[rows],
                self.choice_ids[rows], self.answer[rows], rows)


def make_qaset(feats: torch.Tensor, qa: list[list], vocab: Vocab, max_len: int) -> QASet:
    """``qa[i]``: the :class:`paperlab.core.video.QA` list of video ``i``."""
    video, ids, choices, answer, kind = [], [], [], [], []
    for i, qs in enumerate(qa):
        for q in qs:
            video.append(i)
            ids.append(vocab.encode(q.question)[:max_len])
            choices.append([vocab.choice(c) for c in q.choices])
            answer.append(q.answer)
            kind.append(q.kind)
    n = len(ids)
    lq = max((len(x) for x in ids), default=1)
    kmax = max((len(c) for c in choices), default=1)
    q_ids = torch.zeros(n, lq, dtype=torch.long)
    c_ids = torch.full((n, kmax), -1, dtype=torch.long)
    for r, (x, c) in enumerate(zip(ids, choices, strict=True)):
        q_ids[r, : len(x)] = torch.tensor(x, dtype=torch.long)
        c_ids[r, : len(c)] = torch.tensor(c, dtype=torch.long)
    return QASet(feats=feats, video=torch.tensor(video, dtype=torch.long), q_ids=q_ids,
                 q_len=torch.tensor([max(1, len(x)) for x in ids], dtype=torch.long), choice_ids=c_ids,
                 answer=torch.tensor(answer, dtype=torch.long), kind=kind)


@dataclass(frozen=True)
class FitConfig:
    steps: int = 300
    batch_videos: int = 16
    lr: float = 2e-3
    warmup: int = 20
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    seed: int = 0


def _lr(step: int, fc: FitConfig) -> float:
    if step < fc.warmup:
        return fc.lr * (step + 1) / fc.warmup                               # linear warmup
    p = (step - fc.warmup) / max(1, fc.steps - fc.warmup - 1)
    return fc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))   # cosine to 0.1 lr


def _batch(step: int, n: int, fc: FitConfig) -> torch.Tensor:
    g = torch.Generator().manual_seed(fc.seed * 1_000_003 + step)           # a pure function of (seed, step)
    return torch.randperm(n, generator=g)[: fc.batch_videos]


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def device() -> torch.device:
    """The GPU when one is visible (the answer LM and Mamba's CUDA kernels run there), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit(cfg: StormConfig, data: QASet, fc: FitConfig, path: Path | None = None, log=None,
        on_step=None) -> tuple[Storm, dict]:
    """Train a fresh :class:`Storm` of ``cfg`` on ``data``. With ``path`` the finished model is saved there and
    reused by a later call with the same settings; a checkpoint ``<path>.ckpt`` is written every
    ``checkpoint_every`` steps and resumed from after a kill. ``on_step(step)`` runs after each step (tests use
    it to interrupt a run)."""
    key = {"model": cfg.as_dict(), "fit": fc.__dict__}
    torch.manual_seed(fc.seed)
    dev = device()
    model = Storm(cfg).to(dev)
    if path is not None and path.exists():
        state = torch.load(path, map_location=dev, weights_only=False)
        if state.get("key") == key:
            model.load_state_dict(state["model"])
            return model.eval(), state["history"]
    opt = torch.optim.AdamW(model.parameters(), lr=fc.lr, weight_decay=fc.weight_decay)
    hist = {"loss": [], "seconds": 0.0, "resumed_from": None}
    start = 0
    ckpt = path.with_suffix(".ckpt") if path is not None else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=dev, weights_only=False)
        if state.get("key") == key:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            hist, start = state["history"], state["step"]
            hist["resumed_from"] = start
    model.train()
    t0 = time.perf_counter()
    for step in range(start, fc.steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, fc)
        batch = data.subset(_batch(step, data.n_videos, fc))
        feats, video_of, q_ids, q_len, choice_ids, answer = (t.to(dev) for t in batch[:6])
        logits = model(feats, video_of, q_ids, q_len, choice_ids)
        loss = F.cross_entropy(logits, answer)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), fc.grad_clip)
        opt.step()
        hist["loss"].append(float(loss.detach()))
        if ckpt is not None and fc.checkpoint_every and (step + 1) % fc.checkpoint_every == 0 and step + 1 < fc.steps:
            hist["seconds"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            _atomic_save({"key": key, "model": model.state_dict(), "opt": opt.state_dict(), "history": hist,
                          "step": step + 1}, ckpt)
        if log is not None and (step + 1) % 100 == 0:
            log(f"  step {step + 1}/{fc.steps} loss {np.mean(hist['loss'][-50:]):.3f}")
        if on_step is not None:
            on_step(step + 1)
    hist["seconds"] += time.perf_counter() - t0
    model.eval()
    if path is not None:
        _atomic_save({"key": key, "model": model.state_dict(), "history": hist, "config": cfg.as_dict()}, path)
        if ckpt is not None and ckpt.exists():
            ckpt.unlink()
    return model, hist


@torch.no_grad()
def predict(model: Storm, data: QASet, sample: int = 1, batch_videos: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Predicted choice index and the choice probabilities' maximum for every question of ``data`` (in row
    order), with test-time temporal sampling ``sample``."""
    model.eval()
    pred = np.zeros(len(data), dtype=np.int64)
    conf = np.zeros(len(data), dtype=np.float64)
    for lo in range(0, data.n_videos, batch_videos):
        videos = torch.arange(lo, min(lo + batch_videos, data.n_videos))
        feats, video_of, q_ids, q_len, choice_ids, _, rows = data.subset(videos)
        dev = next(model.parameters()).device
        p = model(*(t.to(dev) for t in (feats, video_of, q_ids, q_len, choice_ids)), sample=sample).softmax(-1).cpu()
        pred[rows.numpy()] = p.argmax(-1).numpy()
        conf[rows.numpy()] = p.max(-1).values.numpy()
    return pred, conf
