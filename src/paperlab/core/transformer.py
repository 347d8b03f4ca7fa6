"""A small decoder-only transformer, assembled from pluggable parts. Read it top to bottom.

This is the model every paperlab training system shares (HybridNorm, Union-of-Experts, ...). It is
a GPT in the nanoGPT mould with the modern defaults of the papers we reproduce (OLMo-2 / LLaMA):

- token embedding (no learned positions), **RoPE** inside attention, tied or untied LM head;
- RMSNorm (or LayerNorm), SwiGLU MLP, no biases;
- a *block* that places the norms; the default is the Pre-Norm block

      X' = X + Attn(Norm(X))              X_{l+1} = X' + MLP(Norm(X'))

Three parts plug in, each a factory ``(config, layer_idx) -> nn.Module`` (blocks also receive the
attention and MLP they wrap):

- ``attn_factory``  an attention module, ``forward(x[B,T,D], rope) -> [B,T,D]``, where ``rope`` is
  the model's shared :class:`Rotary` (``rope.apply(q_or_k[B,H,T,Dh])`` rotates positions 0..T-1);
- ``mlp_factory``   an MLP, ``forward(x[B,T,D]) -> [B,T,D]``;
- ``block_factory`` ``(config, layer_idx, attn, mlp) -> nn.Module`` with ``forward(x, rope)``: the norm
  placement (``paperlab.hybridnorm.blocks`` has Post-Norm, QK-Norm, HybridNorm, HybridNorm*).

Contract for plugged modules:

- any module may set ``self.aux_loss`` (a scalar tensor) in ``forward`` (e.g. MoE load balancing);
  :meth:`Transformer.forward` adds the sum of all of them to the loss and keeps it in ``last_aux_loss``;
- every attention/MLP/block implements ``flops_per_token(seq_len) -> float`` (forward FLOPs, 2 per
  multiply-add, for the tokens it really processes; see :mod:`paperlab.core.flops`);
- a ``nn.Linear`` whose output is added to the residual stream sets ``linear.residual_out = True`` so
  the initialisation scales it by ``1/sqrt(2 n_layers)``; a module with raw parameters may define
  ``init_weights(std, out_std)``, called after the default initialisation.

Initialisation. ``small_init=False``: GPT-2 (normal, std 0.02; residual outputs 0.02/sqrt(2L)).
``small_init=True``: the Megatron "SmallInit" used by HybridNorm/OLMo-2: std = sqrt(2 / (5 d)),
residual outputs std / sqrt(2L), truncated at 3 std.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.core import flops as fl


@dataclass
class TransformerConfig:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 344                     # SwiGLU hidden size (8/3 d, rounded)
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    tie_embeddings: bool = True
    dropout: float = 0.0
    norm: str = "rms"                   # "rms" | "layer"
    norm_eps: float = 1e-5
    n_kv_heads: int | None = None       # grouped-query attention; None = n_heads
    small_init: bool = False            # Megatron SmallInit (HybridNorm paper) instead of GPT-2 init
    final_norm: bool = True             # norm before the LM head (a Post-Norm stack may drop it)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for RoPE")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.kv_heads}")
        if self.norm not in ("rms", "layer"):
            raise ValueError(f"norm must be 'rms' or 'layer', not {self.norm!r}")


# ----------------------------------------------------------------------------------------------
# Normalisation


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019): ``y = x / sqrt(mean(x^2) + eps) * g`` over the last dim."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.type_as(x) * self.weight

    def flops_per_token(self, seq_len: int = 0) -> float:
        return fl.norm_flops(self.weight.numel())


class LayerNorm(nn.LayerNorm):
    """LayerNorm without bias (gain only), for ``norm="layer"``."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__(dim, eps=eps, bias=False)

    def flops_per_token(self, seq_len: int = 0) -> float:
        return fl.norm_flops(self.normalized_shape[0], layer_norm=True)


def make_norm(config: TransformerConfig, dim: int | None = None) -> nn.Module:
    """The norm the config asks for, over ``dim`` (default ``d_model``)."""
    dim = dim or config.d_model
    return RMSNorm(dim, config.norm_eps) if config.norm == "rms" else LayerNorm(dim, config.norm_eps)


# ----------------------------------------------------------------------------------------------
# Rotary position embedding (Su et al. 2021)


