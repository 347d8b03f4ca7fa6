"""``paperlab requant run``: Taylor vs. PQI, PQI's concentration, and ReQuant against magnitude- and
Fisher-selected dense-and-sparse quantization at equal bits, on WikiText-2.

The driver (:func:`run_experiment`) is a list of steps, run for each model of ``cfg.models``:

1. :func:`load_subject` — the model, its quantized layers, calibration sequences (WikiText-2 ``valid.txt``:
   the training split is not available offline) and evaluation tokens (``test.txt``). ``tiny`` is a small
   full-precision transformer trained here (:func:`train_tiny`, the shared trainer, character level);
   ``default`` is SmolLM2-135M dequantised from its Q4_1 GGUF; any ``hf:<path>`` causal LM works.
2. :func:`sensitivity` — quantize every target layer with the base method (``bits[0]``, groups of
   ``group_size``): the measured loss change per calibration sequence, the Taylor estimates, and one
   gradient scan of the path ``w -> w~`` on the grid ``t = k / scan_points`` that gives PQI for every
   ``N`` dividing ``scan_points`` and every rule, the per-weight PQI (concentration, jackknifed over
   folds of sequences) and the empirical Fisher (SqueezeLLM's selection). Cached in
   ``sensitivity_<model>.json``.
3. :func:`compare` — for each bit width: the dense base at the coarse groups (fewer bits), the dense base at
   the fine groups, and three dense-and-sparse models at the coarse groups whose sparse budget brings them
   to exactly the fine-group base's bits (:func:`~paperlab.requant.quantizers.equal_bits_sparse_ratio`):
   magnitude-selected, Fisher-selected, ReQuant (and, reported beside but not in the claims, ReQuant with
   its significant weights ranked by ``ablation_rank_key``: the paper's ranking key is unverified). Each model
   runs through the real
   :class:`~paperlab.requant.layers.SparseDenseLinear` layers; WikiText-2 perplexity per sliding window
   (the bootstrap units). One record per method in ``compare_<model>_<bits>.jsonl``: a killed run
   resumes at the next method.
4. :func:`~paperlab.requant.report.make_claims` and the report (:mod:`paperlab.requant.report`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from paperlab.core.errors import UserError
from paperlab.core.runs import Run, build_config

PAPER = ("Identifying Sensitive Weights via Post-quantization Integral (PQI; ReQuant), arXiv:2503.01901 (2025), "
         "https://arxiv.org/abs/2503.01901")
METHODS = ("base", "base_eq", "magnitude", "fisher", "requant")
#: a second ReQuant whose significant weights are ranked by ``cfg.ablation_rank_key`` (reported, not in the claims)
ABLATION = "requant_ablation"


class TinyLMConfig(BaseModel):
    """The full-precision small LM trained here (character-level WikiText-2: ``valid.txt`` trains it)."""

    d_model: int = Field(128, ge=16)
    n_layers: int = Field(4, ge=1)
    n_heads: int = Field(4, ge=1)
    d_ff: int = Field(384, ge=8)
    seq_len: int = Field(128, ge=16)
    steps: int = Field(600, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(50, ge=0)
    group_size: int = Field(128, ge=2)
    eq_group_size: int = Field(64, ge=1)
    eval_tokens: int = Field(32768, ge=256)
    eval_stride: int = Field(64, ge=1)


class ReQuantRunConfig(BaseModel):
    """Configuration of ``paperlab requant run`` (saved with every run)."""

    models: list[str] = Field(default_factory=lambda: ["tiny", "default"],
                              description="'tiny' (trained here) and/or model specs (default, hf:<path>, gguf:<file>)")
    blocks: list[int] | None = Field(None, description="decoder blocks quantized in transformers models (None: all)")
    bits: list[int] = Field(default_factory=lambda: [3, 2], description="first entry: the claims' bit width")
    base: str = "rtn"
    group_size: int = Field(192, ge=2, description="dense groups of the dense-and-sparse models")
    eq_group_size: int = Field(96, ge=1, description="groups of the dense base at equal bits")
    sparse_bits: int = 48
    # ReQuant
    outlier_share: float = Field(0.5, ge=0, le=1, description="share of the sparse budget for outliers")
    steps: int = Field(2, ge=1)
    temperature: float = Field(1.0, ge=0)
    requant_points: int = Field(4, ge=1)
    requant_rule: str = "midpoint"
    rank_key: str = Field("abs", description="ranking of significant weights: abs (|dF_i|), signed (dF_i), grad_dw "
                          "(path-mean |grad| x |dw|); see paperlab.requant.requant")
    ablation_rank_key: str | None = Field("signed", description="a second ReQuant ranked by this key, reported "
                                          "beside the first and left out of the claims (None: none)")
    max_layer_ratio: float = Field(0.1, gt=0, le=1)
    # sensitivity
    scan_points: int = Field(32, ge=1)
    scan_rule: str = "right"
    convergence_points: list[int] = Field(default_factory=lambda: [4, 8, 16, 32])
    calib_seqs: int = Field(16, ge=2)
    calib_len: int = Field(512, ge=8)
    folds: int = Field(4, ge=2)
    fractions: list[float] = Field(default_factory=lambda: [0.001, 0.01, 0.05])
    claim_fraction: float = 0.01
    converge_margin: float = Field(0.05, gt=0, description="PQI within this relative error of the measured dF")
    concentration_null: float = Field(0.05, gt=0, lt=1, description="top claim_fraction must hold more than this")
    # evaluation (transformers models; the tiny model has its own in `tiny`)
    eval_context: int = Field(512, ge=8)
    eval_stride: int = Field(256, ge=1)
    eval_tokens: int = Field(32768, ge=64)
    tiny: TinyLMConfig = Field(default_factory=TinyLMConfig)
    seed: int = 0
    n_boot: int = Field(2000, ge=100)
    threads: int = Field(2, ge=1)

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        from paperlab.core.models import parse_spec

        if not v:
            raise ValueError("give at least one model")
        if len(set(v)) != len(v):
            raise ValueError("models must be distinct")
        for m in v:
            if m != "tiny" and parse_spec(m).kind == "openai":
                raise ValueError(f"{m}: an OpenAI-compatible server exposes no gradients; use tiny, default, hf:<path>")
        return v

    @field_validator("bits")
    @classmethod
    def _bits(cls, v: list[int]) -> list[int]:
        if not v or any(not 1 <= b <= 8 for b in v) or len(set(v)) != len(v):
            raise ValueError("bits must be distinct integers in 1..8")
        return v

    @field_validator("base")
    @classmethod
    def _base(cls, v: str) -> str:
        if v not in ("rtn", "awq"):
            raise ValueError("base must be rtn or awq")
        return v

    @field_validator("scan_rule", "requant_rule")
    @classmethod
    def _rule(cls, v: str) -> str:
        from paperlab.requant.pqi import RULES

        if v not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}")
        return v

    @field_validator("rank_key", "ablation_rank_key")
    @classmethod
    def _rank(cls, v: str | None) -> str | None:
        if v is not None and v not in ("signed", "abs", "grad_dw"):
            raise ValueError("rank_key must be signed, abs or grad_dw")
        return v

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < f < 1 for f in v):
            raise ValueError("fractions must be in (0, 1)")
        return sorted(v)

    @model_validator(mode="after")
    def _consistent(self) -> ReQuantRunConfig:
        if any(n < 1 or self.scan_points % n for n in self.convergence_points):
            raise ValueError(f"every convergence N must divide scan_points={self.scan_points}")
        if self.scan_points not in self.convergence_points:
            self.convergence_points = sorted({*self.convergence_points, self.scan_points})
        if self.claim_fraction not in self.fractions:
            raise ValueError(f"claim_fraction {self.claim_fraction} must be one of the fractions")
        for g, ge, where in ((self.group_size, self.eq_group_size, ""), (self.tiny.group_size,
                             self.tiny.eq_group_size, "tiny.")):
            if ge >= g:
                raise ValueError(f"{where}eq_group_size ({ge}) must be smaller than {where}group_size ({g}): the "
                                 "sparse budget is the bits the finer groups cost")
        if self.eval_stride > self.eval_context or self.tiny.eval_stride > self.tiny.seq_len:
            raise ValueError("eval_stride must not exceed the context")
        if self.folds > self.calib_seqs:
            raise ValueError(f"folds ({self.folds}) must not exceed calib_seqs ({self.calib_seqs})")
        return self

    @classmethod
    def quick(cls, **overrides) -> ReQuantRunConfig:
        """Both models at 3 bits only; the default LM quantized on its last two decoder blocks; a 2-layer tiny LM
        trained 250 steps; N = 4..32 on 8 calibration sequences of 192 tokens; 8,192 evaluation tokens (characters) each."""
        base = dict(blocks=[-2, -1], bits=[3], calib_seqs=8, calib_len=192,
                    eval_context=256, eval_stride=256, eval_tokens=8192, n_boot=1000,
                    tiny=TinyLMConfig(n_layers=2, steps=250, eval_tokens=8192))
        base.update(overrides)
        return cls(**base)


# ----------------------------------------------------------------------------------------------
# Step 1: the model, its layers, its data


@dataclass
class Subject:
    """One model under study and its data."""

    key: str
    spec: str
    target: object                    # TargetModel
    calib: object                     # LongTensor [calib_seqs, calib_len]
    eval_ids: object                  # LongTensor [eval_tokens]
    group_size: int
    eq_group_size: int
    context: int
    stride: int
    unit: str                         # "token" | "character"
    describe: str
    eval_prefix: object = None        # lm.Prefix of the evaluation windows (blocks before the first target)
    calib_prefix: object = None       # lm.Prefix of the calibration sequences


def model_key(spec: str) -> str:
    if spec in ("tiny", "default"):
        return spec
    return spec.split(":", 1)[0] + "-" + hashlib.sha256(spec.encode()).hexdigest()[:8]


def train_tiny(cfg: ReQuantRunConfig, run: Run):
    """The small full-precision LM, trained once per run folder (the shared trainer resumes a killed run)."""
    import torch

    from paperlab.core.lm_data import lm_datasets
    from paperlab.core.trainer import TrainConfig, finished_training, train
    from paperlab.core.transformer import Transformer, TransformerConfig

    t = cfg.tiny
    train_data, val_data, tok = lm_datasets("wikitext2", "char")
    torch.manual_seed(cfg.seed)
    model = Transformer(TransformerConfig(vocab_size=tok.vocab_size, d_model=t.d_model, n_layers=t.n_layers,
                                          n_heads=t.n_heads, d_ff=t.d_ff, max_seq_len=t.seq_len))
    tc = TrainConfig(steps=t.steps, batch_size=t.batch_size, seq_len=t.seq_len, lr=t.lr,
                     warmup_steps=min(t.warmup_steps, t.steps - 1), eval_every=t.steps, eval_tokens=8192,
                     checkpoint_every=100, seed=cfg.seed, cpu=True)
    folder = run.path("models/tiny")
    hist = finished_training(model, tc, folder)
    if hist is None:
        hist = train(model, train_data, val_data, tc, folder, progress=True, desc="tiny LM")
    model.eval()
    return model, train_data, val_data, hist


def _tokens(tok, name: str, n_tokens: int):
    """The first ``n_tokens`` tokens of a packaged WikiText-2 split (no special tokens)."""
    import torch

    from paperlab.core.data import data_path

    text = data_path("wikitext2", name).read_text(encoding="utf-8")
    chars = 8 * n_tokens
    while True:
        ids = tok(text[:chars], add_special_tokens=False)["input_ids"]
        if len(ids) > n_tokens or chars >= len(text):
            break
        chars *= 2
    if len(ids) < n_tokens:
        raise UserError(f"WikiText-2 {name} has {len(ids)} tokens, fewer than the {n_tokens} asked for",
                        "ask for fewer tokens")
    return torch.tensor(ids[:n_tokens], dtype=torch.long)


def load_lm(cfg: ReQuantRunConfig, spec: str):
    """``(model, tokenizer, target)`` of a transformers LM: a bad spec, a folder that is no checkpoint or a block
    out of range is a :class:`UserError` here (called before the run folder is made)."""
    from paperlab.core.models import load_torch_model
    from paperlab.requant.lm import hf_target

    try:
        model, tok = load_torch_model(spec, device="cpu")
    except (ValueError, KeyError) as e:         # a folder transformers reads but cannot build a causal LM from
        raise UserError(f"cannot load {spec} as a causal LM: {str(e).splitlines()[0][:160]}",
                        "pass tiny, default, hf:<checkpoint folder> or gguf:<file>") from None
    return model, tok, hf_target(model, cfg.blocks)


def load_subject(cfg: ReQuantRunConfig, spec: str, run: Run, loaded: tuple | None = None) -> Subject:
    """The model of ``spec`` (``loaded``: its :func:`load_lm`, when already done) with its data."""
    from paperlab.requant.lm import tiny_target, windows

    if spec == "tiny":
        model, train_data, val_data, hist = train_tiny(cfg, run)
        t = cfg.tiny
        target = tiny_target(model)
        calib = windows(train_data.tokens, t.seq_len, cfg.calib_seqs)
        n_params = sum(p.numel() for p in model.parameters())
        return Subject("tiny", spec, target, calib, val_data.tokens[: t.eval_tokens], t.group_size, t.eq_group_size,
                       t.seq_len, t.eval_stride, "character",
                       f"small full-precision transformer trained here ({n_params / 1e6:.2f}M parameters, d={t.d_model}, "
                       f"{t.n_layers} layers, character level, {t.steps} steps on WikiText-2 valid.txt, final "
                       f"validation loss {hist.get('final_val_loss') or float('nan'):.3f} nats/char)")
    model, tok, target = loaded if loaded is not None else load_lm(cfg, spec)
    calib = windows(_tokens(tok, "valid.txt", cfg.calib_seqs * cfg.calib_len), cfg.calib_len, cfg.calib_seqs)
    ids = _tokens(tok, "test.txt", cfg.eval_tokens)
    n_params = sum(p.numel() for p in model.parameters())
    name = "SmolLM2-135M (dequantised from the Q4_1 GGUF)" if spec == "default" else spec
    from paperlab.requant.lm import window_prefix

    return Subject(model_key(spec), spec, target, calib, ids, cfg.group_size, cfg.eq_group_size, cfg.eval_context,
                   cfg.eval_stride, "token", f"{name}, {n_params / 1e6:.1f}M parameters",
                   window_prefix(target, ids, cfg.eval_context, cfg.eval_stride), target.prefix(list(calib)))


def make_quantizer(cfg: ReQuantRunConfig, s: Subject, bits: int, group_size: int, acts: dict | None):
    from paperlab.requant.quantizers import Quantizer

    return Quantizer(cfg.base, bits, group_size, act=acts or {})


def activations(cfg: ReQuantRunConfig, s: Subject) -> dict | None:
    """AWQ's activation statistics of every target layer on the calibration sequences (None for RTN)."""
    if cfg.base != "awq":
        return None
    import torch

    from paperlab.requant.quantizers import collect_activations

    def forward():
        with torch.no_grad():
            for i in range(s.calib.shape[0]):
                s.target.nll(s.calib[i: i + 1])

    return collect_activations(s.target.model, s.target.layers, forward, seed=cfg.seed)


