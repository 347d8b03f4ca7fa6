"""Optimal-transport pseudo-labels for the unlabelled ("wild") generations (TSV, Sec. 3.3).

Given the model's class posteriors :math:`p(c \\mid r_i)` for :math:`B` unlabelled samples, TSV
assigns soft pseudo-labels :math:`Q \\in \\mathbb{R}^{B \\times C}` by solving the entropic
optimal-transport problem

.. math::

    \\max_{Q \\in \\mathcal{Q}} \\; \\operatorname{tr}(Q^\\top \\log P) + \\varepsilon H(Q),
    \\qquad
    \\mathcal{Q} = \\{ Q \\ge 0 : Q \\mathbf{1}_C = \\tfrac{1}{B}\\mathbf{1}_B,\\;
                       Q^\\top \\mathbf{1}_B = w \\},

whose cost is :math:`-\\log p(c \\mid r_i)` and whose class marginal :math:`w` is the class prior
(estimated from the labelled exemplars' label ratio, so an imbalanced data set is not forced to
equal-sized clusters). The solution is :math:`Q = \\operatorname{diag}(\\alpha)\\,
P^{1/\\varepsilon}\\,\\operatorname{diag}(\\beta)`, found by Sinkhorn-Knopp: alternately rescale
the class columns to :math:`w` and the sample rows to :math:`1/B`. The paper runs 3 iterations
with :math:`\\varepsilon = 0.05`, ending on the sample normalisation, so every returned row is a
probability distribution (sample marginal exact) and the class marginal is approximately
:math:`w`; with more iterations both marginals hold (tests check both, and that the plan equals
POT's ``ot.sinkhorn`` with cost :math:`-\\log P` and regularisation :math:`\\varepsilon`).

We iterate in the log domain: :math:`P^{1/\\varepsilon}` with :math:`\\varepsilon = 0.05`
underflows in float32 for confident posteriors (the official code patches infinities instead).

After pseudo-labelling, :func:`select_confident` keeps the :math:`k` samples whose pseudo-label
agrees best with the model, class-balanced by the same prior (Sec. 3.3, "confidence filtering").
"""

from __future__ import annotations

import math

import torch


def sinkhorn_pseudo_labels(log_p: torch.Tensor, class_prior: torch.Tensor, eps: float = 0.05,
                           n_iters: int = 3) -> torch.Tensor:
    """Soft pseudo-labels :math:`B \\cdot Q` (rows sum to 1) from log-posteriors ``log_p`` [B, C].

    Sinkhorn-Knopp on :math:`\\log Q = \\log P / \\varepsilon`; each iteration first matches the
    class marginal to ``class_prior`` (sums to 1), then the sample marginal to :math:`1/B`.
    """
    log_p = log_p.double()
    w = class_prior.to(log_p).flatten()
    if log_p.ndim != 2 or w.numel() != log_p.shape[1]:
        raise ValueError(f"log_p must be [B, C] with C = {w.numel()} classes, got {tuple(log_p.shape)}")
    if (w <= 0).any() or not math.isclose(float(w.sum()), 1.0, rel_tol=1e-6):
        raise ValueError(f"class_prior must be positive and sum to 1, got {w.tolist()}")
    b = log_p.shape[0]
    # log Q = log P / eps, normalised to total mass 1
    log_q = log_p / eps
    log_q = log_q - torch.logsumexp(log_q.flatten(), 0)
    for _ in range(n_iters):
        # class marginal: Q^T 1 = w
        log_q = log_q - torch.logsumexp(log_q, 0, keepdim=True) + w.log()[None, :]
        # sample marginal: Q 1 = 1/B
        log_q = log_q - torch.logsumexp(log_q, 1, keepdim=True) - math.log(b)
    # B * Q: one probability distribution over classes per sample
    return (log_q + math.log(b)).exp().float()


def confidence_ce(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy :math:`-\\sum_c q_{ic} \\log p_{ic}` between pseudo-label and model."""
    return -(q * torch.log(p + 1e-8)).sum(1)


def select_confident(p: torch.Tensor, q: torch.Tensor, k: int, class_prior: torch.Tensor) -> torch.Tensor:
    """Indices of the ``k`` most confident pseudo-labelled samples, class-balanced.

    Samples are grouped by the model's predicted class :math:`\\arg\\max_c p_{ic}`; from class
    :math:`c` the :math:`\\lfloor k w_c \\rfloor` samples with the lowest cross-entropy
    (:func:`confidence_ce`) are kept. If a class has too few samples, the global :math:`k` lowest are
    kept instead (as the official implementation does).
    """
    ce = confidence_ce(p, q)
    k = min(k, len(ce))
    hard = p.argmax(1)
    per_class = [int(k * float(wc)) for wc in class_prior.flatten()]
    members = [(hard == c).nonzero(as_tuple=True)[0] for c in range(p.shape[1])]
    if any(len(m) < n for m, n in zip(members, per_class, strict=True)):
        return torch.topk(ce, k, largest=False).indices
    chosen = [m[torch.topk(ce[m], n, largest=False).indices] for m, n in zip(members, per_class, strict=True)]
    return torch.cat(chosen)
