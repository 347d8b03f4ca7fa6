"""Claims, report sections and plots of ``paperlab ifir run`` (numbers from :mod:`.experiment`).

Units of the intervals: claims (queries) for nDCG, Student-t; (claim, level) units for InstFol, one
value per claim and level, Student-t; judged passages for the judge's AUROC (stratified bootstrap).
"""

from __future__ import annotations

import math

import numpy as np

from paperlab.core.runs import Claim, claim, claim_of_parts, markdown_table
from paperlab.core.stats import Estimate, auroc_ci, exact, mean_ci, paired_bootstrap_diff
from paperlab.ifir.instructions import LEVELS
from paperlab.ifir.ndcg import signature


def _mean(x) -> float:
    a = [v for v in x if v is not None and math.isfinite(v)]
    return float(np.mean(a)) if a else float("nan")


def identity_estimate(results: dict) -> tuple[Estimate, int]:
    """max over runs and queries of |our nDCG - ir-measures'| (an identity: exact)."""
    runs = list(results["standard"].values()) + ([results["reference"]] if results.get("reference") else [])
    diffs = [abs(s["ours"][q] - s["ir_measures"][q]) for s in runs for q in s["ours"]]
    return exact(max(diffs) if diffs else float("nan")), len(diffs)


def instfol_estimates(results: dict) -> dict[tuple[str, int], Estimate]:
    out = {}
    for r in sorted({x["retriever"] for x in results["instfol"]}):
        for level in LEVELS:
            vals = [x["instfol"] for x in results["instfol"] if x["retriever"] == r and x["level"] == level]
            if vals:
                out[(r, level)] = mean_ci(vals)
    return out


def judge_auroc(results: dict, n_boot: int) -> Estimate:
    """Do the judge's scores separate gold passages from the others (pooled over all judged lists)?"""
    y, s = [], []
    for x in results["instfol"]:
        for scores, gold in ((x["plain_scores"], x["plain_gold"]), (x["inst_scores"], x["inst_gold"])):
            for sc, g in zip(scores, gold, strict=True):
                if sc >= 0:
                    y.append(int(g))
                    s.append(sc)
    return auroc_ci(y, s, n_boot=n_boot)


def make_claims(cfg, results: dict) -> list[Claim]:
    ident, n_pairs = identity_estimate(results)
    bm25 = results.get("reference")
    parts = {"max |ours - ir-measures| over every run and query": (ident, {"expect": "within", "null": 0.0,
                                                                        "margin": cfg.identity_tol})}
    values = {"query_run_pairs": n_pairs}
    if bm25 is not None:
        est = mean_ci(list(bm25["ours"].values()), bounds=(0, 1))
        lo, hi = cfg.reference_ndcg - cfg.reference_margin, cfg.reference_ndcg + cfg.reference_margin
        parts[f"BM25 nDCG@{cfg.ndcg_k} vs BEIR {cfg.reference_ndcg}"] = (est, (lo, hi))
        values |= {"bm25_ifir_variant": _mean(bm25["ifir_variant"].values()), "bm25_signature": bm25["signature"],
                   "bm25_claims": len(bm25["ours"])}
    claims = [claim_of_parts(
        "ndcg_matches_reference",
        f"Our nDCG@{cfg.ndcg_k} equals ir-measures' (pytrec_eval) on the same run files, and BM25 on SciFact's "
        f"test claims lands within ±{cfg.reference_margin} of BEIR's published {cfg.reference_ndcg}",
        parts, **values)]
    est = instfol_estimates(results)
    if est:
        claims.append(claim(
            "instfol_reported",
            f"InstFol@{cfg.instfol_k} (judge {cfg.judge}) per retriever and instruction level: the instructed "
            "query's top-k follows the instruction better than the plain query's (InstFol > 0)",
            {f"{r} L{lv}": e for (r, lv), e in est.items()}, expect="greater",
            judge=cfg.judge, units=len(results["instfol"])))
        au = judge_auroc(results, cfg.n_boot)
        claims.append(claim(
            "judge_separates_gold",
            "The judge's G-Eval scores rank the unit's gold passages above the other judged passages "
            "(AUROC > 0.5): a precondition for reading InstFol as instruction following",
            au, expect="greater", null=0.5))
    return claims