# ----------------------------------------------------------------------------------------------
# Step 2: Taylor vs. measured vs. PQI, concentration, Fisher


def sensitivity(cfg: ReQuantRunConfig, s: Subject, run: Run, acts: dict | None) -> dict:
    """Measured dF, Taylor and PQI estimates per calibration sequence, PQI concentration (see module doc)."""
    import torch

    from paperlab.requant.pqi import grid_weights, jackknife_shares, path_scan, taylor_estimates, top_share
    from paperlab.requant.quantizers import equal_bits_sparse_ratio
    from paperlab.requant.requant import select_per_layer

    path = run.path(f"sensitivity_{s.key}.json")
    fisher_path = run.path(f"fisher_{s.key}.pt")
    if path.exists() and fisher_path.exists():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    bits = cfg.bits[0]
    quantizer = make_quantizer(cfg, s, bits, s.group_size, acts)
    w0 = s.target.weights()
    dw = {n: quantizer.quantize(n, w0[n]).dequantize() - w0[n] for n in w0}
    n_max = cfg.scan_points
    ts = [k / n_max for k in range(n_max + 1)]
    coefs = grid_weights(n_max, n_max, cfg.scan_rule)
    bar = _bar()
    with bar:
        task = bar.add_task(f"{s.key}: PQI scan ({n_max + 1} points)", total=n_max + 1)
        scan = path_scan(s.target, w0, dw, s.calib, ts, coefs.tolist(), n_folds=cfg.folds, fisher=True,
                         on_point=lambda k: bar.update(task, completed=k + 1), prefix=s.calib_prefix)
    actual = scan.seq_loss[-1] - scan.seq_loss[0]
    taylor = taylor_estimates(scan, s.calib.shape[1] - 1)
    estimates = {}
    for rule in ("left", "right", "trapezoid", "midpoint"):
        for n in cfg.convergence_points:
            try:
                estimates[f"{rule}/{n}"] = (grid_weights(n_max, n, rule) @ scan.seq_dot).tolist()
            except ValueError:          # midpoint needs 2N | scan_points
                pass
    elem = scan.pqi_elements(dw)
    from paperlab.requant.pqi import flat

    values = flat(elem)
    curve_x = np.unique(np.round(np.logspace(-4, 0, 41), 6)).tolist()
    every = sorted(set(cfg.fractions) | set(curve_x))       # one sort of all weights per ranking
    signed = dict(zip(every, top_share(values, every), strict=True))
    absolute = dict(zip(every, top_share(values, every, by_abs=True), strict=True))
    conc = {
        "fractions": cfg.fractions,
        "signed": [signed[f] for f in cfg.fractions],
        "abs": [absolute[f] for f in cfg.fractions],
        "jackknife_signed": jackknife_shares(scan, dw, cfg.fractions).tolist(),
        "jackknife_abs": jackknife_shares(scan, dw, cfg.fractions, by_abs=True).tolist(),
        "curve_x": curve_x,
        "curve_signed": [signed[f] for f in curve_x],
        "curve_abs": [absolute[f] for f in curve_x],
        "negative_share": float((values < 0).double().mean()),
        "sum_elements": float(values.double().sum()),
    }
    layer_mass = {n: float(elem[n].double().sum()) for n in elem}
    # SqueezeLLM's sensitive values: the top squared gradients of each matrix, at the equal-bits budget
    ratio = equal_bits_sparse_ratio(s.eq_group_size, s.group_size, cfg.sparse_bits)
    fisher_sel = select_per_layer(scan.fisher, ratio)
    torch.save({n: m.reshape(-1).nonzero().view(-1) for n, m in fisher_sel.items()}, fisher_path)
    out = {
        "model": s.key, "bits": bits, "group_size": s.group_size, "quantizer": quantizer.describe(),
        "n_weights": s.target.n_weights, "n_layers": len(w0), "calib_seqs": int(s.calib.shape[0]),
        "calib_len": int(s.calib.shape[1]), "loss_fp": scan.seq_loss[0].tolist(), "actual": actual.tolist(),
        "taylor": {k: v.tolist() for k, v in taylor.items()}, "estimates": estimates,
        "seq_dot": scan.seq_dot.tolist(), "seq_loss": scan.seq_loss.tolist(), "scan_points": n_max,
        "scan_rule": cfg.scan_rule, "concentration": conc, "layer_mass": layer_mass,
        "seconds_per_point": scan.seconds_per_point, "seconds": time.perf_counter() - t0,
        "tokens_per_point": int(s.calib.numel()),
    }
    path.write_text(json.dumps(out))
    return out


