"""Per-position loss of a transformer and a fixed-state recurrent model (the paper's Fig. 4 check).

Both models are trained from scratch with the shared trainer (:func:`paperlab.core.trainer.train`) on the
same long documents, at the same parameter count; then the held-out loss is read *per token position*
``t`` of the training window. A model whose history state keeps growing (transformer) can keep using
the context, so its loss keeps falling with ``t``; a fixed-state model's loss flattens once its state is
full — the L²M condition at work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from paperlab.core.lm_data import ByteTokenizer, TokenData


def byte_datasets(docs: list[str], val_fraction: float = 0.1) -> tuple[TokenData, TokenData]:
    """UTF-8 bytes of each document: the first ``1 - val_fraction`` of every document trains, the rest validates."""
    tok = ByteTokenizer()
    train, val = [], []
    for d in docs:
        ids = tok.encode(d)
        cut = int(len(ids) * (1 - val_fraction))
        train.append(torch.tensor(ids[:cut], dtype=torch.long))
        val.append(torch.tensor(ids[cut:], dtype=torch.long))
    return TokenData(torch.cat(train)), TokenData(torch.cat(val))


@torch.no_grad()
def per_position_loss(model: torch.nn.Module, data: TokenData, seq_len: int, max_windows: int,
                      batch_size: int = 16) -> np.ndarray:
    """Cross-entropy (nats) at every position of ``max_windows`` consecutive held-out windows: ``[windows, seq_len]``."""
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for x, y in data.eval_batches(batch_size, seq_len, max_windows * seq_len):
        logits, _ = model(x.to(device))
        ce = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), y.to(device), reduction="none")
        rows.append(ce.cpu().numpy())
    model.train()
    return np.concatenate(rows)[:max_windows]


@dataclass
class LateImprovement:
    """How much the loss still falls late in the window: ``mean loss[T/8, T/4) - mean loss[T/2, T)``."""

    value: float
    err: float               # standard error over windows
    early: float
    late: float


def late_drop_per_window(losses: np.ndarray) -> np.ndarray:
    """Per window (row of ``losses[windows, T]``): mean loss over ``[T/8, T/4)`` minus mean over ``[T/2, T)``.

    The unit the ``fixed_state_plateaus`` claim resamples; two models evaluated on the same windows are
    compared window by window (:func:`paperlab.core.stats.paired_bootstrap_diff`)."""
    T = losses.shape[1]
    return losses[:, T // 8: T // 4].mean(1) - losses[:, T // 2:].mean(1)


def late_improvement(losses: np.ndarray) -> LateImprovement:
    """Per window, early-bin mean minus late-bin mean; mean and standard error over windows."""
    T = losses.shape[1]
    early = losses[:, T // 8: T // 4].mean(1)
    late = losses[:, T // 2:].mean(1)
    diff = late_drop_per_window(losses)
    return LateImprovement(float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff))),
                           float(early.mean()), float(late.mean()))


def binned_curve(losses: np.ndarray, n_bins: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss in log-spaced position bins (positions counted from 1): ``(bin centres, mean loss)``."""
    T = losses.shape[1]
    edges = np.unique(np.round(np.logspace(0, np.log10(T + 1), n_bins + 1)).astype(int))
    centres, means = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        if hi > lo:
            centres.append(np.sqrt(lo * (hi - 1)) if hi - 1 >= lo else lo)
            means.append(losses[:, lo - 1: hi - 1].mean())
    return np.asarray(centres), np.asarray(means)
