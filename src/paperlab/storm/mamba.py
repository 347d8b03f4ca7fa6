"""The Mamba mixer of STORM's temporal encoder, bidirectional (§3.2), with ``mamba_ssm``'s defaults.

One direction is the Mamba block of Gu & Dao (2023), ``mamba_ssm/modules/mamba_simple.py``::

    x, z   = in_proj(X)                                    (expand E = 2: d_inner = 2 d)
    x      = SiLU(conv1d(x))                               (causal depthwise conv, kernel 4)
    Δ, B, C = split(x_proj(x))                              (Δ of rank ceil(d / 16), B and C of size N = 16)
    Δ      = dt_proj(Δ)                                    (+ dt bias inside the scan, softplus)
    y      = selective_scan(x, Δ, A = -exp(A_log), B, C, D, z)      (see :mod:`.selective_scan`)
    out    = out_proj(y)

Initialisation as ``mamba_ssm``: ``A_log = log(1..N)`` for every channel (S4D-real), ``D = 1``, the dt bias
set so that ``softplus(bias)`` falls log-uniformly in ``[1e-3, 0.1]`` (floored at 1e-4), ``dt_proj.weight``
uniform in ``±dt_rank^-0.5``.

**Bidirectional scan — our choice.** STORM scans the flattened space-time sequence in both directions (§3.2) but
does not say how the two scans are merged. We follow Vim's "bimamba v2" (``hustvl/Vim``): the in/out
projections and the gate ``z`` are shared; the backward direction has its own conv, ``x_proj``, ``dt_proj``,
``A_log`` and ``D`` and runs on the time-reversed sequence; the two gated outputs are summed before
``out_proj`` (Vim can also halve the sum, a constant scale we leave out). ``bidirectional=False`` gives the
uni-directional (streaming) variant of §5 / Table 7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.storm.selective_scan import selective_scan


@dataclass(frozen=True)
class MambaConfig:
    d_model: int = 64
    d_state: int = 16            # N
    d_conv: int = 4              # causal depthwise conv kernel
    expand: int = 2              # d_inner = expand * d_model
    dt_rank: int | None = None   # None: ceil(d_model / 16)
    dt_min: float = 1e-3
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    bidirectional: bool = True
    scan: str = "auto"           # auto | parallel | sequential | cuda  (see selective_scan.MODES)

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def rank(self) -> int:
        return self.dt_rank or math.ceil(self.d_model / 16)


class SSMBranch(nn.Module):
    """One scan direction: conv -> x_proj -> dt_proj -> selective scan (its own parameters)."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        di, n, r = cfg.d_inner, cfg.d_state, cfg.rank
        self.cfg = cfg
        self.conv1d = nn.Conv1d(di, di, cfg.d_conv, groups=di, padding=cfg.d_conv - 1, bias=True)
        self.x_proj = nn.Linear(di, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, di, bias=True)
        # A = -exp(A_log), A_log = log(1..N) for every channel (S4D-real initialisation)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.reset_dt()

    @torch.no_grad()
    def reset_dt(self) -> None:
        cfg = self.cfg
        std = cfg.rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        # softplus(bias) = dt, dt log-uniform in [dt_min, dt_max]: bias = dt + log(1 - exp(-dt))
        dt = torch.exp(torch.rand(cfg.d_inner) * (math.log(cfg.dt_max) - math.log(cfg.dt_min))
                       + math.log(cfg.dt_min)).clamp(min=cfg.dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``x, z: (b, d_inner, l)`` -> gated scan output ``(b, d_inner, l)``."""
        L = x.shape[-1]
        x = F.silu(self.conv1d(x)[..., :L])                                 # causal conv: keep the first L
        dbc = self.x_proj(x.transpose(1, 2))                                # (b, l, r + 2N)
        dt, B, C = dbc.split([self.cfg.rank, self.cfg.d_state, self.cfg.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.T).transpose(1, 2)                   # (b, d_inner, l), bias in the scan
        A = -torch.exp(self.A_log.float())
        return selective_scan(x, dt, A, B.transpose(1, 2), C.transpose(1, 2), self.D.float(), z,
                              delta_bias=self.dt_proj.bias.float(), delta_softplus=True, mode=self.cfg.scan)


class MambaMixer(nn.Module):
    """``MambaMixer(X)`` of Eq. 5: the (bidirectional) Mamba block on ``X: (b, l, d_model)``."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        self.in_proj = nn.Linear(cfg.d_model, 2 * cfg.d_inner, bias=False)
        self.forward_ssm = SSMBranch(cfg)
        self.backward_ssm = SSMBranch(cfg) if cfg.bidirectional else None
        self.out_proj = nn.Linear(cfg.d_inner, cfg.d_model, bias=False)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(X).transpose(1, 2).chunk(2, dim=1)              # (b, d_inner, l) each
        y = self.forward_ssm(x, z)
        if self.backward_ssm is not None:                                   # the reversed scan, flipped back
            y = y + self.backward_ssm(x.flip(-1), z.flip(-1)).flip(-1)
        return self.out_proj(y.transpose(1, 2))


class MambaLayer(nn.Module):
    """Eq. 5: ``X <- X + MambaMixer(LayerNorm(X))``."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        self.mixer = MambaMixer(cfg)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return X + self.mixer(self.norm(X))