# ----------------------------------------------------------------------------------------------
# Step 3: perplexity at equal bits


def build_method(cfg: ReQuantRunConfig, s: Subject, method: str, bits: int, acts: dict | None, run: Run,
                 w0: dict) -> tuple[dict, dict]:
    """The dense-and-sparse layers of one method, and what to record about how they were chosen."""
    import torch

    from paperlab.requant.quantizers import equal_bits_sparse_ratio
    from paperlab.requant.requant import ReQuantConfig, dense_and_sparse, requant, select_per_layer

    ratio = equal_bits_sparse_ratio(s.eq_group_size, s.group_size, cfg.sparse_bits)
    if method == "base":
        q = make_quantizer(cfg, s, bits, s.group_size, acts)
        return {n: dense_and_sparse(n, w0[n], q) for n in w0}, {}
    if method == "base_eq":
        q = make_quantizer(cfg, s, bits, s.eq_group_size, acts)
        return {n: dense_and_sparse(n, w0[n], q) for n in w0}, {}
    q = make_quantizer(cfg, s, bits, s.group_size, acts)
    if method == "magnitude":
        masks = select_per_layer({n: w.abs() for n, w in w0.items()}, ratio)
        return {n: dense_and_sparse(n, w0[n], q, masks[n], "magnitude") for n in w0}, {"ratio": ratio}
    if method == "fisher":
        idx = torch.load(run.path(f"fisher_{s.key}.pt"))
        layers = {}
        for n in w0:
            m = torch.zeros(w0[n].numel(), dtype=torch.bool)
            m[idx[n]] = True
            layers[n] = dense_and_sparse(n, w0[n], q, m.view(w0[n].shape), "fisher")
        return layers, {"ratio": ratio}
    rq = ReQuantConfig(r_outlier=ratio * cfg.outlier_share, r_significant=ratio * (1 - cfg.outlier_share),
                       steps=cfg.steps, temperature=cfg.temperature, n_points=cfg.requant_points,
                       rule=cfg.requant_rule, rank_key=cfg.ablation_rank_key if method == ABLATION else cfg.rank_key,
                       max_layer_ratio=cfg.max_layer_ratio)
    res = requant(s.target, q, s.calib, rq, w0=w0, prefix=s.calib_prefix,
                  state_path=run.path(f"state_{method}_{s.key}_{bits}.pt"))
    alloc = res.allocation
    ratios = {n: alloc[n] / w0[n].numel() for n in alloc}
    return res.layers, {"ratio": ratio, "allocation": alloc, "layer_ratio": ratios, "density": res.density,
                        "steps": res.steps}


