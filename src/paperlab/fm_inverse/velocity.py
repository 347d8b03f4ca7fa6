"""The transformer velocity field :math:`v_\\theta(t, x_t \\mid d)` (Section 3.2 of the paper).

The network reads a *set* of tokens

.. math::

    [\\,\\mathrm{MLP}(\\mathrm{sin}(t)),\\; W_x x_t,\\; (W_e e),\\; W_d d_1, \\dots, W_d d_n\\,]

(the flow time, the current state, an optional experiment-design token, and one token per
observation), runs bidirectional pre-norm transformer blocks over it and reads the velocity from
the output at the :math:`x_t` position. Because every observation is its own token, one network
handles any number :math:`n` of observations.

Two variants, as in the paper:

- **SEIR** (``VelocityConfig.seir()``): 6 blocks, 4 heads, width 32, LayerNorm, GELU MLP (x4),
  *no positional encoding* -- attention without positions is permutation-equivariant, so the
  velocity is exactly invariant to the order of the observation tokens.
- **Darcy** (``VelocityConfig.darcy()``): 8 blocks, 4 heads, width 64, RMS pre-norm, rotary
  position embedding (RoPE) over the token index with RMS-normalised queries and keys (QK-norm),
  ReLU^2 MLP, zero-initialised output projections. RoPE makes the velocity depend on token order;
  training on randomly ordered observations teaches it to (approximately) ignore it.

**The prior's support.** The SEIR prior is :math:`U[0, 1]^6`; a flow in parameter space puts mass
outside the box (18-32 % of a quick model's samples did). With ``support="unit_box"`` (the SEIR
default) the flow lives in the logit space of the box, :math:`z = \\log m - \\log(1 - m)`: training
pairs are mapped by :func:`to_flow_space`, and every sample is mapped back by :func:`from_flow_space`
(the logistic sigmoid), so samples lie in :math:`(0, 1)^6` by construction. The map is a bijection
between the open box and :math:`\\mathbb{R}^6`, so the target posterior is the same distribution
seen through a change of variables. Darcy's :math:`N(0, I)` prior has full support (``"real"``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VelocityConfig:
    """Sizes and switches of :class:`VelocityTransformer` (saved with every checkpoint)."""

    param_dim: int = 6          # dimension of m (and of x_t)
    token_dim: int = 3          # features per observation token
    context_dim: int = 0        # size of the experiment-design token (0: none)
    n_layer: int = 6
    n_head: int = 4
    d_model: int = 32
    mlp_ratio: int = 4
    time_freq_dim: int = 256    # sinusoidal features of t before the time MLP
    norm: str = "layernorm"     # "layernorm" | "rmsnorm"
    activation: str = "gelu"    # "gelu" | "relu2"
    rope: bool = False
    qk_norm: bool = False
    zero_init: bool = False
    support: str = "real"       # "real" (the flow lives in parameter space) | "unit_box" (in logit space)

    @classmethod
    def seir(cls, **kw) -> VelocityConfig:
        return cls(**({"param_dim": 6, "token_dim": 3, "support": "unit_box"} | kw))

    @classmethod
    def darcy(cls, **kw) -> VelocityConfig:
        base = dict(param_dim=16, token_dim=3, context_dim=2, n_layer=8, n_head=4, d_model=64,
                    time_freq_dim=32, norm="rmsnorm", activation="relu2", rope=True, qk_norm=True,
                    zero_init=True)
        return cls(**(base | kw))

    def to_dict(self) -> dict:
        return asdict(self)


SUPPORTS = ("real", "unit_box")
#: prior draws are clipped to [EPS, 1 - EPS] before the logit (|z| <= 13.8)
BOX_EPS = 1e-6


def to_flow_space(m: torch.Tensor, support: str) -> torch.Tensor:
    """Parameters -> the space the flow lives in: identity, or :math:`\\mathrm{logit}(m)` for the unit box."""
    if support == "real":
        return m
    if support == "unit_box":
        return torch.logit(m.clamp(BOX_EPS, 1 - BOX_EPS))
    raise ValueError(f"unknown support {support!r} (use one of {SUPPORTS})")


def from_flow_space(z: torch.Tensor, support: str) -> torch.Tensor:
    """The inverse of :func:`to_flow_space`: identity, or the logistic sigmoid into :math:`(0, 1)`."""
    if support == "real":
        return z
    if support == "unit_box":
        return torch.sigmoid(z)
    raise ValueError(f"unknown support {support!r} (use one of {SUPPORTS})")


class TimeEmbedding(nn.Module):
    """:math:`t \\mapsto \\mathrm{MLP}([\\cos(t\\,\\omega_k), \\sin(t\\,\\omega_k)]_k)` with
    :math:`\\omega_k = 10000^{-k / (D/2)}`."""

    def __init__(self, d_model: int, freq_dim: int):
        super().__init__()
        half = freq_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, d_model), nn.SiLU(), nn.Linear(d_model, d_model))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t[:, None].float() * self.freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


def rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE over the token index: rotate pairs ``(x_i, x_{i + D/2})`` by angle ``pos * base^{-2i/D}``.

    ``x``: ``(B, heads, T, D)``.
    """
    T, D = x.shape[-2], x.shape[-1]
    half = D // 2
    inv = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    ang = torch.arange(T, device=x.device, dtype=torch.float32)[:, None] * inv[None]   # (T, D/2)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos + x2 * sin, -x1 * sin + x2 * cos], dim=-1)


