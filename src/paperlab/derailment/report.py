"""Claims, report sections and plots of ``paperlab derailment run`` (numbers from :mod:`.experiment`).

Units of the intervals: held-out threads (P/R/F1 and their paired difference: percentile bootstrap;
AUROC: stratified bootstrap); threads of each group (marker rates: independent bootstraps within the
derailed and the non-toxic group); threads (early warning: Wilson intervals, Newcombe's for the
difference of the warned and the false-alarm shares).
"""

from __future__ import annotations

import numpy as np

from paperlab.core.runs import Claim, Run, claim, claim_of_parts, markdown_table
from paperlab.core.stats import Estimate, independent_bootstrap_diff
from paperlab.derailment.experiment import PAPER_LTM, DerailmentConfig
from paperlab.derailment.features import KEY_MARKERS

MARKER_NAMES = {"second_person": "second-person pronouns", "negation": "negations",
                "frustration": "bitter-frustration lexicon", "impatience": "impatience lexicon"}


def _est(d: dict | Estimate) -> Estimate:
    if isinstance(d, Estimate):
        return d
    nan = float("nan")
    return Estimate(*(nan if d[k] is None else d[k] for k in ("value", "lo", "hi")), d["n"], d["method"],
                    d.get("confidence", 0.95))


# ---------------------------------------------------------------------------------------------- claims


def make_claims(cfg: DerailmentConfig, results: dict) -> list[Claim]:
    claims = [markers_claim(cfg, results)]
    if "llm" in results:
        claims.append(f1_claim(cfg, results))
    claims.append(early_warning_claim(cfg, results))
    return claims


def markers_claim(cfg: DerailmentConfig, results: dict) -> Claim:
    per = results["markers"]["per_thread"]
    parts = {MARKER_NAMES[k]: (independent_bootstrap_diff(per[k]["derailed"], per[k]["non_toxic"], cfg.n_boot, cfg.seed),
                               {"expect": "greater"}) for k in KEY_MARKERS}
    return claim_of_parts(
        "markers_precede_toxicity",
        "Before the first toxic comment, derailed conversations use more second-person pronouns, negations, "
        "bitter-frustration and impatience words (our lexicons) than non-toxic conversations (rate per 100 words, "
        "per thread)",
        parts, n_derailed=len(per["second_person"]["derailed"]), n_non_toxic=len(per["second_person"]["non_toxic"]))


def f1_claim(cfg: DerailmentConfig, results: dict) -> Claim:
    llm = results["llm"]
    main = llm["prompts"][cfg.prompt][cfg.probability]
    return claim(
        "llm_pipeline_f1_vs_features",
        f"The SCD pipeline ({cfg.prompt} summary -> probability, {cfg.model}) predicts derailment from the comments "
        "before the first toxic one with a higher F1 than the linguistic/dynamics feature baseline "
        "(same held-out threads, threshold 0.5)",
        _est(llm["f1_difference"]), expect="greater",
        llm_f1=main["estimates"]["f1"]["value"], features_f1=llm["features_estimates"]["f1"]["value"],
        llm_auroc=main["estimates"]["auroc"]["value"], features_auroc=llm["features_estimates"]["auroc"]["value"],
        readable=f"{main['readable']}/{len(llm['y'])}", toxic=f"{sum(llm['y'])}/{len(llm['y'])}",
        paper_ltm_f1=PAPER_LTM["f1"])


def early_warning_claim(cfg: DerailmentConfig, results: dict) -> Claim:
    ew = results["early_warning"]
    parts = {"features: warned - false alarms": (_est(ew["features"]["difference"]), {"expect": "greater"})}
    if "llm" in ew:
        parts["LLM: warned - false alarms"] = (_est(ew["llm"]["difference"]), {"expect": "greater"})
    values = {f"{m}_warned": f"{ew[m]['k_warned']}/{ew[m]['n_toxic']}" for m in ("features", "llm") if m in ew}
    values |= {f"{m}_false_alarm": f"{ew[m]['k_false_alarm']}/{ew[m]['n_clean']}" for m in ("features", "llm")
               if m in ew}
    return claim_of_parts(
        "early_warning",
        "Scored after every comment, the alarm fires at least one comment before the first toxic comment in a "
        "larger share of toxic threads than it fires at all in non-toxic threads",
        parts, **values)


# ---------------------------------------------------------------------------------------------- report


def _ci(d: dict | Estimate) -> str:
    if isinstance(d, Estimate):
        d = d.as_dict()
    if d.get("value") is None:
        return "–"
    lo, hi = d.get("lo"), d.get("hi")
    iv = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    return f"{d['value']:.3f}{iv}"