def evaluate_layers(s: Subject, layers: dict | None) -> dict:
    """WikiText-2 window NLLs of the model with ``layers`` swapped in (the real dense-and-sparse layers), and
    the calibration loss (computed with the same weights ``D + S`` set into the original layers: equal up to
    float rounding, tests/requant/test_layers.py, and cheaper)."""
    from paperlab.requant.layers import convert, restore
    from paperlab.requant.lm import perplexity, window_nll
    from paperlab.requant.pqi import sequence_losses

    originals = convert(s.target.model, layers) if layers else {}
    try:
        sums, counts = window_nll(s.target, s.eval_ids, s.context, s.stride, prefix=s.eval_prefix)
    finally:
        restore(s.target.model, originals)
    w0 = s.target.weights()
    weights = {n: ds.weight() for n, ds in layers.items()} if layers else None
    calib_loss = float(np.mean(sequence_losses(s.target, s.calib, weights, restore=w0, prefix=s.calib_prefix)))
    return {"ppl": perplexity(sums, counts), "window_nll": sums.tolist(), "window_tokens": counts.tolist(),
            "calib_loss": calib_loss}


def full_precision(s: Subject, run: Run) -> dict:
    path = run.path(f"fp_{s.key}.json")
    if path.exists():
        return json.loads(path.read_text())
    out = evaluate_layers(s, None)
    path.write_text(json.dumps(out))
    return out


