"""Bilingual training regimes and the checkpoint schedule (the paper's B-GPT training, scaled down).

The second language starts at half of training (``onset = steps / 2``; B-GPT: step 64,000 of 128,000):

==============  =====================  ==================================================
regime          steps ``< onset``       steps ``>= onset``
==============  =====================  ==================================================
sequential      L1 only                L2 only                 (final mix over training 50/50)
simultaneous    L1 only                50/50 mix of L1 and L2  (final mix over training 75/25)
codeswitch      L1 only                as simultaneous, but a share of the documents switch
                                       language sentence by sentence (positive control)
==============  =====================  ==================================================

The ``codeswitch`` control puts cross-language structural persistence into the data, so cross-language
priming is expected there by construction; it shows that the measure detects the effect when the data hold
it, and is never evidence for the paper's claim.

Both regimes see the same L1 data (same seed, same batches) before the onset, so they are trained once up
to the onset and branched there: the simultaneous model resumes from the sequential model's trainer
checkpoint at the onset step (:func:`train_regime`), which is the same model the paper's separate
trainings would have had (the core trainer's batches are a pure function of ``(seed, step)``).

**Checkpoints.** B-GPT: every 10k steps to 50k, then the onset (64k), then every 10 steps to +200, every
100 to +1,000, every 1k to +6,000, every 10k to the end: dense right after the onset. Scaled down
(:func:`checkpoint_steps`): a few before the onset at fractions of it, the onset, then onset +
``fraction * onset`` for log-spaced fractions up to the end. A snapshot of the weights is saved at each.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

REGIMES = ("sequential", "simultaneous")
#: the positive control: simultaneous, with a share of code-switched documents in the mixed phase
CONTROL = "codeswitch"


def checkpoint_steps(steps: int, pre: tuple[float, ...], post: tuple[float, ...]) -> list[int]:
    """Training steps whose weights are measured: ``round(f * onset)`` for ``f`` in ``pre`` (0 < f < 1), the
    onset, and ``onset + round(f * onset)`` for ``f`` in ``post`` (0 < f <= 1); sorted, distinct."""
    onset = steps // 2
    out = {max(1, round(f * onset)) for f in pre} | {onset}
    out |= {min(steps, onset + max(1, round(f * onset))) for f in post}
    return sorted(out)


def phase_mixes(regime: str, l1: str, l2: str) -> tuple[dict[str, float], dict[str, float]]:
    """Language shares of the documents before and after the onset."""
    if regime == "sequential":
        return {l1: 1.0}, {l2: 1.0}
    if regime in ("simultaneous", CONTROL):
        return {l1: 1.0}, {l1: 0.5, l2: 0.5}
    raise ValueError(f"unknown regime {regime!r}; use one of {REGIMES}")


@dataclass
class RegimeData:
    """Training batches of a regime: step ``< onset`` from ``before``, else from ``after`` (each a core
    :class:`~paperlab.core.lm_data.TokenData`); duck-typed for :func:`paperlab.core.trainer.train`."""

    before: object
    after: object
    onset: int

    def batch(self, step: int, batch_size: int, seq_len: int, seed: int = 0, rank: int = 0):
        data = self.before if step < self.onset else self.after
        return data.batch(step, batch_size, seq_len, seed=seed, rank=rank)


def train_regime(model, data: RegimeData, val_data, tcfg, folder: Path, snapshots: list[int],
                 branch_from: Path | None = None, desc: str = "train") -> dict:
    """Train ``model`` with the core trainer in ``folder`` (resumable), saving ``snap_<step>.pt`` (weights) at
    every step of ``snapshots`` and a copy of the trainer checkpoint at the onset (``onset.pt``).

    ``branch_from``: an ``onset.pt`` of another regime to start from (its first ``onset`` steps are those of
    this regime) when ``folder`` has no checkpoint of its own yet. Returns the trainer history.
    """
    import torch

    from paperlab.core.trainer import finished_training, train

    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "checkpoint.pt"
    hist = finished_training(model, tcfg, folder)
    if hist is not None and all((folder / f"snap_{s}.pt").exists() for s in snapshots):
        return hist
    if ckpt.exists():
        # a snapshot at or before the checkpoint's step is missing (killed between the trainer's checkpoint and
        # the snapshot, or deleted): train again from the start (or the branch point); batches are a pure
        # function of (seed, step), so the weights come out the same
        done = torch.load(ckpt, map_location="cpu", weights_only=False)["step"]
        if any(s <= done and not (folder / f"snap_{s}.pt").exists() for s in snapshots):
            ckpt.unlink()
            (folder / "history.json").unlink(missing_ok=True)
    if branch_from is not None and not ckpt.exists():
        shutil.copyfile(branch_from, ckpt)
    wanted = set(snapshots)

    def on_step(step: int, record: dict) -> None:
        if step in wanted:
            torch.save(model.state_dict(), folder / f"snap_{step}.pt")
        if step == data.onset and (folder / "checkpoint.pt").exists():
            shutil.copyfile(folder / "checkpoint.pt", folder / "onset.pt")   # written by the trainer this step

    return train(model, data, val_data, tcfg, folder, progress=True, desc=desc, on_step=on_step)