def _prf_row(name: str, est: dict, extra: list | None = None) -> list:
    return [name, *(_ci(est[k]) for k in ("precision", "recall", "f1", "auroc")), *(extra or [])]


def setup_section(cfg: DerailmentConfig, results: dict) -> str:
    s = results["split"]
    rows = [[k, v["train"], v["test"]] for k, v in s.items()]
    fb = results["features"]
    lc = fb["length_only"]
    return "\n".join([
        "## Setup", "",
        "Threads = GitHub issue conversations (release `beacf36` of the replication package). The input of every "
        "predictor is the thread's prefix: the comments before the first toxic one (the whole thread when it is "
        "non-toxic); label 1 = the thread turns toxic. Held-out split by conversation, seeded "
        f"(seed {cfg.seed}, {cfg.test_fraction:.0%} of each kind held out):", "",
        markdown_table(["kind", "train", "held-out"], rows), "",
        f"Contributor-vs-outsider features used by the classifier: **{fb['association_features']}** "
        "(`author_association` is missing from the derailed file, so with `auto` they are left out: they would "
        "reveal the file, i.e. the label).", "",
        f"Length control: the prefix length alone separates the held-out classes with AUROC "
        f"{_ci(lc['auroc_shorter_is_toxic'])} (mean {lc['mean_prefix_toxic']:.1f} comments before the toxic "
        f"one vs. {lc['mean_prefix_non_toxic']:.1f} comments in non-toxic threads): toxic prefixes stop before the "
        "toxic comment while non-toxic threads run to their end, as in the paper's setup; both predictors see it.",
    ])


def markers_section(results: dict, cfg: DerailmentConfig) -> str:
    m = results["markers"]
    rows = []
    for k in KEY_MARKERS:
        d, c = m["per_thread"][k]["derailed"], m["per_thread"][k]["non_toxic"]
        diff = independent_bootstrap_diff(d, c, cfg.n_boot, cfg.seed)
        rows.append([MARKER_NAMES[k], f"{np.nanmean(d):.2f}", f"{np.nanmean(c):.2f}",
                     f"{diff.value:+.2f} [{diff.lo:+.2f}, {diff.hi:+.2f}]"])
    lex = m["lexicon_check"]
    lrows = [[tone, v["annotated"], v["comments"], f"{v['precision']:.2f}", f"{v['recall']:.2f}",
              f"{v['base_rate']:.3f}", _ci(v["auroc"])] for tone, v in lex.items()]
    a = m["association"]
    return "\n".join([
        "## Markers before the first toxic comment (Section 4)", "",
        "Rate per 100 words of prose (code, URLs and quotes removed), one value per thread:", "",
        markdown_table(["marker", "derailed prefixes", "non-toxic threads", "difference [95% CI]"], rows), "",
        "Our tone lexicons against the annotated tones (`tbdf`) of every comment in the two toxic files "
        "(a comment is flagged when it has at least one lexicon hit):", "",
        markdown_table(["tone", "annotated", "comments", "precision", "recall", "base rate", "AUROC of hit count"],
                       lrows), "",
        f"Contributor vs. outsider (only where `author_association` is known: {a['toxic']} non-derailed toxic and "
        f"{a['non_toxic']} non-toxic threads): outsiders write {a['outsider_share_prefix_toxic']:.2f} of the turns "
        f"before toxicity vs. {a['outsider_share_non_toxic']:.2f} of the turns of non-toxic threads, and "
        f"{a['outsider_share_of_toxic_comments']:.2f} of the toxic comments (vs. "
        f"{a['outsider_share_of_all_comments']:.2f} of all comments).",
    ])


def features_section(results: dict, cfg: DerailmentConfig) -> str:
    fb = results["features"]
    best = max(fb["sweep"], key=lambda r: r["f1"])
    coefs = sorted(fb["coefficients"].items(), key=lambda kv: -abs(kv[1]))[:8]
    return "\n".join([
        "## Feature baseline on every held-out thread", "",
        markdown_table(["predictor", "precision", "recall", "F1", "AUROC"],
                       [_prf_row(f"features, threshold {cfg.threshold}", fb["estimates"])]), "",
        f"Best threshold of the sweep: {best['threshold']} (F1 {best['f1']:.3f}; chosen on the test threads, "
        "so optimistic). Largest standardised weights (log-odds per SD): "
        + ", ".join(f"{k} {v:+.2f}" for k, v in coefs) + ".",
    ])


