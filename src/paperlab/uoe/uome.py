"""Union of MLP Experts (UoME; paper Sec. "Union-of-MLP-Experts").

The MLP is decomposed into ``E`` experts whose sum is the dense MLP (Eq. 1). Two routing variants:

**Data selection (UoME-DS, the LM variant).** Hierarchical routing per token (Eq. 3): each token selects
its ``k`` best experts (``k = 2`` of ``E = 4``), each expert keeps the ``C = T/2`` best tokens of the
sequence that selected it, and::

    Y[I_e] += w_e * E_e(X[I_e])                                                                  (6)

Each expert runs on ``C`` tokens with ``F/E`` hidden units, so the layer costs ``E C / T`` expert passes
per token, i.e. ``(E C / T) / E = C / T`` of the dense MLP (one half with the defaults).

Three ways to fill the ``C`` slots (``capacity``, ``filler``):

- ``capacity=0.5, filler=True`` — the official code: every expert computes exactly ``C = T/2`` tokens;
  slots not taken by tokens that chose the expert hold *filler tokens* (the best-scoring others), whose
  outputs are added too. Not causal (which tokens are dropped or filled depends on later tokens).
- ``capacity=0.5, filler=False`` — free slots are padding (weight 0), selections beyond ``C`` dropped.
  Not causal either.
- ``capacity=None`` — dropless: every token reaches its ``k`` experts (buffers padded to the busiest
  expert). Causal; counted as the ``k`` expert passes per token a dropless grouped-GEMM implementation
  computes (MegaBlocks-style), i.e. exactly the cost of a top-``k`` MoE of the same experts.

**Expert selection (UoME-ES).** The same two-level routing one level up: a whole sequence ``b`` is scored
from its mean state, ``p_b = softmax(mean_t(x_{b,t}) W_r)``, selects its ``k`` best experts, each expert
keeps the ``C_b`` best sequences that selected it (``C_b = ceil(k B / E)``), and processes all their
tokens. A sequence-level decision needs the whole sequence, so UoME-ES is *not causal*: the paper uses it
for classification-style inputs, and we do not use it for language modelling.

Both run every expert at once as batched matmuls on the gathered ``[E, N, D]`` tokens
(:meth:`paperlab.uoe.decompose.DecomposedMLP.experts`); ``batched=False`` loops over experts instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from paperlab.uoe.decompose import DecomposedMLP
from paperlab.uoe.routing import Router, gather_tokens, hierarchical_route, scatter_tokens


class UnionOfMLPExperts(nn.Module):
    """UoME with patch-wise data selection (Eq. 6): ``E`` decomposed SwiGLU experts, top-``k`` per token,
    top-``C`` tokens per expert."""

    def __init__(self, d_model: int, d_ff: int, n_experts: int = 4, top_k: int = 2,
                 capacity: float | None = 0.5, gate: str = "straight_through", filler: bool = False):
        super().__init__()
        self.d_model = d_model
        self.router = Router(d_model, n_experts, top_k, capacity, gate, filler)
        self.experts = DecomposedMLP(d_model, d_ff, n_experts)
        self.batched = True

    def init_weights(self, std: float, out_std: float) -> None:
        self.experts.init_weights(std, out_std)

    @torch.no_grad()
    def load_dense(self, mlp: nn.Module) -> None:
        """Copy (and split) the weights of a dense :class:`paperlab.core.transformer.SwiGLU`."""
        d = DecomposedMLP.from_dense(mlp.w1.weight, mlp.w3.weight, mlp.w2.weight, self.experts.n_experts)
        self.experts.load_state_dict(d.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.router(x)
        if self.batched:
            y = self.experts.experts(gather_tokens(x, r))                   # [E, B C, D]
            return scatter_tokens(y, r, x.shape)
        B, T, D = x.shape
        flat, out = r.flat_index(T), x.new_zeros(B * T, D)
        rows = [flat[e][r.used[e]] for e in range(self.experts.n_experts)]
        ys = self.experts.experts_loop([x.reshape(B * T, D)[i] for i in rows])
        for e, (i, y) in enumerate(zip(rows, ys, strict=True)):
            out = out.index_add(0, i, y * r.weight[e][r.used[e]].unsqueeze(-1).to(y.dtype))
        return out.view(B, T, D)

    def flops_per_token(self, seq_len: int) -> float:
        """Router + expert passes per token (each with its gate product and scatter-add): ``E C / T`` with
        a capacity (every slot is computed), ``k`` when dropless (the selected pairs only)."""
        per_pass = self.experts.expert_flops() + 2 * self.d_model
        if self.router.capacity is None:
            return self.router.flops_per_token(seq_len) + self.router.top_k * per_pass
        C = self.router.capacity_at(seq_len)
        return self.router.flops_per_token(seq_len) + self.experts.n_experts * (C / seq_len) * per_pass


class UoMEExpertSelection(nn.Module):
    """UoME with expert selection: whole sequences routed to their top-``k`` experts (not causal)."""

    def __init__(self, d_model: int, d_ff: int, n_experts: int = 4, top_k: int = 2,
                 gate: str = "straight_through"):
        super().__init__()
        self.d_model, self.n_experts, self.top_k, self.gate = d_model, n_experts, top_k, gate
        self.w_r = nn.Linear(d_model, n_experts, bias=False)
        self.experts = DecomposedMLP(d_model, d_ff, n_experts)
        self.last_share: float | None = None

    def init_weights(self, std: float, out_std: float) -> None:
        self.experts.init_weights(std, out_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        probs = torch.softmax(self.w_r(x.mean(1)).float(), dim=-1)           # p_b  [B, E]
        # sequences play the role of tokens: one "sequence" of B items of size T*D
        r = hierarchical_route(probs[None], self.top_k, math.ceil(self.top_k * B / self.n_experts), self.gate)
        xs = gather_tokens(x.reshape(1, B, T * D), r)                        # [E, C_b, T D]
        E, Cb, _ = xs.shape
        y = self.experts.experts(xs.reshape(E, Cb * T, D)).reshape(E, Cb, T * D)
        self.last_share = Cb / B
        return scatter_tokens(y, r, torch.Size((1, B, T * D))).view(B, T, D)

    def flops_per_token(self, seq_len: int) -> float:
        share = self.last_share if self.last_share is not None else self.top_k / self.n_experts
        return self.n_experts * share * (self.experts.expert_flops() + 2 * self.d_model)
