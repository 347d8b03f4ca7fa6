"""Frame encoders for STORM: the core's offline stand-ins, or a real vision tower by path.

STORM's encoder is SigLIP (PaliGemma's, 448 px). Offline we use :func:`paperlab.core.video.frame_encoder`
(``random`` | ``efficientnet_lite0``); with a GPU and a downloaded checkpoint, ``hf:<path>`` loads any
transformers vision model with square patches (SigLIP, CLIP, ViT, ...) and uses its last hidden layer's patch
tokens (a leading CLS token is dropped), row-major as the paper's scan order needs. Frames are resized to the
model's image size and normalised with its processor's mean and std.

(A general piece: it could move to ``paperlab.core.video_encoders``.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.errors import UserError

OFFLINE = ("random", "efficientnet_lite0")


def is_encoder_spec(name: str) -> bool:
    return name in OFFLINE or (name.startswith("hf:") and len(name) > 3)


class HFFrameEncoder(nn.Module):
    """A frozen transformers vision model giving row-major patch tokens ``(N, h*w, dim)``."""

    def __init__(self, path: str):
        super().__init__()
        from transformers import AutoModel

        try:
            model = AutoModel.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load the vision model {path!r}: {str(e).splitlines()[0]}",
                            "pass hf:<folder of a transformers vision model> (SigLIP, CLIP, ViT)") from None
        self.backbone = getattr(model, "vision_model", model)
        vcfg = getattr(model.config, "vision_config", model.config)
        if not hasattr(vcfg, "image_size") or not hasattr(vcfg, "patch_size"):
            raise UserError(f"{path} is not a patch-based vision model", "pass a SigLIP, CLIP or ViT checkpoint")
        self.name, self.input_size = f"hf:{path}", int(vcfg.image_size)
        g = self.input_size // int(vcfg.patch_size)
        self.grid, self.dim = (g, g), int(vcfg.hidden_size)
        mean, std = [0.5] * 3, [0.5] * 3
        try:
            from transformers import AutoImageProcessor

            proc = AutoImageProcessor.from_pretrained(path)
            mean, std = list(proc.image_mean), list(proc.image_std)
        except (OSError, ValueError, AttributeError):
            pass                                                            # no processor saved: SigLIP's 0.5 / 0.5
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> HFFrameEncoder:
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        dev = next(self.backbone.parameters()).device
        out = self.backbone(pixel_values=((x - self.mean) / self.std).to(dev)).last_hidden_state.float().cpu()
        n = self.grid[0] * self.grid[1]
        if out.shape[1] == n + 1:                                           # drop a CLS token
            out = out[:, 1:]
        if out.shape[1] != n:
            raise UserError(f"{self.name} gives {out.shape[1]} tokens, not a {self.grid[0]}x{self.grid[1]} grid",
                            "pass a model with square patch grids")
        return out


def make_encoder(name: str, size: int):
    """``random`` | ``efficientnet_lite0`` (core, grid = size / 8) | ``hf:<path>`` (on the GPU when present)."""
    if name.startswith("hf:"):
        enc = HFFrameEncoder(name[3:])
        if torch.cuda.is_available():
            enc.backbone.cuda()
        return enc
    from paperlab.core.video import frame_encoder

    return frame_encoder(name, size=size, grid=size // 8)


def grid_of(n_tokens: int) -> tuple[int, int]:
    g = math.isqrt(n_tokens)
    if g * g != n_tokens:
        raise ValueError(f"{n_tokens} tokens per frame is not a square grid")
    return (g, g)