def llm_section(results: dict, cfg: DerailmentConfig) -> str:
    llm = results.get("llm")
    if not llm:
        return "## SCD pipeline\n\nNot run (`--model none`)."
    n, pos = len(llm["y"]), sum(llm["y"])
    rows = [_prf_row("features (same threads)", llm["features_estimates"], ["–", "–"])]
    for prompt, res in llm["prompts"].items():
        for how in [h for h in ("yes_no", "stated") if h in res]:
            r = res[how]
            rows.append(_prf_row(f"SCD {prompt}, p read as {how}", r["estimates"],
                                 [f"{r['readable']}/{n}", r["distinct_probabilities"]]))
    sweep_rows = []
    main = llm["prompts"][cfg.prompt][cfg.probability]
    for r in main["sweep"][1::2]:
        sweep_rows.append([r["threshold"], f"{r['precision']:.2f}", f"{r['recall']:.2f}", f"{r['f1']:.2f}",
                           f"{r['alarm_rate']:.2f}"])
    return "\n".join([
        "## SCD pipeline (Section 5)", "",
        f"{n} held-out threads ({pos} toxic), seeded subsample; model `{cfg.model}`, summaries of at most "
        f"{cfg.summary_tokens} tokens (truncated: {llm['prompts'][cfg.prompt]['truncated_summaries']}), greedy. "
        f"Paper (stored results, llama3.1:70b, LtM, 822 threads): P {PAPER_LTM['precision']} / R "
        f"{PAPER_LTM['recall']} / F1 {PAPER_LTM['f1']}.", "",
        markdown_table(["predictor", "precision", "recall", "F1", "AUROC", "readable", "distinct p"], rows), "",
        f"F1 difference (SCD {cfg.prompt}/{cfg.probability} - features), paired bootstrap: "
        f"{_ci(llm['f1_difference'])}.", "",
        f"Threshold sweep of SCD {cfg.prompt}/{cfg.probability}:", "",
        markdown_table(["threshold", "precision", "recall", "F1", "alarm rate"], sweep_rows),
    ])


def early_warning_section(results: dict, cfg: DerailmentConfig) -> str:
    ew = results["early_warning"]
    rows = []
    for name, key in (("features (trained on every prefix), all held-out threads", "features"),
                      ("features (whole-prefix model, control), all held-out threads", "features_whole_prefix_model"),
                      ("LLM", "llm"), ("features (every prefix), the LLM's threads and prefixes",
                                      "features_on_llm_threads")):
        if key not in ew:
            continue
        e = ew[key]
        rows.append([name, f"{e['k_warned']}/{e['n_toxic']}", _ci(e["warned"]),
                     f"{e['k_false_alarm']}/{e['n_clean']}", _ci(e["false_alarm"]), _ci(e["difference"]),
                     _ci(e["max_prob_auroc"]), ", ".join(f"{k}: {v}" for k, v in e["lead_distribution"].items())])
    return "\n".join([
        "## Early warning (prefix-wise prediction)", "",
        f"A toxic thread is scored after each comment before its first toxic one; it is *warned* when the alarm "
        f"(p >= {cfg.threshold}) fires at least one comment before the toxic one. A non-toxic thread is scored "
        f"after each comment; any alarm is false. Lead = how many comments before the toxic one the alarm first "
        f"fires. The LLM scores only the last {cfg.max_prefixes} prefixes of each thread (longer leads are not "
        "observed).", "",
        markdown_table(["predictor", "warned", "warned share", "false alarms", "false-alarm share",
                        "difference", "AUROC of max p", "lead distribution (comments: threads)"], rows), "",
        "*AUROC of max p*: each thread's highest prefix probability as a threshold-free early-warning score. "
        "The plot `early_warning_curve.png` shows warned vs. false-alarm shares over thresholds.",
    ])


def examples_section(results: dict, cfg: DerailmentConfig, run: Run) -> str:
    rows = run.read(f"llm_{cfg.prompt}_{cfg.probability}") if "llm" in results else []
    if not rows:
        return ""
    picks = [r for r in rows if r["label"]][:1] + [r for r in rows if not r["label"]][:1]
    lines = ["## Example summaries", ""]
    for r in picks:
        lines += [f"- `{r['id']}` (toxic: {r['label']}, p = {r['probability']:.2f}): "
                  + r["summary"][:500].replace("\n", " "), ""]
    return "\n".join(lines)


def _lead_bin(lead: str) -> str:
    if lead == "none":
        return "none"
    k = int(lead)
    return str(k) if k <= 3 else "4-5" if k <= 5 else "6-10" if k <= 10 else ">10"


