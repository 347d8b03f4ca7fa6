"""``paperlab priming run``: tiny bilingual GPTs trained sequentially and simultaneously on template-grammar
corpora, with within- and cross-language structural priming measured at every checkpoint.

The driver (:func:`run_experiment`) is a list of steps, for each language pair and seed:

1. :func:`build_data` — the L1 and L2 document pools (:mod:`~paperlab.priming.grammar`, ``l1_tokens`` /
   ``l2_tokens`` of distinct text per language), the regimes' training streams, a held-out validation stream
   and held-out text per language.
2. :func:`train_models` — one core :class:`~paperlab.core.transformer.Transformer` per regime with the core
   trainer (:func:`~paperlab.priming.regimes.train_regime`: resumable, weights saved at every checkpoint step;
   the second regime branches from the first at the L2 onset).
3. :func:`measure_checkpoints` — at every checkpoint, ``log P(T | P)`` of the four prime/target cells of every
   item, per alternation and direction (L1→L1, L2→L2, L1→L2, L2→L1), and the held-out loss per language;
   one record per checkpoint in ``measure.jsonl`` (a killed run resumes at the next checkpoint).
4. :func:`summarise` — per checkpoint and condition: mean effect over items (averaged over seeds) with a
   Student-t interval, a one-sample t-test and a Wilcoxon signed-rank test against 0.
5. :func:`make_claims`, :func:`plots`, the report (:mod:`~paperlab.priming.report`).
"""

from __future__ import annotations

import json
import random
import time
import warnings
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from paperlab.core.runs import Run, build_config
from paperlab.priming.grammar import ALTERNATIONS, PAIRS, CorpusSpec, Grammar, mix_stream
from paperlab.priming.regimes import CONTROL, REGIMES

PAPER = ("Arnett, Chang, Michaelov, Bergen: On the Acquisition of Shared Grammatical Representations in Bilingual "
         "Language Models, arXiv:2503.03962 (ACL 2025), https://arxiv.org/abs/2503.03962")
#: (prime role, target role) of the four directions
DIRECTIONS = {"L1>L1": ("l1", "l1"), "L2>L2": ("l2", "l2"), "L1>L2": ("l1", "l2"), "L2>L1": ("l2", "l1")}
WITHIN, CROSS = ("L1>L1", "L2>L2"), ("L1>L2", "L2>L1")


class PrimingConfig(BaseModel):
    """Configuration of ``paperlab priming run`` (saved with every run)."""

    pairs: list[str] = Field(default_factory=lambda: ["similar", "dissimilar"],
                             description="similar: en + SVO pseudo-Dutch; dissimilar: en + SOV case-marking")
    regimes: list[str] = Field(default_factory=lambda: list(REGIMES))
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], description="training seeds (one model each)")
    # corpus
    persistence: float = Field(0.5, ge=0, le=1, description="P(copy the previous structure in the document)")
    base_rate: float = Field(0.5, gt=0, lt=1, description="P(structure x) when not copying")
    control_codeswitch: float = Field(0.25, ge=0, lt=1, description="share of code-switched documents in the "
                                      "mixed phase of the positive-control model (0: no control); never in the "
                                      "claims")
    l1_tokens: int = Field(300_000, ge=1000, description="distinct L1 text (tokens)")
    l2_tokens: int = Field(300_000, ge=1000, description="distinct L2 text (tokens)")
    # model and training
    d_model: int = Field(64, ge=8)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(4, ge=1)
    d_ff: int = Field(256, ge=8)
    steps: int = Field(3000, ge=4, description="total steps; L2 starts at steps / 2")
    batch_size: int = Field(32, ge=1)
    seq_len: int = Field(64, ge=16)
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(100, ge=0)
    pre_onset: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75],
                                   description="checkpoints before the onset, as fractions of it")
    post_onset: list[float] = Field(default_factory=lambda: [0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0],
                                    description="checkpoints after the onset: onset + fraction * onset")
    # measurement
    n_items: int = Field(64, ge=3, description="items per alternation and direction")
    item_seed: int = 0
    heldout_tokens: int = Field(4096, ge=256)
    n_boot: int = Field(2000, ge=100)
    threads: int = Field(1, ge=1, description="torch CPU threads (1: tiny matrices gain nothing from more, and a busy machine loses much)")

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v) or any(p not in PAIRS for p in v):
            raise ValueError(f"pairs must be distinct names among {', '.join(PAIRS)}")
        return v

    @field_validator("regimes")
    @classmethod
    def _regimes(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v) or any(r not in REGIMES for r in v):
            raise ValueError(f"regimes must be distinct names among {', '.join(REGIMES)}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError("give at least one seed, each once")
        return v

    @field_validator("pre_onset", "post_onset")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < f <= 1 for f in v):
            raise ValueError("checkpoint fractions must lie in (0, 1]")
        return sorted(set(v))

    @model_validator(mode="after")
    def _consistent(self) -> PrimingConfig:
        if self.steps % 2:
            raise ValueError(f"steps ({self.steps}) must be even: L2 starts at steps / 2")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError("d_model / n_heads must be an even integer (RoPE)")
        if self.warmup_steps >= self.steps:
            raise ValueError("warmup_steps must be below steps")
        if max(self.pre_onset) >= 1:
            raise ValueError("pre_onset fractions must be below 1 (the onset itself is always measured)")
        return self

    @classmethod
    def quick(cls, **overrides) -> PrimingConfig:
        """The similar pair, two seeds, both regimes and the control, 1,200 steps (L2 from step 600), 48 items per
        cell."""
        base = dict(pairs=["similar"], seeds=[0, 1], steps=1200, l1_tokens=150_000, l2_tokens=150_000, n_items=48,
                    pre_onset=[0.25, 0.5], post_onset=[0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0])
        base.update(overrides)
        return cls(**base)

    @property
    def onset(self) -> int:
        return self.steps // 2

    @property
    def trained_regimes(self) -> list[str]:
        """The claims' regimes, then the code-switching control when asked for."""
        return [*self.regimes, CONTROL] if self.control_codeswitch > 0 else list(self.regimes)

    def spec(self) -> CorpusSpec:
        return CorpusSpec(persistence=self.persistence, base_rate=self.base_rate)


