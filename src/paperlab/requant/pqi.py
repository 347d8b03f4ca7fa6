"""Sensitivity of the loss to quantization: Taylor estimates and the Post-quantization Integral (PQI).

``F`` is the calibration loss (mean per-token NLL over ``n`` calibration sequences,
``F = (1/n) sum_s F_s``), ``w`` the full-precision weights of the quantized layers, ``w~ = Q(w)`` and
``dw = w~ - w``. The measured change is ``dF = F(w~) - F(w)``.

**Taylor** (the estimates the paper shows to fail, its Table 1):

    dF_1 = sum_i g_i dw_i                                         g = grad F(w)        (first order)
    dF_2 = dF_1 + 1/2 sum_i F_ii dw_i^2,   F_ii = (1/n) sum_s g_{s,i}^2                (second order)

with ``F_ii`` the diagonal empirical Fisher of the sequence losses (``g_s = grad F_s(w)``), the
squared gradients SqueezeLLM ranks weights by. (``T F_ii`` — ``T`` tokens per sequence — is the
Gauss-Newton Hessian of the per-token loss if tokens were independent; it is reported beside.)

**PQI** (the paper's Eq.): the loss change is the path integral of the gradient along the straight
line from ``w`` to ``w~``,

    dF = int_0^1 grad F(w + t dw) . dw dt,       dF_i = dw_i int_0^1 d_i F(w + t dw) dt     (PQI)

exact for any loss (fundamental theorem of calculus); ``sum_i dF_i = dF``. It is computed by a
quadrature with ``N`` points, one gradient each (:func:`quadrature`):

- ``right``: the rectangle rule at ``t_k = k/N``, ``k = 1..N`` (error ``O(1/N)``; the paper's Table 3
  falls by half per doubling of N from above, which is the right rule on a path where the loss curves
  upwards — our reading, the paper's algorithm text was not available);
- ``left``: ``t_k = k/N``, ``k = 0..N-1`` (``O(1/N)``; its first point is the Taylor gradient);
- ``midpoint`` and ``trapezoid``: ``O(1/N^2)``, and exact for a quadratic loss at any ``N`` (the
  gradient is then linear in ``t``).

The per-weight *sensitivity* form of the seed pseudo-code, the path-mean of ``|d_i F|``, is kept as
:attr:`PathScan.elem_abs`; only the signed ``dF_i`` adds up to the loss change.

Everything comes out of one routine, :func:`path_scan`: at each point ``t`` it takes the gradient of
every calibration sequence's loss (one backward each), so the per-sequence estimates needed for
intervals are free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from paperlab.requant.lm import TargetModel

RULES = ("left", "right", "midpoint", "trapezoid")


def quadrature(n: int, rule: str) -> tuple[list[float], list[float]]:
    """Points ``t_k`` in [0, 1] and weights ``c_k`` (summing to 1) of an ``n``-interval rule."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if rule == "left":
        return [k / n for k in range(n)], [1 / n] * n
    if rule == "right":
        return [k / n for k in range(1, n + 1)], [1 / n] * n
    if rule == "midpoint":
        return [(k + 0.5) / n for k in range(n)], [1 / n] * n
    if rule == "trapezoid":
        return [k / n for k in range(n + 1)], [0.5 / n] + [1 / n] * (n - 1) + [0.5 / n]
    raise ValueError(f"unknown rule {rule!r}; use one of {RULES}")


def grid_weights(n_max: int, n: int, rule: str) -> np.ndarray:
    """The weights of the ``n``-interval ``rule`` on the grid ``t = k / n_max, k = 0..n_max`` (its points
    must lie on the grid: ``n | n_max``, and ``2n | n_max`` for the midpoint rule)."""
    ts, cs = quadrature(n, rule)
    out = np.zeros(n_max + 1)
    for t, c in zip(ts, cs, strict=True):
        k = t * n_max
        if abs(k - round(k)) > 1e-9:
            raise ValueError(f"the {rule} rule with N={n} needs t={t:g}, not on the grid of {n_max} intervals")
        out[round(k)] += c
    return out


