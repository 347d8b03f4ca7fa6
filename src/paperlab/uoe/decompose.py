"""Equivalent decomposition of the transformer into experts (paper Sec. "Equivalent expert decomposition").

The decomposition is the matrix partition of tensor parallelism (Megatron-LM), read as a set of experts.

**MLP.** The SwiGLU MLP of the shared transformer is ``MLP(x) = (SiLU(x W_1) * (x W_3)) W_2`` with
``W_1, W_3 in R^{D x F}`` and ``W_2 in R^{F x D}``. Split ``W_1`` and ``W_3`` by *columns* and ``W_2`` by
*rows* into ``E`` blocks of ``F/E`` hidden units::

    W_1 = [W_1^1 ... W_1^E]      W_3 = [W_3^1 ... W_3^E]      W_2 = [W_2^1; ...; W_2^E]

The activation is element-wise, so each hidden unit belongs to exactly one block and

    MLP(x) = sum_e  E_e(x),      E_e(x) = (SiLU(x W_1^e) * (x W_3^e)) W_2^e                   (1)

Expert ``e`` is a small MLP; their *sum* over all experts is the dense MLP, exactly. (With the GELU MLP
of the paper, ``E_e(x) = GELU(x W_1^e + b_1^e) W_2^e``; an output bias ``b_2`` is added once, not per
expert, so the sum still matches.)

**Attention.** Multi-head attention is already a sum over heads::

    Attn(X) = sum_h  softmax(RoPE(X W_Q^h) RoPE(X W_K^h)^T / sqrt(Dh) + M) (X W_V^h) W_O^h         (2)

where ``W_{Q,K,V}^h`` are the columns of head ``h`` and ``W_O^h`` the rows of ``W_O`` it reads. Each head
is an expert.

**Parallel implementation.** The experts' weights are stored *stacked* — ``w_in[E, D, 2F/E]``,
``w_out[E, F/E, D]`` — so that all experts run as one batched matrix multiply (``torch.bmm``/``baddbmm``)
on a ``[E, N, D]`` tensor holding each expert's tokens, instead of a Python loop over experts.
:meth:`DecomposedMLP.experts_loop` is the per-expert loop kept for tests and benchmarks.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.core import flops as fl


class DecomposedMLP(nn.Module):
    """``E`` SwiGLU experts stacked for batched matmuls; their sum is the dense MLP (Eq. 1).

    Parameters: ``w_in[E, D, 2 F_e]`` (gate columns then up columns of each expert), ``w_out[E, F_e, D]``.
    """

    def __init__(self, d_model: int, d_hidden: int, n_experts: int):
        super().__init__()
        if d_hidden % n_experts:
            raise ValueError(f"d_ff={d_hidden} is not divisible by n_experts={n_experts}")
        self.d_model, self.d_hidden, self.n_experts = d_model, d_hidden, n_experts
        self.d_expert = d_hidden // n_experts
        self.w_in = nn.Parameter(torch.empty(n_experts, d_model, 2 * self.d_expert))
        self.w_out = nn.Parameter(torch.empty(n_experts, self.d_expert, d_model))
        self.init_weights(0.02, 0.02)

    @torch.no_grad()
    def init_weights(self, std: float, out_std: float) -> None:
        """Same distribution as the dense MLP: a column/row block of an i.i.d. normal matrix."""
        nn.init.normal_(self.w_in, 0.0, std)
        nn.init.normal_(self.w_out, 0.0, out_std)

    @classmethod
    def from_dense(cls, w1: torch.Tensor, w3: torch.Tensor, w2: torch.Tensor, n_experts: int) -> DecomposedMLP:
        """Split a dense SwiGLU MLP (``nn.Linear`` weights ``w1, w3: [F, D]``, ``w2: [D, F]``) into experts."""
        d_hidden, d_model = w1.shape
        m = cls(d_model, d_hidden, n_experts).to(device=w1.device, dtype=w1.dtype)
        fe = m.d_expert
        with torch.no_grad():
            # column split of W_1 = w1^T and W_3 = w3^T: expert e owns hidden units e*fe .. (e+1)*fe-1
            gate = w1.t().reshape(d_model, n_experts, fe).permute(1, 0, 2)       # [E, D, fe]
            up = w3.t().reshape(d_model, n_experts, fe).permute(1, 0, 2)
            m.w_in.copy_(torch.cat([gate, up], dim=-1))
            # row split of W_2 = w2^T
            m.w_out.copy_(w2.t().reshape(n_experts, fe, d_model))
        return m

    def experts(self, xe: torch.Tensor) -> torch.Tensor:
        """All experts at once: ``xe[E, N, D]`` (expert ``e``'s tokens in row ``e``) -> ``[E, N, D]``."""
        h = torch.bmm(xe, self.w_in)                                   # [E, N, 2 F_e]
        gate, up = h.split(self.d_expert, dim=-1)
        return torch.bmm(F.silu(gate) * up, self.w_out)              # E_e(x) of Eq. 1

    def experts_loop(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The same computation as :meth:`experts`, one expert at a time (``xs[e]: [N_e, D]``)."""
        out = []
        for e, x in enumerate(xs):
            gate, up = (x @ self.w_in[e]).split(self.d_expert, dim=-1)
            out.append((F.silu(gate) * up) @ self.w_out[e])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every token through every expert, summed: equals the dense MLP (Eq. 1)."""
        shape = x.shape
        xe = x.reshape(1, -1, self.d_model).expand(self.n_experts, -1, -1)
        return self.experts(xe).sum(0).reshape(shape)

    def expert_flops(self) -> float:
        """Forward FLOPs of one expert on one token."""
        return 3 * fl.linear_flops(self.d_model, self.d_expert) + fl.swiglu_act_flops(self.d_expert)


class DecomposedAttentionWeights(nn.Module):
    """Per-head (expert) projections of multi-head attention, stacked for batched matmuls (Eq. 2).

    ``w_q, w_k, w_v[H, D, Dh]`` are head ``h``'s columns of ``W_Q, W_K, W_V``; ``w_o[H, Dh, D]`` its rows
    of ``W_O``. No biases (as in the shared transformer).
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.w_qkv = nn.Parameter(torch.empty(n_heads, d_model, 3 * self.head_dim))
        self.w_o = nn.Parameter(torch.empty(n_heads, self.head_dim, d_model))
        self.init_weights(0.02, 0.02)

    @torch.no_grad()
    def init_weights(self, std: float, out_std: float) -> None:
        nn.init.normal_(self.w_qkv, 0.0, std)
        nn.init.normal_(self.w_o, 0.0, out_std)

    @torch.no_grad()
    def load_dense(self, wq: torch.Tensor, wk: torch.Tensor, wv: torch.Tensor, wo: torch.Tensor) -> None:
        """Copy dense ``nn.Linear`` weights (``wq, wk, wv: [H Dh, D]``, ``wo: [D, H Dh]``) head by head."""
        H, Dh, D = self.n_heads, self.head_dim, self.d_model

        def heads(w: torch.Tensor) -> torch.Tensor:            # [H Dh, D] -> [H, D, Dh]
            return w.reshape(H, Dh, D).transpose(1, 2)

        self.w_qkv.copy_(torch.cat([heads(wq), heads(wk), heads(wv)], dim=-1))
        self.w_o.copy_(wo.t().reshape(H, Dh, D))

    def qkv(self, xh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``xh[H, N, D]`` (head ``h``'s tokens in row ``h``) -> ``q, k, v`` each ``[H, N, Dh]``."""
        return torch.bmm(xh, self.w_qkv).split(self.head_dim, dim=-1)

    def out(self, oh: torch.Tensor) -> torch.Tensor:
        """``oh[H, N, Dh]`` -> each head's contribution to the output, ``[H, N, D]``."""
        return torch.bmm(oh, self.w_o)