# ----------------------------------------------------------------------------------------------
# Step 1: data


def build_data(cfg: PrimingConfig, grammar: Grammar, pair: str, seed: int) -> dict:
    """Training streams per regime, validation stream and held-out text per language (token id tensors)."""
    import torch

    from paperlab.core.lm_data import TokenData
    from paperlab.priming.regimes import RegimeData, phase_mixes

    l1, l2 = PAIRS[pair]
    rng = random.Random(f"corpus/{pair}/{seed}")
    spec = cfg.spec()
    pools = {l1: grammar.documents([l1], cfg.l1_tokens, spec, rng), l2: grammar.documents([l2], cfg.l2_tokens, spec, rng)}
    if cfg.control_codeswitch > 0:
        pools["switch"] = grammar.documents([l1, l2], (cfg.l1_tokens + cfg.l2_tokens) // 2, spec, rng)
    stream_len = max(cfg.l1_tokens, cfg.l2_tokens) * 2

    def stream(mix: dict[str, float], name: str) -> TokenData:
        if name == CONTROL:
            c = cfg.control_codeswitch
            mix = {k: w * (1 - c) for k, w in mix.items()} | {"switch": c}
        ids = mix_stream(pools, mix, stream_len, random.Random(f"stream/{pair}/{seed}/{name}"))
        return TokenData(torch.tensor(ids, dtype=torch.long))

    before = stream({l1: 1.0}, "before")
    regimes = {}
    for regime in cfg.trained_regimes:
        after = phase_mixes(regime, l1, l2)[1]
        regimes[regime] = RegimeData(before, stream(after, regime), cfg.onset)
    held_rng = random.Random(f"heldout/{pair}/{seed}")
    held = {}
    for lang in (l1, l2):
        docs = grammar.documents([lang], cfg.heldout_tokens, spec, held_rng)
        held[lang] = torch.tensor([t for d in docs for t in d][: cfg.heldout_tokens], dtype=torch.long)
    val = TokenData(torch.cat([held[l1], held[l2]]))
    return {"regimes": regimes, "val": val, "heldout": held, "l1": l1, "l2": l2}


# ----------------------------------------------------------------------------------------------
# Step 2: training


def new_model(cfg: PrimingConfig, grammar: Grammar, seed: int):
    import torch

    from paperlab.core.transformer import Transformer

    torch.manual_seed(seed)
    return Transformer(model_config(cfg, grammar))


def model_config(cfg: PrimingConfig, grammar: Grammar):
    from paperlab.core.transformer import TransformerConfig

    return TransformerConfig(vocab_size=grammar.vocab_size, d_model=cfg.d_model, n_layers=cfg.n_layers,
                             n_heads=cfg.n_heads, d_ff=cfg.d_ff, max_seq_len=max(cfg.seq_len, 128))


def train_config(cfg: PrimingConfig, seed: int):
    from paperlab.core.trainer import TrainConfig

    every = max(1, cfg.onset // 4)
    while cfg.onset % every:          # the trainer checkpoint must fall on the onset (the regimes branch there)
        every -= 1
    return TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, seq_len=cfg.seq_len, lr=cfg.lr,
                       warmup_steps=cfg.warmup_steps, eval_every=max(1, cfg.steps // 4), eval_tokens=2048,
                       checkpoint_every=every, seed=seed, cpu=True)


def model_folder(run: Run, pair: str, seed: int, regime: str) -> Path:
    return run.path(f"models/{pair}/seed{seed}/{regime}")


def snapshot_path(cfg: PrimingConfig, run: Run, pair: str, seed: int, regime: str, step: int) -> Path:
    """Weights at ``step``: up to the onset the regimes share the first regime's model."""
    owner = cfg.regimes[0] if step <= cfg.onset else regime
    return model_folder(run, pair, seed, owner) / f"snap_{step}.pt"


def train_models(cfg: PrimingConfig, run: Run, grammar: Grammar, data: dict, pair: str, seed: int,
                 steps: list[int]) -> dict[str, dict]:
    """Train every regime (the first from scratch, the others from its onset checkpoint); histories."""
    from dataclasses import asdict

    from paperlab.priming.regimes import train_regime

    tcfg = train_config(cfg, seed)
    hist = {}
    for i, regime in enumerate(cfg.trained_regimes):
        folder = model_folder(run, pair, seed, regime)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.json").write_text(json.dumps({"config": asdict(model_config(cfg, grammar)),
                                                       "languages": list(grammar.languages),
                                                       "vocab": grammar.vocab}))
        branch = model_folder(run, pair, seed, cfg.regimes[0]) / "onset.pt" if i else None
        own = steps if i == 0 else [s for s in steps if s > cfg.onset]
        hist[regime] = train_regime(new_model(cfg, grammar, seed), data["regimes"][regime], data["val"], tcfg,
                                    folder, own, branch_from=branch, desc=f"{pair}/{regime}/seed {seed}")
    return hist


