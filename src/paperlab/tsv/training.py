"""Two-stage TSV training (the paper's Algorithm 1) on the frozen-prefix cache.

Stage 1 (Sec. 3.2): train :math:`v` on the :math:`N` labelled exemplars with the vMF cross-entropy;
prototypes follow the class means by EMA with hard labels.

Stage 2 (Sec. 3.3): with the stage-1 detector, embed the unlabelled wild generations, assign
Sinkhorn pseudo-labels with the exemplars' class prior as class marginal
(:func:`~paperlab.tsv.sinkhorn.sinkhorn_pseudo_labels`), keep the :math:`k` most confident,
class-balanced (:func:`~paperlab.tsv.sinkhorn.select_confident`), then retrain on exemplars
(one-hot labels) + selected samples (soft pseudo-labels), prototypes updated by EMA with soft labels.

Model selection: after every epoch the detector is scored on the labelled validation split and the
best epoch of each stage is kept (the official code picks the best epoch on the test split; we never
look at the test split here). Stage 2 starts from the selected stage-1 detector.

Batches of ``batch_size`` (128 in the paper) are processed in micro-batches with gradient
accumulation (same gradient, bounded memory); the EMA step uses the whole batch's embeddings after
the loss, as in the official implementation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.stats import auroc
from paperlab.tsv.prototypes import VMFPrototypes, soft_cross_entropy
from paperlab.tsv.sinkhorn import select_confident, sinkhorn_pseudo_labels
from paperlab.tsv.steering import EncodedSet, SteeringVector, suffix_embeddings

#: The paper's steering layer (0-based) for its 32-layer LLaMA-3.1-8B; scaled by depth elsewhere.
PAPER_LAYER, PAPER_DEPTH = 9, 32


def default_layer(n_layers: int) -> int:
    """The paper's layer 9 of 32 at the same relative depth: ``round(9 / 32 * L)`` (8 for L = 30)."""
    return max(0, min(n_layers - 2, round(PAPER_LAYER / PAPER_DEPTH * n_layers)))


@dataclass
class TSVHyper:
    """TSV hyper-parameters (defaults = the paper's / official code's)."""

    layer: int | None = None  # None -> default_layer(model depth)
    lam: float = 5.0
    tau: float = 0.1
    ema_decay: float = 0.99
    lr: float = 5e-3
    weight_decay: float = 0.01  # torch AdamW default, as in the official code
    batch_size: int = 128
    stage1_epochs: int = 20
    stage2_epochs: int = 20
    k: int = 128
    sinkhorn_eps: float = 0.05
    sinkhorn_iters: int = 3
    micro_batch: int = 16
    val_every: int = 1  # validate (and allow selection) every this many epochs, and at the last
    seed: int = 0


@dataclass
class StageLog:
    epochs: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_auroc: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_auroc: float = float("nan")


@dataclass
class TSVState:
    """A trained detector's parameters: the vector and the prototypes."""

    v: torch.Tensor
    mu: torch.Tensor

    def clone(self) -> TSVState:
        return TSVState(self.v.detach().clone(), self.mu.detach().clone())


@dataclass
class TSVResult:
    stage1: TSVState
    stage2: TSVState | None
    log1: StageLog
    log2: StageLog
    class_prior: list[float]
    selected: list[int]  # wild positions selected in stage 2
    pseudo_labels: list[list[float]]  # their soft pseudo-labels
    hyper: dict


@torch.no_grad()
def embed_cached(model: nn.Module, cache: EncodedSet, idx: Sequence[int], steer: SteeringVector | None,
                 micro_batch: int = 16) -> torch.Tensor:
    """Steered embeddings of cached inputs ``idx`` (no grad), batched by length."""
    order = sorted(range(len(idx)), key=lambda j: len(cache.ids[idx[j]]))
    out = torch.zeros(len(idx), cache.states[0].shape[-1])
    for s in range(0, len(order), micro_batch):
        js = order[s: s + micro_batch]
        out[js] = suffix_embeddings(model, cache, [idx[j] for j in js], steer).cpu()
    return out


def truth_scores(model: nn.Module, cache: EncodedSet, idx: Sequence[int], steer: SteeringVector,
                 protos: VMFPrototypes, micro_batch: int = 16) -> np.ndarray:
    """p(truthful | r) of cached inputs ``idx``."""
    r = embed_cached(model, cache, idx, steer, micro_batch)
    return protos.probs(r)[:, 1].numpy()


