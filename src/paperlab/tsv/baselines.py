"""Baselines scored on the same generations and the same frozen embeddings as TSV.

- **Perplexity** (uncertainty baseline): the answer's mean token log-probability under the LM,
  :math:`\\frac{1}{T}\\sum_t \\log p(a_t \\mid q, a_{<t})`; higher = more likely truthful.
- **Raw-embedding prototypes**: the vMF classifier of TSV with prototypes at the exemplars' class
  means of the *unsteered* embeddings (:math:`v = 0`, no training) — what TSV adds is the steering.
- **Logistic-regression probe** on the same unsteered embeddings and the same 32 labelled
  exemplars (SAPLMA-style linear probe), regularisation picked on the validation split.
- **Question-answer cosine** (what a user tries first): cosine similarity of all-MiniLM-L6-v2
  sentence embeddings of the question and the answer (:mod:`paperlab.core.embeddings`).
- **Pointwise mutual information** of the answer with the question under the same LM, in the same
  chat context: :math:`\\log p(a \\mid q) - \\log p(a)`, where :math:`p(a)` is the answer after the
  same prompt with the question left out (``Q:  A:``) -- how much the question explains the answer.
- **Supervised probe** (reference, not a baseline of the claim): the same probe trained on the
  labels of the whole wild pool, i.e. with ~16x more labels than TSV sees.

All scores are "higher = truthful" so one AUROC convention covers every method. The three
label-free scores (perplexity, cosine, PMI) could just as well be read the other way round, so
each one's direction is picked on the validation split (:func:`orient`), as a user would.
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


def pmi_scores(logp_given_question, logp_alone) -> np.ndarray:
    """:math:`\\log p(a \\mid q) - \\log p(a)` (total answer log-probs in the two contexts)."""
    return np.asarray(logp_given_question, dtype=float) - np.asarray(logp_alone, dtype=float)


def qa_cosine_scores(questions: Sequence[str], answers: Sequence[str], embedder: str = "embed:minilm") -> np.ndarray:
    """Cosine similarity of each question's and answer's sentence embeddings (rows are L2-normalised)."""
    from paperlab.core.embeddings import load_embedder

    emb = load_embedder(embedder)
    uq = sorted(set(questions))
    eq = dict(zip(uq, emb.embed(uq), strict=True))
    ea = emb.embed([a if a.strip() else "-" for a in answers])
    return np.array([float(eq[q] @ e) for q, e in zip(questions, ea, strict=True)])


def orient(val_y: Sequence[int], val_s: np.ndarray) -> int:
    """+1 or -1: the direction in which a label-free score ranks the validation split's truthful
    answers higher (+1 on a tie or an undefined AUROC)."""
    from paperlab.core.stats import auroc

    a = auroc(list(val_y), val_s)
    return -1 if a == a and a < 0.5 else 1


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
