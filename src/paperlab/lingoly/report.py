"""Claims, report sections and plots of ``paperlab lingoly run`` (numbers from :mod:`.experiment`).

Units of the intervals: Problemese word occurrences (round trip, Wilson); problems (sub-question
gaps clustered by problem, percentile bootstrap over the six problems); participants (human arms,
independent percentile bootstrap within each arm).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from paperlab.core.runs import Claim, claim, claim_of_parts, markdown_table
from paperlab.core.stats import Estimate, independent_bootstrap_diff, index_bootstrap, wilson

PAPER_HUMANS = {"M_og": 21.7, "M_obf": 16.0, "gap": 5.7, "ols_fe": -5.8}


# ---------------------------------------------------------------------------------------------- estimates


def gap_table(rows: list[dict], system: str, kinds: tuple[str, ...] = ("fresh",), metric: str = "exact"):
    """Per sub-question (key -> problem, og score, mean obfuscated score) of one system."""
    og: dict[str, float] = {}
    obf: dict[str, list[float]] = defaultdict(list)
    prob: dict[str, str] = {}
    for r in rows:
        if r["system"] != system:
            continue
        prob[r["key"]] = r["problem"]
        if r["kind"] == "original":
            og[r["key"]] = r[metric]
        elif r["kind"] in kinds:
            obf[r["key"]].append(r[metric])
    keys = [k for k in og if obf.get(k)]
    return [(prob[k], og[k], float(np.mean(obf[k]))) for k in keys]


def gap_estimate(table, n_boot: int, seed: int = 0) -> tuple[Estimate, float, float]:
    """M_og - M_obf over sub-questions, percentile bootstrap over problems (clusters)."""
    if not table:
        nan = float("nan")
        return Estimate(nan, nan, nan, 0, "no sub-questions"), nan, nan
    problems = sorted({p for p, _, _ in table})
    d = {p: np.array([o - b for q, o, b in table if q == p]) for p in problems}
    est = index_bootstrap(len(problems), lambda i: float(np.concatenate([d[problems[j]] for j in i]).mean()),
                          n_boot=n_boot, seed=seed)
    est = Estimate(est.value, est.lo, est.hi, len(table),
                   f"{est.method} over {len(problems)} problems (sub-questions clustered by problem)")
    return est, float(np.mean([o for _, o, _ in table])), float(np.mean([b for _, _, b in table]))


def ols_language_fe(rows: list[dict]) -> dict | None:
    """score ~ obfuscated + C(language), HC1 errors (the paper's human model 1), when statsmodels is present."""
    try:
        import pandas as pd
        import statsmodels.formula.api as smf
    except ImportError:
        return None
    df = pd.DataFrame([{"score": r["score"], "obf": int(r["obfuscated"]), "lang": r["language"]} for r in rows])
    fit = smf.ols("score ~ obf + C(lang)", data=df).fit(cov_type="HC1")
    lo, hi = fit.conf_int().loc["obf"]
    return {"coef": float(fit.params["obf"]), "lo": float(lo), "hi": float(hi), "p": float(fit.pvalues["obf"])}


# ---------------------------------------------------------------------------------------------- claims


def make_claims(cfg, results: dict) -> list[Claim]:
    rt = results["roundtrip"]
    rep = results["released_reproduction"]
    held = [r for r in rep if r["regions"] == "held-out"]
    claims = [claim_of_parts(
        "obfuscation_bijective",
        "Obfuscation is a bijection on graphemes: every obfuscated Problemese word changes, and the inverse "
        f"mapping restores its graphemes (lower-cased text, as matched) exactly (both shares > {cfg.roundtrip_null})",
        {"changed": (wilson(rt["changed"], rt["spans"]), {"expect": "greater", "null": cfg.roundtrip_null}),
         "restored": (wilson(rt["restored"] + rt["case_only_failures"], rt["spans"]),
                      {"expect": "greater", "null": cfg.roundtrip_null})},
        mappings=rt["mappings"], bijective_mappings=rt["bijective_mappings"], identity_mappings=rt["identity_mappings"],
        same_seed_same_output=rt["same_seed_same_output"],
        released_words_reproduced_heldout=f"{sum(r['words_equal'] for r in held)}/{sum(r['words'] for r in held)}"),
        claim("case_preserved", "The case rule (upper-case the replacement's first character) makes the round trip "
              f"exact with case too (share > {cfg.roundtrip_null})", wilson(rt["restored"], rt["spans"]),
              expect="greater", null=cfg.roundtrip_null, case_only_failures=rt["case_only_failures"])]

    rows = results["solver_rows"]
    mem, mem_og, mem_obf = gap_estimate(gap_table(rows, "memorising"), cfg.n_boot)
    ind, ind_og, ind_obf = gap_estimate(gap_table(rows, "rule-inducing"), cfg.n_boot, seed=1)
    m = cfg.equivalence_margin
    claims.append(claim_of_parts(
        "memorisation_gap",
        "M_og - M_obf > 0 for a solver that memorised the original problems, and |M_og - M_obf| <= "
        f"{m} for one that induces rules from the sheet (exact match, fresh obfuscations)",
        {"memorising gap": (mem, {"expect": "greater", "null": 0.0}),
         "rule-inducing gap": (ind, (-m, m))},
        memorising_M_og=mem_og, memorising_M_obf=mem_obf, rule_inducing_M_og=ind_og, rule_inducing_M_obf=ind_obf))

    hum = results.get("human_rows") or []
    if hum:
        a = np.array([r["score"] for r in hum if not r["obfuscated"]])
        b = np.array([r["score"] for r in hum if r["obfuscated"]])
        ols = ols_language_fe(hum)
        from scipy.stats import mannwhitneyu

        mw_p = float(mannwhitneyu(a, b, alternative="greater").pvalue)
        claims.append(claim(
            "human_gap", "Humans score lower on obfuscated than on original problems (M_og - M_obf > 0, "
            "exact match 0-100, our scorer)", independent_bootstrap_diff(a, b, cfg.n_boot), expect="greater",
            M_og=float(a.mean()), M_obf=float(b.mean()), paper=PAPER_HUMANS,
            ols_language_fe=ols or "statsmodels not installed", mann_whitney_p_greater=mw_p))

    for spec, res in (results.get("llm") or {}).items():
        est, og, obf = gap_estimate(gap_table(res["rows"], spec), cfg.n_boot, seed=2)
        claims.append(claim(
            f"llm_gap[{spec}]", f"{spec}: M_og - M_obf > 0 (exact match, originals vs. "
            f"{cfg.llm_obfuscations} fresh obfuscation(s) per problem)", est, expect="greater",
            M_og=og, M_obf=obf, replies_scored=len(res["rows"]), worker_exit=res["exitcode"]))
    return claims


# ---------------------------------------------------------------------------------------------- report


def _system_summary(rows: list[dict], system: str) -> list:
    """system, M_og, M_obf over fresh and over released obfuscations (each sub-question's mean over its
    obfuscations, then the mean over sub-questions), mean BLEU and chrF over all rows, rows scored."""
    out: list = [system]
    fresh, released = gap_table(rows, system, ("fresh",)), gap_table(rows, system, ("released",))
    og = [r["exact"] for r in rows if r["system"] == system and r["kind"] == "original"]
    out += [np.mean(og) if og else float("nan"),
            np.mean([b for _, _, b in fresh]) if fresh else float("nan"),
            np.mean([b for _, _, b in released]) if released else float("nan")]
    sel = [r for r in rows if r["system"] == system]
    out += [np.mean([r["bleu"] for r in sel]) if sel else float("nan"),
            np.mean([r["chrf"] for r in sel]) if sel else float("nan"), len(sel)]
    return out


def sections(cfg, results: dict) -> list[str]:
    from paperlab.lingoly.scoring import sacrebleu_signature

    out = []
    issues = results["template_issues"]
    trows = []
    for pid, lst in issues.items():
        kinds = defaultdict(int)
        for i in lst:
            kinds[f"{i['severity']}:{i['kind']}"] += 1
        detail = "; ".join(i["message"] for i in lst if i["kind"] in ("unmapped", "caseless", "overlap", "straddle"))
        trows.append([pid, results["n_versions"][pid], dict(kinds) or "none", detail or "-"])
    out.append("## Templates (derived from the released mappings; see `paperlab.lingoly.templates`)\n\n"
               "Rows = the shortest key segments of the released mappings that both released mappings cyclically "
               "shift; identity entries = fixed terms; Problemese = words changed by a released obfuscation.\n\n"
               + markdown_table(["problem", "fresh obfuscations", "validator issues", "notable"], trows))

    rep = results["released_reproduction"]
    rrows = [[r["problem"], r["obf_num"], r["regions"], f"{r['fields_equal']}/{r['fields']}",
              f"{r['words_equal']}/{r['words']}"] for r in rep]
    out.append("## Released obfuscations reproduced by our scanner\n\nEach released mapping applied with our "
               "NFD / longest-match / case-restoring scanner to the original, compared (after NFD) with the "
               "released obfuscated text. *held-out*: the Problemese words were taken from the *other* released "
               "obfuscation only, so the text compared was not used to choose the regions.\n\n"
               + markdown_table(["problem", "obf_num", "regions", "fields equal", "words equal"], rrows))

    rt = results["roundtrip"]
    out.append("## Round trip of the fresh obfuscations\n\n" + markdown_table(
        ["Problemese spans", "changed", "restored exactly", "failures differing only in case", "mappings",
         "bijective", "identity", "same seed, same output"],
        [[rt["spans"], rt["changed"], rt["restored"], rt["case_only_failures"], rt["mappings"],
          rt["bijective_mappings"], rt["identity_mappings"], rt["same_seed_same_output"]]]) +
        "\n\nA capitalised word whose first grapheme maps onto one without an upper-case form (Tariana `ɾ`) loses "
        "its capital: the paper's case rule cannot represent it (the validator warns `caseless`).")

    rows = results["solver_rows"] + [r for res in (results.get("llm") or {}).values() for r in res["rows"]]
    systems = list(dict.fromkeys(r["system"] for r in rows))
    out.append("## M_og vs. M_obf (exact match; BLEU and chrF over all versions)\n\n" + markdown_table(
        ["system", "M_og", "M_obf (fresh)", "M_obf (released)", "BLEU", "chrF", "scored rows"],
        [_system_summary(rows, s) for s in systems]) + f"\n\nMetric signatures: {sacrebleu_signature()}.")
    prow = []
    for s in systems:
        for pid in sorted({r["problem"] for r in rows}, key=int):
            t = gap_table([r for r in rows if r["problem"] == pid], s)
            if t:
                prow.append([s, pid, np.mean([o for _, o, _ in t]), np.mean([b for _, _, b in t]), len(t)])
    out.append("### Per problem\n\n" + markdown_table(["system", "problem", "M_og", "M_obf (fresh)", "sub-questions"],
                                                     prow))

    hum = results.get("human_rows") or []
    if hum:
        hrow = []
        for obf in (False, True):
            sel = [r for r in hum if r["obfuscated"] == obf]
            hrow.append(["obfuscated" if obf else "original", len(sel), np.mean([r["score"] for r in sel]),
                         np.mean([r["released_score"] for r in sel]), PAPER_HUMANS["M_obf" if obf else "M_og"]])
        out.append("## Humans (172 participants, responses.csv)\n\n" + markdown_table(
            ["arm", "participants", "our scorer", "released `score` column", "paper"], hrow) +
            "\n\nOur scorer is the benchmark's (NFD, exact match, max over alternatives); the released column "
            "comes from the human-evaluation notebook's scorer (NFKD, ɾ -> r, a few per-problem allowances). "
            f"{sum(abs(r['score'] - r['released_score']) < 1e-6 for r in hum)}/{len(hum)} participants get the "
            "same score from both.")

    for spec, res in (results.get("llm") or {}).items():
        ex = [r for r in res["rows"] if r["kind"] == "original"][:3]
        note = f"\n\n**The LLM evaluation stopped: {res['error']}**; rows scored before it are kept." \
            if res.get("error") else ""
        sample = "\n".join(f"- `{r['key']}` reference `{r['reference']}` — parsed answer `{r['prediction']}`"
                           for r in ex)
        if ex and ex[0].get("reply"):
            fence = "`" * 3
            sample += f"\n\nFirst reply (truncated):\n\n{fence}\n{ex[0]['reply'][:600].replace(fence, '~~~')}\n{fence}"
        out.append(f"## LLM `{spec}`\n\n{len(res['rows'])} sub-question rows scored from {res['jobs']} problem "
                   f"versions (one prompt per question, temperature 0, max {cfg.max_tokens} tokens).{note}\n\n"
                   + (sample or "(no replies)"))
    return out


def plot_gaps(run, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["solver_rows"] + [r for res in (results.get("llm") or {}).values() for r in res["rows"]]
    systems = list(dict.fromkeys(r["system"] for r in rows))
    og, obf = [], []
    for s in systems:
        t = gap_table(rows, s)
        og.append(np.mean([o for _, o, _ in t]) if t else 0)
        obf.append(np.mean([b for _, _, b in t]) if t else 0)
    hum = results.get("human_rows") or []
    if hum:
        systems.append("humans")
        og.append(np.mean([r["score"] for r in hum if not r["obfuscated"]]) / 100)
        obf.append(np.mean([r["score"] for r in hum if r["obfuscated"]]) / 100)
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    x = np.arange(len(systems))
    ax.bar(x - 0.2, og, 0.4, label="M_og (original)")
    ax.bar(x + 0.2, obf, 0.4, label="M_obf (obfuscated)")
    ax.set_xticks(x, systems, rotation=15)
    ax.set_ylabel("exact match")
    ax.legend()
    run.savefig(fig, "m_og_vs_m_obf", "Exact match on original vs. obfuscated problems")


DEVIATIONS = """## Where we depart from the official code

- **Problemese regions.** The official generator obfuscates the annotated `@@@` spans of the authors' source
  files (not released); we honour `@@@` when present and otherwise obfuscate the words the template lists
  (for the six problems: the words a released obfuscation changed).
- **Whole fields are NFD-normalised** (the official code normalises only the obfuscated spans); texts are
  compared after NFD throughout.
- **Metadata** is removed by a listed-terms function (whole words, case-insensitive, longest first); the
  authors removed it by hand.
- **Tables of three or more columns** get one shift per (row, column) so the mapping stays a bijection (the
  official code reuses one shift and can map two columns onto one); one- and two-column tables and sets
  follow the official enumeration order, so the same template and generator state give the same mappings.
- **Scoring** follows the benchmark scorer; BLEU precisions come from sacrebleu (13a, no smoothing) rather than
  HF `evaluate` (not installed offline). The human-evaluation notebook's own scorer (NFKD, ɾ -> r, per-problem
  allowances) is reported beside ours, not used."""


def write_report(run, cfg, results: dict, claims: list[Claim], paper: str) -> None:
    plot_gaps(run, results)
    scale = ("Six UKLO problems (the human-evaluation release), not the 82-problem benchmark (LFS stubs). "
             "Templates are derived from the released mappings, not the authors' spreadsheets. The solvers are "
             "reference baselines built to separate memorisation from rule induction; the default LLM is "
             "SmolLM2-135M, far below the paper's models.")
    import json

    secs = sections(cfg, results) + [DEVIATIONS]
    slim = {k: v for k, v in results.items() if k not in ("solver_rows", "llm")}
    slim["solver_summary"] = {s: dict(zip(["M_og", "M_obf_fresh", "M_obf_released", "bleu", "chrf", "rows"],
                                          _system_summary(results["solver_rows"], s)[1:], strict=False))
                              for s in dict.fromkeys(r["system"] for r in results["solver_rows"])}
    slim["llm"] = {spec: {k: v for k, v in res.items() if k != "rows"} for spec, res in (results.get("llm") or {}).items()}
    run.path("solver_rows.json").write_text(json.dumps(results["solver_rows"], ensure_ascii=False), encoding="utf-8")
    run.finish(claims=claims, results=slim, sections=secs, scale_note=scale,
               title="LINGOLY-TOO: templatised orthographic obfuscation", paper=paper)
