"""Claims, tables and plots of ``paperlab start run``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from paperlab.core.runs import Claim, Run, claim, claim_of_parts, markdown_table
from paperlab.core.stats import Estimate, exact, paired_bootstrap_diff, wilson

NOT_RUN = "not run"


def _not_run(why: str) -> Estimate:
    return Estimate(float("nan"), float("nan"), float("nan"), 0, f"{NOT_RUN}: {why}")


def by_condition(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["condition"], []).append(r)
    for rs in out.values():
        rs.sort(key=lambda r: r["id"])
    return out


def _paired(rs_a: list[dict], rs_b: list[dict], key: str, n_boot: int, seed: int) -> Estimate:
    a = {r["id"]: float(r[key]) for r in rs_a}
    b = {r["id"]: float(r[key]) for r in rs_b}
    ids = sorted(set(a) & set(b))
    return paired_bootstrap_diff([a[i] for i in ids], [b[i] for i in ids], n_boot=n_boot, seed=seed)


def summary(rs: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rs)
    tools, correct = sum(r["tool_used"] for r in rs), sum(r["correct"] for r in rs)
    return {"n": n, "tool_rate": wilson(tools, n), "accuracy": wilson(correct, n),
            "mean_calls": float(np.mean([r["n_calls"] for r in rs])) if rs else math.nan,
            "ok_call_share": (sum(sum(1 for s in r["steps"] if s["kind"] == "code" and s["meta"].get("ok"))
                                  for r in rs) / max(1, sum(r["n_calls"] for r in rs))),
            "mean_tokens": float(np.mean([r["tokens"] for r in rs])) if rs else math.nan,
            "mean_hints": float(np.mean([r["n_hints"] for r in rs])) if rs else math.nan}


def make_claims(cfg, attacks: list[dict], records: list[dict], rft: dict[str, Any]) -> list[Claim]:
    conds = by_condition(records)
    claims = []
    # hints_raise_tool_use: tool-call rate with the hint minus without, paired over problems
    d = _paired(conds["hint"], conds["none"], "tool_used", cfg.n_boot, cfg.seed)
    extra = {f"tool_rate_{c}": summary(rs)["tool_rate"].value for c, rs in conds.items()}
    extra |= {f"accuracy_{c}": summary(rs)["accuracy"].value for c, rs in conds.items()}
    if "hint_x3" in conds:
        extra["tool_rate_diff_hint_x3_vs_none"] = _paired(conds["hint_x3"], conds["none"], "tool_used",
                                                          cfg.n_boot, cfg.seed).as_dict()
    claims.append(claim("hints_raise_tool_use",
                        "Hint-infer raises the tool-call rate: share of problems with >= 1 executed code call, "
                        "with the hint minus without (paired over problems)", d, expect="greater", **extra))
    # rft_uses_tools_unprompted: after Hint-RFT, the tool-call rate WITHOUT hints exceeds the base model's
    if rft.get("ran") and rft.get("rft") and rft.get("base"):
        d = _paired(rft["rft"], rft["base"], "tool_used", cfg.n_boot, cfg.seed)
        acc = _paired(rft["rft"], rft["base"], "correct", cfg.n_boot, cfg.seed)
        claims.append(claim("rft_uses_tools_unprompted",
                            "After Hint-RFT the model calls the tool without hints more often than the base model "
                            "(tool-call rate, fine-tuned minus base, no hints, paired over problems)", d,
                            expect="greater", accuracy_diff=acc.as_dict(),
                            d_seed_filter=("paper: correct, error-free call, not repetitive"
                                           if rft.get("require_correct", True) else "ABLATION: correctness not required"),
                            kept_examples=sum(r.get("kept", 0) for r in rft["rounds"][-1:])))
    else:
        claims.append(claim("rft_uses_tools_unprompted",
                            "After Hint-RFT the model calls the tool without hints more often than the base model",
                            _not_run(rft.get("why", "")), expect="greater", status=NOT_RUN,
                            why=rft.get("why", "")))
    # sandbox_blocks_all: every attack of the battery blocked or contained, judged on the host
    if attacks:
        parts = {a["attack"]: (exact(1.0 if a["contained"] else 0.0,
                                     "red-team attempt judged on the host (1 = blocked/contained)"), (1.0, 1.0))
                 for a in attacks}
        k = sum(a["contained"] for a in attacks)
        claims.append(claim_of_parts("sandbox_blocks_all",
                                     "Every red-team attempt (secrets, home, writes, network, kill, fork/memory "
                                     "bombs, loops, output flood, ctypes) is blocked or contained, the host survives",
                                     parts, contained=k, attempts=len(attacks),
                                     containment_rate_wilson=wilson(k, len(attacks)).as_dict()))
    else:
        claims.append(claim("sandbox_blocks_all", "Every red-team attempt is blocked or contained",
                            _not_run("red_team=false"), expect="greater", status=NOT_RUN))
    return claims


def _rate_row(name: str, rs: list[dict]) -> list[Any]:
    s = summary(rs)
    tr, acc = s["tool_rate"], s["accuracy"]
    return [name, s["n"], f"{tr.value:.2f} [{tr.lo:.2f}, {tr.hi:.2f}]", f"{acc.value:.2f} [{acc.lo:.2f}, {acc.hi:.2f}]",
            s["mean_calls"], s["ok_call_share"], s["mean_hints"], s["mean_tokens"]]


HEADER = ["condition", "problems", "tool-call rate [95% CI]", "accuracy [95% CI]", "calls/problem",
          "calls without error", "hints/problem", "tokens/problem"]


def _plot(run: Run, conds: dict[str, list[dict]], rft: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = dict(conds)
    if rft.get("ran") and rft.get("rft"):
        groups |= {"base (HF), no hint": rft["base"], "Hint-RFT, no hint": rft["rft"]}
    names = list(groups)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title in ((axes[0], "tool_rate", "tool-call rate"), (axes[1], "accuracy", "accuracy")):
        ests = [summary(groups[n])[key] for n in names]
        x = np.arange(len(names))
        ax.bar(x, [e.value for e in ests], color=["#888" if n == "none" else "#3b7dd8" for n in names])
        ax.errorbar(x, [e.value for e in ests], yerr=[[max(0.0, e.value - e.lo) for e in ests],
                                                    [max(0.0, e.hi - e.value) for e in ests]],
                    fmt="none", ecolor="k", capsize=3)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(f"{title} (95% Wilson CI)")
    fig.tight_layout()
    run.savefig(fig, "tool_use_accuracy", "Tool-call rate and accuracy per condition (bars: 95% Wilson intervals)")


def _example(records: list[dict]) -> str:
    for r in records:
        if r["condition"] != "none" and r["tool_used"] and r["n_hints"]:
            text = "".join(s["text"] for s in r["steps"] if s["kind"] != "code")
            return (f"## Example trajectory ({r['condition']}, {r['id']}, gold {r['gold']}, answer {r['answer']})\n\n"
                    "````text\n" + text[:2500] + ("\n…" if len(text) > 2500 else "") + "\n````")
    return ""


def write(run: Run, cfg, attacks: list[dict], records: list[dict], rft: dict[str, Any], model_id: str,
          seconds: float) -> Path:
    from paperlab.start.answers import checker_name
    from paperlab.start.experiment import PAPER

    conds = by_condition(records)
    claims = make_claims(cfg, attacks, records, rft)
    _plot(run, conds, rft)
    rows = [_rate_row(c, conds[c]) for c in cfg.conditions]
    sections = [
        "## Setup\n\n"
        f"Model `{model_id}`; {cfg.n_problems} `{cfg.problem_set}` problems; instruction `{cfg.instruction}`; "
        f"T {cfg.temperature}, top-p {cfg.top_p}; at most {cfg.max_calls} code calls, {cfg.max_total_tokens} "
        f"tokens and {cfg.max_seconds:g} s per solution; sandbox {cfg.sandbox_cpu_seconds} s CPU / "
        f"{cfg.sandbox_wall_seconds:g} s wall per call. Answer checker: {checker_name()}. "
        "A problem counts as *tool used* when at least one code block closed and ran in the sandbox.",
        "## Hint-infer: tool use and accuracy per condition\n\n" + markdown_table(HEADER, rows) +
        "\n\n`hint`: the verified hint (\"Wait, maybe using Python here is a good idea.\") at the first terminator "
        "and at the end; `hint_xR`: the end hint repeated R times (sequential test-time scaling); "
        "`hint_opener`: the hint followed by a ```` ```python ```` opener (ours, not the paper's; reported apart, "
        "not in the claims).",
    ]
    if attacks:
        sections.append("## Sandbox red team\n\n" + markdown_table(
            ["attack", "outcome", "how the host judged it", "seconds", "stopped by"],
            [[a["attack"], "contained" if a["contained"] else "**BREACH**", a["detail"], a["seconds"],
              a["killed"] or f"exit {a['exit_code']}"] for a in attacks]) +
            "\n\nThe battery is a fixed set of known attacks, not a random sample of all attacks: *holds* means that "
            "every one of them was blocked or contained on this machine, not that the sandbox is proven secure "
            "(see the threat model and what is not covered in `paperlab/start/sandbox.py`).")
    sections.append(_rft_section(rft))
    sections.append(_example(records))
    results = {"conditions": {c: {k: (v.as_dict() if isinstance(v, Estimate) else v)
                                  for k, v in summary(rs).items()} for c, rs in conds.items()},
               "red_team": attacks, "rft": {k: v for k, v in rft.items() if k not in ("base", "rft")},
               "rft_eval": {k: {kk: (vv.as_dict() if isinstance(vv, Estimate) else vv)
                                for kk, vv in summary(rft[k]).items()} for k in ("base", "rft") if rft.get(k)},
               "model": model_id, "answer_checker": checker_name(), "seconds": round(seconds, 1)}
    return run.finish(claims, results, sections, scale_note=SCALE_NOTE, title="START: Self-taught Reasoner with Tools",
                      paper=PAPER)


def _rft_section(rft: dict[str, Any]) -> str:
    if not rft.get("ran"):
        return f"## Hint-RFT\n\nNot run: {rft.get('why', '')}"
    rows = [[r["round"], r["sampled"], r["correct"], r["with_tool"], r["repetitive"], r["kept"],
             r.get("model", "-")] for r in rft["rounds"]]
    text = "## Hint-RFT\n\n"
    if not rft.get("require_correct", True):
        text += ("**Ablation, not the paper's filter:** D_seed kept trajectories with an error-free tool call "
                 "whether or not their answer was correct.\n\n")
    text += markdown_table(
        ["round", "sampled (Hint-infer)", "correct", "with a tool call", "repetitive", "kept (D_seed)", "model"], rows)
    if rft.get("base"):
        text += "\n\nWithout hints, on the evaluation problems (both through transformers):\n\n" + markdown_table(
            HEADER, [_rate_row("base", rft["base"]), _rate_row("Hint-RFT", rft["rft"])])
    return text


SCALE_NOTE = """
- The paper fine-tunes QwQ-32B-Preview (a long-CoT reasoning model) and evaluates GPQA, AMC, AIME,
  LiveCodeBench; here the default model is SmolLM2-135M-Instruct on generated multi-digit arithmetic (or a
  small slice of GSM8K/MATH-500/AMC23/AIME24), where a one-line program is the whole solution. Accuracies are
  low and intervals wide: the question is whether hints change tool use, not the paper's benchmark numbers.
- The tiny model rarely says "Wait"/"Alternatively" and often rambles until its token budget: hints are
  injected at the end of the response or where a segment's budget runs out (`max_tokens_per_segment`), with
  the same total token budget in every condition (a hint never buys extra tokens).
- Hint-RFT runs in the default tier only (quick: reported *inconclusive, not run*): LoRA (peft) on the filtered
  Hint-infer trajectories instead of full fine-tuning; the paper's second self-distillation round is
  `rft_rounds=2`.
- Tool-loop settings are CoRT's (the nearest public START-style loop), not published START values.
"""