# ----------------------------------------------------------------------------------------------
# Step 3: priming at every checkpoint


def build_items(cfg: PrimingConfig, grammar: Grammar, pair: str) -> dict[str, list[dict]]:
    """Items per condition key ``"<alternation>/<direction>"`` (the same items for every seed and step)."""
    from paperlab.priming.measure import make_items

    langs = dict(zip(("l1", "l2"), PAIRS[pair], strict=True))
    return {f"{alt}/{d}": make_items(grammar, alt, langs[p], langs[t], cfg.n_items, cfg.item_seed)
            for alt in ALTERNATIONS for d, (p, t) in DIRECTIONS.items()}


def heldout_loss(model, ids) -> float:
    """Mean next-token cross-entropy (nats) on a held-out stream, in windows of the model's context."""
    import torch

    T = model.config.max_seq_len
    n = (len(ids) - 1) // T
    x = ids[: n * T].view(n, T)
    y = ids[1: n * T + 1].view(n, T)
    with torch.no_grad():
        model.eval()
        return float(model(x, y)[1])


def measure_checkpoints(cfg: PrimingConfig, run: Run, grammar: Grammar, data: dict, items: dict, pair: str,
                        seed: int, steps: list[int]) -> list[dict]:
    """One record per (regime, step): per-item effects and log ratios per condition, held-out losses."""
    import torch
    from rich.progress import track

    from paperlab.priming.measure import cell_logprobs, priming_effects, transformer_scorer

    done = {(r["regime"], r["step"]) for r in run.read("measure") if r["pair"] == pair and r["seed"] == seed}
    model = new_model(cfg, grammar, seed)
    scorer = transformer_scorer(model, grammar)
    cache: dict[Path, dict] = {}
    todo = [(reg, s) for reg in cfg.trained_regimes for s in steps if (reg, s) not in done]
    for regime, step in track(todo, description=f"{pair}/seed {seed}: priming at checkpoints", transient=True):
        path = snapshot_path(cfg, run, pair, seed, regime, step)
        if path not in cache:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            rec: dict = {"effect": {}, "logratio": {}}
            for key, its in items.items():
                eff = priming_effects(cell_logprobs(scorer, its))
                rec["effect"][key] = np.round(eff["effect"], 6).tolist()
                rec["logratio"][key] = np.round(eff["logratio"], 5).tolist()
            rec["loss"] = {lang: heldout_loss(model, ids) for lang, ids in data["heldout"].items()}
            cache[path] = rec
        run.append("measure", {"pair": pair, "seed": seed, "regime": regime, "step": step, **cache[path]})
    return [r for r in run.read("measure") if r["pair"] == pair and r["seed"] == seed]


# ----------------------------------------------------------------------------------------------
# Step 4: statistics per checkpoint


def item_effects(records: list[dict], pair: str, regime: str, step: int, directions, alternations=ALTERNATIONS,
                 measure: str = "effect") -> np.ndarray:
    """Per-item values (averaged over seeds) of the given directions and alternations, concatenated."""
    recs = [r for r in records if r["pair"] == pair and r["regime"] == regime and r["step"] == step]
    if not recs:
        return np.array([])
    parts = [np.mean([r[measure][f"{alt}/{d}"] for r in recs], axis=0) for alt in alternations for d in directions]
    return np.concatenate(parts)