@dataclass
class PathScan:
    """Gradients along ``w + t dw`` at the points ``ts``.

    ``seq_loss[k, s]`` = ``F_s(w + t_k dw)``; ``seq_dot[k, s]`` = ``grad F_s(w + t_k dw) . dw``;
    ``elem`` = ``sum_k c_k grad F(w + t_k dw)`` (mean over sequences) for the scan's weights ``c``, so
    that ``dw * elem`` is the per-weight PQI; ``elem_abs`` the same with ``|grad|``; ``fold_elem``: the
    sum of ``c_k grad F_s`` over the sequences of each fold (for jackknife intervals). At ``t = 0``:
    ``fisher`` = ``(1/n) sum_s g_s^2``, ``grad0`` = ``g`` and ``seq_quad[s]`` = ``sum_i (g_{s,i} dw_i)^2``.
    """

    ts: list[float]
    coefs: list[float]
    seq_loss: np.ndarray
    seq_dot: np.ndarray
    elem: dict[str, torch.Tensor]
    elem_abs: dict[str, torch.Tensor]
    fold_elem: list[dict[str, torch.Tensor]] = field(default_factory=list)
    folds: list[list[int]] = field(default_factory=list)
    fisher: dict[str, torch.Tensor] | None = None
    grad0: dict[str, torch.Tensor] | None = None
    seq_quad: np.ndarray | None = None
    seconds_per_point: float = float("nan")

    def pqi_elements(self, dw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``dF_i = dw_i * sum_k c_k d_i F(w + t_k dw)`` (PQI)."""
        return {n: dw[n] * self.elem[n] for n in dw}

    def estimate(self, coefs: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
        """Per-sequence PQI estimates ``sum_k c_k g_s(t_k) . dw`` (default: the scan's own weights)."""
        c = np.asarray(self.coefs if coefs is None else coefs, dtype=float)
        return c @ self.seq_dot


def _requires_grad_only(target: TargetModel) -> dict[torch.nn.Parameter, bool]:
    flags = {p: p.requires_grad for p in target.model.parameters()}
    for p in target.model.parameters():
        p.requires_grad_(False)
    for lin in target.layers.values():
        lin.weight.requires_grad_(True)
    return flags


def path_scan(target: TargetModel, w0: dict[str, torch.Tensor], dw: dict[str, torch.Tensor],
              seqs: torch.Tensor, ts: Sequence[float], coefs: Sequence[float] | None = None,
              n_folds: int = 0, fisher: bool = True, on_point: Callable[[int], None] | None = None,
              prefix=True) -> PathScan:
    """Gradients of every sequence's loss at ``w0 + t dw`` for each ``t`` in ``ts`` (see :class:`PathScan`).

    ``coefs`` (default ``1/len(ts)`` each) weight the per-weight accumulation; ``n_folds > 1`` also
    keeps the per-fold sums (sequences dealt round-robin). The target's weights are restored to ``w0``.
    ``prefix``: a :class:`~paperlab.requant.lm.Prefix` of ``seqs`` to reuse (True: compute one here).
    """
    import time

    names = list(target.layers)
    coefs = list(coefs) if coefs is not None else [1 / len(ts)] * len(ts)
    n = seqs.shape[0]
    folds = [list(range(f, n, n_folds)) for f in range(n_folds)] if n_folds > 1 else []
    fold_of = {s: f for f, members in enumerate(folds) for s in members}
    zeros = {k: torch.zeros_like(w0[k]) for k in names}
    scan = PathScan(list(ts), coefs, np.zeros((len(ts), n)), np.zeros((len(ts), n)),
                    {k: v.clone() for k, v in zeros.items()}, {k: v.clone() for k, v in zeros.items()},
                    [{k: v.clone() for k, v in zeros.items()} for _ in folds], folds)
    flags = _requires_grad_only(target)
    was_training = target.model.training
    target.model.eval()
    t_start = time.perf_counter()
    try:
        with target.frozen_prefix(seqs, prefix) as nll_of:
            for k, (t, c) in enumerate(zip(ts, coefs, strict=True)):
                target.set_weights({m: w0[m] + t * dw[m] for m in names})
                at_zero = t == 0.0
                if at_zero:
                    scan.fisher = {m: torch.zeros_like(w0[m]) for m in names} if fisher else None
                    scan.grad0 = {m: torch.zeros_like(w0[m]) for m in names}
                    scan.seq_quad = np.zeros(n)
                params = [target.layers[m].weight for m in names]
                for s in range(n):
                    loss = nll_of(s).mean()
                    grads = torch.autograd.grad(loss, params)
                    scan.seq_loss[k, s] = float(loss.detach())
                    dot = 0.0
                    for m, g in zip(names, grads, strict=True):
                        dot += float((g * dw[m]).sum())
                        scan.elem[m].add_(g, alpha=c / n)
                        scan.elem_abs[m].add_(g.abs(), alpha=c / n)
                        if folds:
                            scan.fold_elem[fold_of[s]][m].add_(g, alpha=c)
                        if at_zero:
                            scan.grad0[m].add_(g, alpha=1 / n)
                            if scan.fisher is not None:
                                scan.fisher[m].add_(g * g, alpha=1 / n)
                            scan.seq_quad[s] += float(((g * dw[m]) ** 2).sum())
                    scan.seq_dot[k, s] = dot
                if on_point is not None:
                    on_point(k)
    finally:
        target.set_weights(w0)
        for p, f in flags.items():
            p.requires_grad_(f)
        target.model.train(was_training)
    scan.seconds_per_point = (time.perf_counter() - t_start) / max(1, len(ts))
    return scan


@torch.no_grad()
def sequence_losses(target: TargetModel, seqs: torch.Tensor, weights: dict[str, torch.Tensor] | None = None,
                    restore: dict[str, torch.Tensor] | None = None, prefix=True) -> np.ndarray:
    """``F_s`` of every sequence (at ``weights`` when given; then ``restore`` is put back); ``prefix``: a
    :class:`~paperlab.requant.lm.Prefix` of ``seqs`` to reuse (True: compute one)."""
    if weights is not None:
        target.set_weights(weights)
    was_training = target.model.training
    target.model.eval()
    try:
        with target.frozen_prefix(seqs, prefix) as nll_of:
            return np.array([float(nll_of(s).mean()) for s in range(seqs.shape[0])])
    finally:
        target.model.train(was_training)
        if weights is not None and restore is not None:
            target.set_weights(restore)


def pqi(target: TargetModel, w0: dict[str, torch.Tensor], w_q: dict[str, torch.Tensor], seqs: torch.Tensor,
        n_points: int = 32, rule: str = "right") -> tuple[float, dict[str, torch.Tensor], PathScan]:
    """``(dF estimate, per-weight dF_i, scan)`` of the path from ``w0`` to ``w_q`` (PQI) with ``n_points``."""
    dw = {m: w_q[m] - w0[m] for m in w0}
    ts, cs = quadrature(n_points, rule)
    scan = path_scan(target, w0, dw, seqs, ts, cs, fisher=False)
    return float(scan.estimate().mean()), scan.pqi_elements(dw), scan


# ----------------------------------------------------------------------------------------------
# Taylor estimates and concentration


def taylor_estimates(scan: PathScan, tokens_per_seq: int) -> dict[str, np.ndarray]:
    """Per-sequence Taylor estimates from a scan whose first point is ``t = 0``:
    ``first = g_s . dw``; ``second = first + 1/2 sum_i (g_{s,i} dw_i)^2`` (its mean over sequences is
    Eq. second order with the empirical Fisher); ``second_token_fisher`` scales the quadratic term by
    the tokens per sequence."""
    if scan.ts[0] != 0.0 or scan.seq_quad is None:
        raise ValueError("the scan must start at t = 0")
    first = scan.seq_dot[0]
    return {"first": first, "second": first + 0.5 * scan.seq_quad,
            "second_token_fisher": first + 0.5 * tokens_per_seq * scan.seq_quad}


def flat(elems: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in elems.values()])


def top_share(values: torch.Tensor, fractions: Sequence[float], by_abs: bool = False) -> list[float]:
    """Share of ``sum(values)`` held by the top ``fraction`` of entries (ranked by value, descending;
    ``by_abs``: ranked by and summing ``|values|``)."""
    v = values.abs() if by_abs else values
    s = torch.sort(v.double(), descending=True).values
    total = float(s.sum())
    cum = torch.cumsum(s, 0)
    out = []
    for f in fractions:
        k = max(1, int(round(f * v.numel())))
        out.append(float(cum[k - 1]) / total if total != 0 else float("nan"))
    return out


def jackknife_shares(scan: PathScan, dw: dict[str, torch.Tensor], fractions: Sequence[float],
                     by_abs: bool = False) -> np.ndarray:
    """``[n_folds, len(fractions)]``: :func:`top_share` of the PQI computed without each fold of sequences."""
    total = {m: sum(f[m] for f in scan.fold_elem) for m in dw}
    return np.array([top_share(flat({m: dw[m] * (total[m] - fold[m]) for m in dw}), fractions, by_abs)
                     for fold in scan.fold_elem])