class Rotary(nn.Module):
    """RoPE: rotate each pair ``(x_i, x_{i+Dh/2})`` of a head by angle ``pos * theta^(-2i/Dh)``.

    ``apply(x)`` takes ``x[B, H, T, Dh]`` at positions ``0..T-1``. Shared by all layers of a model.
    """

    def __init__(self, head_dim: int, max_seq_len: int, theta: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)   # [T, Dh/2]
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[-2]
        if T > self.cos.shape[0]:
            raise ValueError(f"sequence length {T} exceeds max_seq_len={self.cos.shape[0]}")
        cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        # (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


# ----------------------------------------------------------------------------------------------
# Attention and MLP


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE (grouped-query when ``n_kv_heads < n_heads``).

    ``Attn(X) = W_O softmax(RoPE(Q) RoPE(K)^T / sqrt(Dh) + causal mask) V`` with ``Q, K, V = X W_{Q,K,V}``.

    ``qk_norm`` / ``v_norm`` add a per-head RMSNorm over ``head_dim`` (a learnable gain shared by the
    heads) to Q, K (and V) *before* RoPE — QK-Norm (Dehghani et al. 2023) and the QKV-Norm of HybridNorm.
    """

    def __init__(self, config: TransformerConfig, layer_idx: int = 0, qk_norm: bool = False,
                 v_norm: bool = False):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.n_heads, self.kv_heads, self.head_dim = config.n_heads, config.kv_heads, config.head_dim
        self.wq = nn.Linear(config.d_model, self.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(config.d_model, self.kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(config.d_model, self.kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(self.n_heads * self.head_dim, config.d_model, bias=False)
        self.wo.residual_out = True
        self.q_norm = make_norm(config, self.head_dim) if qk_norm else None
        self.k_norm = make_norm(config, self.head_dim) if qk_norm else None
        self.v_norm = make_norm(config, self.head_dim) if v_norm else None
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, rope: Rotary) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim)
        k = self.wk(x).view(B, T, self.kv_heads, self.head_dim)
        v = self.wv(x).view(B, T, self.kv_heads, self.head_dim)
        # per-head norms over head_dim, before RoPE
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.v_norm is not None:
            v = self.v_norm(v)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))                # [B, H, T, Dh]
        q, k = rope.apply(q), rope.apply(k)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.kv_heads != self.n_heads)
        return self.wo(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))

    def flops_per_token(self, seq_len: int) -> float:
        d, dh = self.config.d_model, self.head_dim
        f = fl.linear_flops(d, (self.n_heads + 2 * self.kv_heads) * dh)      # Q, K, V projections
        f += fl.rope_flops((self.n_heads + self.kv_heads) * dh)               # rotate Q and K
        f += fl.causal_attention_flops(self.n_heads, dh, seq_len)             # scores, softmax, AV
        f += fl.linear_flops(self.n_heads * dh, d)                            # output projection
        n_normed = (self.n_heads + self.kv_heads if self.q_norm is not None else 0) \
            + (self.kv_heads if self.v_norm is not None else 0)
        f += n_normed * fl.norm_flops(dh, layer_norm=self.config.norm == "layer")
        return f


class SwiGLU(nn.Module):
    """The SwiGLU MLP (Shazeer 2020): ``MLP(x) = W_2 (SiLU(W_1 x) * W_3 x)``."""

    def __init__(self, config: TransformerConfig, layer_idx: int = 0):
        super().__init__()
        self.d_model, self.d_ff = config.d_model, config.d_ff
        self.w1 = nn.Linear(config.d_model, config.d_ff, bias=False)    # gate
        self.w3 = nn.Linear(config.d_model, config.d_ff, bias=False)    # up
        self.w2 = nn.Linear(config.d_ff, config.d_model, bias=False)    # down
        self.w2.residual_out = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))

    def flops_per_token(self, seq_len: int = 0) -> float:
        return 3 * fl.linear_flops(self.d_model, self.d_ff) + fl.swiglu_act_flops(self.d_ff)


# ----------------------------------------------------------------------------------------------
# The default block: Pre-Norm


class PreNormBlock(nn.Module):
    """Pre-Norm (Xiong et al. 2020): ``X' = X + Attn(Norm(X))``, ``X_{l+1} = X' + MLP(Norm(X'))``."""

    def __init__(self, config: TransformerConfig, layer_idx: int, attn: nn.Module, mlp: nn.Module):
        super().__init__()
        self.d_model = config.d_model
        self.attn_norm, self.attn = make_norm(config), attn
        self.mlp_norm, self.mlp = make_norm(config), mlp
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, rope: Rotary) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), rope))
        return x + self.mlp(self.mlp_norm(x))

    def flops_per_token(self, seq_len: int) -> float:
        return fl.block_flops(self, seq_len)


