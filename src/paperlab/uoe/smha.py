"""Selective Multi-Head Attention (SMHA; paper Sec. "Selective Multi-Head Attention").

Heads are the experts of the decomposed attention (Eq. 2). A router (Eq. 3, ``E = H``) lets each token
select its ``k = H/2`` best heads, and each head keeps the ``C`` best tokens that selected it, in sequence
order (:func:`paperlab.uoe.routing.hierarchical_route`). Head ``h`` then works on its own tokens only::

    X_h = X[I_h]                               (C tokens, sequence order kept)
    Q_h, K_h, V_h = X_h W_Q^h, X_h W_K^h, X_h W_V^h
    O_h = softmax(RoPE(Q_h) RoPE(K_h)^T / sqrt(Dh) + M_h) V_h W_O^h                              (5)
    Y[I_h] += w_h * O_h                          (scatter-add back, w_h the gate of Eq. 4)

``M_h`` is the causal mask *among the selected tokens* (they are sorted, so compressed index order is
sequence order) that also hides padding slots. RoPE rotates by the compressed index ``0..C-1`` as in the
official code (``rope_positions="compressed"``), or by the original positions
(``rope_positions="original"``). With every head and every token selected (``k = H``, ``C = T``), Eq. 5 is
multi-head attention, exactly.

Cost per token: the projections shrink by ``C/T`` and the score matrix by ``(C/T)^2``.

Note (causal LMs): when the capacity drops selections (``C`` below the number of tokens that chose a
head), whether token ``t`` is kept depends on the scores of *later* tokens of the sequence — the
expert-choice leak discussed by Mixture-of-Depths. :func:`paperlab.uoe.experiment.future_leak` measures
it; ``capacity=None`` keeps every selection and is causal. The official SMHA v3 (``SMHA_v3.py``) sizes
each head's buffer to the busiest head (``max_len``), i.e. drops nothing: our ``capacity=None``. Its
free slots hold other tokens that are computed; ours are padding, masked as keys and weighted 0.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.core import flops as fl
from paperlab.uoe.decompose import DecomposedAttentionWeights
from paperlab.uoe.routing import Router, Routing, gather_tokens, scatter_tokens


def rope_at_positions(rope, t: torch.Tensor, pos: torch.Tensor, seq_len: int) -> torch.Tensor:
    """RoPE of ``t[B, H, C, Dh]`` at positions ``pos[B, H, C]`` (unique per row), using only ``rope.apply``
    (which rotates positions ``0..T-1``): place the rows at their positions, rotate, read them back."""
    B, H, C, Dh = t.shape
    idx = pos.unsqueeze(-1).expand(-1, -1, -1, Dh)
    full = t.new_zeros(B, H, seq_len, Dh).scatter(2, idx, t)
    return rope.apply(full).gather(2, idx)


class SelectiveMultiHeadAttention(nn.Module):
    """SMHA (Eq. 5): each head attends causally among its selected tokens; outputs scattered back.

    ``top_k`` heads per token (default ``H/2``), ``capacity`` fraction of the sequence per head (or ``None``:
    as many as selected the busiest head), ``gate`` as in :mod:`paperlab.uoe.routing`.
    """

    def __init__(self, d_model: int, n_heads: int, top_k: int | None = None, capacity: float | None = 0.5,
                 gate: str = "straight_through", rope_positions: str = "compressed", dropout: float = 0.0):
        super().__init__()
        if rope_positions not in ("compressed", "original"):
            raise ValueError(f"rope_positions must be 'compressed' or 'original', not {rope_positions!r}")
        self.d_model, self.n_heads = d_model, n_heads
        self.top_k = top_k if top_k is not None else max(1, n_heads // 2)
        self.router = Router(d_model, n_heads, self.top_k, capacity, gate)
        self.heads = DecomposedAttentionWeights(d_model, n_heads)
        self.head_dim = self.heads.head_dim
        self.rope_positions = rope_positions
        self.dropout = dropout
        self.batched = True          # False: the per-head loop (benchmarks)

    def init_weights(self, std: float, out_std: float) -> None:
        self.heads.init_weights(std, out_std)

    @torch.no_grad()
    def load_dense(self, attn: nn.Module) -> None:
        """Copy the weights of a dense :class:`paperlab.core.transformer.CausalSelfAttention`."""
        if getattr(attn, "kv_heads", attn.n_heads) != attn.n_heads:
            raise ValueError("SMHA decomposes multi-head attention; grouped-query attention is not supported")
        self.heads.load_dense(attn.wq.weight, attn.wk.weight, attn.wv.weight, attn.wo.weight)

    def _mask(self, r: Routing, C: int, device) -> torch.Tensor | None:
        """``M_h``: causal among the selected tokens, padding keys hidden (the diagonal always kept)."""
        if bool(r.valid.all()):
            return None
        causal = torch.ones(C, C, dtype=torch.bool, device=device).tril()
        key_ok = r.valid.transpose(0, 1).unsqueeze(-2)                       # [B, H, 1, C]
        eye = torch.eye(C, dtype=torch.bool, device=device)
        return causal & (key_ok | eye)

    def forward(self, x: torch.Tensor, rope) -> torch.Tensor:
        if not self.batched:
            return self.forward_loop(x, rope)
        B, T, D = x.shape
        H, Dh = self.n_heads, self.head_dim
        r = self.router(x)
        C = r.capacity
        q, k, v = self.heads.qkv(gather_tokens(x, r))                     # [H, B C, Dh] each
        q, k, v = (t.view(H, B, C, Dh).transpose(0, 1) for t in (q, k, v))   # [B, H, C, Dh]
        if self.rope_positions == "compressed":
            q, k = rope.apply(q), rope.apply(k)
        else:
            pos = r.index.transpose(0, 1)
            q, k = rope_at_positions(rope, q, pos, T), rope_at_positions(rope, k, pos, T)
        mask = self._mask(r, C, x.device)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = self.heads.out(o.transpose(0, 1).reshape(H, B * C, Dh))          # [H, B C, D]
        return scatter_tokens(y, r, x.shape)

    def forward_loop(self, x: torch.Tensor, rope) -> torch.Tensor:
        """Eq. 5 one head at a time, each head on exactly the tokens that selected it (no padding)."""
        B, T, D = x.shape
        r = self.router(x)
        out = x.new_zeros(B * T, D)
        flat = r.flat_index(T)
        for h in range(self.n_heads):
            for b in range(B):
                keep = r.valid[h, b]
                rows = flat[h, b][keep]
                if rows.numel() == 0:
                    continue
                xs = x.reshape(B * T, D)[rows]
                q, k, v = (xs @ self.heads.w_qkv[h]).split(self.head_dim, dim=-1)
                q, k, v = (t[None, None] for t in (q, k, v))                  # [1, 1, n, Dh]
                if self.rope_positions == "compressed":
                    q, k = rope.apply(q), rope.apply(k)
                else:
                    pos = r.index[h, b][keep].view(1, 1, -1)
                    q, k = rope_at_positions(rope, q, pos, T), rope_at_positions(rope, k, pos, T)
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)[0, 0]
                y = (o @ self.heads.w_o[h]) * r.weight[h, b][keep, None].to(x.dtype)
                out = out.index_add(0, rows, y)
        return out.view(B, T, D)

    def flops_per_token(self, seq_len: int) -> float:
        """Router + per computed (head, token): Q/K/V, RoPE, output projection, gate and scatter-add, plus
        the causal attention among the head's tokens.

        With a capacity every head computes ``C`` slots, each attending to ``(C+1)/2`` keys on average.
        Dropless (``capacity=None``, the official SMHA v3): the selected (head, token) pairs only, ``k`` per
        token, and ``sum_h n_h (n_h + 1) / 2`` query-key pairs for heads with ``n_h`` tokens — measured on
        the last forward (scaled to ``seq_len``); before any forward, the bound ``k`` heads with all ``T``
        tokens, i.e. ``k/H`` of dense attention."""
        D, Dh, H = self.d_model, self.head_dim, self.n_heads
        per_slot = fl.linear_flops(D, 3 * Dh) + fl.rope_flops(2 * Dh) + fl.linear_flops(Dh, D) + 2 * D
        r = self.router
        if r.capacity is None:
            if r.last_routed is None:
                routed, pairs = float(r.top_k), r.top_k * fl.mean_causal_keys(seq_len)
            else:
                routed, pairs = r.last_routed, r.last_pairs * seq_len / r.last_seq_len
            return r.flops_per_token(seq_len) + routed * per_slot + pairs * fl.attention_core_flops(1, Dh, 1)
        C = r.capacity_at(seq_len)
        per_slot += fl.attention_core_flops(1, Dh, fl.mean_causal_keys(C))
        return r.flops_per_token(seq_len) + H * (C / seq_len) * per_slot