def compare(cfg: ReQuantRunConfig, s: Subject, bits: int, run: Run, acts: dict | None) -> dict[str, dict]:
    """Every method of :data:`METHODS` (and the :data:`ABLATION`) at ``bits``, one record each (resumable)."""
    from paperlab.requant.requant import sum_accounts

    stream = f"compare_{s.key}_{bits}"
    done = {r["method"]: r for r in run.read(stream)}
    w0 = s.target.weights()
    methods = methods_of(cfg)
    for method in methods:
        if method in done:
            continue
        t0 = time.perf_counter()
        layers, info = build_method(cfg, s, method, bits, acts, run, w0)
        s.target.set_weights(w0)
        acct = sum_accounts(ds.account() for ds in layers.values())
        rec = {"method": method, "bits": bits, **evaluate_layers(s, layers), "account": acct.as_dict(),
               "bits_per_weight": acct.bits_per_weight, "kinds": _kinds(layers), "info": info,
               "seconds": time.perf_counter() - t0}
        run.append(stream, rec)
        done[method] = rec
        print(f"  {s.key} {bits}-bit {method:16s} ppl {rec['ppl']:.3f} at {rec['bits_per_weight']:.4f} bits/weight")
    return {m: done[m] for m in methods}


def methods_of(cfg: ReQuantRunConfig) -> tuple[str, ...]:
    return METHODS + ((ABLATION,) if cfg.ablation_rank_key and cfg.ablation_rank_key != cfg.rank_key else ())


