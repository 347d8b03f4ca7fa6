"""ReQuant: dense low-bit + sparse outliers + sparse significant weights, chosen by PQI.

A matrix is stored as ``W = D + S``: ``D`` the dequantized low-bit dense part, ``S`` a sparse matrix of
full-precision corrections ``w_i - D_i`` at the chosen positions (so ``W_i = w_i`` there). ReQuant
(paper Sec. 4, Algorithms 1-2 as summarised in our fact sheet) fills ``S`` in two stages, from a total
sparse budget ``K = r N`` (``N`` weights) split into ``K_o`` outliers and ``K_s`` significant weights:

1. **Pre-quantize** every layer with the base method: ``w~ = Q(w)``.
2. **Self-adaptive outlier selection** (Algorithm 1). PQI of the path ``w -> w~`` gives each layer a mass
   ``P_l = sum_{i in l} |dF_i|`` and a density ``rho_l = P_l / n_l``. Layer ``l`` gets

       k_l = K_o * n_l rho_l^T / sum_j n_j rho_j^T                                     (allocation)

   outliers (capped at ``max_layer_ratio * n_l``, the excess re-allocated), i.e. the seed pseudo-code's
   ``pqi^T / sum pqi^T`` applied to the per-weight density. ``T = 0`` gives every layer the same ratio
   ``K_o / N``; ``T = 1`` gives counts proportional to the layer's PQI mass; ``T > 1`` sharpens. (We did
   not use the softmax form: it depends on the units of PQI, this one does not.)
3. **Outlier removal** (SqueezeLLM's dense-and-sparse): the ``k_l`` largest ``|w|`` of the layer go to
   ``S`` and the dense part is **re-quantized** without them, on the narrower ranges they leave.
4. **Step-wise significant-weight detach** (Algorithm 2): ``steps`` times, recompute the PQI of the path
   from ``w`` to the *current* ``D + S`` and move the ``K_s / steps`` weights with the largest ``dF_i``
   (all layers together) into ``S``. Ranking key (unverified in the paper as we could read it):
   ``rank_key="abs"`` (default) ranks by ``|dF_i|`` — it already contains ``dw_i``, so it is not multiplied by
   ``|dw|`` again, and it is non-negative as the paper's Table 5 ranking must be (its top shares stay below
   100%, impossible with signed values when, as at our scale, half the ``dF_i`` are negative);
   ``"signed"`` ranks by ``dF_i``, the loss increase each error is estimated to cause (greedy on the
   calibration loss, hence prone to fit the calibration set); ``"grad_dw"`` by the seed's
   ``mean|grad| * |dw|``. Restored weights have ``dw_i = 0`` and so PQI 0: they are never chosen twice.

Baselines at the same budget (:func:`select_per_layer`): the top ``r`` of each matrix by ``|w|``
(magnitude) or by the squared gradient ``F_ii`` (Fisher, SqueezeLLM's sensitive values), removed and
the dense part re-quantized, exactly as step 3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from paperlab.requant.lm import TargetModel
from paperlab.requant.pqi import path_scan, quadrature
from paperlab.requant.quantizers import BitAccount, QuantizedTensor, Quantizer, sum_accounts

RANK_KEYS = ("signed", "abs", "grad_dw")


@dataclass
class DenseSparse:
    """``W = D + S`` of one matrix: ``q`` (the low-bit dense part) and the sparse corrections
    ``value = w - D`` at the flat positions ``index`` (``row * in + col``, sorted)."""

    q: QuantizedTensor
    index: torch.Tensor                        # int64 [k]
    value: torch.Tensor                        # fp16 (or fp32) [k]
    kinds: dict[str, int] = field(default_factory=dict)   # entries per kind (outlier / significant / ...)

    @property
    def sparse_dtype(self) -> str:
        return str(self.value.dtype).removeprefix("torch.")

    def dense(self) -> torch.Tensor:
        return self.q.dequantize()

    def weight(self) -> torch.Tensor:
        """``D + S`` in float32."""
        w = self.dense().reshape(-1)
        w[self.index] += self.value.float()
        return w.view(self.q.shape)

    def mask(self) -> torch.Tensor:
        m = torch.zeros(self.q.shape[0] * self.q.shape[1], dtype=torch.bool)
        m[self.index] = True
        return m.view(self.q.shape)

    def account(self) -> BitAccount:
        return self.q.account(int(self.index.numel()), self.sparse_dtype)


def dense_and_sparse(name: str, w: torch.Tensor, quantizer: Quantizer, mask: torch.Tensor | None = None,
                     kind: str = "outlier", sparse_dtype: torch.dtype = torch.float16) -> DenseSparse:
    """Remove the weights in ``mask`` (kept exact in ``S``), quantize the rest (they leave its ranges)."""
    w = w.detach().float()
    q = quantizer.quantize(name, w, exclude=mask)
    if mask is None or not bool(mask.any()):
        return DenseSparse(q, torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=sparse_dtype), {})
    index = mask.reshape(-1).nonzero().view(-1)
    value = (w.reshape(-1)[index] - q.dequantize().reshape(-1)[index]).to(sparse_dtype)
    return DenseSparse(q, index, value, {kind: int(index.numel())})


def add_sparse(ds: DenseSparse, w: torch.Tensor, index: torch.Tensor, kind: str) -> DenseSparse:
    """Keep the weights at the flat positions ``index`` exact too, without touching ``D``."""
    if index.numel() == 0:
        return ds
    new = torch.unique(torch.cat([ds.index, index]))
    value = (w.detach().float().reshape(-1)[new] - ds.dense().reshape(-1)[new]).to(ds.value.dtype)
    kinds = dict(ds.kinds)
    kinds[kind] = kinds.get(kind, 0) + int(new.numel() - ds.index.numel())
    return DenseSparse(ds.q, new, value, kinds)


def top_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of ``scores``."""
    m = torch.zeros(scores.numel(), dtype=torch.bool)
    if k > 0:
        m[torch.topk(scores.reshape(-1).float(), min(k, scores.numel())).indices] = True
    return m.view(scores.shape)