# ---------------------------------------------------------------------------------------------- report


def instructed_table(cfg, results: dict) -> tuple[str, dict]:
    rows, summary = [], {}
    for name, units in results["instructed"].items():
        for level in LEVELS:
            us = [u for u in units if u["level"] == level]
            if not us:
                continue
            d = paired_bootstrap_diff([u["ndcg_inst"] for u in us], [u["ndcg_plain"] for u in us],
                                      n_boot=cfg.n_boot)
            summary[f"{name} L{level}"] = {"no_inst": _mean(u["ndcg_plain"] for u in us),
                                           "inst": _mean(u["ndcg_inst"] for u in us), "diff": d.as_dict(),
                                           "ifir_no_inst": _mean(u["ifir_plain"] for u in us),
                                           "ifir_inst": _mean(u["ifir_inst"] for u in us), "units": len(us)}
            s = summary[f"{name} L{level}"]
            rows.append([name, level, len(us), s["no_inst"], s["inst"], f"{d.value:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}]",
                         s["ifir_no_inst"], s["ifir_inst"]])
    table = markdown_table(["retriever", "level", "units", f"nDCG@{cfg.ifir_k} no_inst", "inst",
                            "inst - no_inst [95% CI]", "IFIR-code nDCG no_inst", "inst"], rows)
    return table, summary


