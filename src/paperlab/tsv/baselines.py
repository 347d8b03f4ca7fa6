"""Baselines scored on the same generations and the same frozen embeddings as TSV.

- **Perplexity** (uncertainty baseline): the answer's mean token log-probability under the LM,
  :math:`\\frac{1}{T}\\sum_t \\log p(a_t \\mid q, a_{<t})`; higher = more likely truthful.
- **Raw-embedding prototypes**: the vMF classifier of TSV with prototypes at the exemplars' class
  means of the *unsteered* embeddings (:math:`v = 0`, no training) — what TSV adds is the steering.
- **Logistic-regression probe** on the same unsteered embeddings and the same 32 labelled
  exemplars (SAPLMA-style linear probe), regularisation picked on the validation split.
- **Supervised probe** (reference, not a baseline of the claim): the same probe trained on the
  labels of the whole wild pool, i.e. with ~16x more labels than TSV sees.

All scores are "higher = truthful" so one AUROC convention covers every method.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from paperlab.tsv.prototypes import VMFPrototypes

PROBE_CS = (0.01, 0.1, 1.0, 10.0, 100.0)


def perplexity_scores(answer_logprob: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean answer log-prob (= minus log-perplexity): higher means more confident."""
    return np.asarray(answer_logprob, dtype=float)


def prototype_scores(train_r: torch.Tensor, train_y: Sequence[int], r: torch.Tensor, tau: float = 0.1) -> np.ndarray:
    """p(truthful | r) with prototypes at the training class means (no steering, no training)."""
    protos = VMFPrototypes.from_class_means(train_r, torch.tensor(list(train_y)), tau=tau)
    return protos.probs(r.float())[:, 1].numpy()


def fit_probe(train_r: np.ndarray, train_y: Sequence[int], val_r: np.ndarray | None = None,
              val_y: Sequence[int] | None = None, cs: Sequence[float] = PROBE_CS, seed: int = 0):
    """A logistic-regression probe; C chosen by validation AUROC (first best), or C=1 without validation."""
    best, best_auc = None, -1.0
    grid = cs if val_r is not None and val_y is not None and len(set(val_y)) == 2 else (1.0,)
    for c in grid:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(train_r, list(train_y))
        auc = roc_auc_score(val_y, clf.predict_proba(val_r)[:, 1]) if len(grid) > 1 else 0.0
        if auc > best_auc:
            best, best_auc = clf, auc
    return best


def probe_scores(clf, r: np.ndarray) -> np.ndarray:
    return clf.predict_proba(r)[:, 1]
