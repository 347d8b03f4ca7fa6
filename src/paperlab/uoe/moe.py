"""Baseline: a standard token-choice top-``k`` Mixture-of-Experts MLP with load balancing.

The comparison point of the paper's LM tables (Switch/GShard/Mixtral-style MoE)::

    p_t = softmax(x_t W_r),   S_t = TopK(p_t, k),   y_t = sum_{e in S_t} (p_{t,e} / sum_{j in S_t} p_{t,j}) E_e(x_t)

with ``E`` *independent* SwiGLU experts of hidden size ``d_expert`` (not a decomposition of one MLP) and
the Switch-Transformer auxiliary loss ``alpha E sum_e f_e P_e`` (:func:`paperlab.uoe.routing.load_balancing_loss`)
added to the LM loss through ``self.aux_loss``. Dropless: every token reaches all its ``k`` experts.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from paperlab.core import flops as fl
from paperlab.uoe.decompose import DecomposedMLP
from paperlab.uoe.routing import load_balancing_loss


class TopKMoE(nn.Module):
    """Top-``k`` of ``E`` SwiGLU experts (each ``d_expert`` hidden units), gates renormalised over the top-k."""

    def __init__(self, d_model: int, d_expert: int, n_experts: int = 4, top_k: int = 2, aux_weight: float = 0.01):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k={top_k} must be between 1 and n_experts={n_experts}")
        self.d_model, self.n_experts, self.top_k, self.aux_weight = d_model, n_experts, top_k, aux_weight
        self.w_r = nn.Linear(d_model, n_experts, bias=False)
        # E independent experts; stored stacked like the decomposed MLP (expert e: w_in[e], w_out[e])
        self.experts = DecomposedMLP(d_model, d_expert * n_experts, n_experts)
        self.aux_loss: torch.Tensor | None = None
        self.last_balance: float | None = None

    def init_weights(self, std: float, out_std: float) -> None:
        self.experts.init_weights(std, out_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        xf = x.reshape(-1, D)
        probs = torch.softmax(self.w_r(xf).float(), dim=-1)                      # [N, E]
        top_p, top_i = probs.topk(self.top_k, dim=-1)
        gates = (top_p / top_p.sum(-1, keepdim=True)).to(x.dtype)                 # renormalised over S_t
        out = torch.zeros_like(xf)
        for e in range(self.n_experts):
            rows, slot = (top_i == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            y = self._expert(e, xf[rows])
            out = out.index_add(0, rows, y * gates[rows, slot, None])
        chosen = torch.zeros_like(probs, dtype=torch.bool).scatter_(-1, top_i, True)
        balance = load_balancing_loss(probs, chosen)
        self.last_balance = float(balance.detach())
        self.aux_loss = self.aux_weight * balance if self.training and self.aux_weight > 0 else None
        return out.view(B, T, D)

    def _expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        gate, up = (x @ self.experts.w_in[e]).split(self.experts.d_expert, dim=-1)
        return (torch.nn.functional.silu(gate) * up) @ self.experts.w_out[e]

    def flops_per_token(self, seq_len: int = 0) -> float:
        """Router + ``k`` expert passes per token, each with its gate product and sum."""
        router = fl.linear_flops(self.d_model, self.n_experts) + fl.SOFTMAX_PER_SCORE * self.n_experts
        return router + self.top_k * (self.experts.expert_flops() + 2 * self.d_model)