class SelfAttention(nn.Module):
    """Bidirectional multi-head attention :math:`\\mathrm{softmax}(Q K^T / \\sqrt{d_h}) V`,
    with optional QK-RMSNorm and RoPE (Darcy variant)."""

    def __init__(self, cfg: VelocityConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        h = self.cfg.n_head
        q, k, v = self.qkv(x).view(B, T, 3, h, C // h).permute(2, 0, 3, 1, 4)   # each (B, h, T, d_h)
        if self.cfg.qk_norm:
            q, k = F.rms_norm(q, (q.shape[-1],)), F.rms_norm(k, (k.shape[-1],))
        if self.cfg.rope:
            q, k = rotary(q), rotary(k)
        mask = None if key_mask is None else key_mask[:, None, None, :]       # (B, 1, 1, T), True = attend
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """:math:`W_2\\, \\phi(W_1 x)` with :math:`\\phi` = GELU (SEIR) or ReLU^2 (Darcy)."""

    def __init__(self, cfg: VelocityConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model)
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model)
        self.relu2 = cfg.activation == "relu2"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return self.proj(F.relu(h).square() if self.relu2 else F.gelu(h))


class Block(nn.Module):
    """Pre-norm block: :math:`x \\leftarrow x + \\mathrm{Attn}(N(x))`, :math:`x \\leftarrow x + \\mathrm{MLP}(N(x))`."""

    def __init__(self, cfg: VelocityConfig):
        super().__init__()
        norm = nn.LayerNorm if cfg.norm == "layernorm" else nn.RMSNorm
        self.n1, self.n2 = norm(cfg.d_model), norm(cfg.d_model)
        self.attn, self.mlp = SelfAttention(cfg), MLP(cfg)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.n1(x), key_mask)
        return x + self.mlp(self.n2(x))


class VelocityTransformer(nn.Module):
    """:math:`v_\\theta(t, x_t \\mid d_{1:n}, e)`: the transformer over [time, state, design, observations].

    Inputs are standardised by fixed buffers (``token_loc/scale``, ``context_loc/scale``) that
    :meth:`fit_normalisation` sets from the training set; they are part of the saved state.
    """

    def __init__(self, cfg: VelocityConfig):
        super().__init__()
        if cfg.support not in SUPPORTS:
            raise ValueError(f"unknown support {cfg.support!r} (use one of {SUPPORTS})")
        self.cfg = cfg
        d = cfg.d_model
        self.time = TimeEmbedding(d, cfg.time_freq_dim)
        self.state = nn.Linear(cfg.param_dim, d)
        self.obs = nn.Linear(cfg.token_dim, d)
        self.context = nn.Linear(cfg.context_dim, d) if cfg.context_dim else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.param_dim)
        self.register_buffer("token_loc", torch.zeros(cfg.token_dim))
        self.register_buffer("token_scale", torch.ones(cfg.token_dim))
        self.register_buffer("context_loc", torch.zeros(max(cfg.context_dim, 1)))
        self.register_buffer("context_scale", torch.ones(max(cfg.context_dim, 1)))
        if cfg.zero_init:
            for blk in self.blocks:
                nn.init.zeros_(blk.attn.proj.weight)
                nn.init.zeros_(blk.mlp.proj.weight)

    @torch.no_grad()
    def fit_normalisation(self, tokens: torch.Tensor, context: torch.Tensor | None = None) -> None:
        """Set the input standardisation from training tokens ``(N, n, token_dim)`` (and contexts)."""
        flat = tokens.reshape(-1, tokens.shape[-1])
        self.token_loc.copy_(flat.mean(0))
        self.token_scale.copy_(flat.std(0).clamp_min(1e-6))
        if context is not None and self.context is not None:
            self.context_loc.copy_(context.mean(0))
            self.context_scale.copy_(context.std(0).clamp_min(1e-6))

    def forward(self, t: torch.Tensor, x_t: torch.Tensor, tokens: torch.Tensor,
                context: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``t`` ``(B,)``, ``x_t`` ``(B, P)``, ``tokens`` ``(B, n, token_dim)``, ``context`` ``(B, C)``,
        ``mask`` ``(B, n)`` (True = a real observation; for padded mixed-``n`` batches). Returns ``(B, P)``."""
        B = x_t.shape[0]
        if t.dim() == 0:
            t = t.expand(B)
        seq = [self.time(t)[:, None], self.state(x_t)[:, None]]
        if self.context is not None:
            seq.append(self.context((context - self.context_loc) / self.context_scale)[:, None])
        seq.append(self.obs((tokens - self.token_loc) / self.token_scale))
        x = torch.cat(seq, dim=1)
        key_mask = None
        if mask is not None:
            lead = torch.ones(B, x.shape[1] - mask.shape[1], dtype=torch.bool, device=x.device)
            key_mask = torch.cat([lead, mask.bool()], dim=1)
        for blk in self.blocks:
            x = blk(x, key_mask)
        # The velocity is read from the x_t token (position 1).
        return self.head(self.norm_f(x[:, 1]))
