"""Claims, tables and plots of ``paperlab egorag run`` (numbers from :mod:`.experiment`).

Units of the intervals: questions (recall and accuracy: paired percentile bootstrap over questions, Wilson for
a single rate); queries (latency: the slope of log latency on log store size, percentile bootstrap over the
queries, each query timed at every size).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from paperlab.core.runs import Claim, claim, claim_of_parts, markdown_table
from paperlab.core.stats import Estimate, index_bootstrap, paired_bootstrap_diff, wilson
from paperlab.egorag.simulator import AGE_BUCKETS, KINDS

PAPER_TABLE6 = {"EgoGPT+EgoRAG": [27.2, 35.7, 38.9, 35.4], "EgoGPT, 30-min segment": [28.2, 29.1, 26.8, 25.0]}
BUCKETS = [b[0] for b in AGE_BUCKETS]


# ---------------------------------------------------------------------------------------------- estimates


def paired(rows: list[dict], a: str, b: str, key: str, where=lambda r: True) -> tuple[np.ndarray, np.ndarray]:
    """Per-question values of ``key`` for methods ``a`` and ``b`` on the questions both have (and ``where``)."""
    by = defaultdict(dict)
    for r in rows:
        if where(r):
            by[r["id"]][r["method"] if r.get("lam") is None else f"eq2:{r['lam']}"] = float(r[key])
    ids = [i for i, m in by.items() if a in m and b in m]
    return np.array([by[i][a] for i in ids]), np.array([by[i][b] for i in ids])


def rate(rows: list[dict], key: str, **match) -> Estimate:
    sel = [r for r in rows if all((r.get(k) == v) for k, v in match.items())]
    return wilson(int(sum(bool(r[key]) for r in sel)), len(sel))


def loglog_slope(sizes: np.ndarray, lat: np.ndarray, n_boot: int, seed: int = 0) -> Estimate:
    """Slope of ``mean_q log(latency)`` on ``log(size)`` (OLS over the sizes); bootstrap over queries.
    ``lat``: ``[queries, sizes]``. 1 = linear in the store's size; < 1 sublinear."""
    x = np.log(sizes)
    x = x - x.mean()
    logl = np.log(np.maximum(lat, 1e-9))

    def stat(i: np.ndarray) -> float:
        y = logl[i].mean(0)
        return float((x * (y - y.mean())).sum() / (x * x).sum())

    est = index_bootstrap(len(lat), stat, n_boot=n_boot, seed=seed)
    return Estimate(est.value, est.lo, est.hi, est.n, f"OLS slope of mean log latency on log clips over "
                    f"{len(sizes)} store sizes; {est.method} over queries")


def latency_ratio(h: np.ndarray, f: np.ndarray, n_boot: int, seed: int = 0) -> Estimate:
    """Geometric-mean ratio hierarchical / flat latency over queries, bootstrap over queries."""
    lr = np.log(np.maximum(h, 1e-9)) - np.log(np.maximum(f, 1e-9))
    est = index_bootstrap(len(lr), lambda i: float(np.exp(lr[i].mean())), n_boot=n_boot, seed=seed)
    return Estimate(est.value, est.lo, est.hi, est.n, f"geometric-mean latency ratio, {est.method} over queries")