def _kinds(layers: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for ds in layers.values():
        for k, v in ds.kinds.items():
            out[k] = out.get(k, 0) + v
    return out


def _bar():
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeRemainingColumn(), transient=True)


# ----------------------------------------------------------------------------------------------
# The driver


def run_experiment(cfg: ReQuantRunConfig, out: Path | None = None) -> Path:
    """Every step of the module doc for each model, then claims and report (torch threads restored after)."""
    from paperlab.core.threads import torch_threads

    with torch_threads(cfg.threads):
        return _run_experiment(cfg, out)


def _run_experiment(cfg: ReQuantRunConfig, out: Path | None) -> Path:
    from paperlab.requant.report import make_claims, plots, scale_note, sections

    t_start = time.perf_counter()
    # the transformers models load first: a bad spec or block is a one-line error before any run folder exists
    loaded = {spec: load_lm(cfg, spec) for spec in cfg.models if spec != "tiny"}
    run = Run("requant", out, cfg)
    results: dict = {"models": {}}
    for spec in cfg.models:
        t0 = time.perf_counter()
        s = load_subject(cfg, spec, run, loaded.pop(spec, None))
        acts = activations(cfg, s)
        sens = sensitivity(cfg, s, run, acts)
        fp = full_precision(s, run)
        comp = {bits: compare(cfg, s, bits, run, acts) for bits in cfg.bits}
        results["models"][s.key] = {"spec": spec, "describe": s.describe, "unit": s.unit, "context": s.context,
                                    "stride": s.stride, "eval_tokens": int(s.eval_ids.numel()),
                                    "layers": list(s.target.layers), "n_weights": s.target.n_weights,
                                    "group_size": s.group_size, "eq_group_size": s.eq_group_size,
                                    "sensitivity": sens, "fp": fp, "compare": comp,
                                    "seconds": time.perf_counter() - t0}
    results["seconds"] = time.perf_counter() - t_start
    claims = make_claims(cfg, results)
    plots(run, results)
    run.finish(claims, results=_slim(results), sections=sections(cfg, results, claims), scale_note=scale_note(cfg),
               title="PQI / ReQuant", paper=PAPER)
    return run.dir


def _slim(results: dict) -> dict:
    """results.json without the per-sequence and per-window arrays (they stay in the run's own files)."""
    out = {"seconds": results["seconds"], "models": {}}
    for key, r in results["models"].items():
        sens = {k: v for k, v in r["sensitivity"].items() if k not in ("seq_dot", "seq_loss")}
        comp = {str(b): {m: {k: v for k, v in rec.items() if k not in ("window_nll", "window_tokens")}
                         for m, rec in c.items()} for b, c in r["compare"].items()}
        out["models"][key] = {**{k: v for k, v in r.items() if k not in ("sensitivity", "compare", "fp")},
                              "fp_ppl": r["fp"]["ppl"], "fp_calib_loss": r["fp"]["calib_loss"],
                              "sensitivity": sens, "compare": comp}
    return out


def default_config(quick: bool = False, **overrides) -> ReQuantRunConfig:
    """The configuration ``reproduce(quick, out, **overrides)`` runs (``paperlab reproduce --skip-done`` hashes it)."""
    return build_config(ReQuantRunConfig, "requant", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)