def default_attention(config: TransformerConfig, layer_idx: int) -> nn.Module:
    return CausalSelfAttention(config, layer_idx)


def default_mlp(config: TransformerConfig, layer_idx: int) -> nn.Module:
    return SwiGLU(config, layer_idx)


def default_block(config: TransformerConfig, layer_idx: int, attn: nn.Module, mlp: nn.Module) -> nn.Module:
    return PreNormBlock(config, layer_idx, attn, mlp)


# ----------------------------------------------------------------------------------------------
# The model


class Transformer(nn.Module):
    """Decoder-only LM: embed -> blocks -> (final norm) -> LM head. ``forward`` returns ``(logits, loss)``."""

    def __init__(self, config: TransformerConfig,
                 attn_factory: Callable[[TransformerConfig, int], nn.Module] | None = None,
                 mlp_factory: Callable[[TransformerConfig, int], nn.Module] | None = None,
                 block_factory: Callable[..., nn.Module] | None = None):
        super().__init__()
        self.config = config
        attn_factory = attn_factory or default_attention
        mlp_factory = mlp_factory or default_mlp
        block_factory = block_factory or default_block
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.rope = Rotary(config.head_dim, config.max_seq_len, config.rope_theta)
        self.blocks = nn.ModuleList(
            block_factory(config, i, attn_factory(config, i), mlp_factory(config, i))
            for i in range(config.n_layers))
        self.norm = make_norm(config) if config.final_norm else nn.Identity()
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        self.last_aux_loss: torch.Tensor | None = None
        self.init_weights()

    # -- initialisation ------------------------------------------------------------------------
    def init_std(self) -> tuple[float, float]:
        """(std, residual-output std): SmallInit ``sqrt(2/(5d))`` or GPT-2's 0.02, outputs / sqrt(2L)."""
        c = self.config
        std = math.sqrt(2.0 / (5.0 * c.d_model)) if c.small_init else 0.02
        return std, std / math.sqrt(2.0 * c.n_layers)

    @torch.no_grad()
    def init_weights(self) -> None:
        std, out_std = self.init_std()

        def normal_(w: torch.Tensor, s: float) -> None:
            w.normal_(0.0, s)
            if self.config.small_init:      # Megatron/OLMo "full_megatron": truncated at 3 std
                bad = w.abs() > 3 * s       # resample the tails (exact truncated normal, by rejection)
                while bool(bad.any()):
                    w[bad] = torch.randn(int(bad.sum()), dtype=w.dtype, device=w.device) * s
                    bad = w.abs() > 3 * s

        for m in self.modules():
            if isinstance(m, nn.Linear):
                normal_(m.weight, out_std if getattr(m, "residual_out", False) else std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                normal_(m.weight, std)
            elif isinstance(m, (RMSNorm, nn.LayerNorm)):
                nn.init.ones_(m.weight)
        for m in self.modules():
            if m is not self and hasattr(m, "init_weights") and callable(m.init_weights):
                m.init_weights(std, out_std)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        for m in self.modules():                      # aux losses are set afresh by each forward
            if getattr(m, "aux_loss", None) is not None:
                m.aux_loss = None
        x = self.drop(self.tok_emb(idx))
        for block in self.blocks:
            x = block(x, self.rope)
        logits = self.lm_head(self.norm(x))
        aux = [m.aux_loss for m in self.modules() if getattr(m, "aux_loss", None) is not None]
        self.last_aux_loss = torch.stack([a.float() for a in aux]).sum() if aux else None
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
            if self.last_aux_loss is not None:
                loss = loss + self.last_aux_loss
        return logits, loss

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.tok_emb.weight.numel() if non_embedding else n

    def flops_per_token(self, seq_len: int) -> float:
        """Forward FLOPs per token (see :func:`paperlab.core.flops.model_flops_per_token`)."""
        return fl.model_flops_per_token(self, seq_len)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None) -> torch.Tensor:
        """Sample ``max_new_tokens`` continuations of ``idx[B, T]`` (no KV cache; for small demos)."""
        for _ in range(max_new_tokens):
            ctx = idx[:, -self.config.max_seq_len:]
            logits = self(ctx)[0][:, -1, :] / max(temperature, 1e-6)
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), 1)), dim=1)
        return idx