def write_report(run, cfg, results: dict, claims: list[Claim], paper: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    std_rows = []
    named = [(f"{n} ({results['data']['name']})", s) for n, s in results["standard"].items()]
    if results.get("reference"):
        named.insert(0, ("bm25 (full SciFact, reference)", results["reference"]))
    for name, s in named:
        e = mean_ci(list(s["ours"].values()), bounds=(0, 1))
        std_rows.append([name, len(s["ours"]), f"{e.value:.4f} [{e.lo:.3f}, {e.hi:.3f}]",
                         _mean(s["ir_measures"].values()), _mean(s["ifir_variant"].values()),
                         s["signature"].replace("|", "; ")])
    std = markdown_table(["retriever", "claims", f"nDCG@{cfg.ndcg_k} (ours) [95% CI]", "ir-measures",
                          "IFIR-code variant", "signature"], std_rows)
    inst_table, inst_summary = instructed_table(cfg, results)
    est = instfol_estimates(results)
    if_rows = [[r, lv, e.n, f"{e.value:+.3f} [{e.lo:+.3f}, {e.hi:+.3f}]",
                _mean(np.mean(x["plain_scores"]) for x in results["instfol"] if x["retriever"] == r and x["level"] == lv),
                _mean(np.mean(x["inst_scores"]) for x in results["instfol"] if x["retriever"] == r and x["level"] == lv)]
               for (r, lv), e in est.items()]
    failed = sum(s < 0 for x in results["instfol"] for s in x["plain_scores"] + x["inst_scores"])
    units = results["units"]
    gold_sizes = {lv: _mean(len(u["gold"]) for u in units if u["level"] == lv) for lv in LEVELS}
    example = next((u for u in units if u["level"] == 3), None)
    sections = [
        "## Data and instructions\n\n"
        f"{results['data']['name']}: {results['data']['documents']} abstracts, {results['data']['claims']} test "
        f"claims; {len({u['qid'] for u in units})} claims with labelled evidence give {len(units)} instructed "
        f"units (levels 1-3, built from the claims' metadata with seed {cfg.seed}; see `paperlab.ifir.instructions`). "
        "Mean gold-set size per level: " + ", ".join(f"L{k} {v:.2f}" for k, v in gold_sizes.items()) + "."
        + (f"\n\nExample (claim {example['qid']}, level 3): *{example['query']}* + *{example['instruction']}*"
           if example else ""),
        f"## Standard nDCG@{cfg.ndcg_k} (plain claims)\n\n{std}\n\nMetric: {signature(cfg.ndcg_k)}. The IFIR-code "
        "variant (binary gains, ideal DCG from the retrieved list) is the official `src/utils/metrics.py` nDCG, "
        "shown only to compare with the paper's tables: it ignores the relevant documents a ranking misses.",
        f"## Instructed retrieval (nDCG@{cfg.ifir_k}, the official no_inst vs inst comparison)\n\n{inst_table}\n\n"
        "no_inst ranks the plain claim and scores it against each instruction's gold set; inst ranks "
        "`claim + \" \" + instruction`. The official `src/eval.py` overwrites the plain ranking with the previous "
        "instructed one after a claim's first instruction; here no_inst is the plain ranking for every level.",
        f"## InstFol@{cfg.instfol_k}\n\n"
        + (markdown_table(["retriever", "level", "claims", "InstFol [95% CI]", "mean judge score, plain list",
                           "instructed list"], if_rows) if if_rows else "No units judged.")
        + f"\n\nJudge `{cfg.judge}`, official decoding (temperature 0, top_p 0.7, 10 top log-probs), max_tokens "
        f"{cfg.judge_max_tokens}{', answer stopped after the score' if cfg.judge_early_stop else ''}; "
        f"{failed} failed judge calls (scored -1, positions dropped from both lists). Fixes to the official "
        "evaluation: see `paperlab.ifir.instfol` (plain-list scores kept, 0/0 fallback, whitespace around digit "
        "tokens).",
    ]
    scale = ("The paper judges with gpt-4o-mini, top-20 lists and IFIR's annotated instructions over seven data sets; "
             f"this run judges with `{cfg.judge}` on {cfg.instfol_claims} SciFact claims x 3 levels, top-{cfg.instfol_k}, "
             "with instructions built from SciFact's evidence labels and titles. A 135M judge is close to chance "
             "(see `judge_separates_gold`), so its InstFol says little about the retrievers; with an OpenAI-"
             "compatible endpoint (`--judge openai:<url>#<model>`) the same code runs the paper's judge.")
    _plots(run, plt, results, est, inst_summary, cfg)
    run.finish(claims, results={"standard_summary": {n: {"ours": _mean(s["ours"].values()),
                                                         "ir_measures": _mean(s["ir_measures"].values()),
                                                         "ifir_variant": _mean(s["ifir_variant"].values()),
                                                         "signature": s["signature"]}
                                                     for n, s in results["standard"].items()},
                                "instructed_summary": inst_summary,
                                "instfol_summary": {f"{r} L{lv}": e.as_dict() for (r, lv), e in est.items()},
                                "ndcg_signature": signature(cfg.ndcg_k), "ifir_signature": signature(cfg.ifir_k, "ifir"),
                                **results},
               sections=sections, scale_note=scale, title="IFIR — instruction-following retrieval on SciFact",
               paper=paper)


def _plots(run, plt, results, est, inst_summary, cfg) -> None:
    names = list(results["instructed"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / (1 + len(LEVELS))
    for j, name in enumerate(names):
        plain = _mean(u["ndcg_plain"] for u in results["instructed"][name])
        ax.bar(j - 0.4 + width / 2, plain, width, color="grey", label="no_inst" if j == 0 else None)
        for k, lv in enumerate(LEVELS):
            s = inst_summary.get(f"{name} L{lv}")
            if s:
                ax.bar(j - 0.4 + width * (k + 1.5), s["inst"], width, color=f"C{k}", label=f"inst L{lv}" if j == 0 else None)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(f"nDCG@{cfg.ifir_k}")
    ax.legend(fontsize=8)
    run.savefig(fig, "ndcg_levels", f"nDCG@{cfg.ifir_k} of plain vs instructed queries per level")
    if est:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = [f"{r}\nL{lv}" for r, lv in est]
        vals = [e.value for e in est.values()]
        err = np.array([[e.value - e.lo if math.isfinite(e.lo) else 0 for e in est.values()],
                        [e.hi - e.value if math.isfinite(e.hi) else 0 for e in est.values()]])
        ax.bar(range(len(vals)), vals, yerr=err, capsize=3, color=[f"C{lv - 1}" for _, lv in est])
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(vals)), labels, fontsize=8)
        ax.set_ylabel(f"InstFol@{cfg.instfol_k}")
        run.savefig(fig, "instfol", f"InstFol@{cfg.instfol_k} per retriever and level (95% CI over claims)")