def plots(run: Run, cfg: DerailmentConfig, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    sweeps = [("features (all held-out)", results["features"]["sweep"])]
    if "llm" in results:
        for prompt, res in results["llm"]["prompts"].items():
            for how in [h for h in ("yes_no", "stated") if h in res]:
                sweeps.append((f"SCD {prompt} / {how}", res[how]["sweep"]))
    for name, sw in sweeps:
        ax.plot([r["threshold"] for r in sw], [r["f1"] for r in sw], marker=".", label=name)
    ax.axvline(cfg.threshold, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="alarm threshold", ylabel="F1 (toxic class)", ylim=(0, 1))
    ax.legend(fontsize=8)
    run.savefig(fig, "threshold_sweep", "F1 against the alarm threshold (dashed: 0.5, as in the stored results)")

    m = results["markers"]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    for ax, k in zip(axes, KEY_MARKERS, strict=True):
        pos = m["by_position"][k]
        xs = sorted(int(b) for b in pos)
        ax.plot(xs, [pos[b] if b in pos else pos[str(b)] for b in xs], marker="o", label="derailed")
        ax.axhline(m["non_toxic_mean"][k], color="grey", ls="--", label="non-toxic mean")
        ax.set(title=MARKER_NAMES[k], xlabel="comments before the toxic one")
        ax.invert_xaxis()
    axes[0].set_ylabel("per 100 words")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    run.savefig(fig, "markers_by_position", "Marker rates in the comments leading up to the first toxic comment")

    ew = results["early_warning"]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for key in ("features", "features_whole_prefix_model", "llm"):
        if key in ew:
            c = ew[key]["curve"]
            ax.plot([r["false_alarm"] for r in c], [r["warned"] for r in c], marker=".", label=key)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="false-alarm share (non-toxic threads)", ylabel="warned share (toxic threads)")
    ax.legend(fontsize=7)
    run.savefig(fig, "early_warning_curve", "Early warning over thresholds: warned vs. false-alarm shares")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = ["1", "2", "3", "4-5", "6-10", ">10", "none"]
    width = 0.4
    for j, key in enumerate(k for k in ("features", "llm") if k in ew):
        counts = dict.fromkeys(bins, 0)
        for lead, n in ew[key]["lead_distribution"].items():
            counts[_lead_bin(lead)] += n
        ax.bar(np.arange(len(bins)) + j * width, [counts[b] / ew[key]["n_toxic"] for b in bins], width, label=key)
    ax.set_xticks(np.arange(len(bins)) + width / 2, bins)
    ax.set(xlabel="lead: comments before the first toxic one when the alarm fires", ylabel="share of toxic threads")
    ax.legend(fontsize=8)
    run.savefig(fig, "early_warning", "When the alarm first fires on toxic threads ('none': never)")


SCALE_NOTE = """\
- Data: the earlier public release (120 derailed + 64 non-derailed toxic + 731 non-toxic threads), not the
  final 202 + 696; no annotated derailment points; `author_association` missing for derailed threads.
- Model: the paper's pipeline ran llama3.1:70b (8k context); the default here is SmolLM2-135M-Instruct (4k
  context, transcripts cut to the latest comments). Any backend runs the same pipeline (`--model`).
- The paper reads a stated probability; with a 135M model the default reads P(yes)/(P(yes)+P(no)) from
  log-probabilities; both readers are reported on the same summaries.
- The quick tier gives the LLM a seeded subsample of 16 held-out threads (half toxic, against the natural 20 %),
  the compact least-to-most prompt (the same seven steps without the category definitions), short transcripts
  (160 characters a comment, 800 in all), 48-token summaries, and prefix-wise LLM scoring on 4 threads: the
  135M model reads prompts at about 40 tokens/s on this machine's llama.cpp build. Its intervals are very wide;
  the default tier gives the LLM every held-out thread with the full prompt (and the plain SCD prompt).
"""


def write_report(run: Run, cfg: DerailmentConfig, results: dict, claims: list[Claim], paper: str) -> None:
    plots(run, cfg, results)
    sections = [setup_section(cfg, results), markers_section(results, cfg), features_section(results, cfg),
                llm_section(results, cfg), early_warning_section(results, cfg), examples_section(results, cfg, run)]
    slim = {k: v for k, v in results.items() if k != "early_warning"}
    slim["early_warning"] = {k: {kk: vv for kk, vv in v.items() if kk != "records"} if isinstance(v, dict) else v
                             for k, v in results["early_warning"].items()}
    run.finish(claims=claims, results=slim, sections=sections, scale_note=SCALE_NOTE,
               title="Derailment in toxic GitHub conversations", paper=paper)
    # prefix-wise scores, one record per thread (large; kept out of results.json)
    import json

    with open(run.path("early_warning_scores.jsonl"), "w", encoding="utf-8") as f:
        for key in ("features", "llm"):
            for r in results["early_warning"].get(key, {}).get("records", []):
                f.write(json.dumps({"predictor": key, **r}) + "\n")
