"""Hierarchical routing (paper Sec. "Routing"): expert selection, then patch-wise data selection.

A router scores every token against every expert,

    p_t = softmax(x_t W_r),      W_r in R^{D x E}                                             (3)

and routing happens at two levels:

1. **Expert selection** (token -> experts): token ``t`` keeps its ``k`` highest-scoring experts,
   ``S_t = TopK_e(p_{t,e}, k)``; its score for the other experts is masked out.
2. **Patch-wise data selection** (expert -> tokens): expert ``e`` takes, among the tokens of a sequence
   that selected it, the ``C`` with the highest scores, *kept in sequence order*,
   ``I_e = sort(TopK_t(p_{t,e} [e in S_t], C))``. ``C`` is the capacity: ``ceil(c T)`` for a fraction
   ``c`` (the paper's UoME uses ``c = 1/2``), or the largest number of tokens any expert was selected by
   (``capacity=None``; the official SMHA v3), in which case no selection is dropped.

A "patch" is the unit being routed: an image patch in the paper's vision runs, a token here (LM).

**Filler tokens (UoME, official code).** The official UoME (``model/mlp/UoME_DS.py``) takes, per expert,
the top ``T/2`` entries of the *masked* gate scores: when fewer than ``T/2`` tokens selected an expert, the
remaining slots hold tokens that did not select it (score 0), and those are computed and added to the
output like the selected ones. Every expert thus processes exactly ``C`` tokens, so top-2 of 4 experts at
``C = T/2`` costs exactly two expert passes per token. ``filler=True`` reproduces this (fillers ranked by
their own score ``p_{t,e}``, where the official code takes whichever zero-score tokens ``torch.topk``
returns first). Fillers and drops both depend on how many *later* tokens chose an expert, so neither is
causal (:func:`paperlab.uoe.experiment.future_leak`). The official gate also divides each score by its
sum over the batch before ranking (a cross-sequence dependence); we rank by ``p`` itself.

Expert ``e`` then computes only on ``X[I_e]`` and its outputs are added back at positions ``I_e``
(scatter-add). Computed on a ``[E, B, C]`` index tensor, the whole thing is one gather, one batched
matmul per weight and one scatter — the paper's parallel implementation.

**Gradient to the router — our choice.** In the official code the scores are used *only* to select:
no output is multiplied by a score, so ``W_r`` receives no gradient and stays at its initialisation.
We make the router trainable with a *straight-through gate* (default, ``gate="straight_through"``)::

    y_t = sum_{e: t in I_e} (1 + p_{t,e} - sg(p_{t,e})) E_e(x_t)                              (4)

whose *value* is exactly the paper's ungated sum (so the equivalent decomposition stays exact: with all
experts and all tokens selected the layer *is* the dense layer), while its *gradient* with respect to
``p_{t,e}`` is ``<dL/dy_t, E_e(x_t)>`` — what a standard MoE router receives when its gate multiplies the
output, evaluated at gate 1. ``gate="multiply"`` uses the standard MoE product instead (scores
renormalised over ``S_t`` and scaled by ``k``, so uniform scores give the ungated sum), and
``gate="none"`` reproduces the official, untrained router.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from paperlab.core import flops as fl

GATES = ("straight_through", "multiply", "none")


@dataclass
class Routing:
    """The result of hierarchical routing of ``x[B, T, D]`` to ``E`` experts with capacity ``C``."""

    index: torch.Tensor        # [E, B, C] positions selected by each expert: in sequence order, padding last
    weight: torch.Tensor       # [E, B, C] factor multiplying each slot's output (0 for unused slots)
    valid: torch.Tensor        # [E, B, C] bool: the token selected this expert (not a padding/filler slot)
    probs: torch.Tensor        # [B, T, E] router probabilities p (Eq. 3)
    chosen: torch.Tensor       # [B, T, E] bool: expert selection S_t
    used: torch.Tensor | None = None   # [E, B, C] bool: the slot's output is added (valid, or a filler)

    def __post_init__(self):
        if self.used is None:
            self.used = self.valid

    @property
    def capacity(self) -> int:
        return self.index.shape[-1]

    def flat_index(self, seq_len: int) -> torch.Tensor:
        """Row indices into ``x.reshape(B T, D)``: ``[E, B, C]``."""
        B = self.index.shape[1]
        return self.index + torch.arange(B, device=self.index.device).view(1, B, 1) * seq_len


def capacity_tokens(seq_len: int, capacity: float | int | None, chosen: torch.Tensor | None = None) -> int:
    """``C``: ``ceil(capacity * T)`` (at least 1) for a fraction, ``capacity`` itself for an ``int``, or with ``capacity=None`` the largest number of tokens
    of one sequence that selected one expert (needs ``chosen[B, T, E]``)."""
    if isinstance(capacity, int):           # an absolute number of tokens
        return min(seq_len, max(1, capacity))
    if capacity is None:
        if chosen is None:
            raise ValueError("capacity=None needs the expert selection to size the buffers")
        return max(1, int(chosen.sum(1).max().item()))
    return min(seq_len, max(1, math.ceil(capacity * seq_len)))


def gather_tokens(x: torch.Tensor, routing: Routing) -> torch.Tensor:
    """``X[I_e]`` for every expert: ``x[B, T, D] -> [E, B C, D]`` (one gather)."""
    B, T, D = x.shape
    E, _, C = routing.index.shape
    return x.reshape(B * T, D).index_select(0, routing.flat_index(T).reshape(-1)).view(E, B * C, D)


def scatter_tokens(y: torch.Tensor, routing: Routing, shape: torch.Size) -> torch.Tensor:
    """Weight each expert output and add it back at its position: ``y[E, B C, D] -> [B, T, D]`` (Eq. 4)."""
    B, T, D = shape
    y = y * routing.weight.reshape(y.shape[0], -1, 1).to(y.dtype)
    out = y.new_zeros(B * T, D)
    return out.index_add_(0, routing.flat_index(T).reshape(-1), y.reshape(-1, D)).view(B, T, D)


def hierarchical_route(probs: torch.Tensor, top_k: int, capacity: float | int | None,
                       gate: str = "straight_through", filler: bool = False) -> Routing:
    """Expert selection (top-``k`` experts per token) then data selection (top-``C`` tokens per expert).

    ``probs[B, T, E]`` are router probabilities. Returns index/weight/valid tensors of shape ``[E, B, C]``.
    ``filler=True``: slots left free by too few choosers hold the best-scoring other tokens, which are
    computed and added like selected ones (the official UoME); otherwise they are padding (weight 0).
    """
    if gate not in GATES:
        raise ValueError(f"gate must be one of {GATES}, not {gate!r}")
    B, T, E = probs.shape
    if not 1 <= top_k <= E:
        raise ValueError(f"top_k={top_k} must be between 1 and the number of experts {E}")
    # 1. expert selection: S_t = TopK_e(p_t, k)
    top_idx = probs.topk(top_k, dim=-1).indices
    chosen = torch.zeros_like(probs, dtype=torch.bool).scatter_(-1, top_idx, True)
    # 2. data selection: each expert keeps the C best tokens that selected it, in sequence order.
    #    Tokens that did not select the expert score p - 1 (below any chooser, ranked by their own
    #    score): they only enter the buffer when fewer than C tokens selected the expert, as padding
    #    (marked invalid) or, with ``filler``, as filler tokens that are computed and added.
    C = capacity_tokens(T, capacity, chosen)
    p_sg = probs.detach()
    score = torch.where(chosen, p_sg, p_sg - 1.0).permute(2, 0, 1)                               # [E, B, T]
    index = score.topk(C, dim=-1).indices                                                         # [E, B, C]
    valid = chosen.permute(2, 0, 1).gather(-1, index)
    if filler:      # every slot in sequence order (selected and filler tokens mixed)
        order = index.sort(dim=-1).indices
    else:           # selected tokens first, in sequence order; padding slots (if any) after them
        order = (index + (~valid) * T).sort(dim=-1).indices
    index, valid = index.gather(-1, order), valid.gather(-1, order)
    used = torch.ones_like(valid) if filler else valid
    p = probs.permute(2, 0, 1).gather(-1, index)                                                   # p_{t,e}
    if gate == "straight_through":          # value 1, gradient d/dp (Eq. 4)
        weight = used + (p - p.detach())    # exactly 1 in value for used slots (p - sg(p) = 0)
        weight = weight * used
    elif gate == "multiply":                # standard MoE: renormalised over S_t, times k
        norm = (probs * chosen).sum(-1, keepdim=True).permute(2, 0, 1)                            # [1, B, T]
        weight = used * p / norm.expand(E, -1, -1).gather(-1, index) * top_k
    else:                                   # the official code: selection only, no gradient
        weight = used.to(probs.dtype)
    return Routing(index=index, weight=weight, valid=valid, probs=probs, chosen=chosen, used=used)


class Router(nn.Module):
    """``p = softmax(x W_r)`` (Eq. 3) followed by :func:`hierarchical_route`.

    Keeps statistics of its last forward for FLOPs counting and the report: ``last_capacity``,
    ``last_seq_len``, ``last_kept`` (the fraction of token->expert selections that fit in the capacity),
    ``last_filled`` (the fraction of computed slots holding filler tokens), and per token of the batch
    ``last_routed`` (selected (token, expert) pairs, ``k`` without drops) and ``last_pairs``
    (``sum_e n_e (n_e + 1) / 2 / T`` over experts with ``n_e`` selected tokens: causal query-key pairs).
    """

    def __init__(self, d_model: int, n_experts: int, top_k: int, capacity: float | None,
                 gate: str = "straight_through", filler: bool = False):
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, not {gate!r}")
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k={top_k} must be between 1 and the number of experts {n_experts}")
        if capacity is not None and not 0 < capacity <= 1:
            raise ValueError(f"capacity must be in (0, 1] or None, not {capacity}")
        capacity = None if capacity is None else float(capacity)
        if filler and capacity is None:
            raise ValueError("filler tokens need a capacity (capacity=None keeps every selection: nothing to fill)")
        self.n_experts, self.top_k, self.capacity, self.gate, self.filler = n_experts, top_k, capacity, gate, filler
        self.w_r = nn.Linear(d_model, n_experts, bias=False)
        self.last_capacity: int | None = None
        self.last_seq_len: int | None = None
        self.last_kept: float | None = None
        self.last_filled: float | None = None
        self.last_routed: float | None = None
        self.last_pairs: float | None = None

    def forward(self, x: torch.Tensor) -> Routing:
        logits = self.w_r(x)
        probs = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        r = hierarchical_route(probs, self.top_k, self.capacity, self.gate, self.filler)
        B, T = x.shape[:2]
        self.last_capacity, self.last_seq_len = r.capacity, T
        self.last_kept = float(r.valid.sum().item() / max(1, r.chosen.sum().item()))
        self.last_filled = float((r.used & ~r.valid).sum().item() / max(1, r.used.sum().item()))
        n = r.valid.sum(-1).double()                                               # [E, B] selected tokens
        self.last_routed = float(n.sum().item() / (B * T))
        self.last_pairs = float((n * (n + 1) / 2).sum().item() / (B * T))
        return r

    def capacity_at(self, seq_len: int) -> float:
        """``C`` for a sequence of ``seq_len`` tokens (for ``capacity=None``: scaled from the last forward)."""
        if self.capacity is not None:
            return float(capacity_tokens(seq_len, self.capacity))
        if self.last_capacity is None:
            return float(seq_len)       # not run yet: assume the worst case
        return self.last_capacity * seq_len / self.last_seq_len

    def flops_per_token(self, seq_len: int = 0) -> float:
        """``x W_r`` and the softmax over experts (selection itself is comparisons: not counted)."""
        return fl.linear_flops(self.w_r.in_features, self.n_experts) + fl.SOFTMAX_PER_SCORE * self.n_experts


def load_balancing_loss(probs: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Switch-Transformer auxiliary loss ``E sum_e f_e P_e`` (1 when perfectly balanced).

    ``f_e``: fraction of token->expert assignments going to ``e``; ``P_e``: mean router probability of ``e``.
    """
    E = probs.shape[-1]
    f = chosen.float().reshape(-1, E).mean(0) / chosen.float().reshape(-1, E).sum(-1).mean()
    P = probs.reshape(-1, E).mean(0)
    return E * (f * P).sum()