class TSVTrainer:
    """Trains one :class:`SteeringVector` + :class:`VMFPrototypes` pair on a prefix cache."""

    def __init__(self, model: nn.Module, cache: EncodedSet, hp: TSVHyper,
                 progress: Callable[[str], None] | None = None):
        self.model, self.cache, self.hp = model, cache, hp
        for p in model.parameters():
            p.requires_grad_(False)
        dim = cache.states[0].shape[-1]
        torch.manual_seed(hp.seed)
        self.steer = SteeringVector(dim, hp.lam).to(next(model.parameters()).device)
        self.protos = VMFPrototypes(dim, 2, tau=hp.tau, decay=hp.ema_decay, seed=hp.seed)
        self.progress = progress or (lambda _msg: None)
        self.rng = np.random.default_rng(hp.seed)

    # -------------------------------------------------------------- state
    def state(self) -> TSVState:
        return TSVState(self.steer.v.detach().cpu().clone(), self.protos.mu.detach().cpu().clone())

    def load(self, st: TSVState) -> None:
        with torch.no_grad():
            self.steer.v.copy_(st.v.to(self.steer.v))
        self.protos.mu = st.mu.clone()

    def scores(self, idx: Sequence[int]) -> np.ndarray:
        return truth_scores(self.model, self.cache, idx, self.steer, self.protos, self.hp.micro_batch)

    # -------------------------------------------------------------- one epoch
    def _epoch(self, opt: torch.optim.Optimizer, idx: list[int], y: torch.Tensor, hard_ema: bool) -> float:
        """One pass over ``idx`` with targets ``y`` [n, 2] in shuffled batches; returns the mean loss."""
        hp = self.hp
        perm = self.rng.permutation(len(idx))
        total = 0.0
        for s in range(0, len(perm), hp.batch_size):
            # micro-batches of similar length (less padding); the batch gradient is the same
            batch = np.array(sorted(perm[s: s + hp.batch_size], key=lambda j: len(self.cache.ids[idx[j]])))
            opt.zero_grad()
            reps = []
            for m in range(0, len(batch), hp.micro_batch):
                mb = batch[m: m + hp.micro_batch]
                r = suffix_embeddings(self.model, self.cache, [idx[j] for j in mb], self.steer)
                # L = -1/B sum_i sum_c y_ic log p(c | r_i), prototypes fixed within the step
                loss = soft_cross_entropy(self.protos.log_probs(r), y[mb].to(r)) * (len(mb) / len(batch))
                loss.backward()
                total += float(loss.detach()) * len(batch)
                reps.append(r.detach())
            opt.step()
            yb = y[batch]
            if hard_ema:  # stage 1: one-hot labels
                yb = F.one_hot(yb.argmax(1), 2).float()
            self.protos.ema_update(torch.cat(reps).cpu(), yb)
        return total / len(idx)

    def _stage(self, name: str, epochs: int, idx: list[int], y: torch.Tensor, hard_ema: bool,
               val_idx: Sequence[int], val_y: Sequence[int]) -> tuple[StageLog, TSVState]:
        opt = torch.optim.AdamW(self.steer.parameters(), lr=self.hp.lr, weight_decay=self.hp.weight_decay)
        log, best = StageLog(), self.state()
        for ep in range(epochs):
            loss = self._epoch(opt, idx, y, hard_ema)
            check = (ep + 1) % self.hp.val_every == 0 or ep + 1 == epochs
            auc = auroc(list(val_y), self.scores(val_idx)) if len(val_idx) and check else float("nan")
            log.epochs.append(ep + 1)
            log.loss.append(loss)
            log.val_auroc.append(auc)
            # model selection on the validation split only (first best epoch; last epoch if no val)
            if len(val_idx) == 0:
                better = ep + 1 == epochs
            else:
                better = check and (log.best_epoch < 0 or auc > log.best_val_auroc)
            if better:
                log.best_epoch, log.best_val_auroc, best = ep + 1, auc, self.state()
            self.progress(f"{name} epoch {ep + 1}/{epochs}: loss {loss:.4f}, val AUROC {auc:.3f}")
        return log, best

    # -------------------------------------------------------------- the algorithm
    def fit(self, exemplar_idx: Sequence[int], exemplar_y: Sequence[int], wild_idx: Sequence[int],
            val_idx: Sequence[int], val_y: Sequence[int], stage2: bool = True) -> TSVResult:
        """Stage 1 on the exemplars, then (``stage2``) stage 2 with OT pseudo-labels on the wild data."""
        result = self.fit_stage1(exemplar_idx, exemplar_y, val_idx, val_y)
        if stage2:
            self.fit_stage2(result, exemplar_idx, exemplar_y, wild_idx, val_idx, val_y)
        return result

    def fit_stage1(self, exemplar_idx: Sequence[int], exemplar_y: Sequence[int], val_idx: Sequence[int],
                   val_y: Sequence[int]) -> TSVResult:
        hp = self.hp
        y_ex = F.one_hot(torch.tensor(list(exemplar_y)), 2).float()
        log1, st1 = self._stage("stage 1", hp.stage1_epochs, list(exemplar_idx), y_ex, True, val_idx, val_y)
        return TSVResult(st1, None, log1, StageLog(), class_prior(exemplar_y).tolist(), [], [], asdict(hp))

    def fit_stage2(self, result: TSVResult, exemplar_idx: Sequence[int], exemplar_y: Sequence[int],
                   wild_idx: Sequence[int], val_idx: Sequence[int], val_y: Sequence[int]) -> TSVResult:
        """Stage 2 from ``result.stage1`` (filled into ``result``; a no-op without wild data or epochs)."""
        hp = self.hp
        if not len(wild_idx) or hp.stage2_epochs <= 0:
            return result
        ex_idx = list(exemplar_idx)
        y_ex = F.one_hot(torch.tensor(list(exemplar_y)), 2).float()
        prior = torch.tensor(result.class_prior)
        self.load(result.stage1)
        # pseudo-labels of the wild data from the stage-1 detector
        r_wild = embed_cached(self.model, self.cache, list(wild_idx), self.steer, hp.micro_batch)
        log_p = self.protos.log_probs(r_wild)
        q = sinkhorn_pseudo_labels(log_p, prior, eps=hp.sinkhorn_eps, n_iters=hp.sinkhorn_iters)
        sel = select_confident(log_p.exp(), q, hp.k, prior)
        idx = [wild_idx[int(j)] for j in sel] + ex_idx
        y = torch.cat([q[sel], y_ex])
        log2, st2 = self._stage("stage 2", hp.stage2_epochs, idx, y, False, val_idx, val_y)
        result.stage2, result.log2 = st2, log2
        result.selected = [int(j) for j in sel]
        result.pseudo_labels = q[sel].tolist()
        return result


