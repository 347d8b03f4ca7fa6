"""LanDiff's detokenizer (§3.3): a video diffusion model steered by semantic features through a control branch.

Paper: a frozen text-to-video diffusion model (CogVideoX-2B, 30 blocks) plus a ControlNet-style branch, a
trainable copy of its first 15 blocks initialised from the same weights. The semantic tokens go through the
frozen VQ decoder (:meth:`SemanticTokenizer.detokenize`), an upsampler and a **zero-initialised** 3x3 conv,
whose output is added to the control branch's input; each control block's output enters the matching main
block through a **zero-initialised** linear. At the start of training the branch therefore changes nothing
and the frozen model is untouched; the branch learns to steer it.

Ours, small:

- :class:`VideoDenoiser` — the base: a transformer over 8x8-pixel patches of every frame of a chunk
  (``T x (H/8)(W/8)`` tokens, full spatio-temporal attention), a per-frame time embedding, predicting the
  clean frames from which the rectified-flow velocity is derived (:func:`flow_loss` says why), plus a learned
  skip ``c(t) x_t``. It is trained first, unconditionally, on real clips, then frozen (our stand-in for the
  pretrained video model, which we do not have).
- :class:`ControlBranch` — a copy of the base's first ``control_layers`` blocks (and its patch embedding),
  the semantic-feature injection ``Linear -> GELU -> zero Linear`` (the upsampler + zero conv: features are
  interpolated in time from semantic to pixel frames and in space to the patch grid), and one zero-initialised
  ``Linear`` per copied block into the main stream.
- Sampling: rectified flow ``x_t = t x_1 + (1 - t) x_0`` (``x_1`` data in [-1, 1], ``x_0`` Gaussian), velocity
  ``v = x_1 - x_0`` estimated as ``(x1_hat - x_t) / (1 - t)``, Euler steps from t = 0 to 1. The paper samples
  its pretrained DDPM model with DPM++ in 50 steps; we train from scratch, and rectified flow's straight paths
  need few (~20) Euler steps with no noise schedule to match, which is why we chose it.
- Long video (§3.4): chunk by chunk, each chunk starting with a **clean prefix** of the previous chunk's last
  frames (the released code's ``fixed_frames`` hook): prefix frames carry t = 1 and their clean pixels, and
  only the other frames are denoised. Training shows a clean prefix of ``prefix_frames`` frames half the time.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.landiff.lm import sinusoidal


@dataclass
class DetokConfig:
    frames: int                 # pixel frames per chunk
    size: int                   # frame size (pixels)
    feat_dim: int               # semantic feature channels
    grid: tuple[int, int]       # semantic feature grid
    stride: int                 # pixel frames per semantic frame
    patch: int = 8
    width: int = 96
    layers: int = 4
    heads: int = 4
    control_layers: int = 2     # paper: 15 of 30
    prefix_frames: int = 4      # clean frames carried over between chunks

    @property
    def grid_p(self) -> int:
        return self.size // self.patch

    @property
    def patch_dim(self) -> int:
        return 3 * self.patch * self.patch

    def to_dict(self) -> dict:
        return asdict(self)


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """``(B, T, 3, H, W)`` -> ``(B, T, (H/p)(W/p), 3 p p)``."""
    b, t, c, h, w = x.shape
    x = x.reshape(b, t, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, t, (h // p) * (w // p), c * p * p)


def unpatchify(x: torch.Tensor, p: int, size: int) -> torch.Tensor:
    b, t, n, _ = x.shape
    g = size // p
    x = x.reshape(b, t, g, g, 3, p, p).permute(0, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, t, 3, size, size)


def _block(width: int, heads: int) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=0.0, activation="gelu",
                                      batch_first=True, norm_first=True)


class VideoDenoiser(nn.Module):
    """The base model ``x1_hat(x_t, t)`` over all patches of a chunk; ``control`` adds residuals."""

    def __init__(self, cfg: DetokConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.patch_embed = nn.Linear(cfg.patch_dim, w)
        self.frame_pos = nn.Parameter(torch.randn(cfg.frames, w) * 0.02)
        self.cell_pos = nn.Parameter(torch.randn(cfg.grid_p ** 2, w) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(_block(w, cfg.heads) for _ in range(cfg.layers))
        self.out_norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, cfg.patch_dim)
        # learned skip c(t) x_t: near t = 1 the clean frames are mostly x_t itself, which 64-96-dim tokens
        # cannot copy through from 192 pixel values; c(t) is zero at first and learned per frame time
        self.skip = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, 1))
        nn.init.zeros_(self.skip[-1].weight)
        nn.init.zeros_(self.skip[-1].bias)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        return sinusoidal(t.reshape(-1) * 1000.0, self.cfg.width)

    def embed(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, T*N, w)``: patch embedding + positions + the embedding of each frame's time ``t``."""
        c = self.cfg
        b, n_f = x_t.shape[:2]
        h = self.patch_embed(patchify(x_t, c.patch))                                    # (B, T, N, w)
        temb = self.time_mlp(sinusoidal(t.reshape(-1) * 1000.0, c.width)).reshape(b, n_f, 1, -1)
        h = h + self.frame_pos[:n_f, None] + self.cell_pos[None, None] + temb
        return h.reshape(b, -1, c.width)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, control: list[torch.Tensor] | None = None) -> torch.Tensor:
        b, n_f = x_t.shape[:2]
        h = self.embed(x_t, t)
        for i, block in enumerate(self.blocks):
            h = block(h)
            if control is not None and i < len(control):
                h = h + control[i]                                   # ControlNet residual after block i
        x1 = unpatchify(self.out(self.out_norm(h)).reshape(b, n_f, -1, self.cfg.patch_dim), self.cfg.patch,
                        self.cfg.size)
        c = self.skip(self.time_embedding(t)).reshape(b, n_f, 1, 1, 1)
        return x1 + c * x_t


