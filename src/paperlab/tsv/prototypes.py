"""vMF class prototypes on the unit sphere (TSV, Sec. 3.2).

The embedding :math:`r` of a generation is the last token's final-layer hidden state, L2-normalised,
so it lives on the unit sphere. TSV models each class :math:`c \\in \\{0 = \\text{hallucinated},
1 = \\text{truthful}\\}` with a von Mises-Fisher distribution with mean direction (prototype)
:math:`\\mu_c` and shared concentration :math:`\\kappa = 1/\\tau`:

.. math::

    p(c \\mid r) = \\frac{\\exp(\\mu_c^\\top r / \\tau)}{\\sum_{c'} \\exp(\\mu_{c'}^\\top r / \\tau)}.

Only the steering vector is trained (cross-entropy :math:`-\\sum_c y_c \\log p(c \\mid r)`); the
prototypes get no gradient. They follow the embeddings by an exponential moving average of the
(hard or soft) label-weighted batch means, re-projected onto the sphere:

.. math::

    \\mu_c \\leftarrow \\operatorname{normalize}\\Big(\\alpha\\, \\mu_c + (1 - \\alpha)
        \\frac{\\sum_i y_{ic} r_i}{\\sum_i y_{ic}}\\Big), \\qquad \\alpha = 0.99.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class VMFPrototypes:
    """Class prototypes :math:`\\mu_c` (unit rows) and the vMF posterior :math:`p(c \\mid r)`.

    ``init="random"`` draws Gaussian directions as the official code does; ``init="mean"`` starts
    from given class means (used by the raw-embedding prototype baseline).
    """

    def __init__(self, dim: int, n_classes: int = 2, tau: float = 0.1, decay: float = 0.99, seed: int = 0,
                 mu: torch.Tensor | None = None):
        self.tau, self.decay = tau, decay
        if mu is None:
            g = torch.Generator().manual_seed(seed)
            mu = torch.randn(n_classes, dim, generator=g)
        self.mu = F.normalize(mu.detach().float(), dim=1)

    @classmethod
    def from_class_means(cls, r: torch.Tensor, y: torch.Tensor, n_classes: int = 2, **kw) -> VMFPrototypes:
        """Prototypes at the (normalised) mean embedding of each class."""
        r = F.normalize(r.float(), dim=1)
        mu = torch.stack([r[y == c].mean(0) for c in range(n_classes)])
        return cls(r.shape[1], n_classes, mu=mu, **kw)

    def to(self, device) -> VMFPrototypes:
        self.mu = self.mu.to(device)
        return self

    def logits(self, r: torch.Tensor) -> torch.Tensor:
        """:math:`\\mu_c^\\top r / \\tau` for unit-norm ``r`` [B, d]."""
        return r @ self.mu.T.to(r) / self.tau

    def log_probs(self, r: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.logits(r), -1)

    def probs(self, r: torch.Tensor) -> torch.Tensor:
        """:math:`p(c \\mid r)`; column 1 is the truthfulness score."""
        return torch.softmax(self.logits(r), -1)

    @torch.no_grad()
    def ema_update(self, r: torch.Tensor, y: torch.Tensor) -> None:
        """EMA step with label weights ``y`` [B, C] (one-hot in stage 1, soft pseudo-labels in stage 2).

        A class with no weight in the batch keeps its prototype.
        """
        r = F.normalize(r.detach().float(), dim=1)
        y = y.detach().float().to(r)
        batch_mean = (y.T @ r) / (y.sum(0)[:, None] + 1e-8)
        mu = self.mu.to(r)
        self.mu = F.normalize(self.decay * mu + (1 - self.decay) * batch_mean, dim=1)


def soft_cross_entropy(log_p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:math:`-\\frac{1}{B}\\sum_i \\sum_c y_{ic} \\log p(c \\mid r_i)` (TSV's training loss)."""
    return -(y * log_p).sum(1).mean()
