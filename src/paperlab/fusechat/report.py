"""Claims and report of ``paperlab fusechat run``.

Claims (decided on paired bootstrap intervals over the held-out prompts):

- ``dpo_improves_over_sft`` — held-out accuracy of SFT + LN-DPO (same-source pairs, the paper's recipe) minus that of
  the SFT-only model > 0 (the paper: e.g. Llama-3.1-8B average 43.2 -> 47.3 from the DPO stage).
- ``same_source_pairs_better`` — accuracy of the DPO arm on same-source pairs minus the arm on cross-source pairs
  (same SFT start, same number of pairs and steps) > 0 (the paper's argument for intra-source pairs).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from paperlab.core.runs import Claim, Run, claim, markdown_table
from paperlab.core.stats import mean_ci, paired_bootstrap_diff
from paperlab.fusechat.experiment import ARM_NAMES, PAPER, FuseChatConfig
from paperlab.fusechat.imf import IMFData, Response, gap_statistics


def _diff(evals: dict, a: str, b: str, key: str, cfg: FuseChatConfig):
    return paired_bootstrap_diff(evals[a][key], evals[b][key], n_boot=cfg.n_boot, seed=cfg.seed)


def make_claims(cfg: FuseChatConfig, evals: dict) -> list[Claim]:
    claims = []
    if "dpo_same" in evals and "sft" in evals:
        acc = _diff(evals, "dpo_same", "sft", "correct", cfg)
        rew = _diff(evals, "dpo_same", "sft", "reward", cfg)
        claims.append(claim("dpo_improves_over_sft", "The length-normalised DPO stage raises held-out accuracy over "
                            "the SFT-only model (difference of exact accuracy, paired over held-out prompts)", acc,
                            expect="greater", reward_difference=rew.as_dict(),
                            accuracy_sft=float(evals["sft"]["correct"].mean()),
                            accuracy_dpo=float(evals["dpo_same"]["correct"].mean())))
    if "dpo_same" in evals and "dpo_cross" in evals:
        acc = _diff(evals, "dpo_same", "dpo_cross", "correct", cfg)
        rew = _diff(evals, "dpo_same", "dpo_cross", "reward", cfg)
        claims.append(claim("same_source_pairs_better", "DPO on same-source pairs beats DPO on cross-source pairs "
                            "(held-out accuracy difference, same SFT start, equal pairs and steps)", acc,
                            expect="greater", reward_difference=rew.as_dict(),
                            accuracy_cross=float(evals["dpo_cross"]["correct"].mean()),
                            accuracy_same=float(evals["dpo_same"]["correct"].mean())))
    return claims


def _fmt_window(w) -> str:
    return "none" if w is None else f"[{w[0]:g}, {w[1]:g}]"


def scale_note(cfg: FuseChatConfig) -> str:
    srcs = ", ".join(f"`{s.name}` ({s.spec}, T {s.temperature:g}, top-p {s.top_p:g}"
                     + (f", rep. {s.repetition_penalty:g}" if s.repetition_penalty != 1 else "") + ")"
                     for s in cfg.sources)
    return (
        f"- **Sources.** The paper samples four 27B-123B LLMs (Gemma-2-27B, Mistral-Large-2407, Qwen-2.5-72B, "
        f"Llama-3.1-70B). Offline there is one real LM, so the sources here are {srcs}: the same model under "
        "different system prompts and the paper's two sampling settings. Their answer styles differ (which is what "
        "makes cross-source pairs differ in style), their knowledge does not.\n"
        f"- **Task.** {cfg.task} problems with exact answers ({cfg.train_prompts} construction prompts, "
        f"{cfg.eval_prompts} held-out), not the paper's 158k mixed prompts (UltraFeedback, Magpie, HelpSteer2, "
        "OpenMathInstruct-2, code, Chinese). The math rule applies: SFT = correct response with the highest reward, "
        "pair = correct with the highest reward vs. incorrect with the lowest, from the same source.\n"
        f"- **Reward model.** ArmoRM-Llama3-8B is not available offline; the reward is `{cfg.judge}`'s judgement "
        "P(Yes)/(P(Yes)+P(No)) to \"Is the response a correct and helpful answer?\" (first token, top-20 "
        "log-probabilities). A 135M judge is weak: it mostly orders responses by style, and the RM-gap window "
        f"{_fmt_window(cfg.window)} (the paper's, in ArmoRM units) is applied to it unchanged.\n"
        f"- **Target.** `{cfg.student}` with LoRA (r {cfg.sft.lora_r}) instead of full fine-tuning of 1B-9B models; "
        f"SFT {cfg.sft.steps} steps (lr {cfg.sft.lr:g}), DPO {cfg.dpo.steps} steps per arm (lr {cfg.dpo.lr:g}, "
        f"beta {cfg.beta:g}, TRL loss `{cfg.loss_type}`) with batch {cfg.dpo.batch_size}, against the paper's 3 SFT "
        "epochs and 1 DPO epoch at batch 128 with lr 5e-6 / 8e-7 (LoRA needs a larger learning rate).\n"
        "- **Evaluation.** Greedy answers to held-out problems, exact accuracy; the paper reports 14 benchmarks "
        "(AlpacaEval-2, Arena-Hard, MATH, GSM8K, ...). With tens of prompts only large effects can be resolved: "
        f"over {cfg.eval_prompts} held-out prompts a paired accuracy difference needs roughly 0.1-0.2 to leave "
        "zero outside its interval, and the two DPO arms train on at most a few dozen pairs for a few dozen steps, "
        "so an *inconclusive* verdict here says the effect is below what this scale can see, not that it is absent.\n"
        "- **Loss.** TRL's `sigmoid_norm` DPO loss is the paper's length-normalised DPO (a test holds TRL's trainer "
        "loss to the formula on a real batch); the reference model is the SFT model (LoRA adapter disabled).")


def _source_table(cfg: FuseChatConfig, responses: list[Response]) -> str:
    rows = []
    for s in cfg.sources:
        rs = [r for r in responses if r.source == s.name]
        acc = mean_ci([float(r.correct) for r in rs if r.correct is not None], bounds=(0, 1))
        rew = [r.reward for r in rs if math.isfinite(r.reward)]
        ntok = np.mean([len(r.text.split()) for r in rs]) if rs else float("nan")
        rows.append([s.name, len(rs), f"{acc.value:.3f} [{acc.lo:.3f}, {acc.hi:.3f}]",
                     float(np.mean(rew)) if rew else float("nan"), float(ntok),
                     sum(r.truncated for r in rs)])
    return markdown_table(["source", "responses", "accuracy [95% CI]", "mean reward", "mean words", "truncated"],
                          rows)


def _data_table(data: IMFData, window) -> tuple[str, dict]:
    stats = {k: gap_statistics(v, window) for k, v in data.candidate_gaps.items()}
    c = data.counts
    rows = [["SFT prompts", c["sft_prompts"]], ["SFT examples kept (a correct response exists)", c["sft_kept"]],
            ["DPO prompts", c["dpo_prompts"]], ["DPO prompts with no same-source candidate", c["dpo_no_candidate"]],
            ["same-source pairs kept (window)", c["same_kept"]], ["cross-source pairs kept (window)", c["cross_kept"]]]
    from collections import Counter

    by_src = Counter(p.chosen.source for p in data.same)
    rows.append(["same-source pairs by source", ", ".join(f"{k}: {v}" for k, v in sorted(by_src.items())) or "none"])
    cross = Counter(f"{p.chosen.source}>{p.rejected.source}" for p in data.cross)
    rows.append(["cross-source pairs (chosen>rejected source)",
                 ", ".join(f"{k}: {v}" for k, v in sorted(cross.items())) or "none"])
    table = markdown_table(["quantity", "count"], rows)
    gap_rows = [[k, s.get("n", 0), s.get("min"), s.get("median"), s.get("max"), s.get("negative"),
                 s.get("in_window")] for k, s in stats.items()]
    table += "\n\nRM gap r(chosen) - r(rejected) of every candidate pair before the window:\n\n" + markdown_table(
        ["pairs", "candidates", "min", "median", "max", "negative", "in window"], gap_rows)
    return table, stats


def _eval_table(evals: dict) -> str:
    rows = []
    for arm, e in evals.items():
        acc = mean_ci(e["correct"], bounds=(0, 1))
        rew = mean_ci(e["reward"])
        rows.append([ARM_NAMES[arm], f"{acc.value:.3f} [{acc.lo:.3f}, {acc.hi:.3f}]",
                     f"{rew.value:.3f} [{rew.lo:.3f}, {rew.hi:.3f}]",
                     float(np.mean([len(a.split()) for a in e["answers"]]))])
    return markdown_table(["model", "held-out accuracy [95% CI]", "judge reward [95% CI]", "mean words"], rows)


def _log_table(logs: dict) -> str:
    rows = []
    for stage, log in logs.items():
        if isinstance(log, str) or not log:
            rows.append([stage, str(log), "", "", ""])
            continue
        first, last = log[0], log[-1]
        rows.append([stage, len(log), first.get("loss"), last.get("loss"), last.get("rewards/margins", "")])
    return markdown_table(["stage", "steps logged", "first loss", "last loss", "last reward margin"], rows)


def _plots(run: Run, cfg: FuseChatConfig, data: IMFData, evals: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, gaps in data.candidate_gaps.items():
        if gaps:
            ax.hist(gaps, bins=max(1, min(30, len(set(gaps)))), alpha=0.55, label=f"{k}-source candidates (n={len(gaps)})")
    if cfg.window is not None:
        for x in cfg.window:
            ax.axvline(x, color="k", ls="--", lw=1)
    ax.set_xlabel("RM gap r(chosen) - r(rejected)")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    run.savefig(fig, "gap_distribution", "RM gaps of candidate DPO pairs before the window (dashed: the window)")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    arms = list(evals)
    accs = [mean_ci(evals[a]["correct"], bounds=(0, 1)) for a in arms]
    ax.bar(range(len(arms)), [e.value for e in accs],
           yerr=[[e.value - e.lo for e in accs], [e.hi - e.value for e in accs]], capsize=4, color="tab:blue")
    ax.set_xticks(range(len(arms)), [ARM_NAMES[a].replace(", ", ",\n") for a in arms], fontsize=7)
    ax.set_ylabel("held-out accuracy")
    run.savefig(fig, "heldout_accuracy", "Held-out exact accuracy per model (95% CI)")


def write_report(cfg: FuseChatConfig, run: Run, claims: list[Claim], responses: list[Response], data: IMFData,
                 logs: dict, evals: dict, timings: dict) -> Any:
    data_md, gap_stats = _data_table(data, cfg.window)
    _plots(run, cfg, data, evals)
    results = {"counts": data.counts, "gap_statistics": gap_stats, "timings_s": timings, "training": logs,
               "held_out": {arm: {"accuracy": float(e["correct"].mean()), "reward": float(np.nanmean(e["reward"]))
                                  if np.isfinite(e["reward"]).any() else None, "n": int(e["correct"].size)}
                            for arm, e in evals.items()}}
    sections = [
        "## Sources (construction prompts)\n\n" + _source_table(cfg, responses),
        "## IMF data: SFT set and DPO pairs\n\n" + data_md + "\n\nThe DPO arms are cut to the same number of pairs "
        "(pairs of prompts that have both kinds first); files: `sft.jsonl`, `dpo.jsonl` (same-source), "
        "`dpo_cross.jsonl` (TRL formats).",
        "## Training\n\n" + _log_table(logs),
        "## Held-out evaluation\n\n" + _eval_table(evals) + "\n\nAccuracy is exact (final number vs. the gold "
        "answer). The judge reward is the same judge whose scores chose the pairs (chosen above rejected inside the "
        "window), so DPO can raise it by following the judge's preferences; accuracy is the claims' evidence.",
    ]
    run.finish(claims, results, sections, scale_note(cfg), title="FuseChat-3.0: implicit model fusion (SFT + "
               "length-normalised DPO)", paper=PAPER)
    return run.dir