def class_prior(exemplar_y: Sequence[int]) -> torch.Tensor:
    """The class prior w = [hallucinated, truthful] from the exemplars' label ratio (clipped away from 0, 1)."""
    frac_true = float(np.mean(list(exemplar_y)))
    prior = torch.tensor([1 - frac_true, frac_true]).clamp(1e-3, 1 - 1e-3)
    return prior / prior.sum()


# ------------------------------------------------------------------------------------------------
# Hyper-parameter selection on the validation split
# ------------------------------------------------------------------------------------------------


def residual_norm(cache: EncodedSet, idx: Sequence[int]) -> float:
    """Median per-token norm :math:`\\lVert h_l \\rVert` of the cached residual stream of inputs ``idx``
    (median: the first positions of a sequence carry outlier norms)."""
    return float(torch.cat([cache.states[i].float().norm(dim=-1) for i in idx]).median())


@dataclass
class GridRun:
    """Stage 1 of one (lambda, lr, seed) setting; ``epochs`` are selected inside it on validation."""

    lam: float  # absolute lambda
    lam_rel: float  # lambda / residual norm
    lr: float
    seed: int
    result: TSVResult

    @property
    def val_auroc(self) -> float:
        return self.result.log1.best_val_auroc


def stage1_grid(model: nn.Module, cache: EncodedSet, base: TSVHyper, lams: Sequence[float], lrs: Sequence[float],
                seeds: Sequence[int], exemplar_idx, exemplar_y, val_idx, val_y, norm: float,
                progress: Callable[[str], None] | None = None) -> list[GridRun]:
    """Stage 1 for every (lambda, lr) of the grid and every seed; each run keeps its best validation epoch."""
    runs = []
    for lam in lams:
        for lr in lrs:
            for seed in seeds:
                hp = clone_hyper(base, lam=float(lam), lr=float(lr), seed=int(seed))
                tr = TSVTrainer(model, cache, hp, progress=progress)
                runs.append(GridRun(float(lam), float(lam) / norm, float(lr), int(seed),
                                    tr.fit_stage1(exemplar_idx, exemplar_y, val_idx, val_y)))
    return runs


def select_setting(runs: Sequence[GridRun]) -> tuple[float, float]:
    """The (lambda, lr) with the highest validation AUROC averaged over seeds (first in grid order on a tie)."""
    means: dict[tuple[float, float], list[float]] = {}
    for r in runs:
        means.setdefault((r.lam, r.lr), []).append(r.val_auroc)
    return max(means, key=lambda k: np.nanmean(means[k]) if not all(np.isnan(means[k])) else -np.inf)


def clone_hyper(hp: TSVHyper, **kw) -> TSVHyper:
    out = copy.deepcopy(hp)
    for k, v in kw.items():
        setattr(out, k, v)
    return out
