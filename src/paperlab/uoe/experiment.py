"""``paperlab uoe run``: the equivalence check, then dense / top-k MoE / UoME / SMHA / UoE language models
trained in one harness (:mod:`paperlab.core.trainer`) and compared on perplexity vs. counted FLOPs.

Data: WikiText-2, character level (only its validation and test splits are available offline: we train
on ``valid.txt`` and evaluate on ``test.txt``; :mod:`paperlab.core.lm_data`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlab.core.errors import UserError
from paperlab.uoe.model import VARIANTS, UoEConfig, build_model
from paperlab.uoe.routing import GATES

PAPER = "Yang, Lian, Li. Union of Experts: Adapting Hierarchical Routing to Equivalently Decomposed " \
        "Transformer. arXiv:2503.02495 (2025)"

#: Models of the comparison: name -> (architecture of :data:`paperlab.uoe.model.VARIANTS`, routing overrides).
SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "dense": ("dense", {}),
    "moe": ("moe", {}),
    "uome": ("uome", {}),
    "smha": ("smha", {}),
    "uoe": ("uoe", {}),
    # ablations (full run): no capacity drops (causal routing), the official untrained router
    "uoe_nodrop": ("uoe", {"attn_capacity": None, "mlp_capacity": None}),
    "uoe_official_gate": ("uoe", {"gate": "none"}),
    "smha_rope_original": ("smha", {"rope_positions": "original"}),
}
LABELS = {"dense": "dense", "moe": "top-2 MoE", "uome": "UoME (dense attn)", "smha": "SMHA (dense MLP)",
          "uoe": "UoE (SMHA + UoME)", "uoe_nodrop": "UoE, no capacity drops",
          "uoe_official_gate": "UoE, official ungated router", "smha_rope_original": "SMHA, RoPE at original positions"}


@dataclass
class UoERunConfig:
    """One comparison run. ``routing`` holds the UoE/MoE hyper-parameters shared by all models."""

    corpus: str = "wikitext2"
    tokenizer: str = "char"
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 8
    d_ff: int = 688
    seq_len: int = 256
    batch_size: int = 32
    steps: int = 3000
    warmup_steps: int = 200
    lr: float = 2e-3
    eval_every: int = 250
    eval_tokens: int = 131072
    precision: str = "fp32"
    seed: int = 0
    variants: list[str] = field(default_factory=lambda: list(SPECS))
    routing: UoEConfig = field(default_factory=UoEConfig)

    @classmethod
    def quick(cls) -> UoERunConfig:
        return cls(d_model=128, n_layers=4, n_heads=8, d_ff=344, seq_len=128, batch_size=16, steps=300,
                   warmup_steps=30, eval_every=100, eval_tokens=16384, variants=[*VARIANTS, "uoe_nodrop"])

    def with_overrides(self, **overrides: Any) -> UoERunConfig:
        """Top-level fields by name; routing fields (``gate``, ``attn_capacity``, ...) by their own name."""
        top = {f.name for f in fields(self)}
        rout = {f.name for f in fields(UoEConfig)}
        bad = [k for k in overrides if k not in top and k not in rout]
        if bad:
            raise UserError(f"unknown uoe option(s): {', '.join(bad)}",
                            f"use fields of UoERunConfig ({', '.join(sorted(top))}) or UoEConfig ({', '.join(sorted(rout))})")
        routing = replace(self.routing, **{k: v for k, v in overrides.items() if k in rout})
        cfg = replace(self, routing=routing, **{k: v for k, v in overrides.items() if k in top and k != "routing"})
        unknown = [v for v in cfg.variants if v not in SPECS]
        if unknown:
            raise UserError(f"unknown variant(s): {', '.join(unknown)}", f"choose from {', '.join(SPECS)}")
        r = cfg.routing
        if r.gate not in GATES:
            raise UserError(f"unknown gate {r.gate!r}", f"use one of: {', '.join(GATES)}")
        if r.rope_positions not in ("compressed", "original"):
            raise UserError(f"unknown rope_positions {r.rope_positions!r}", "use 'compressed' or 'original'")
        for name in ("attn_capacity", "mlp_capacity"):
            c = getattr(r, name)
            if c is not None and not 0 < c <= 1:
                raise UserError(f"{name} must be in (0, 1] or None, got {c}", "pass a fraction of the sequence")
        if cfg.precision not in ("fp32", "bf16"):
            raise UserError(f"precision must be 'fp32' or 'bf16', not {cfg.precision!r}", "use fp32 or bf16")
        if cfg.d_model % cfg.n_heads or cfg.d_ff % r.mlp_experts:
            raise UserError(f"d_model={cfg.d_model} must divide by n_heads={cfg.n_heads} and d_ff={cfg.d_ff} "
                            f"by mlp_experts={r.mlp_experts}", "choose compatible sizes")
        return cfg


# ----------------------------------------------------------------------------------------------
# Measurements


def equivalence_errors(d_model: int = 64, n_heads: int = 8, d_ff: int = 128, seq_len: int = 32,
                       seed: int = 0) -> dict[str, float]:
    """Max |difference| between the decomposed layers (all experts, all tokens) and the dense ones, in
    float64: outputs, input gradients and weight gradients (Eq. 1, Eq. 2)."""
    from paperlab.core.transformer import CausalSelfAttention, Rotary, SwiGLU, TransformerConfig
    from paperlab.uoe.smha import SelectiveMultiHeadAttention
    from paperlab.uoe.uome import UnionOfMLPExperts

    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=16, d_model=d_model, n_layers=1, n_heads=n_heads, d_ff=d_ff,
                            max_seq_len=seq_len)
    x = torch.randn(2, seq_len, d_model, dtype=torch.float64, requires_grad=True)
    up = torch.randn_like(x)
    rope = Rotary(cfg.head_dim, seq_len).double()
    out: dict[str, float] = {}

    def err(a, b):
        return float((a - b).detach().abs().max())

    mlp = SwiGLU(cfg).double()
    uome = UnionOfMLPExperts(d_model, d_ff, n_experts=4, top_k=4, capacity=1.0, gate="none").double()
    uome.load_dense(mlp)
    yd, yu = mlp(x), uome(x)
    gd = torch.autograd.grad(yd, [x, mlp.w1.weight, mlp.w3.weight, mlp.w2.weight], up)
    gu = torch.autograd.grad(yu, [x, uome.experts.w_in, uome.experts.w_out], up)
    ref = UnionOfMLPExperts(d_model, d_ff, n_experts=4).double()
    ref.experts.load_state_dict(type(ref.experts).from_dense(gd[1], gd[2], gd[3], 4).state_dict())
    out["mlp_forward"] = err(yd, yu)
    out["mlp_backward"] = max(err(gd[0], gu[0]), err(gu[1], ref.experts.w_in), err(gu[2], ref.experts.w_out))

    attn = CausalSelfAttention(cfg).double()
    smha = SelectiveMultiHeadAttention(d_model, n_heads, top_k=n_heads, capacity=1.0, gate="none").double()
    smha.load_dense(attn)
    yd, ys = attn(x, rope), smha(x, rope)
    gd = torch.autograd.grad(yd, [x, attn.wq.weight, attn.wk.weight, attn.wv.weight, attn.wo.weight], up)
    gs = torch.autograd.grad(ys, [x, smha.heads.w_qkv, smha.heads.w_o], up)
    ref = SelectiveMultiHeadAttention(d_model, n_heads).double()
    ref.heads.load_dense(*gd[1:])
    out["attention_forward"] = err(yd, ys)
    out["attention_backward"] = max(err(gd[0], gs[0]), err(gs[1], ref.heads.w_qkv), err(gs[2], ref.heads.w_o))
    return out


@torch.no_grad()
def future_leak(model: torch.nn.Module, idx: torch.Tensor, t: int | None = None, seed: int = 0) -> float:
    """Max |change| of the logits at positions ``< t`` when the tokens at positions ``>= t`` are replaced.

    0 (up to float noise) for a causal model. Expert-choice capacity (top-``C`` tokens per expert over
    the whole sequence) lets later tokens decide which earlier tokens an expert keeps, so it is not 0.
    """
    was_training = model.training
    model.eval()
    T = idx.shape[1]
    t = T // 2 if t is None else t
    g = torch.Generator().manual_seed(seed)
    other = idx.clone()
    other[:, t:] = torch.randint(0, model.config.vocab_size, other[:, t:].shape, generator=g)
    a, b = model(idx)[0][:, :t], model(other)[0][:, :t]
    model.train(was_training)
    return float((a - b).abs().max())


def routing_stats(model: torch.nn.Module) -> dict[str, float]:
    """Mean fraction of token->expert selections kept within capacity, attention and MLP routers."""
    kept: dict[str, list[float]] = {"attention": [], "mlp": []}
    for block in model.blocks:
        for part in ("attn", "mlp"):
            router = getattr(getattr(block, part), "router", None)
            if router is not None and router.last_kept is not None:
                kept["attention" if part == "attn" else "mlp"].append(router.last_kept)
    return {f"{k}_kept": sum(v) / len(v) for k, v in kept.items() if v}


# ----------------------------------------------------------------------------------------------
# The run


def _train_variant(name: str, cfg: UoERunConfig, data, run_dir: Path) -> tuple[torch.nn.Module, dict]:
    from paperlab.core.trainer import TrainConfig, evaluate, finished_training, train
    from paperlab.core.transformer import TransformerConfig

    train_data, val_data, tok = data
    arch, over = SPECS[name]
    tcfg = TransformerConfig(vocab_size=tok.vocab_size, d_model=cfg.d_model, n_layers=cfg.n_layers,
                             n_heads=cfg.n_heads, d_ff=cfg.d_ff, max_seq_len=cfg.seq_len)
    torch.manual_seed(cfg.seed)
    model = build_model(arch, tcfg, replace(cfg.routing, **over))
    trc = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, seq_len=cfg.seq_len, lr=cfg.lr,
                      warmup_steps=cfg.warmup_steps, eval_every=cfg.eval_every, eval_tokens=cfg.eval_tokens,
                      checkpoint_every=cfg.eval_every, precision=cfg.precision, seed=cfg.seed)
    vdir = run_dir / name
    hist = finished_training(model, trc, vdir)           # finished earlier with this exact setup: reuse it
    if hist is not None:
        if not hist.get("final_val_seq_losses"):         # written before per-window losses were recorded
            _, hist["final_val_seq_losses"] = evaluate(model, val_data, trc, per_sequence=True)
        return model, hist
    hist = train(model, train_data, val_data, trc, vdir, progress=True, desc=f"uoe: {name}")
    return model, hist


def default_config(quick: bool = False, **overrides: Any) -> UoERunConfig:
    """The configuration ``reproduce(quick, out, **overrides)`` runs (``paperlab reproduce --skip-done`` hashes it)."""
    return (UoERunConfig.quick() if quick else UoERunConfig()).with_overrides(**overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides: Any) -> Path:
    """Run the UoE comparison; return the run directory (report.md, results.json, PNG plots)."""
    from paperlab.core import flops as fl
    from paperlab.core.lm_data import lm_datasets
    from paperlab.core.runs import Run, markdown_table

    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = default_config(quick, **overrides)
    run = Run("uoe", out, config=asdict(cfg))

    # 1. exact equivalence of the decomposition (float64, this run's widths)
    eq = equivalence_errors(cfg.d_model, cfg.n_heads, cfg.d_ff, min(cfg.seq_len, 64), cfg.seed)
    run.append("equivalence", eq)

    # 2. the language models
    data = lm_datasets(cfg.corpus, cfg.tokenizer)
    rows: dict[str, dict[str, Any]] = {}
    for name in cfg.variants:
        model, hist = _train_variant(name, cfg, data, run.dir)
        model.eval()
        x, _ = next(data[1].eval_batches(cfg.batch_size, cfg.seq_len))
        leak = future_leak(model, x)                      # also leaves routing statistics of a val batch
        stats = routing_stats(model)
        br = fl.model_flops_breakdown(model, cfg.seq_len)
        val = hist["final_val_loss"]
        rows[name] = {
            "architecture": SPECS[name][0], "params": sum(p.numel() for p in model.parameters()),
            "flops_per_token": br["total"], "attention_flops": br["attention"], "mlp_flops": br["mlp"],
            "train_flops": 3.0 * br["total"] * hist["tokens"], "val_loss": val, "val_ppl": math.exp(val),
            "val_bpc": val / math.log(2), "train_seconds": hist["train_seconds"],
            "train_tokens_per_s": hist["tokens"] / max(hist["train_seconds"], 1e-9),
            "future_leak": leak, "diverged": hist["diverged"],
            "curve": {"step": hist["val_step"], "val_loss": hist["val_loss"]}, **stats,
            "val_seq_losses": hist.get("final_val_seq_losses") or [],     # per validation window (claim units)
        }
        run.append("models", {"name": name, **{k: v for k, v in rows[name].items()
                                               if k not in ("curve", "val_seq_losses")}})

    # 3. claims
    claims = make_claims(rows, eq, cfg.seed)

    # 4. report
    _plot(run, rows)
    dense_f = rows.get("dense", {}).get("flops_per_token")
    table = markdown_table(
        ["model", "params", "FLOPs/token (fwd)", "vs dense", "attn FLOPs", "MLP FLOPs", "val loss",
         "val ppl", "bits/char", "kept (attn/MLP)", "future leak"],
        [[LABELS[n], r["params"], r["flops_per_token"], r["flops_per_token"] / dense_f if dense_f else "-",
          r["attention_flops"], r["mlp_flops"], r["val_loss"], r["val_ppl"], r["val_bpc"],
          " / ".join(f"{r[k]:.2f}" if k in r else "-" for k in ("attention_kept", "mlp_kept")),
          r["future_leak"]] for n, r in rows.items()])
    sections = [
        "## Setup\n\n"
        f"Character-level WikiText-2 (train: `valid.txt`, {len(data[0]):,} tokens; evaluation: first "
        f"{cfg.eval_tokens:,} tokens of `test.txt`), vocabulary {data[2].vocab_size}. Every model is the shared "
        f"pre-norm transformer (`paperlab.core.transformer`: RMSNorm, RoPE, SwiGLU) with d={cfg.d_model}, "
        f"{cfg.n_layers} layers, {cfg.n_heads} heads, d_ff={cfg.d_ff}, context {cfg.seq_len}, trained by the "
        f"shared trainer for {cfg.steps} steps of {cfg.batch_size} sequences (AdamW, lr {cfg.lr}, warmup + "
        f"cosine), seed {cfg.seed}. Only the attention and/or MLP differ:\n\n"
        f"- **top-2 MoE**: {cfg.routing.moe_experts} independent SwiGLU experts of "
        f"{cfg.routing.moe_d_expert or cfg.d_ff // 2} hidden units, top-{cfg.routing.moe_top_k}, renormalised "
        f"gates, Switch load-balancing loss x{cfg.routing.moe_aux_weight} (about the dense MLP's compute, "
        "twice its parameters);\n"
        f"- **UoME**: the dense MLP split into {cfg.routing.mlp_experts} experts (Eq. 1), top-"
        f"{cfg.routing.mlp_top_k} per token, each expert keeps {cfg.routing.mlp_capacity} of the sequence;\n"
        f"- **SMHA**: each token selects {cfg.routing.attn_top_k or cfg.n_heads // 2} of {cfg.n_heads} heads, "
        f"each head keeps {cfg.routing.attn_capacity} of the sequence and attends causally among its tokens "
        f"(RoPE on {cfg.routing.rope_positions} positions);\n"
        "- **UoE**: SMHA + UoME.\n\n"
        f"Router gradient: `gate={cfg.routing.gate!r}`. The official code never multiplies outputs by the "
        "gate scores, so its routers receive no gradient. We keep the paper's forward pass exactly (selected "
        "outputs are added unscaled, so the all-selected layer *is* the dense layer) and give the router the "
        "gradient a multiplying gate would give at value 1: `y += (1 + p - sg(p)) E(x)` (straight-through). "
        "`uoe_official_gate` (full run) is the official behaviour, for comparison.",
        "## Results\n\n" + table + "\n\n"
        "FLOPs are counted analytically per token of a forward pass (`paperlab.core.flops`; routed layers "
        "count what the batched implementation computes, padding slots included). *kept*: fraction of the "
        "tokens' expert selections that fit in the experts' capacity. *future leak*: max |change| of the "
        "logits of the first half of a sequence when its second half is replaced (0 = causal).",
        "## Verdict\n\n" + _verdict(rows, claims),
        "## Equivalence check\n\n" + markdown_table(["quantity", "max abs(decomposed - dense)"], list(eq.items())),
    ]
    scale_note = (
        "The paper trains 16-layer, d=400 models on WikiText-103 (word level, 200k steps) and reports UoE "
        "2.38 perplexity below the best MoE at 76% of its FLOPs. Here: character-level WikiText-2 (its "
        "validation split is our training set), models of ~1M parameters, a few hundred (quick) to a few "
        "thousand steps on CPU, one seed. Perplexities are per character and far from converged in the quick "
        "run, so differences of a few percent are within run-to-run noise; the FLOPs counts are exact for the "
        "given shapes. Capacity-based selection lets later tokens influence which earlier tokens a head or "
        "expert keeps (see *future leak*): a property of the paper's expert-choice selection in an "
        "autoregressive LM, through which teacher-forced perplexity can use information from the future; "
        "`uoe_nodrop` (every selection kept, buffers padded to the busiest expert) is the causal variant.")
    run.finish(claims, results={"models": rows, "equivalence": eq}, sections=sections, scale_note=scale_note,
               title="Union of Experts (UoE): decomposition, SMHA, UoME vs dense and top-k MoE", paper=PAPER)
    return run.dir


#: the decomposed layers must equal the dense ones to this max abs difference (float64)
EQUIVALENCE_TOL = 1e-9


def _ppl(x: np.ndarray) -> float:
    return float(np.exp(np.mean(x)))


def make_claims(rows: dict[str, dict[str, Any]], eq: dict[str, float], seed: int = 0) -> list:
    """The run's claims from its measurements: ``eq`` (:func:`equivalence_errors`) and ``rows[name]`` with
    ``flops_per_token``, ``attention_flops``, ``val_ppl`` and ``val_seq_losses`` (final validation loss of
    each validation window, the same windows for every model)."""
    from paperlab.core.runs import by_construction, claim
    from paperlab.core.stats import Estimate, exact, paired_bootstrap_diff

    claims = [claim("decomposition_exact",
                    "The decomposed MLP and attention with all experts and tokens selected equal the dense "
                    f"layers (forward and backward, float64, max abs difference < {EQUIVALENCE_TOL:g})",
                    exact(max(eq.values())), expect="less", null=EQUIVALENCE_TOL, **eq)]
    if "uoe" in rows and "moe" in rows:
        u, m = rows["uoe"], rows["moe"]
        a, b = u.get("val_seq_losses") or [], m.get("val_seq_losses") or []
        if a and len(a) == len(b):
            ppl = paired_bootstrap_diff(a, b, stat=_ppl)
        else:
            ppl = Estimate(float("nan"), float("nan"), float("nan"), 0,
                           "paired percentile bootstrap over validation windows (per-window losses missing)")
        claims.append(claim(
            "uoe_vs_moe_at_flops",
            "UoE reaches a lower validation perplexity than the top-k MoE while computing fewer FLOPs per token",
            {"validation perplexity, UoE - MoE": ppl,
             "forward FLOPs per token, UoE - MoE": exact(u["flops_per_token"] - m["flops_per_token"],
                                                         "exact (counted FLOPs of the configuration)")},
            expect="less", null=0.0,
            note=f"one training seed ({seed}): the perplexity interval is a paired bootstrap over the {ppl.n} "
                 "validation windows (the same windows for both models), so it covers evaluation noise only, not "
                 "training-seed variation; the FLOPs part is arithmetic on the configuration.",
            uoe_ppl=u["val_ppl"], moe_ppl=m["val_ppl"], uoe_flops=u["flops_per_token"],
            moe_flops=m["flops_per_token"], flops_ratio=u["flops_per_token"] / m["flops_per_token"],
            ppl_diff=m["val_ppl"] - u["val_ppl"]))
    if "smha" in rows and "dense" in rows:
        s, d = rows["smha"], rows["dense"]
        claims.append(by_construction(
            "smha_saves_flops",
            "SMHA's counted attention FLOPs per token are below dense multi-head attention's",
            s["attention_flops"] < d["attention_flops"],
            smha_attention_flops=s["attention_flops"], dense_attention_flops=d["attention_flops"],
            attention_ratio=s["attention_flops"] / d["attention_flops"], smha_ppl=s["val_ppl"],
            dense_ppl=d["val_ppl"]))
    return claims


def _ppl_gap(a: dict[str, Any], b: dict[str, Any]) -> str:
    """``a``'s validation perplexity minus ``b``'s with its paired interval over validation windows, as text."""
    from paperlab.core.stats import paired_bootstrap_diff

    x, y = a.get("val_seq_losses") or [], b.get("val_seq_losses") or []
    if not x or len(x) != len(y):
        return f"difference {a['val_ppl'] - b['val_ppl']:+.3f} (no per-window losses: no interval)"
    e = paired_bootstrap_diff(x, y, stat=_ppl)
    return f"difference {e.value:+.3f}, 95% CI [{e.lo:+.3f}, {e.hi:+.3f}] over {e.n} validation windows"


def _verdict(rows: dict[str, dict[str, Any]], claims: list) -> str:
    if "uoe" not in rows or "moe" not in rows:
        return "UoE and MoE were not both trained in this run."
    u, m = rows["uoe"], rows["moe"]
    verdict = next(c.verdict for c in claims if c.id == "uoe_vs_moe_at_flops")
    ratio = u["flops_per_token"] / m["flops_per_token"]
    s = (f"At this scale the claim that UoE beats the top-k MoE at lower FLOPs is **{verdict}**: validation "
         f"perplexity {u['val_ppl']:.3f} vs {m['val_ppl']:.3f} ({_ppl_gap(u, m)}; one training seed, so the "
         f"interval covers evaluation noise only) with {ratio:.0%} of the MoE's forward FLOPs per token.")
    if "uoe_nodrop" in rows:
        n = rows["uoe_nodrop"]
        s += (f" Without capacity drops (causal routing, future leak {n['future_leak']:.2g}) UoE reaches "
              f"{n['val_ppl']:.3f} ({_ppl_gap(n, m)} to the MoE) at "
              f"{n['flops_per_token'] / m['flops_per_token']:.0%} of the MoE's FLOPs.")
    if "dense" in rows:
        d = rows["dense"]
        s += (f" The dense model reaches {d['val_ppl']:.3f} at {d['flops_per_token'] / m['flops_per_token']:.0%} "
              "of the MoE's FLOPs.")
    return s


def _plot(run, rows: dict[str, dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (name, r) in enumerate(rows.items()):
        steps = r["curve"]["step"]
        per_step = r["train_flops"] / max(1, steps[-1])
        ppl = [math.exp(v) for v in r["curve"]["val_loss"]]
        ax1.plot([s * per_step for s in steps[1:]], ppl[1:], marker="o", ms=3, label=LABELS[name])
        ax2.scatter(r["flops_per_token"], r["val_ppl"], s=40)
        ax2.annotate(LABELS[name], (r["flops_per_token"], r["val_ppl"]), textcoords="offset points",
                     xytext=(5, 4 if i % 2 == 0 else -11), fontsize=8)
    ax1.set_xlabel("training FLOPs (counted, 3 x forward)")
    ax1.set_ylabel("validation perplexity (per char)")
    ax1.set_title("perplexity vs. training compute")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("forward FLOPs per token (counted)")
    ax2.set_ylabel("final validation perplexity (per char)")
    ax2.set_title("final perplexity vs. FLOPs per token")
    ax2.grid(alpha=0.3)
    ax1.grid(alpha=0.3)
    run.savefig(fig, "ppl_vs_flops", "Validation perplexity vs. counted FLOPs: dense, top-k MoE, UoME, SMHA, UoE")
