"""Claims, tables, plots and example clips of ``paperlab storm run`` (numbers from :mod:`.experiment`).

Units of the intervals: training seeds crossed with held-out questions. Accuracy: Wilson (one training seed) or
the pigeonhole bootstrap over seeds x questions (core ``crossed_bootstrap``). Differences between variants are
paired on the same questions and seed indices, with the same bootstrap, so the interval carries the variation
between trainings as well as between questions (with one seed it cannot, and says so). The scan check is a
deterministic computation (exact).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from paperlab.core.runs import Claim, claim, claim_of_parts, markdown_table
from paperlab.core.stats import Estimate, crossed_bootstrap, exact, wilson

PROJ_NAME = {"linear": "Linear (VILA)", "mamba": "Mamba (STORM)"}


def per_question(evals: list[dict], encoder: str, projector: str, budget: str) -> np.ndarray:
    """Correctness on each test question, averaged over training seeds."""
    rows = [r["correct"] for r in evals if r["encoder"] == encoder and r["projector"] == projector
            and r["budget"] == budget]
    return np.mean(np.array(rows, dtype=float), 0)


def table(evals: list[dict], encoder: str, projector: str, budget: str) -> np.ndarray:
    """Correctness as a ``seeds x questions`` table, rows in seed order."""
    rows = sorted((r["seed"], r["correct"]) for r in evals if r["encoder"] == encoder and r["projector"] == projector
                  and r["budget"] == budget)
    return np.array([c for _, c in rows], dtype=float)


def accuracy(evals: list[dict], encoder: str, projector: str, budget: str, n_boot: int) -> Estimate:
    x = table(evals, encoder, projector, budget)
    if len(x) == 1:
        return wilson(int(x.sum()), x.shape[1])
    return crossed_bootstrap(x, n_boot=n_boot)


def drop(evals: list[dict], encoder: str, projector: str, budget: str) -> np.ndarray:
    """Accuracy lost from the full budget to ``budget``, per seed and question (``seeds x questions``)."""
    return table(evals, encoder, projector, "none_s1") - table(evals, encoder, projector, budget)


# ---------------------------------------------------------------------------------------------- claims


def make_claims(cfg, results: dict) -> list[Claim]:
    ev, enc, nb = results["evaluations"], cfg.encoders[0], cfg.n_boot
    k, p = cfg.temporal_pool, cfg.spatial_pool
    claims = []
    d4 = crossed_bootstrap(drop(ev, enc, "linear", "temporal_s1") - drop(ev, enc, "mamba", "temporal_s1"), n_boot=nb)
    s = min(cfg.samples)
    d8 = crossed_bootstrap(drop(ev, enc, "linear", f"temporal_s{s}") - drop(ev, enc, "mamba", f"temporal_s{s}"),
                           n_boot=nb)
    acc = {f"{pr}_{b}": accuracy(ev, enc, pr, b, nb).value for pr in ("linear", "mamba")
           for b in ("none_s1", "temporal_s1", f"temporal_s{s}")}
    claims.append(claim(
        "mamba_keeps_accuracy_under_pooling",
        f"Under {k}x temporal pooling (Eq. 6) the Mamba projector loses less accuracy than the Linear projector: "
        f"drop(Linear) - drop(Mamba) > 0, each drop from that projector's full-token model ({enc} encoder)",
        d4, expect="greater", accuracies=acc, **{f"diff_of_drops_{k * s}x_pool_and_sampling": d8.as_dict()}))
    sp = crossed_bootstrap(table(ev, enc, "mamba", "temporal_s1") - table(ev, enc, "mamba", "spatial_s1"), n_boot=nb)
    sp_lin = crossed_bootstrap(table(ev, enc, "linear", "temporal_s1") - table(ev, enc, "linear", "spatial_s1"),
                               n_boot=nb)
    claims.append(claim(
        "spatial_pooling_hurts",
        f"With the Mamba projector, {p}x{p} spatial pooling ({p * p}x fewer tokens) is less accurate than {k}x "
        f"temporal pooling: acc(temporal) - acc(spatial) > 0 ({enc} encoder)",
        sp, expect="greater", linear_projector=sp_lin.as_dict(), same_budget=(k == p * p)))
    sc = results["scan"]["float64"]
    tol = cfg.scan_tolerance
    claims.append(claim_of_parts(
        "scan_exact",
        f"The parallel (Blelloch) selective scan computes the sequential recurrence: max |parallel - sequential| "
        f"< {tol:g} on outputs and (relative) input gradients, float64, random inputs, T = {sc['length']}",
        {"output": (exact(sc["max_abs_output"]), {"expect": "less", "null": tol}),
         "gradient": (exact(sc["max_rel_grad"]), {"expect": "less", "null": tol})},
        output_scale=sc["output_scale"], float32_max_abs_output=results["scan"]["float32"]["max_abs_output"],
        time_ratio_sequential_over_parallel=results["scan"]["timing"]["ratio_sequential_over_parallel"]))
    return claims


# ---------------------------------------------------------------------------------------------- report


def _cell(e: Estimate) -> str:
    return f"{e.value:.3f} [{e.lo:.3f}, {e.hi:.3f}]"


def accuracy_table(cfg, results: dict) -> str:
    ev = results["evaluations"]
    bs = results["budgets"]
    tok = {r["budget"]: r["tokens"] for r in ev}
    header = ["encoder", "projector"] + [f"{b['label']}: {tok[b['pool'] + '_s' + str(b['sample'])]} tokens"
                                         for b in bs]
    rows = []
    for enc in cfg.encoders:
        for pr in ("linear", "mamba"):
            rows.append([enc, PROJ_NAME[pr]] + [_cell(accuracy(ev, enc, pr, f"{b['pool']}_s{b['sample']}", cfg.n_boot))
                                                for b in bs])
    return markdown_table(header, rows)


def drops_table(cfg, results: dict) -> str:
    ev = results["evaluations"]
    rows = []
    for enc in cfg.encoders:
        for b in results["budgets"]:
            key = f"{b['pool']}_s{b['sample']}"
            if key == "none_s1":
                continue
            dl, dm = drop(ev, enc, "linear", key), drop(ev, enc, "mamba", key)
            rows.append([enc, b["label"], f"{dl.mean():.3f}", f"{dm.mean():.3f}",
                         _cell(crossed_bootstrap(dl - dm, n_boot=cfg.n_boot))])
    return markdown_table(["encoder", "budget", "drop Linear", "drop Mamba",
                           "drop(Linear) - drop(Mamba) [95% CI, paired]"], rows)


def kinds_table(cfg, results: dict) -> str:
    ev, enc = results["evaluations"], cfg.encoders[0]
    kinds = np.array(results["test"]["kinds"])
    keys = [f"{b['pool']}_s{b['sample']}" for b in results["budgets"]]
    labels = {f"{b['pool']}_s{b['sample']}": b["label"].split(" (")[0] + " " + b["pool"][:4] for b in results["budgets"]}
    rows = []
    for kind in dict.fromkeys(kinds.tolist()):
        m = kinds == kind
        for pr in ("linear", "mamba"):
            rows.append([kind, int(m.sum()), PROJ_NAME[pr]]
                        + [f"{per_question(ev, enc, pr, key)[m].mean():.3f}" for key in keys])
    return markdown_table(["kind", "questions", "projector"] + [labels[k] for k in keys], rows)


def plot_accuracy(run, cfg, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = results["evaluations"]
    fig, axes = plt.subplots(1, len(cfg.encoders), figsize=(5.5 * len(cfg.encoders), 4), squeeze=False)
    for ax, enc in zip(axes[0], cfg.encoders, strict=True):
        for pr, colour in (("linear", "tab:orange"), ("mamba", "tab:blue")):
            for pool, marker, ls in (("temporal", "o", "-"), ("spatial", "s", "none")):
                bs = [b for b in results["budgets"] if b["pool"] in (pool, "none")]
                if pool == "spatial":
                    bs = [b for b in results["budgets"] if b["pool"] == "spatial"]
                keys = [f"{b['pool']}_s{b['sample']}" for b in bs]
                es = [accuracy(ev, enc, pr, k, cfg.n_boot) for k in keys]
                tok = [next(r["tokens"] for r in ev if r["budget"] == k) for k in keys]
                ax.errorbar(tok, [e.value for e in es], yerr=[[e.value - e.lo for e in es], [e.hi - e.value for e in es]],
                            color=colour, marker=marker, linestyle=ls, capsize=3,
                            label=f"{PROJ_NAME[pr]}, {'temporal pool / sampling' if pool == 'temporal' else 'spatial pool'}")
        ax.set_xscale("log", base=2)
        ax.invert_xaxis()
        ax.set_xlabel("visual tokens per video (log scale; fewer to the right)")
        ax.set_ylabel("held-out accuracy")
        ax.set_title(f"encoder: {enc}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    run.savefig(fig, "accuracy_vs_tokens", "Accuracy (95% CI) against visual tokens per video: full, temporal pooling "
                "(k), pooling + test-time sampling (k*s), and spatial pooling (squares).")


def plot_loss(run, results: dict) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, h in results["train_history"].items():
        ax.plot(np.arange(len(h["loss"])) * 10, h["loss"], label=name, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    run.savefig(fig, "training_loss", "Training loss of every variant (every 10th step).")


def examples_section(run, cfg, results: dict, test_videos: list, n: int = 3) -> str:
    """Frame strips (PNG) and GIFs of the first test clips with several questions, and what each projector
    answered at 1x and at the pooled budget."""
    from PIL import Image

    from paperlab.core.video import frame_strip, save_gif

    ev, enc = results["evaluations"], cfg.encoders[0]
    seed = cfg.train_seeds[0]
    preds = {(r["projector"], r["budget"]): r["pred"] for r in ev if r["encoder"] == enc and r["seed"] == seed}
    row = 0
    starts = []
    for v in test_videos:
        starts.append(row)
        row += len(v.qa)
    picks = [i for i, v in enumerate(test_videos) if len(v.qa) >= 3][:n]
    lines = ["## Example clips", "",
             f"Held-out clips ({enc} encoder, seed {seed}); answers of each projector at 1x and at {cfg.temporal_pool}x "
             "temporal pooling. GIFs are in the run folder.", ""]
    for i in picks:
        v = test_videos[i]
        strip = frame_strip(v.frames, n=8)
        Image.fromarray(strip).resize((strip.shape[1] * 3, strip.shape[0] * 3), Image.NEAREST).save(
            run.path(f"example_{i}.png"))
        save_gif(v.frames, run.path(f"example_{i}.gif"), fps=6, scale=4)
        lines += [f"**Clip {i}**: {v.caption}", "", f"![clip {i}](example_{i}.png) ([GIF](example_{i}.gif))", ""]
        table = []
        for j, q in enumerate(v.qa):
            r = starts[i] + j
            table.append([q.question, q.answer_text] + [q.choices[preds[(pr, b)][r]] for pr in ("linear", "mamba")
                                                        for b in ("none_s1", "temporal_s1")])
        lines += [markdown_table(["question", "truth", "Linear 1x", f"Linear {cfg.temporal_pool}x", "Mamba 1x",
                                  f"Mamba {cfg.temporal_pool}x"], table), ""]
    return "\n".join(lines)


def write_report(run, cfg, results: dict, claims: list[Claim], test_videos: list, paper: str) -> None:
    from paperlab.storm.model import tokens_per_video

    g = results["grids"][cfg.encoders[0]][0]
    sc = results["scan"]
    t = sc["timing"]
    plot_accuracy(run, cfg, results)
    plot_loss(run, results)
    kinds = defaultdict(int)
    for kd in results["test"]["kinds"]:
        kinds[kd] += 1
    rows = []
    for b in results["budgets"]:
        k = cfg.temporal_pool if b["pool"] == "temporal" else 1
        p = cfg.spatial_pool if b["pool"] == "spatial" else 1
        frames = math.ceil(math.ceil(cfg.n_frames / k) / b["sample"])
        rows.append([b["label"], frames, (g // p) ** 2, tokens_per_video(cfg.n_frames, (g, g), k, p, b["sample"])])
    tokens = markdown_table(["budget", "frames kept", "tokens per frame", "tokens per video"], rows)
    setup = "\n".join([
        "## Setup", "",
        f"- Clips: {cfg.n_frames} frames of {cfg.size}x{cfg.size} px, {cfg.min_objects}-{cfg.max_objects} moving "
        f"shapes (`paperlab.core.video`); {results['train']['videos']} training clips "
        f"({results['train']['questions']} questions), {results['test']['videos']} held-out clips "
        f"({results['test']['questions']} questions: " + ", ".join(f"{k} {v}" for k, v in kinds.items()) + ").",
        f"- Frozen frame encoders: {', '.join(cfg.encoders)} ({g}x{g} tokens per frame for the first); claims use "
        f"`{cfg.encoders[0]}`.",
        f"- Projectors: Linear (encoder -> Linear -> answer model) vs. Mamba (Linear -> {cfg.mamba_layers} "
        f"{'bidirectional ' if cfg.bidirectional else ''}Mamba layers, Eq. 5, d_state 16, conv 4, expand 2), width "
        f"{cfg.d_model}; answer model: a {cfg.answer_layers}-layer decoder over [visual tokens ; question words] "
        "scoring the choices' words.",
        f"- Each (encoder, projector, pooling) trained from scratch: {cfg.steps} steps of {cfg.batch_videos} clips "
        f"(all their questions), AdamW lr {cfg.lr}, seeds {cfg.train_seeds}. Pooling (k={cfg.temporal_pool}, "
        f"p={cfg.spatial_pool}) is in place during training; test-time sampling s in {cfg.samples} is not.", "",
        "### Tokens per video", "", tokens])
    sections = [
        setup,
        "## Accuracy: projector x token budget\n\nHeld-out accuracy with 95% intervals (Wilson for one seed; seeds x questions bootstrap for several).\n\n"
        + accuracy_table(cfg, results),
        "## Accuracy lost to token reduction\n\nPer projector, the drop from its own full-token model; the last column "
        "is the paired difference on the same questions (> 0: Mamba loses less).\n\n" + drops_table(cfg, results),
        f"## By question kind ({cfg.encoders[0]})\n\n" + kinds_table(cfg, results),
        "## Selective scan: parallel vs. sequential\n\n" + markdown_table(
            ["check", "value"],
            [["max abs output difference, float64", sc["float64"]["max_abs_output"]],
             ["max relative input-gradient difference, float64", sc["float64"]["max_rel_grad"]],
             ["max abs output difference, float32", sc["float32"]["max_abs_output"]],
             ["output scale (max abs)", sc["float64"]["output_scale"]],
             [f"sequential forward+backward at T={t['length']} (s)", t["sequential"]],
             [f"parallel forward+backward at T={t['length']} (s)", t["parallel"]],
             ["time ratio sequential / parallel", t["ratio_sequential_over_parallel"]]])
        + f"\n\nTiming: batch {t['batch']}, d_inner {t['d_inner']}, d_state {t['d_state']}, {t['threads']} threads, "
        "measured inside this run (`benchmarks/storm_scan.py` measures it alone).",
        examples_section(run, cfg, results, test_videos),
    ]
    scale_note = (
        "The paper trains SigLIP + a 7B LLM on millions of video/image-text samples with 32-128 frames of 256 "
        f"tokens; here {cfg.n_frames}-frame {cfg.size}-px synthetic clips, a frozen small encoder ({g}x{g} tokens per "
        f"frame), width {cfg.d_model} and a from-scratch answer model trained for {cfg.steps} steps. Pooled models "
        "are trained with their pooling (as STORM's), without the paper's alignment stage. The claims' intervals "
        "resample training seeds and test questions together (pigeonhole bootstrap); with one seed they count "
        "questions only and understate the spread between trainings, which at this scale is large. "
        "The bidirectional merge (Vim v2, outputs summed) and the number of Mamba layers are our choices; the "
        "paper states neither.")
    run.finish(claims=claims, results=results, sections=sections, scale_note=scale_note,
               title="STORM: Mamba temporal encoder and token reduction", paper=paper)