def per_layer_budget(sizes: dict[str, int], ratio: float) -> dict[str, int]:
    """``round(ratio * n_l)`` sparse entries per matrix (the baselines' budget, and ReQuant's total)."""
    return {n: int(round(ratio * s)) for n, s in sizes.items()}


def select_per_layer(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """The top ``ratio`` of every matrix by its own score (``|w|``: magnitude; ``F_ii``: Fisher)."""
    budget = per_layer_budget({n: s.numel() for n, s in scores.items()}, ratio)
    return {n: top_mask(s, budget[n]) for n, s in scores.items()}


def allocate(density: dict[str, float], sizes: dict[str, int], total: int, temperature: float,
             max_layer_ratio: float = 0.1) -> dict[str, int]:
    """Per-layer outlier counts (Eq. allocation): proportional to ``n_l rho_l^T``, at most
    ``max_layer_ratio * n_l`` each (excess re-allocated), integers summing to ``total``."""
    names = list(sizes)
    n = np.array([sizes[k] for k in names], dtype=float)
    rho = np.array([max(density[k], 0.0) for k in names], dtype=float)
    if temperature == 0 or not np.any(rho > 0):
        w = n.copy()
    else:
        w = n * np.where(rho > 0, rho / rho[rho > 0].max(), 0.0) ** temperature
    cap = np.floor(max_layer_ratio * n)
    total = int(min(total, cap.sum()))
    k = np.zeros(len(names))
    active = w > 0
    if not active.any():
        active[:] = True
        w = n.copy()
    remaining = float(total)
    while active.any() and remaining > 0:
        x = remaining * w[active] / w[active].sum()
        idx = np.flatnonzero(active)
        over = x > cap[idx] - k[idx]
        if not over.any():
            k[idx] += x
            break
        for i in idx[over]:
            remaining -= cap[i] - k[i]
            k[i] = cap[i]
            active[i] = False
    base = np.floor(k + 1e-9)
    short = total - int(base.sum())
    frac = np.where(base < cap, k - base, -1.0)
    for i in np.argsort(-frac)[:max(short, 0)]:
        base[i] += 1
    return {name: int(v) for name, v in zip(names, base, strict=True)}


@dataclass
class ReQuantConfig:
    """Budgets are fractions of all quantized weights. ``steps`` significant-weight steps of
    ``r_significant / steps`` each (the paper's ``beta``); PQI with ``n_points`` of ``rule``."""

    r_outlier: float = 0.0025
    r_significant: float = 0.0025
    steps: int = 2
    temperature: float = 1.0
    n_points: int = 4
    rule: str = "midpoint"
    rank_key: str = "abs"
    max_layer_ratio: float = 0.1


@dataclass
class ReQuantResult:
    layers: dict[str, DenseSparse]
    allocation: dict[str, int]
    density: dict[str, float]
    steps: list[dict]               # per detach step: estimated dF before it, entries added

    def account(self) -> BitAccount:
        return sum_accounts(ds.account() for ds in self.layers.values())


def current_weights(layers: dict[str, DenseSparse]) -> dict[str, torch.Tensor]:
    return {n: ds.weight() for n, ds in layers.items()}


def _state_key(cfg: ReQuantConfig, quantizer: Quantizer, seqs: torch.Tensor, w0: dict[str, torch.Tensor],
               total: int) -> str:
    """What a saved ReQuant state depends on: the settings, the base quantizer, the calibration tokens, the
    budget and the weights (their shapes and a checksum)."""
    import hashlib
    import json
    from dataclasses import asdict

    h = hashlib.sha256(json.dumps([asdict(cfg), quantizer.describe(), total,
                                   {n: [list(w.shape), float(w.double().sum()), float(w.double().abs().sum())]
                                    for n, w in w0.items()}], sort_keys=True).encode())
    h.update(seqs.cpu().numpy().tobytes())
    return h.hexdigest()


def _load_state(path, key: str) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        state = torch.load(path, weights_only=True)
    except Exception:           # a file cut short by a kill: start over
        return {}
    return state if state.get("key") == key else {}


def _save_state(path, state: dict) -> None:
    if path is not None:
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)       # atomic: a kill never leaves half a state