def latency_arrays(lat: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    sizes = np.array([s["clips"] for s in lat["scales"]], dtype=float)
    arrays = {m: np.array([s["latency"][m] for s in lat["scales"]]).T for m in ("hierarchical", "flat")}
    return sizes, arrays


# ---------------------------------------------------------------------------------------------- claims


def make_claims(cfg, results: dict) -> list[Claim]:
    rows = results["retrieval"]
    claims = []
    old = lambda r: r["age_bucket"] == ">24h"  # noqa: E731
    h, f = paired(rows, "hierarchical", "flat", "hit_recall", old)
    claims.append(claim(
        "hierarchical_beats_flat_old_evidence",
        f"For evidence more than 24 h old, hierarchical retrieval (day -> hour from the summaries, then top-"
        f"{cfg.k_recall} captions) has a higher recall@{cfg.k_recall} than flat top-{cfg.k_recall} over all "
        "captions (paired over questions: hierarchical minus flat > 0)",
        paired_bootstrap_diff(h, f, n_boot=cfg.n_boot), expect="greater",
        recall_hierarchical=float(h.mean()) if len(h) else None, recall_flat=float(f.mean()) if len(f) else None,
        questions=len(h)))
    lat = results["latency"]
    sizes, arr = latency_arrays(lat)
    slope_h = loglog_slope(sizes, arr["hierarchical"], cfg.n_boot)
    slope_f = loglog_slope(sizes, arr["flat"], cfg.n_boot)
    ratio = latency_ratio(arr["hierarchical"][:, -1], arr["flat"][:, -1], cfg.n_boot)
    claims.append(claim_of_parts(
        "latency_sublinear",
        f"Hierarchical query latency grows sublinearly with the store (log-log slope < 1 from "
        f"{int(sizes[0])} to {int(sizes[-1])} clips) and is below flat retrieval's at the largest store "
        "(latency ratio < 1)",
        {"hierarchical log-log slope": (slope_h, {"expect": "less", "null": 1.0}),
         f"hierarchical / flat latency at {lat['days'][-1]} days": (ratio, {"expect": "less", "null": 1.0})},
        flat_slope=slope_f.value, flat_slope_ci=[slope_f.lo, slope_f.hi], clips=[int(s) for s in sizes],
        clips_per_hour=lat["clips_per_hour"], embedder=lat["embedder"]))
    ans = results.get("answers") or []
    if any(r["method"] == "recent" for r in ans) and any(r["method"] == "hierarchical" for r in ans):
        older = lambda r: r["age_bucket"] != "<2h"  # noqa: E731
        a, b = paired(ans, "hierarchical", "recent", "correct", older)
        claims.append(claim(
            "egorag_helps_old_evidence",
            "For evidence older than 2 h, the answer model is more accurate with EgoRAG's retrieved clips than with "
            f"the last {cfg.recent_minutes} min of captions (Table 6; paired over questions, hierarchical minus "
            "recent > 0)", paired_bootstrap_diff(a, b, n_boot=cfg.n_boot), expect="greater", model=cfg.model,
            accuracy_hierarchical=float(a.mean()) if len(a) else None,
            accuracy_recent=float(b.mean()) if len(b) else None, questions=len(a)))
    return claims


# ---------------------------------------------------------------------------------------------- report


def _pct(e: Estimate) -> str:
    if not np.isfinite(e.value):
        return "–"
    return f"{100 * e.value:.0f} [{100 * e.lo:.0f}, {100 * e.hi:.0f}]"


def recall_tables(cfg, rows: list[dict]) -> str:
    methods = ["hierarchical", "flat", "eq2"]
    lam1 = 1.0 if 1.0 in cfg.lambdas else (cfg.lambdas[0] if cfg.lambdas else None)
    sel = [r for r in rows if r["method"] != "eq2" or r["lam"] == lam1]
    by_kind = [[k] + [_pct(rate(sel, "hit_recall", method=m, kind=k)) for m in methods] for k in KINDS]
    by_kind.append(["all"] + [_pct(rate(sel, "hit_recall", method=m)) for m in methods])
    by_age = [[b] + [_pct(rate(sel, "hit_recall", method=m, age_bucket=b)) for m in methods] for b in BUCKETS]
    head = ["", "hierarchical", "flat", f"Eq. 2 (λ = {lam1})"]
    hier = [r for r in rows if r["method"] == "hierarchical"]
    win = [[k, _pct(rate(hier, "day_ok", kind=k)), _pct(rate(hier, "window_ok", kind=k)),
            _pct(rate([r for r in hier if r["window_ok"]], "hit_recall", kind=k))] for k in KINDS]
    win += [["all", _pct(rate(hier, "day_ok")), _pct(rate(hier, "window_ok")),
               _pct(rate([r for r in hier if r["window_ok"]], "hit_recall"))]]
    return ("## Retrieval\n\n"
            f"recall@{cfg.k_recall} (%, 95 % Wilson interval): share of questions with an evidence clip among the "
            f"{cfg.k_recall} retrieved.\n\nBy question kind:\n\n" + markdown_table(["kind"] + head[1:], by_kind) +
            "\n\nBy evidence age (the paper's Table 6 buckets):\n\n" + markdown_table(["age"] + head[1:], by_age) +
            "\n\nWhere hierarchical retrieval loses evidence: the chosen day holds evidence, the chosen hours hold "
            f"evidence, and recall@{cfg.k_recall} when the hours are right (%):\n\n" +
            markdown_table(["kind", "day right", "hours right", "recall if hours right"], win))


def lambda_table(cfg, rows: list[dict]) -> str:
    body = [[f"{lam:g}", _pct(rate(rows, "hit_recall", method="eq2", lam=lam)),
             _pct(rate([r for r in rows if r["age_bucket"] == ">24h"], "hit_recall", method="eq2", lam=lam))]
            for lam in cfg.lambdas]
    body.append(["∞ (captions only = hierarchical)", _pct(rate(rows, "hit_recall", method="hierarchical")),
                 _pct(rate([r for r in rows if r["age_bucket"] == ">24h"], "hit_recall", method="hierarchical"))])
    return ("## Eq. 2 λ sweep\n\n`s_i = Sim(q, c_i) + λ·Sim(q, d_i)` inside the hierarchical window; c_i = the "
            "embedding of the clip's structured scene record (place, people, activity, objects), d_i = the "
            f"caption. recall@{cfg.k_recall} (%):\n\n" + markdown_table(["λ", "all", "> 24 h"], body))


def llm_selection_section(cfg, sel: list[dict], rows: list[dict]) -> str:
    """The LLM-guided selector against the similarity selector on the same questions."""
    if not sel:
        return ""
    n = len(sel)
    ids = {r["id"] for r in sel}
    same = [r for r in rows if r["method"] == "hierarchical" and r["id"] in ids]
    fb_day = sum("day" in r["fallback"] for r in sel)
    fb_hour = sum("hour" in r["fallback"] for r in sel)
    body = [[name, _pct(rate(sel, key)), _pct(rate(same, key))]
            for name, key in (("day right (%)", "day_ok"), ("hours right (%)", "window_ok"),
                              (f"recall@{cfg.k_recall} (%)", "hit_recall"))]
    return ("## LLM-guided day/hour selection (released code's option)\n\n"
            f"`{cfg.model}` picked the day, then the hour range, for {n} questions. Unparsable replies fell back to "
            f"the similarity choice: day {fb_day}/{n}, hours {fb_hour}/{n}.\n\n" +
            markdown_table(["", "LLM-guided", "similarity (same questions)"], body))


def answer_section(cfg, ans: list[dict]) -> str:
    if not ans:
        return "## Answers\n\nNo answer model (`--model none`)."
    methods = list(dict.fromkeys(r["method"] for r in ans))
    by_kind = [[k] + [_pct(rate(ans, "correct", method=m, kind=k)) for m in methods] for k in KINDS]
    by_kind.append(["all"] + [_pct(rate(ans, "correct", method=m)) for m in methods])
    by_age = [[b] + [_pct(rate(ans, "correct", method=m, age_bucket=b)) for m in methods] for b in BUCKETS]
    parsed = {m: np.mean([r["letter"] is not None for r in ans if r["method"] == m]) for m in methods}
    letters = {m: {x: sum(r["letter"] == x for r in ans if r["method"] == m) for x in "ABCD"} for m in methods}
    paper = markdown_table(["paper (Table 6, %)"] + BUCKETS, [[k] + v for k, v in PAPER_TABLE6.items()])
    n_q = len({r["id"] for r in ans})
    return ("## Answers\n\n"
            f"{n_q} questions (spread over kinds and ages). Answer model `{cfg.model}`, greedy, multiple choice "
            "(4 options: chance = 25 %), scored exactly on the first option letter of the reply. Contexts: the top "
            f"{cfg.k_answer} clips of each retrieval; "
            f"`recent` = the captions of the last {cfg.recent_minutes} min before the query (the paper's "
            "30-min-segment baseline). Share of replies with a letter: " +
            ", ".join(f"{m} {100 * v:.0f} %" for m, v in parsed.items()) + "; letters chosen: " +
            "; ".join(f"{m} " + " ".join(f"{x} {n}" for x, n in c.items()) for m, c in letters.items()) +
            " (a model that picks the same letter whatever the context scores the same with every retrieval)."
            "\n\nAccuracy by kind (%):\n\n" +
            markdown_table(["kind"] + methods, by_kind) + "\n\nAccuracy by evidence age (%):\n\n" +
            markdown_table(["age"] + methods, by_age) + "\n\nThe paper, for comparison (GPT-4o-class answerers on "
            "real video captions):\n\n" + paper)


def latency_section(lat: dict) -> str:
    body = []
    for s in lat["scales"]:
        h, f = np.median(s["latency"]["hierarchical"]), np.median(s["latency"]["flat"])
        body.append([s["days"], s["clips"], s["day_summary_sentences"], f"{h * 1e3:.3f}", f"{f * 1e3:.3f}",
                     f"{h / f:.3g}", f"{s['build_s']:.1f}"])
    qe = lat.get("query_embedding_s")
    note = (f" Embedding the query ({qe['embedder']}) takes a further {qe['median'] * 1e3:.1f} ms (median), the "
            "same at every size." if qe else "")
    return ("## Latency\n\n"
            f"Stores of simulated days at {lat['clips_per_hour']} clips per hour, embedder `{lat['embedder']}` (search "
            f"cost depends only on the vector count and dimension); median search time per query, top-{lat['k']}."
            + note + "\n\n" + markdown_table(["days", "clips", "day-summary sentences", "hierarchical (ms)",
                                              "flat (ms)", "ratio", "build (s)"], body) +
            "\n\nHierarchical search scores every day's summary sentences (linear in the number of days, with a "
            "constant ~the sentences kept per day), then one day's hours and a two-hour window of clips; flat "
            "search scans every clip.")


def plots(run, cfg, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["retrieval"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(BUCKETS))
    for j, m in enumerate(["hierarchical", "flat"]):
        es = [rate(rows, "hit_recall", method=m, age_bucket=b) for b in BUCKETS]
        v = np.array([e.value for e in es])
        err = np.array([[e.value - e.lo for e in es], [e.hi - e.value for e in es]])
        ax.bar(x + (j - 0.5) * 0.38, v, 0.38, yerr=err, capsize=3, label=m)
    ax.set_xticks(x, BUCKETS)
    ax.set_xlabel("evidence age")
    ax.set_ylabel(f"recall@{cfg.k_recall}")
    ax.set_ylim(0, 1)
    ax.legend()
    run.savefig(fig, "recall_by_age", f"recall@{cfg.k_recall} by evidence age (95 % Wilson intervals)")

    sizes, arr = latency_arrays(results["latency"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m, a in arr.items():
        ax.loglog(sizes, np.median(a, 0) * 1e3, "o-", label=m)
    ax.set_xlabel("clips in the store")
    ax.set_ylabel("median search latency (ms)")
    ax.legend()
    run.savefig(fig, "latency", "search latency vs. store size (log-log)")

    if cfg.lambdas:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        v = [rate(rows, "hit_recall", method="eq2", lam=lam).value for lam in cfg.lambdas]
        ax.plot(cfg.lambdas, v, "o-", label="Eq. 2")
        ax.axhline(rate(rows, "hit_recall", method="hierarchical").value, ls="--", c="k", label="captions only")
        ax.set_xlabel("λ")
        ax.set_ylabel(f"recall@{cfg.k_recall}")
        ax.legend()
        run.savefig(fig, "lambda_sweep", "Eq. 2 λ sweep inside the hierarchical window")


def setup_section(cfg, results: dict) -> str:
    qs = results["questions"]
    count = defaultdict(int)
    for q in qs:
        count[q["age_bucket"]] += 1
    ing = results["ingest"]
    return ("## Setup\n\n"
            f"Simulated life log: {cfg.days} days, 16 waking hours, {cfg.clips_per_hour} clips of 30 s per hour "
            f"= {results['clips']} captions (seed {cfg.seed}); 6 people, 10 places, 8 tracked objects, daily themes, "
            f"rare events and task requests (`paperlab.egorag.simulator`). Store: SQLite + faiss, embedder "
            f"`{cfg.embedder}`, summaries `{cfg.summarizer}` (ingested in {ing['seconds']:.1f} s; consistency check: "
            f"{results['check']['ok']}). {len(qs)} questions, {cfg.questions_per_kind} per EgoLifeQA kind; evidence "
            "ages: " + ", ".join(f"{b} {count[b]}" for b in BUCKETS) + ". Hierarchical: top "
            f"{cfg.top_days} day (day summaries scored by {cfg.day_scorer}), top {cfg.top_hours} hours (hour summaries "
            f"scored by the mean of their top {cfg.top_m} sentence cosines), top {cfg.k_recall} captions inside; "
            f"flat: top {cfg.k_recall} captions of all.")


SCALE_NOTE = """
- No EgoLife video or captions exist offline: a seeded simulator writes the captions (templated sentences with
  paraphrase, filler and distractor clips), and its questions name earlier days by what happened on them, as
  EgoLifeQA questions do. Effects depend on that design; they are not measurements on EgoLife.
- Summaries are extractive by default (the most mutually dissimilar captions, 500 words an hour, 1,500 a day, the
  released prompts' bounds) instead of DeepSeek/GPT summaries; the day is chosen by BM25 over the day summaries
  and the hours by embedding similarity to the hour summaries (the released code asks an LLM; that path is an
  option, run in the default tier on a few questions with the small default model).
- The answer model is SmolLM2-135M (the paper: GPT-4o): its accuracy is near chance and says little about
  retrieval; recall@k is the informative measure here.
- Flat retrieval is a strong baseline on one simulated week: each object is put down once a day, so the top 5
  captions of the whole week often include the right day's placement by chance, while hierarchical retrieval
  can only find evidence inside the one day and two hours it chose (see "Where hierarchical retrieval loses
  evidence"). The paper itself compares EgoRAG with no retrieval (a 30-min segment, Table 6), not with flat
  retrieval; `egorag_helps_old_evidence` tests that comparison where the run answers with both contexts.
- Latency stores use a feature-hashing embedder and fewer clips per hour than EgoLife's 120 in the quick tier
  (see the latency section for the scale run).
"""


def write_report(run, cfg, results: dict, claims: list[Claim], paper: str) -> None:
    plots(run, cfg, results)
    sel = results.get("llm_selection") or []
    llm = llm_selection_section(cfg, sel, results["retrieval"])
    sections = [setup_section(cfg, results), recall_tables(cfg, results["retrieval"]),
                lambda_table(cfg, results["retrieval"]), llm, answer_section(cfg, results.get("answers") or []),
                latency_section(results["latency"])]
    summary = {k: v for k, v in results.items() if k not in ("retrieval", "questions", "answers")}
    summary["recall"] = {m: rate(results["retrieval"], "hit_recall", method=m).as_dict()
                         for m in ("hierarchical", "flat")}
    run.finish(claims, summary, sections=sections, scale_note=SCALE_NOTE,
               title="EgoRAG (EgoLife, arXiv 2503.03803): hierarchical memory retrieval", paper=paper)
