"""``paperlab storm run``: Linear vs. Mamba projector under STORM's token reductions, on procedural videos.

The driver (:func:`run_experiment`) is a list of steps:

1. :func:`make_videos` -- train and held-out test clips from :mod:`paperlab.core.video` with questions that need
   temporal order (direction at first, count, which colour first, X before Y);
2. :func:`encode` -- each frozen frame encoder's tokens, computed once per clip and cached in the run folder;
3. :func:`train_all` -- for every encoder x projector (Linear = VILA's, Mamba = STORM's) x training-time pooling
   (none, temporal k, spatial p x p), the same data, seed and steps: one model, saved in ``models/``
   (a killed run resumes from the last checkpoint; finished models are reused);
4. :func:`evaluate_all` -- each model on the held-out questions at its budgets: 1x (no pooling), k x (temporal
   pooling, Eq. 6), k*s x (pooling + test-time sampling, Eq. 8, no retraining) and p^2 x (spatial pooling);
5. :func:`scan_check` -- the parallel selective scan against the sequential recurrence (largest difference on
   random inputs) and their time ratio at T = ``bench_length``;
6. :func:`~paperlab.storm.report.make_claims` and :func:`~paperlab.storm.report.write_report`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from paperlab.core.runs import Run, build_config

PAPER = ("STORM: Token-Efficient Long Video Understanding for Multimodal LLMs, arXiv:2503.04130, "
         "https://arxiv.org/abs/2503.04130")
ENCODERS = ("random", "efficientnet_lite0")
POOLS = ("none", "temporal", "spatial")


class StormRunConfig(BaseModel):
    """Configuration of ``paperlab storm run`` (saved with every run)."""

    n_frames: int = Field(16, ge=4, le=512, description="frames per clip")
    size: int = Field(16, ge=16, le=128, description="frame size in pixels (a multiple of 8; tokens per frame: "
                      "(size / 8)^2)")
    min_objects: int = Field(1, ge=1, le=6)
    max_objects: int = Field(3, ge=1, le=6)
    train_videos: int = Field(6000, ge=8)
    test_videos: int = Field(1000, ge=8)
    seed: int = 0
    encoders: list[str] = Field(default_factory=lambda: ["random", "efficientnet_lite0"],
                                description="frozen frame encoders (random | efficientnet_lite0 | hf:<path>); "
                                "the first one decides the claims")
    d_model: int = Field(32, ge=8, description="projector / Mamba / answer-model width")
    mamba_layers: int = Field(2, ge=1, le=12, description="Mamba layers L of the temporal encoder")
    bidirectional: bool = True
    answer_layers: int = Field(2, ge=1, le=12)
    answer_lm: str = Field("", description="hf:<path> of a transformers causal LM as the answer model (visual "
                           "prefix tokens), instead of the small decoder trained from scratch")
    temporal_pool: int = Field(4, ge=2, description="k of Eq. 6 (paper: 4)")
    spatial_pool: int = Field(2, ge=2, description="p: p x p spatial average (paper: 2x2, 4x fewer tokens)")
    samples: list[int] = Field(default_factory=lambda: [2, 4], description="test-time sampling rates s (paper: 2)")
    steps: int = Field(1500, ge=1, description="training steps per model")
    batch_videos: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    train_seeds: list[int] = Field(default_factory=lambda: [0, 1], description="training seeds per variant")
    scan: str = Field("auto", pattern="^(auto|parallel|sequential|cuda)$", description="selective-scan backend")
    scan_check_length: int = Field(257, ge=2)
    scan_tolerance: float = Field(1e-9, gt=0, description="largest accepted |parallel - sequential| (float64)")
    bench_length: int = Field(1024, ge=2)
    n_boot: int = Field(2000, ge=200)
    max_feat_dim: int = Field(128, ge=8, description="wider encoder tokens are PCA-reduced to this many dims")
    threads: int = Field(2, ge=1)

    @field_validator("encoders")
    @classmethod
    def _encoders(cls, v: list[str]) -> list[str]:
        from paperlab.storm.encoders import is_encoder_spec

        bad = [e for e in v if not is_encoder_spec(e)]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"give distinct encoders from {', '.join(ENCODERS)} or hf:<path>")
        return v

    @field_validator("answer_lm")
    @classmethod
    def _answer_lm(cls, v: str) -> str:
        if v and not (v.startswith("hf:") and Path(v[3:]).expanduser().is_dir()):
            raise ValueError("must be hf:<folder of a transformers causal LM>")
        return v

    @field_validator("samples", "train_seeds")
    @classmethod
    def _nonempty(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError("give a non-empty list of distinct values")
        return v

    @model_validator(mode="after")
    def _shapes(self) -> StormRunConfig:
        if self.size % 8:
            raise ValueError("size must be a multiple of 8 (the random encoder's stride)")
        if self.min_objects > self.max_objects:
            raise ValueError("min_objects exceeds max_objects")
        if self.min_objects == self.max_objects:
            raise ValueError("min_objects must be below max_objects (the count question needs choices)")
        if any(e in ENCODERS for e in self.encoders) and (self.size // 8) % self.spatial_pool:
            raise ValueError(f"spatial_pool {self.spatial_pool} must divide the token grid {self.size // 8}")
        if self.n_frames % self.temporal_pool:
            raise ValueError(f"temporal_pool {self.temporal_pool} must divide n_frames {self.n_frames}")
        if min(self.samples) < 2 or max(self.samples) > self.n_frames // self.temporal_pool:
            raise ValueError(f"each test-time sampling rate must be in 2..{self.n_frames // self.temporal_pool} "
                             "(the pooled frames)")
        if self.d_model % 8:
            raise ValueError("d_model must be a multiple of 8")
        return self

    @classmethod
    def quick(cls, **overrides) -> StormRunConfig:
        """Quick tier: the random conv encoder only (EfficientNet-Lite0 joins in the default tier), two training
        seeds (one seed's accuracies moved by up to 0.13 between runs that differed only in torch's thread count),
        3000 training and 400 test clips, width 32, one Mamba layer, 600 steps per model (12 models)."""
        return cls(**({"train_videos": 3000, "test_videos": 400, "encoders": ["random"], "mamba_layers": 1,
                       "steps": 600, "train_seeds": [0, 1], "n_boot": 1000} | overrides))


def default_config(quick: bool = False, **overrides) -> StormRunConfig:
    return build_config(StormRunConfig, "storm", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)


@dataclass(frozen=True)
class Budget:
    """A token budget: the model trained with ``pool`` and evaluated with test-time sampling ``sample``."""

    pool: str
    sample: int
    reduction: int

    @property
    def key(self) -> str:
        return f"{self.pool}_s{self.sample}"

    @property
    def label(self) -> str:
        what = {"none": "full", "temporal": "temporal pool", "spatial": "spatial pool"}[self.pool]
        return f"{self.reduction}x ({what}{' + sampling s=' + str(self.sample) if self.sample > 1 else ''})"


def budgets(cfg: StormRunConfig) -> list[Budget]:
    k, p = cfg.temporal_pool, cfg.spatial_pool
    return ([Budget("none", 1, 1), Budget("temporal", 1, k)] + [Budget("temporal", s, k * s) for s in cfg.samples]
            + [Budget("spatial", 1, p * p)])


# ---------------------------------------------------------------------------------------------- steps


def video_config(cfg: StormRunConfig):
    from paperlab.core.video import VideoConfig

    return VideoConfig(n_frames=cfg.n_frames, size=cfg.size, min_objects=cfg.min_objects,
                       max_objects=cfg.max_objects)


def make_videos(cfg: StormRunConfig) -> tuple[list, list]:
    """Train clips from seed ``2 * seed``, test clips from ``2 * seed + 1`` (disjoint)."""
    from paperlab.core.video import video_dataset

    vc = video_config(cfg)
    return video_dataset(cfg.train_videos, vc, 2 * cfg.seed), video_dataset(cfg.test_videos, vc, 2 * cfg.seed + 1)


def encode(cfg: StormRunConfig, encoder: str, videos: list, split: str, run: Run | None = None,
           pca: dict | None = None):
    """The frozen encoder's tokens ``(n, T, P, C)`` of ``videos`` (cached as ``features/<encoder>_<split>.pt``)
    and the PCA applied to them (None for narrow encoders).

    Encoders wider than ``max_feat_dim`` (EfficientNet-Lite0: 1,280 channels) are reduced by a fixed PCA fitted
    on the first training clips' tokens (saved as ``features/<encoder>_pca.pt``, applied to every split and by
    ``paperlab storm answer``) -- our choice, to keep the cached tokens small; the trainable Linear projector
    follows it."""
    import torch

    from paperlab.core.video import encode_frames
    from paperlab.storm.encoders import make_encoder

    path = run.path(f"features/{feature_name(encoder)}_{split}.pt") if run is not None else None
    if path is not None and path.exists():
        return torch.load(path, map_location="cpu"), load_pca(run, encoder)
    if path is not None:
        path.parent.mkdir(exist_ok=True)
    enc = make_encoder(encoder, cfg.size)
    pca = pca if pca is not None else load_pca(run, encoder) if run is not None else None
    chunks = []
    for lo in range(0, len(videos), 128):
        f = encode_frames(enc, np.stack([v.frames for v in videos[lo:lo + 128]]), batch_size=256)
        if enc.dim > cfg.max_feat_dim:
            if pca is None:
                pca = fit_pca(f.reshape(-1, enc.dim), cfg.max_feat_dim)
                if run is not None:
                    torch.save(pca, run.path(f"features/{feature_name(encoder)}_pca.pt"))
            f = apply_pca(f, pca)
        chunks.append(f)
    feats = torch.cat(chunks)
    if path is not None:
        tmp = path.with_suffix(".tmp")
        torch.save(feats, tmp)
        tmp.replace(path)
    return feats, pca


def fit_pca(x, k: int) -> dict:
    """Mean and top-``k`` principal directions of the rows of ``x``."""
    import torch

    mean = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    return {"mean": mean, "components": vh[:k].contiguous()}


def apply_pca(f, pca: dict):
    return (f - pca["mean"]) @ pca["components"].T


def load_pca(run: Run, encoder: str) -> dict | None:
    import torch

    p = run.path(f"features/{feature_name(encoder)}_pca.pt")
    return torch.load(p, map_location="cpu") if p.exists() else None


def build_vocab(cfg: StormRunConfig, videos: list):
    """Question words of the training clips plus every possible answer word (or the answer LM's tokenizer)."""
    from paperlab.core.video import COLOURS, DIRECTIONS
    from paperlab.storm.model import TokenizerVocab, Vocab

    if cfg.answer_lm:
        return TokenizerVocab(str(Path(cfg.answer_lm[3:]).expanduser()))

    choices = list(COLOURS) + list(DIRECTIONS) + ["yes", "no"] + [str(i) for i in range(cfg.max_objects + 1)]
    return Vocab.build([q.question for v in videos for q in v.qa], choices)


def feature_name(encoder: str) -> str:
    """A file-name-safe name of an encoder spec."""
    import hashlib

    return encoder if not encoder.startswith("hf:") else "hf_" + hashlib.sha1(encoder.encode()).hexdigest()[:10]


def storm_config(cfg: StormRunConfig, encoder: str, feats_shape: tuple, projector: str, pool: str, vocab_size: int):
    from paperlab.storm.encoders import grid_of
    from paperlab.storm.model import StormConfig

    grid = grid_of(feats_shape[2])
    if grid[0] % cfg.spatial_pool:
        from paperlab.core.errors import UserError

        raise UserError(f"spatial_pool {cfg.spatial_pool} does not divide {encoder}'s {grid[0]}x{grid[1]} token grid",
                        "choose an encoder or --size whose grid it divides")
    return StormConfig(feat_dim=feats_shape[3], grid=grid, n_frames=cfg.n_frames, projector=projector,
                       d_model=cfg.d_model, mamba_layers=cfg.mamba_layers, bidirectional=cfg.bidirectional,
                       scan=cfg.scan, temporal_pool=cfg.temporal_pool if pool == "temporal" else 1,
                       spatial_pool=cfg.spatial_pool if pool == "spatial" else 1, vocab_size=vocab_size,
                       answer_layers=cfg.answer_layers, answer_heads=max(1, cfg.d_model // 16),
                       answer_lm=str(Path(cfg.answer_lm[3:]).expanduser()) if cfg.answer_lm else "")


def variant_name(encoder: str, projector: str, pool: str, seed: int) -> str:
    return f"{feature_name(encoder)}_{projector}_{pool}_seed{seed}"


def train_all(cfg: StormRunConfig, data: dict, vocab, run: Run | None = None, log=print) -> dict:
    """Every encoder x projector x pooling x seed; returns ``{variant name: (model, history)}``."""
    from paperlab.storm.training import FitConfig, fit

    models = {}
    for encoder, (train, _) in data.items():
        for projector in ("linear", "mamba"):
            for pool in POOLS:
                for seed in cfg.train_seeds:
                    name = variant_name(encoder, projector, pool, seed)
                    scfg = storm_config(cfg, encoder, tuple(train.feats.shape), projector, pool, len(vocab))
                    fc = FitConfig(steps=cfg.steps, batch_videos=cfg.batch_videos, lr=cfg.lr, seed=seed)
                    path = run.path(f"models/{name}.pt") if run is not None else None
                    if path is not None:
                        path.parent.mkdir(exist_ok=True)
                    t0 = time.perf_counter()
                    model, hist = fit(scfg, train, fc, path, log=log)
                    log(f"{name}: loss {np.mean(hist['loss'][-25:]):.3f} ({time.perf_counter() - t0:.0f} s)")
                    models[name] = (model, hist)
    return models


def evaluate_all(cfg: StormRunConfig, data: dict, models: dict, run: Run | None = None) -> list[dict]:
    """One record per (encoder, projector, budget, seed): per-question predictions and correctness on the
    held-out clips (appended to ``evaluations.jsonl``; a resumed run reuses the records it has)."""
    from paperlab.storm.training import predict

    done = {r["id"]: r for r in (run.read("evaluations") if run is not None else [])}
    out = []
    for encoder, (_, test) in data.items():
        answer = test.answer.numpy()
        for projector in ("linear", "mamba"):
            for b in budgets(cfg):
                for seed in cfg.train_seeds:
                    rid = f"{encoder}_{projector}_{b.key}_seed{seed}"
                    if rid not in done:
                        model = models[variant_name(encoder, projector, b.pool, seed)][0]
                        pred, conf = predict(model, test, sample=b.sample)
                        rec = {"id": rid, "encoder": encoder, "projector": projector, "budget": b.key,
                               "pool": b.pool, "sample": b.sample, "reduction": b.reduction, "seed": seed,
                               "tokens": model.cfg.visual_tokens(b.sample), "pred": pred.tolist(),
                               "correct": (pred == answer).astype(int).tolist(), "conf": np.round(conf, 4).tolist()}
                        if run is not None:
                            run.append("evaluations", rec)
                        done[rid] = rec
                    out.append(done[rid])
    return out


def scan_check(cfg: StormRunConfig) -> dict:
    """Largest |parallel - sequential| (outputs; input gradients relative) on random float64 inputs, the same in
    float32, and the forward time of both at T = ``bench_length``."""
    import torch

    from paperlab.storm.selective_scan import max_abs_difference

    res = {"float64": max_abs_difference(l=cfg.scan_check_length, dtype=torch.float64),
           "float32": max_abs_difference(l=cfg.scan_check_length, dtype=torch.float32, seeds=1)}
    res["timing"] = scan_timing(cfg.bench_length)
    return res


def scan_timing(length: int = 1024, b: int = 2, d: int = 32, n: int = 16, repeats: int = 3) -> dict:
    """Median seconds of forward + backward (the training workload) of the sequential and the parallel scan at
    ``length``, interleaved in one process on the same inputs."""
    import torch

    from paperlab.storm.selective_scan import random_inputs, selective_scan_parallel, selective_scan_ref

    x = random_inputs(b, d, length, n, seed=0)

    def once(fn) -> float:
        leaves = {k: (v.detach().requires_grad_() if isinstance(v, torch.Tensor) else v) for k, v in x.items()}
        t0 = time.perf_counter()
        fn(**leaves).pow(2).sum().backward()
        return time.perf_counter() - t0

    fns = {"sequential": selective_scan_ref, "parallel": selective_scan_parallel}
    for fn in fns.values():
        once(fn)                                                            # warm-up
    ts: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            ts[k].append(once(fn))
    times = {k: float(np.median(v)) for k, v in ts.items()}
    return {"length": length, "batch": b, "d_inner": d, "d_state": n, "repeats": repeats, "pass": "forward+backward",
            **times, "ratio_sequential_over_parallel": times["sequential"] / times["parallel"],
            "threads": torch.get_num_threads()}


def load_data(cfg: StormRunConfig, run: Run | None = None, log=print) -> tuple[dict, list, list, object]:
    """Clips, vocabulary and per-encoder ``(train QASet, test QASet)``."""
    from paperlab.storm.training import make_qaset

    train_v, test_v = make_videos(cfg)
    vocab = build_vocab(cfg, train_v)
    data = {}
    for encoder in cfg.encoders:
        t0 = time.perf_counter()
        ftr, pca = encode(cfg, encoder, train_v, "train", run)      # first: fits the PCA of a wide encoder
        fte, _ = encode(cfg, encoder, test_v, "test", run, pca)
        log(f"features {encoder}: {tuple(ftr.shape)} ({time.perf_counter() - t0:.0f} s)")
        data[encoder] = (make_qaset(ftr, [v.qa for v in train_v], vocab, 24),
                         make_qaset(fte, [v.qa for v in test_v], vocab, 24))
    return data, train_v, test_v, vocab


# ---------------------------------------------------------------------------------------------- driver


def run_experiment(cfg: StormRunConfig, out: Path | None = None, log=print) -> Path:
    from paperlab.core.threads import torch_threads
    from paperlab.storm.encoders import grid_of
    from paperlab.storm.report import make_claims, write_report

    run = Run("storm", out=out, config=cfg)
    with torch_threads(cfg.threads):
        data, train_v, test_v, vocab = load_data(cfg, run, log)
        (run.path("vocab.json")).write_text(json.dumps(vocab.state()))
        models = train_all(cfg, data, vocab, run, log)
        evals = evaluate_all(cfg, data, models, run)
        scan = scan_check(cfg)
    log(f"scan: max |parallel - sequential| {scan['float64']['max_abs_output']:.2e} (float64); "
        f"T={scan['timing']['length']}: sequential/parallel = {scan['timing']['ratio_sequential_over_parallel']:.1f}x")
    results = {"evaluations": evals, "scan": scan, "budgets": [b.__dict__ | {"label": b.label} for b in budgets(cfg)],
               "train_history": {k: {"final_loss": float(np.mean(h["loss"][-25:])), "seconds": h["seconds"],
                                     "loss": h["loss"][::10]} for k, (_, h) in models.items()},
               "test": {"videos": len(test_v), "questions": len(next(iter(data.values()))[1]),
                        "kinds": next(iter(data.values()))[1].kind},
               "train": {"videos": len(train_v), "questions": len(next(iter(data.values()))[0])},
               "grids": {enc: list(grid_of(tr.feats.shape[2])) for enc, (tr, _) in data.items()}}
    claims = make_claims(cfg, results)
    write_report(run, cfg, results, claims, test_v, PAPER)
    return run.dir