def requant(target: TargetModel, quantizer: Quantizer, seqs: torch.Tensor, cfg: ReQuantConfig,
            w0: dict[str, torch.Tensor] | None = None, total: int | None = None,
            sparse_dtype: torch.dtype = torch.float16, log: Callable[[str], None] | None = None,
            prefix=True, state_path=None) -> ReQuantResult:
    """Run ReQuant on the target layers (steps 1-4 above); the model's weights are left at ``w0``.

    ``total``: the whole sparse budget in entries (default ``sum_l round((r_o + r_s) n_l)``, the
    baselines' budget at ratio ``r_o + r_s``), split between outliers and significant weights in the
    ratio ``r_o : r_s``. ``prefix``: a :class:`~paperlab.requant.lm.Prefix` of ``seqs`` to reuse (True:
    compute one). ``state_path``: a file where the outcome of every PQI scan (the allocation, each step's
    chosen weights) is saved as it is made; a killed call resumes from it (a state made under other settings,
    data or weights is ignored and overwritten)."""
    if cfg.rank_key not in RANK_KEYS:
        raise ValueError(f"unknown rank_key {cfg.rank_key!r}; use one of {RANK_KEYS}")
    w0 = w0 if w0 is not None else target.weights()
    sizes = {n: w.numel() for n, w in w0.items()}
    r = cfg.r_outlier + cfg.r_significant
    if total is None:
        total = sum(per_layer_budget(sizes, r).values())
    key_of_state = _state_key(cfg, quantizer, seqs, w0, total) if state_path is not None else ""
    state = _load_state(state_path, key_of_state) or {"key": key_of_state, "steps": []}
    k_out = int(round(total * cfg.r_outlier / r)) if r > 0 else 0
    ts, cs = quadrature(cfg.n_points, cfg.rule)
    if prefix is True and len(state["steps"]) < cfg.steps:
        prefix = target.prefix(list(seqs))

    def elements(current: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], float, dict]:
        dw = {n: current[n] - w0[n] for n in w0}
        scan = path_scan(target, w0, dw, seqs, ts, cs, fisher=False, prefix=prefix)
        if cfg.rank_key == "grad_dw":
            key = {n: scan.elem_abs[n] * dw[n].abs() for n in dw}
        else:
            key = scan.pqi_elements(dw)
        return key, float(scan.estimate().mean()), {"seconds_per_point": scan.seconds_per_point}

    # 1-2: pre-quantize, PQI per layer, allocation
    if "alloc" in state:
        alloc, density, est = state["alloc"], state["density"], state["pqi_pre"]
    else:
        pre = {n: quantizer.quantize(n, w0[n]).dequantize() for n in w0}
        key, est, _ = elements(pre)
        density = {n: float(key[n].abs().sum()) / sizes[n] for n in w0}
        alloc = allocate(density, sizes, k_out, cfg.temperature, cfg.max_layer_ratio)
        state.update(alloc=alloc, density=density, pqi_pre=est)
        _save_state(state_path, state)
    k_sig = total - sum(alloc.values())          # outliers the per-layer caps refused go to significant weights
    if log:
        log(f"ReQuant: pre-quantized PQI dF = {est:.4g}; {sum(alloc.values())} outliers over {len(sizes)} layers, "
            f"{k_sig} significant weights in {cfg.steps} steps")
    # 3: outliers by magnitude, dense part re-quantized without them
    layers = {n: dense_and_sparse(n, w0[n], quantizer, top_mask(w0[n].abs(), alloc[n]), "outlier", sparse_dtype)
              for n in w0}
    # 4: step-wise significant-weight detach
    steps = []
    done = 0
    for step in range(cfg.steps if k_sig > 0 else 0):
        k = (k_sig - done) // (cfg.steps - step)
        if step < len(state["steps"]):                  # done before a kill: redo its choice without the scan
            saved = state["steps"][step]
            for n in layers:
                layers[n] = add_sparse(layers[n], w0[n], saved["chosen"][n], "significant")
            done += k
            steps.append(saved["record"])
            continue
        key, est, info = elements(current_weights(layers))
        scores = key if cfg.rank_key != "abs" else {n: v.abs() for n, v in key.items()}
        for n in layers:                                # never pick an entry already kept exact
            scores[n] = scores[n].masked_fill(layers[n].mask(), float("-inf"))
        flat_scores = torch.cat([scores[n].reshape(-1) for n in layers])
        top = torch.topk(flat_scores, k).indices
        offsets = np.cumsum([0] + [sizes[n] for n in layers])
        added, chosen = {}, {}
        for i, n in enumerate(layers):
            sel = top[(top >= offsets[i]) & (top < offsets[i + 1])] - int(offsets[i])
            layers[n] = add_sparse(layers[n], w0[n], sel, "significant")
            added[n], chosen[n] = int(sel.numel()), sel.clone()
        done += k
        steps.append({"step": step + 1, "pqi_before": est, "added": k, "per_layer": added, **info})
        state["steps"].append({"chosen": chosen, "record": steps[-1]})
        _save_state(state_path, state)
        if log:
            log(f"ReQuant detach step {step + 1}: PQI dF before = {est:.4g}, restored {k}")
    target.set_weights(w0)
    return ReQuantResult(layers, alloc, density, steps)
