"""Audio Flamingo 2's conditioning of a frozen LM on audio (§3.3; official ``src/helpers.py``, ``src/flamingo.py``).

1. **Representation transform** (:class:`RepresentationTransform`, the official ``TransformerEncoder``): the
   audio tokens of all windows of a clip, flattened to one sequence of ``n_windows x T`` tokens, are scaled
   by ``sqrt(d)``, layer-normalised and passed through 3 **post-LN** self-attention layers
   (``x = LN(x + Attn(x)); x = LN(x + FFN(x))``, ReLU FFN of width d) whose q/k carry **partial RoPE**
   (the first half of each head's dimensions rotated, base 4096) over the flattened token index. Padded
   windows (a batch padded to its longest clip) are masked as keys.

2. **XATTN-Dense** (:class:`GatedXAttnDense`, the official ``GatedCrossAttentionBlock``), one before *every*
   decoder layer of the LM (``cross_attn_every_n_layers = 1``)::

       x <- x + tanh(alpha_attn) * W_o Attn(q = W_q LN(x), k, v = W_kv audio)     (no norm on the audio)
       x <- x + tanh(alpha_ff)   * FF(x),   FF = LN -> Linear(d, 4d) -> GELU -> Linear(4d, d), no biases

   with ``alpha_attn = alpha_ff = 0`` at initialisation, so training starts from the plain LM (exactly:
   ``x + 0 * y == x``; ``tests/af2/test_flamingo.py`` checks the logits bit for bit). Every text token
   attends to all non-padded audio tokens of its own sample (the unmasked inference version of the
   official code; the training code's few-shot mask that leaves only audio token 0 visible is not used).
   Text queries attend to audio, never the reverse.

3. :class:`FlamingoLM` runs the frozen LM (the core :class:`~paperlab.core.transformer.Transformer`,
   trained here as a tiny word-level LM) with the XATTN-Dense blocks interleaved:
   ``x = emb(ids); for each layer l: x = xattn_l(x, audio); x = block_l(x)``, then the LM's head.
   The LM stays frozen except the input-embedding rows of ``<audio>`` and ``<|endofchunk|>``
   (:func:`embedding_row_mask`; the official ``train_utils.py`` gradient mask).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.core.transformer import Transformer

# ---------------------------------------------------------------------------------------------- RoPE


class PartialRotary(nn.Module):
    """RoPE on the first ``rot_dim`` dims of each head (rotate-half pairs ``(i, i + rot_dim/2)``), angles
    ``pos * base^(-2i/rot_dim)``; the other dims pass unchanged. AF2: rot_dim 128 of 256, base 4096."""

    def __init__(self, head_dim: int, rot_dim: int | None = None, base: float = 4096.0):
        super().__init__()
        self.rot_dim = rot_dim or head_dim // 2
        inv = 1.0 / base ** (torch.arange(0, self.rot_dim, 2, dtype=torch.float64) / self.rot_dim)
        self.register_buffer("inv_freq", inv.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, H, N, Dh) at positions 0..N-1."""
        n = x.shape[-2]
        ang = torch.outer(torch.arange(n, device=x.device, dtype=torch.float32), self.inv_freq)  # (N, r/2)
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        rot, rest = x[..., : self.rot_dim], x[..., self.rot_dim:]
        x1, x2 = rot.chunk(2, dim=-1)
        # (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest), dim=-1)


# ---------------------------------------------------------------------------------------------- transform


class PostLNRopeLayer(nn.Module):
    """``x = LN(x + Attn(x)); x = LN(x + FFN(x))`` with partial-RoPE self-attention and a key mask."""

    def __init__(self, d: int, heads: int, ffn: int, rope_base: float):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.rope = PartialRotary(self.dh, self.dh // 2, rope_base)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(), nn.Linear(ffn, d))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        B, N, d = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)   # (B, H, N, Dh) each
        q, k = self.rope(q), self.rope(k)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])  # padded keys out
        x = self.norm1(x + self.out(y.transpose(1, 2).reshape(B, N, d)))                  # post-LN
        return self.norm2(x + self.ffn(x))