def semantic_to_patches(sem: torch.Tensor, cfg: DetokConfig, n_frames: int) -> torch.Tensor:
    """Semantic features ``(B, K, h*w, D)`` -> per pixel frame and patch ``(B, T, N, D)``: linear interpolation in
    time (pixel frame t sits at semantic position t / stride), bilinear in space onto the patch grid."""
    b, k, _, d = sem.shape
    pos = torch.arange(n_frames, dtype=torch.float32) / cfg.stride
    lo = pos.floor().long().clamp(max=k - 1)
    hi = (lo + 1).clamp(max=k - 1)
    wt = (pos - lo.float()).clamp(0, 1).to(sem.device)[None, :, None, None]
    x = sem[:, lo] * (1 - wt) + sem[:, hi] * wt                                     # (B, T, hw, D)
    gh, gw = cfg.grid
    if (gh, gw) != (cfg.grid_p, cfg.grid_p):
        x = x.reshape(b * n_frames, gh, gw, d).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(cfg.grid_p, cfg.grid_p), mode="bilinear", align_corners=False)
        x = x.permute(0, 2, 3, 1).reshape(b, n_frames, cfg.grid_p ** 2, d)
    return x


class ControlBranch(nn.Module):
    """A trainable copy of the base's first blocks, fed ``embed(x_t, t) + zero_in(features)``, whose block
    outputs enter the main stream through zero-initialised linears."""

    def __init__(self, base: VideoDenoiser):
        super().__init__()
        cfg = base.cfg
        self.cfg = cfg
        w = cfg.width
        self.patch_embed = copy.deepcopy(base.patch_embed)
        self.frame_pos = nn.Parameter(base.frame_pos.detach().clone())
        self.cell_pos = nn.Parameter(base.cell_pos.detach().clone())
        self.time_mlp = copy.deepcopy(base.time_mlp)
        self.blocks = nn.ModuleList(copy.deepcopy(base.blocks[i]) for i in range(cfg.control_layers))
        # semantic features -> "upsampler" -> zero-initialised projection into the control input
        self.sem_in = nn.Sequential(nn.Linear(cfg.feat_dim, w), nn.GELU(), nn.Linear(w, w))
        nn.init.zeros_(self.sem_in[-1].weight)
        nn.init.zeros_(self.sem_in[-1].bias)
        self.zero_out = nn.ModuleList(nn.Linear(w, w) for _ in range(cfg.control_layers))
        for lin in self.zero_out:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.requires_grad_(True)      # the copies come from a frozen base: the branch itself is trained

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, sem: torch.Tensor) -> list[torch.Tensor]:
        c = self.cfg
        b, n_f = x_t.shape[:2]
        h = self.patch_embed(patchify(x_t, c.patch))
        temb = self.time_mlp(sinusoidal(t.reshape(-1) * 1000.0, c.width)).reshape(b, n_f, 1, -1)
        h = h + self.frame_pos[:n_f, None] + self.cell_pos[None, None] + temb
        h = h + self.sem_in(semantic_to_patches(sem, c, n_f))
        h = h.reshape(b, -1, c.width)
        out = []
        for block, zero in zip(self.blocks, self.zero_out, strict=True):
            h = block(h)
            out.append(zero(h))
        return out