def significance(x: np.ndarray) -> dict:
    """Mean with a Student-t interval, one-sample t-test and Wilcoxon signed-rank test against 0."""
    from scipy import stats

    from paperlab.core.stats import mean_ci

    est = mean_ci(x)
    t_p = float(stats.ttest_1samp(x, 0.0).pvalue) if len(x) > 1 and np.ptp(x) > 0 else float("nan")
    try:
        with warnings.catch_warnings():      # scipy warns (and returns NaN) when every difference is zero
            warnings.simplefilter("ignore", RuntimeWarning)
            w_p = float(stats.wilcoxon(x, method="approx").pvalue)   # normal approximation (n >= 2 x items)
    except ValueError:
        w_p = float("nan")
    return {"mean": est.value, "lo": est.lo, "hi": est.hi, "n": est.n, "t_p": t_p, "wilcoxon_p": w_p}


def summarise(cfg: PrimingConfig, records: list[dict], steps: list[int]) -> list[dict]:
    """One row per (pair, regime, step, direction, alternation ∈ {both, dative, voice})."""
    rows = []
    for pair in cfg.pairs:
        for regime in cfg.trained_regimes:
            for step in steps:
                for d in DIRECTIONS:
                    for alts in (ALTERNATIONS, *((a,) for a in ALTERNATIONS)):
                        x = item_effects(records, pair, regime, step, (d,), alts)
                        lr = item_effects(records, pair, regime, step, (d,), alts, "logratio")
                        if x.size == 0:
                            continue
                        rows.append({"pair": pair, "regime": regime, "step": step, "direction": d,
                                     "alternation": "both" if len(alts) > 1 else alts[0], **significance(x),
                                     "logratio": float(lr.mean())})
    return rows


def loss_curves(cfg: PrimingConfig, records: list[dict], steps: list[int]) -> dict:
    """Held-out loss per language role at every checkpoint (mean over seeds)."""
    out: dict = {}
    for pair in cfg.pairs:
        l1, l2 = PAIRS[pair]
        for regime in cfg.trained_regimes:
            for role, lang in (("L1", l1), ("L2", l2)):
                vals = []
                for step in steps:
                    rs = [r["loss"][lang] for r in records if r["pair"] == pair and r["regime"] == regime
                          and r["step"] == step]
                    vals.append(float(np.mean(rs)) if rs else float("nan"))
                out[f"{pair}/{regime}/{role}"] = vals
    return out


# ----------------------------------------------------------------------------------------------
# Driver


def run_experiment(cfg: PrimingConfig, out: Path | None = None) -> Path:
    """Every step of the module doc for each pair and seed, then claims and report."""
    from paperlab.core.threads import torch_threads

    with torch_threads(cfg.threads):
        return _run_experiment(cfg, out)


def _run_experiment(cfg: PrimingConfig, out: Path | None) -> Path:
    from paperlab.priming.regimes import checkpoint_steps
    from paperlab.priming.report import make_claims, plots, scale_note, sections

    t0 = time.perf_counter()
    run = Run("priming", out, cfg)
    grammar = Grammar()
    steps = checkpoint_steps(cfg.steps, tuple(cfg.pre_onset), tuple(cfg.post_onset))
    records, histories = [], {}
    for pair in cfg.pairs:
        items = build_items(cfg, grammar, pair)
        for seed in cfg.seeds:
            data = build_data(cfg, grammar, pair, seed)
            hist = train_models(cfg, run, grammar, data, pair, seed, steps)
            histories[f"{pair}/seed{seed}"] = {reg: {"val_step": h["val_step"], "val_loss": h["val_loss"],
                                                     "train_seconds": h["train_seconds"]} for reg, h in hist.items()}
            records += measure_checkpoints(cfg, run, grammar, data, items, pair, seed, steps)
        (run.path(f"items_{pair}.jsonl")).write_text(
            "\n".join(json.dumps(it) for its in items.values() for it in its) + "\n")
    results = {"steps": steps, "onset": cfg.onset, "rows": summarise(cfg, records, steps),
               "loss": loss_curves(cfg, records, steps), "training": histories,
               "vocab_size": grammar.vocab_size, "seconds": time.perf_counter() - t0}
    claims = make_claims(cfg, records, results)
    plots(run, cfg, results)
    run.finish(claims, results=results, sections=sections(cfg, grammar, results, claims),
               scale_note=scale_note(cfg), title="Structural priming in bilingual LMs", paper=PAPER)
    return run.dir


def default_config(quick: bool = False, **overrides) -> PrimingConfig:
    """The configuration ``reproduce(quick, out, **overrides)`` runs (``paperlab reproduce --skip-done`` hashes it)."""
    return build_config(PrimingConfig, "priming", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)
