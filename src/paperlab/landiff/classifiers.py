"""Held-out judges of a clip: small CNNs that read colour, shape and initial direction off the pixels.

They are trained on *real* procedural clips drawn with their own seed (never the generator's training clips)
and score generated clips against the caption that was asked for. Input: the first ``frames`` frames stacked
along channels (``3 * frames`` x H x W), so direction is visible as displacement. Light Gaussian pixel
noise in training keeps them from keying on exact pixel values the generator cannot reproduce. Their
accuracy on real held-out clips is the ceiling any generator can reach under this judge.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.video import COLOURS, DIRECTIONS, SHAPES

ATTRIBUTES = {"colour": tuple(COLOURS), "shape": SHAPES, "direction": tuple(DIRECTIONS)}


class AttributeCNN(nn.Module):
    """Conv(3F->w) -> Conv(w->2w, /2) -> Conv(2w->4w, /2) -> Conv(4w->4w) -> global mean -> a linear head per
    attribute."""

    def __init__(self, frames: int, width: int = 16):
        super().__init__()
        self.frames = frames
        self.net = nn.Sequential(
            nn.Conv2d(3 * frames, width, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(4 * width, 4 * width, 3, 1, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleDict({k: nn.Linear(4 * width, len(v)) for k, v in ATTRIBUTES.items()})

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        """``clips`` uint8 ``(B, T, H, W, 3)`` (T >= frames) -> logits per attribute."""
        x = clips[:, : self.frames].permute(0, 1, 4, 2, 3).float() / 255.0
        x = x.reshape(x.shape[0], -1, *x.shape[-2:])
        h = self.net(x)
        return {k: head(h) for k, head in self.heads.items()}


def labels_of(videos) -> dict[str, np.ndarray]:
    """Attribute indices of each clip's first object."""
    out = {k: [] for k in ATTRIBUTES}
    for v in videos:
        tr = v.tracks[0]
        out["colour"].append(ATTRIBUTES["colour"].index(tr.colour))
        out["shape"].append(ATTRIBUTES["shape"].index(tr.shape))
        out["direction"].append(ATTRIBUTES["direction"].index(tr.direction))
    return {k: np.asarray(v) for k, v in out.items()}


def classifier_loss(model: AttributeCNN, clips: torch.Tensor, labels: dict[str, torch.Tensor],
                    generator: torch.Generator, noise: float = 0.05) -> torch.Tensor:
    x = clips.float() + noise * 255.0 * torch.randn(clips.shape, generator=generator)
    x = x.clamp(0, 255)
    logits = model(x)
    return sum(F.cross_entropy(logits[k], labels[k]) for k in ATTRIBUTES)


@torch.no_grad()
def predict(model: AttributeCNN, clips: np.ndarray | torch.Tensor, batch: int = 256) -> dict[str, np.ndarray]:
    """Predicted attribute indices for uint8 clips ``(N, T, H, W, 3)``."""
    model.eval()
    x = torch.as_tensor(np.asarray(clips))
    out: dict[str, list] = {k: [] for k in ATTRIBUTES}
    for i in range(0, len(x), batch):
        logits = model(x[i: i + batch])
        for k in ATTRIBUTES:
            out[k].append(logits[k].argmax(-1).numpy())
    return {k: np.concatenate(v) if v else np.zeros(0, int) for k, v in out.items()}