class RepresentationTransform(nn.Module):
    """(B, W, T, d) audio tokens + (B, W) window mask -> (B, W*T, d) tokens and their (B, W*T) key mask:
    ``x sqrt(d)`` -> LayerNorm -> 3 post-LN RoPE layers over the flattened token index."""

    def __init__(self, d: int, layers: int = 3, heads: int = 4, ffn: int | None = None, rope_base: float = 4096.0):
        super().__init__()
        self.d = d
        self.norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(PostLNRopeLayer(d, heads, ffn or d, rope_base) for _ in range(layers))

    def forward(self, tokens: torch.Tensor, window_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, W, T, d = tokens.shape
        x = tokens.reshape(B, W * T, d) * math.sqrt(self.d)                                # x sqrt(d)
        key_mask = window_mask.bool().repeat_interleave(T, dim=1)                           # (B, W*T)
        x = self.norm(x)
        for layer in self.layers:
            x = layer(x, key_mask)
        return x, key_mask


# ---------------------------------------------------------------------------------------------- XATTN-Dense


class GatedXAttnDense(nn.Module):
    """Gated cross-attention + gated dense block inserted before one LM decoder layer (see module docstring)."""

    def __init__(self, d_text: int, d_audio: int, heads: int = 4, dim_head: int = 32, ff_mult: int = 4):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.norm = nn.LayerNorm(d_text)
        self.to_q = nn.Linear(d_text, inner, bias=False)
        self.to_kv = nn.Linear(d_audio, 2 * inner, bias=False)   # no norm on the audio tokens
        self.to_out = nn.Linear(inner, d_text, bias=False)
        self.attn_gate = nn.Parameter(torch.zeros(()))           # alpha_attn = 0 at init
        self.ff = nn.Sequential(nn.LayerNorm(d_text), nn.Linear(d_text, ff_mult * d_text, bias=False), nn.GELU(),
                                nn.Linear(ff_mult * d_text, d_text, bias=False))
        self.ff_gate = nn.Parameter(torch.zeros(()))             # alpha_ff = 0 at init

    def attend(self, x: torch.Tensor, media: torch.Tensor, media_mask: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        q = self.to_q(self.norm(x)).view(B, L, self.heads, self.dim_head).transpose(1, 2)
        k, v = self.to_kv(media).view(B, media.shape[1], 2, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=media_mask[:, None, None, :])  # text -> audio
        return self.to_out(y.transpose(1, 2).reshape(B, L, -1))

    def forward(self, x: torch.Tensor, media: torch.Tensor, media_mask: torch.Tensor) -> torch.Tensor:
        x = x + torch.tanh(self.attn_gate) * self.attend(x, media, media_mask)   # x + tanh(a_attn) Attn
        return x + torch.tanh(self.ff_gate) * self.ff(x)                          # x + tanh(a_ff) FF

    def gates(self) -> tuple[float, float]:
        return float(torch.tanh(self.attn_gate.detach())), float(torch.tanh(self.ff_gate.detach()))


# ---------------------------------------------------------------------------------------------- the model


class FlamingoLM(nn.Module):
    """A frozen core :class:`Transformer` LM with a representation transform and XATTN-Dense before every
    block. ``forward(ids, audio_tokens, window_mask) -> logits``."""

    def __init__(self, lm: Transformer, d_audio: int, transform_layers: int = 3, heads: int = 4, dim_head: int = 32,
                 rope_base: float = 4096.0):
        super().__init__()
        self.lm = lm
        self.transform = RepresentationTransform(d_audio, transform_layers, heads, rope_base=rope_base)
        self.xattn = nn.ModuleList(GatedXAttnDense(lm.config.d_model, d_audio, heads, dim_head)
                                   for _ in lm.blocks)

    def forward(self, ids: torch.Tensor, audio_tokens: torch.Tensor, window_mask: torch.Tensor) -> torch.Tensor:
        media, media_mask = self.transform(audio_tokens, window_mask)
        lm = self.lm
        x = lm.drop(lm.tok_emb(ids))
        for xattn, block in zip(self.xattn, lm.blocks, strict=True):
            x = xattn(x, media, media_mask)       # XATTN-Dense before the decoder layer ...
            x = block(x, lm.rope)                 # ... then the original (frozen) layer
        return lm.lm_head(lm.norm(x))

    def gates(self) -> list[tuple[float, float]]:
        """``(tanh(alpha_attn), tanh(alpha_ff))`` per layer."""
        return [x.gates() for x in self.xattn]

    def set_gates(self, value: float) -> None:
        with torch.no_grad():
            for x in self.xattn:
                x.attn_gate.fill_(value)
                x.ff_gate.fill_(value)


def embedding_row_mask(weight: nn.Parameter, rows: list[int]) -> torch.utils.hooks.RemovableHandle:
    """Let only ``rows`` of an embedding table learn (a gradient hook zeroing the others; the official
    ``train_utils.py`` mask that keeps the LM frozen except the ``<audio>`` / ``<|endofchunk|>`` rows).
    Give the table no weight decay, or the frozen rows would still shrink."""
    mask = torch.zeros(weight.shape[0], 1, dtype=weight.dtype)
    mask[rows] = 1.0
    return weight.register_hook(lambda g: g * mask.to(g.device))


def answer_logprob(logits: torch.Tensor, ids: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Sum of log p(token) over the positions of ``answer_mask`` (B, L) (token t predicted at t - 1)."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    return (logp * answer_mask[:, 1:].float()).sum(1)
