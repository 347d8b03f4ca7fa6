"""AF2's three-stage curriculum (§3.4) and its freezing schedule.

=========  ===========================  ==============================  ===================  ==================
stage      data (ours)                  trainable                       context              lr (paper)
=========  ===========================  ==============================  ===================  ==================
1 align    10 s scenes -> captions      transform, XATTN-Dense          10 s (1 window)      1e-4
2 skills   30 s scenes -> QA            AF-CLAP audio encoder,          30 s (3 windows)     2e-5
                                        transform, XATTN-Dense
3 long     long scenes -> QA            transform, XATTN-Dense          up to 5 min (30 w.)  not released
=========  ===========================  ==============================  ===================  ==================

The LM is frozen throughout except the input-embedding rows of ``<audio>`` and ``<eoc>`` (official
``train_utils.py`` mask). Optimiser as in the released configs: AdamW (weight decay 0.1 on matrices), linear
warm-up then a constant learning rate. Stage-3 settings are not released: we keep stage 2's learning rate.
Our absolute learning rates are larger than the paper's (tiny models, hundreds rather than tens of thousands
of steps); the ratio between stages 1 and 2 (5:1) is the paper's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.af2.clap import AudioEncoder
from paperlab.af2.flamingo import FlamingoLM, embedding_row_mask


@dataclass(frozen=True)
class Stage:
    name: str
    trainable: tuple[str, ...]      # of "clap", "transform", "xattn" (+ the LM's special embedding rows)
    max_windows: int                # context: 10 s windows per clip
    lr: float
    steps: int
    data: str                       # "captions" | "qa_short" | "qa_long"


def paper_stages(lrs: tuple[float, float, float], steps: tuple[int, int, int], long_windows: int) -> list[Stage]:
    """The paper's schedule with our step counts and learning rates (see the module docstring)."""
    return [
        Stage("1-alignment", ("transform", "xattn"), 1, lrs[0], steps[0], "captions"),
        Stage("2-skills", ("clap", "transform", "xattn"), 3, lrs[1], steps[1], "qa_short"),
        Stage("3-long-audio", ("transform", "xattn"), long_windows, lrs[2], steps[2], "qa_long"),
    ]


class AudioFlamingo(nn.Module):
    """AF-CLAP's audio encoder (token output) + the Flamingo-conditioned LM."""

    def __init__(self, audio: AudioEncoder, flamingo: FlamingoLM, special_rows: list[int]):
        super().__init__()
        self.audio, self.flamingo = audio, flamingo
        self.special_rows = list(special_rows)

    def audio_tokens(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, W, frames, 64) -> (B, W, T, d): each 10 s window encoded on its own."""
        B, W = mels.shape[:2]
        tok = self.audio.tokens(mels.reshape(B * W, *mels.shape[2:]))
        return tok.view(B, W, *tok.shape[1:])

    def forward(self, ids: torch.Tensor, tokens: torch.Tensor, window_mask: torch.Tensor) -> torch.Tensor:
        return self.flamingo(ids, tokens, window_mask)

    def set_stage(self, stage: Stage) -> list[nn.Parameter]:
        """Freeze everything, then unfreeze the stage's modules and the LM's special embedding rows."""
        self.requires_grad_(False)
        parts = {"clap": self.audio, "transform": self.flamingo.transform, "xattn": self.flamingo.xattn}
        for name in stage.trainable:
            parts[name].requires_grad_(True)
        self.flamingo.lm.tok_emb.weight.requires_grad_(True)          # only its special rows learn (hook)
        return [p for p in self.parameters() if p.requires_grad]


@dataclass
class Batch:
    ids: torch.Tensor               # (B, L) token ids
    answer_mask: torch.Tensor       # (B, L) True on answer + <eoc> tokens
    window_mask: torch.Tensor       # (B, W)
    mels: torch.Tensor | None = None     # (B, W, frames, 64) when the audio encoder runs (stage 2)
    tokens: torch.Tensor | None = None   # (B, W, T, d) precomputed by a frozen encoder


def answer_loss(logits: torch.Tensor, ids: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens (the official loss masks prompt and padding)."""
    tgt = ids[:, 1:].masked_fill(~answer_mask[:, 1:], -1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), tgt.reshape(-1), ignore_index=-1)


@dataclass
class StageHistory:
    stage: str
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    gates: list[list[tuple[float, float]]] = field(default_factory=list)
    seconds: float = 0.0


def train_stage(model: AudioFlamingo, stage: Stage, batch_at: Callable[[int], Batch], warmup: int,
                weight_decay: float = 0.1, log_every: int = 10, seed: int = 0) -> StageHistory:
    """Train ``stage.steps`` steps on ``batch_at(step)``; record the loss and every gate's ``tanh(alpha)``."""
    torch.manual_seed(seed)
    params = model.set_stage(stage)
    emb = model.flamingo.lm.tok_emb.weight
    hook = embedding_row_mask(emb, model.special_rows)
    decay = [p for p in params if p.dim() >= 2 and p is not emb]
    no_decay = [p for p in params if p.dim() < 2 or p is emb]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=stage.lr, betas=(0.9, 0.999))
    hist = StageHistory(stage.name)
    t0 = time.perf_counter()
    model.train()
    try:
        for step in range(stage.steps):
            for g in opt.param_groups:               # linear warm-up, then constant (released configs)
                g["lr"] = stage.lr * min(1.0, (step + 1) / max(1, warmup))
            b = batch_at(step)
            tokens = b.tokens if b.tokens is not None else model.audio_tokens(b.mels)
            loss = answer_loss(model(b.ids, tokens, b.window_mask), b.ids, b.answer_mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if step % log_every == 0 or step + 1 == stage.steps:
                hist.step.append(step + 1)
                hist.loss.append(float(loss.detach()))
                hist.gates.append(model.flamingo.gates())
    finally:
        hook.remove()
        model.eval()
    hist.seconds = time.perf_counter() - t0
    return hist