class Detokenizer(nn.Module):
    """Frozen base + control branch: ``x1_hat(x_t, t | semantic features)``."""

    def __init__(self, base: VideoDenoiser):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.control = ControlBranch(base)
        self.cfg = base.cfg

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        return self.base(x_t, t, self.control(x_t, t, sem))

    def trainable(self) -> list[nn.Parameter]:
        return list(self.control.parameters())


# ---------------------------------------------------------------------------------------------- flow


def to_model(frames_uint8: torch.Tensor) -> torch.Tensor:
    """``(B, T, H, W, 3)`` uint8 -> ``(B, T, 3, H, W)`` in [-1, 1]."""
    return frames_uint8.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 1, 3, 4, 2)


def flow_loss(model, x1: torch.Tensor, prefix: torch.Tensor, generator: torch.Generator, **cond) -> torch.Tensor:
    """Rectified-flow training with a data-predicting network: ``||x1_theta(x_t, t) - x_1||^2`` on the frames
    after each clip's clean prefix (``x_t = t x_1 + (1 - t) x_0``).

    The network predicts the clean frames and the velocity is derived, ``v = (x1_theta - x_t) / (1 - t)``
    (:func:`velocity`). Why not predict ``v = x_1 - x_0`` directly: an 8x8x3 patch has 192 values and our
    tokens 64-96 dims, so the per-pixel noise that ``v`` contains cannot pass the bottleneck, while the clean
    frames (a few flat shapes) can; this is the x-prediction of pixel-space flow models with large patches.
    ``prefix[b]`` frames of clip b are given clean (t = 1) and excluded from the loss.
    """
    b, n_f = x1.shape[:2]
    x0 = torch.randn(x1.shape, generator=generator)
    t = torch.rand(b, 1, generator=generator).expand(b, n_f).clone()
    clean = torch.arange(n_f)[None] < prefix[:, None]
    t[clean] = 1.0
    tt = t[:, :, None, None, None]
    x_t = tt * x1 + (1 - tt) * x0
    x1_hat = model(x_t, t, **cond)
    err = (x1_hat - x1).pow(2).mean((2, 3, 4))
    keep = (~clean).float()
    return (err * keep).sum() / keep.sum().clamp_min(1.0)


def velocity(x1_hat: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, t_max: float = 0.95) -> torch.Tensor:
    """``v = (x1_hat - x_t) / (1 - t)``, with ``1 - t`` kept >= ``1 - t_max``."""
    return (x1_hat - x_t) / (1 - t.clamp(max=t_max))[:, :, None, None, None]


@torch.no_grad()
def sample(model, shape: tuple[int, ...], steps: int, generator: torch.Generator,
           prefix: torch.Tensor | None = None, **cond) -> torch.Tensor:
    """Euler integration of ``dx/dt = v(x, t)`` from noise at t = 0 to data at t = 1; returns ``[-1, 1]`` frames.

    ``prefix`` ``(B, m, 3, H, W)``: the first m frames are held at these clean values (t = 1) throughout.
    """
    model.eval()
    x = torch.randn(shape, generator=generator)
    b, n_f = shape[:2]
    m = 0 if prefix is None else prefix.shape[1]
    if m:
        x[:, :m] = prefix
    for i in range(steps):
        t = torch.full((b, n_f), i / steps)
        t[:, :m] = 1.0
        v = velocity(model(x, t, **cond), x, t)
        x = x + v / steps
        if m:
            x[:, :m] = prefix
    return x


def param_count(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

