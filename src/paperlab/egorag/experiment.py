"""``paperlab egorag run``: EgoRAG's hierarchical memory vs. flat retrieval on a simulated life log.

The driver (:func:`run_experiment`) is a list of steps:

1. :func:`simulate_log` -- the week-long life log and its captions (``captions.jsonl``, the same format
   ``paperlab egorag ingest`` reads);
2. :func:`build_store` -- ingest it into a persistent :class:`~paperlab.egorag.memory.MemoryStore` in the
   run folder (resumable: a re-run skips stored clips by content hash);
3. :func:`make_question_set` -- questions of the five EgoLifeQA kinds with known evidence times;
4. :func:`retrieve_all` -- hierarchical (top-5, the top 3 of it go to the answerer), flat top-5, Eq. 2 over a λ
   sweep: recall@5 = the share of questions with an evidence clip among the 5 retrieved;
5. :func:`llm_selection` -- the released code's LLM-guided day/hour selection on the first questions;
6. :func:`answer_all` -- the answer model on (q, R) for each retrieval, and on the last 30 minutes of captions
   (the paper's Table 6 baseline: a model that sees only a recent segment); exact multiple-choice scoring;
7. :func:`measure_latency` -- stores of 1 day, 1 week, 1 year; search latency of hierarchical and flat
   retrieval (:mod:`benchmarks/egorag_latency.py` runs the same function alone);
8. :func:`~paperlab.egorag.report.make_claims` and the report.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator

from paperlab.core.runs import Run, build_config
from paperlab.egorag.memory import Caption, MemoryStore, load_embedder
from paperlab.egorag.retrieval import RetrievalConfig, retrieve
from paperlab.egorag.simulator import LifeLog, Question, make_questions, simulate

PAPER = "EgoLife: Towards Egocentric Life Assistant (EgoRAG, §4.2), arXiv:2503.03803, https://arxiv.org/abs/2503.03803"


class EgoRAGConfig(BaseModel):
    """Configuration of ``paperlab egorag run`` (saved with every run)."""

    days: int = Field(7, ge=2, le=60, description="simulated days (paper: 7)")
    clips_per_hour: int = Field(120, ge=1, le=120, description="30 s clips per waking hour (120 = contiguous)")
    seed: int = 0
    questions_per_kind: int = Field(60, ge=4, description="questions of each of the 5 EgoLifeQA kinds")
    embedder: str = Field("embed:minilm", description="caption/query embedder (core spec, or hash:<dim>)")
    summarizer: str = Field("extractive", description="'extractive' or an LLM spec for the summaries")
    k_answer: int = Field(3, ge=1, description="clips given to the answer model (paper: top 3)")
    k_recall: int = Field(5, ge=1, description="clips retrieved for recall@k")
    top_days: int = Field(1, ge=1)
    top_hours: int = Field(2, ge=1, le=24)
    day_scorer: str = Field("bm25", pattern="^(bm25|dense)$", description="day-summary score: bm25 | dense")
    top_m: int = Field(1, ge=1, description="dense summary score = mean of its top_m sentence cosines")
    lambdas: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 2.0, 4.0])
    model: str = Field("default", description="answer model spec, or 'none'")
    answer_methods: list[str] = Field(default_factory=lambda: ["hierarchical", "flat", "recent"])
    answer_questions: int | None = Field(150, ge=1, description="questions given to the answer model, spread "
                                         "over kinds and ages (None: all)")
    recent_minutes: int = Field(30, ge=1, description="the 'recent segment' baseline's window (paper: 30 min)")
    llm_select_questions: int = Field(25, ge=0, description="questions given to the LLM-guided selector")
    latency_days: list[int] = Field(default_factory=lambda: [1, 7, 365])
    latency_clips_per_hour: int = Field(120, ge=1, le=120)
    latency_queries: int = Field(60, ge=5)
    latency_embedder: str = Field("hash:384", description="embedder of the latency stores (search cost only)")
    n_boot: int = Field(2000, ge=200)

    @field_validator("clips_per_hour", "latency_clips_per_hour")
    @classmethod
    def _divides(cls, v: int) -> int:
        if 120 % v:
            raise ValueError("must divide 120 (30 s clips)")
        return v

    @field_validator("answer_methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if m not in ("hierarchical", "flat", "recent", "oracle")]
        if bad:
            raise ValueError(f"unknown answer methods {bad}: use hierarchical, flat, recent, oracle")
        return v

    @field_validator("model", "summarizer")
    @classmethod
    def _spec(cls, v: str) -> str:
        if v not in ("none", "extractive"):
            from paperlab.core.models import parse_spec

            parse_spec(v)
        return v

    @field_validator("latency_days")
    @classmethod
    def _scales(cls, v: list[int]) -> list[int]:
        if len(v) < 2 or len(set(v)) != len(v) or min(v) < 1:
            raise ValueError("give at least two distinct day counts >= 1")
        return sorted(v)

    @classmethod
    def quick(cls, **overrides) -> EgoRAGConfig:
        """Quick tier: 30 clips/h (a 30 s clip every 2 min), 100 questions per kind (24 of them answered, with
        hierarchical and flat retrieval; no LLM-guided selection), latency stores at 20 clips/h. The small default
        LM evaluates prompts at ~100 tokens/s on 2 cores: each answer costs seconds."""
        return cls(**({"clips_per_hour": 30, "questions_per_kind": 100, "llm_select_questions": 0,
                       "answer_questions": 24, "answer_methods": ["hierarchical", "flat"],
                       "latency_clips_per_hour": 20, "latency_queries": 30, "n_boot": 1000} | overrides))


def default_config(quick: bool = False, **overrides) -> EgoRAGConfig:
    return build_config(EgoRAGConfig, "egorag", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)


# ---------------------------------------------------------------------------------------------- steps


def simulate_log(cfg: EgoRAGConfig, run: Run | None = None) -> LifeLog:
    log = simulate(cfg.days, cfg.clips_per_hour, cfg.seed)
    if run is not None and not run.path("captions.jsonl").exists():
        tmp = run.path("captions.jsonl.tmp")
        tmp.write_text("".join(json.dumps(c.record()) + "\n" for c in log.clips), encoding="utf-8")
        tmp.replace(run.path("captions.jsonl"))
    return log


def build_store(cfg: EgoRAGConfig, folder: Path, log: LifeLog) -> tuple[MemoryStore, dict]:
    store = MemoryStore.open(folder, embedder=cfg.embedder, summarizer=cfg.summarizer)
    t0 = time.perf_counter()
    stats = store.ingest([Caption(c.t_start, c.t_end, c.text, c.scene_text) for c in log.clips])
    stats["seconds"] = time.perf_counter() - t0
    return store, stats


def make_question_set(cfg: EgoRAGConfig, log: LifeLog, run: Run | None = None) -> list[Question]:
    qs = make_questions(log, cfg.questions_per_kind, cfg.seed)
    if run is not None:
        run.path("questions.jsonl").write_text("".join(json.dumps(_qdict(q)) + "\n" for q in qs), encoding="utf-8")
    return qs


def _qdict(q: Question) -> dict:
    return {"id": q.id, "kind": q.kind, "question": q.question, "options": q.options, "answer": q.answer,
            "query_time": q.query_time, "evidence": q.evidence, "anchored": q.anchored, "age_hours": q.age_hours,
            "age_bucket": q.age_bucket}


def _rcfg(cfg: EgoRAGConfig, k: int, lam: float = 1.0) -> RetrievalConfig:
    return RetrievalConfig(k=k, top_days=cfg.top_days, top_hours=cfg.top_hours, day_scorer=cfg.day_scorer,
                           top_m=cfg.top_m, lam=lam)


def _hits(times: list[float], evidence: list[float]) -> bool:
    ev = set(evidence)
    return any(t in ev for t in times)


def retrieve_all(cfg: EgoRAGConfig, store: MemoryStore, questions: list[Question]) -> tuple[list[dict], np.ndarray]:
    """One row per (question, method): retrieved times, hit@k_recall, hit@k_answer, whether the window holds
    evidence and whether the chosen day does."""
    index = store.index
    qv = store.embedder.embed([q.question for q in questions])
    rows = []
    settings = [("hierarchical", None), ("flat", None)] + [("eq2", lam) for lam in cfg.lambdas]
    for q, v in zip(questions, qv, strict=True):
        ev_days = {int(t // 86400) for t in q.evidence}
        ev_hours = {int(t // 3600) for t in q.evidence}
        for method, lam in settings:
            r = retrieve(index, v, q.query_time, method, _rcfg(cfg, cfg.k_recall, lam if lam is not None else 1.0),
                         q.question)
            times = r.times(index)
            rows.append({"id": q.id, "kind": q.kind, "age_bucket": q.age_bucket, "age_hours": q.age_hours,
                         "method": method, "lam": lam, "times": times,
                         "hit_recall": _hits(times, q.evidence), "hit_answer": _hits(times[:cfg.k_answer], q.evidence),
                         "day_ok": bool(set(r.days) & ev_days) if method != "flat" else None,
                         "window_ok": bool(set(r.hours) & ev_hours) if method != "flat" else None})
    return rows, qv


def spread(questions: list[Question], n: int | None) -> list[int]:
    """The first ``n`` questions taken round-robin over kinds (their numbering cycles over the age buckets)."""
    order = sorted(range(len(questions)), key=lambda i: (int(questions[i].id.split("-")[1]), questions[i].kind))
    return order if n is None else order[:n]


def llm_selection(cfg: EgoRAGConfig, store: MemoryStore, questions: list[Question], qv: np.ndarray) -> list[dict]:
    """The LLM-guided day/hour selection on ``llm_select_questions`` questions (spread over kinds)."""
    if cfg.llm_select_questions == 0 or cfg.model == "none":
        return []
    from paperlab.core.models import load_lm

    lm = load_lm(cfg.model, **_lm_kw(cfg.model))
    rows = []
    for i in spread(questions, cfg.llm_select_questions):
        q = questions[i]
        r = retrieve(store.index, qv[i], q.query_time, "llm", _rcfg(cfg, cfg.k_recall), q.question, lm)
        times = r.times(store.index)
        rows.append({"id": q.id, "kind": q.kind, "age_bucket": q.age_bucket, "method": "llm", "times": times,
                     "hit_recall": _hits(times, q.evidence), "fallback": r.info.get("fallback", []),
                     "replies": r.info.get("replies", []),
                     "day_ok": bool(set(r.days) & {int(t // 86400) for t in q.evidence}),
                     "window_ok": bool(set(r.hours) & {int(t // 3600) for t in q.evidence})})
    return rows


def _lm_kw(spec: str) -> dict:
    from paperlab.core.models import parse_spec

    return {"n_ctx": 4096} if spec == "default" or parse_spec(spec).kind == "gguf" else {}


def _context(method: str, q: Question, rows_by: dict, index, cfg: EgoRAGConfig, text_of) -> list[tuple[float, str]]:
    if method == "recent":
        lo = index.before(q.query_time - 60 * cfg.recent_minutes)
        pos = range(lo, index.before(q.query_time))
        out: list[tuple[float, str]] = []
        for p in pos:   # consecutive repeats of a caption shown once
            t, x = float(index.times[p]), text_of(float(index.times[p]))
            if not out or out[-1][1] != x:
                out.append((t, x))
        return out
    if method == "oracle":
        return [(t, text_of(t)) for t in sorted(q.evidence)[-cfg.k_answer:]]
    times = rows_by[(q.id, method)]["times"][: cfg.k_answer]
    return [(t, text_of(t)) for t in sorted(times)]


def answer_all(cfg: EgoRAGConfig, store: MemoryStore, questions: list[Question], rows: list[dict],
               run: Run | None = None) -> list[dict]:
    """The answer model on each question with each context in ``answer_methods``; replies are cached, so a
    killed run resumes where it stopped."""
    if cfg.model == "none" or not cfg.answer_methods:
        return []
    from rich.progress import Progress

    from paperlab.core.models import load_lm
    from paperlab.egorag.answering import answer_choices

    lm = load_lm(cfg.model, **_lm_kw(cfg.model))
    index = store.index
    text = dict(store.conn.execute("SELECT t_start, text FROM clips"))
    rows_by = {(r["id"], r["method"]): r for r in rows if r["method"] in ("hierarchical", "flat")}
    questions = [questions[i] for i in sorted(spread(questions, cfg.answer_questions))]
    out = []
    with Progress(transient=True) as bar:
        task = bar.add_task("answering", total=len(cfg.answer_methods) * len(questions))
        for method in cfg.answer_methods:
            items = [{"question": q.question, "options": q.options, "query_time": q.query_time, "answer": q.answer,
                      "clips": _context(method, q, rows_by, index, cfg, text.get)} for q in questions]
            res = answer_choices(lm, items, on_result=lambda i, r: bar.advance(task))
            for q, it, r in zip(questions, items, res, strict=True):
                out.append({"id": q.id, "kind": q.kind, "age_bucket": q.age_bucket, "method": method,
                            "n_clips": len(it["clips"]), **r})
    if run is not None:
        run.path("answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    return out


# ---------------------------------------------------------------------------------------------- latency


def measure_latency(days: list[int], clips_per_hour: int, n_queries: int, root: Path, embedder: str = "hash:384",
                    seed: int = 0, k: int = 3, repeats: int = 3, query_embedder: str | None = "embed:minilm",
                    log=print) -> dict:
    """Search latency (seconds, median of ``repeats`` per query) of hierarchical and flat retrieval on stores of
    ``days`` days at ``clips_per_hour`` clips per hour. The stores are built under ``root`` and deleted once measured.
    The same ``n_queries`` questions (from the first week) are asked at the end of every log. Query embedding is
    timed apart (``query_embedder``; it does not depend on the store's size)."""
    out = {"days": days, "clips_per_hour": clips_per_hour, "embedder": embedder, "k": k, "scales": []}
    week = simulate(7, clips_per_hour, seed)
    questions = make_questions(week, max(1, n_queries // 5 + 1), seed)[:n_queries]
    texts = [q.question for q in questions]
    emb = load_embedder(embedder)
    qv = emb.embed(texts)
    cfg = RetrievalConfig(k=k)
    for d in days:
        t0 = time.perf_counter()
        lifelog = simulate(d, clips_per_hour, seed)
        store = MemoryStore.open(root / f"days_{d}", embedder=embedder)
        store.ingest([Caption(c.t_start, c.t_end, c.text) for c in lifelog.clips], chunk=20000)
        t_build = time.perf_counter() - t0
        t1 = time.perf_counter()
        index = store.index
        t_load = time.perf_counter() - t1
        now = lifelog.end_time + 1
        lat = {"hierarchical": [], "flat": []}
        for v, text in zip(qv, texts, strict=True):
            for method in lat:
                best = []
                for _ in range(repeats):
                    s = time.perf_counter()
                    retrieve(index, v, now, method, cfg, text)
                    best.append(time.perf_counter() - s)
                lat[method].append(float(np.median(best)))
        out["scales"].append({"days": d, "clips": len(index), "build_s": t_build, "load_s": t_load,
                              "day_summary_sentences": int(np.isfinite(index.days.times).sum()),
                              "latency": lat})
        log(f"latency: {d} day(s), {len(index)} clips: hierarchical {np.median(lat['hierarchical']) * 1e3:.3f} ms, "
            f"flat {np.median(lat['flat']) * 1e3:.3f} ms")
        store.close()
        shutil.rmtree(root / f"days_{d}", ignore_errors=True)    # a year of clips is hundreds of MB
    if query_embedder:
        qe = load_embedder(query_embedder)
        qe.embed(texts[:2])
        per = []
        for t in texts:
            s = time.perf_counter()
            qe.embed([t])
            per.append(time.perf_counter() - s)
        out["query_embedding_s"] = {"embedder": query_embedder, "median": float(np.median(per))}
    return out


# ---------------------------------------------------------------------------------------------- driver


def run_experiment(cfg: EgoRAGConfig, out: Path | None = None) -> Path:
    from paperlab.egorag.report import make_claims, write_report

    run = Run("egorag", out=out, config=cfg)
    log = simulate_log(cfg, run)
    store, ingest = build_store(cfg, run.path("store"), log)
    questions = make_question_set(cfg, log, run)
    rows, qv = retrieve_all(cfg, store, questions)
    run.path("retrieval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    results: dict = {"clips": len(log.clips), "ingest": ingest, "check": store.check(),
                     "questions": [_qdict(q) for q in questions], "retrieval": rows}
    results["llm_selection"] = llm_selection(cfg, store, questions, qv)
    results["answers"] = answer_all(cfg, store, questions, rows, run)
    results["latency"] = measure_latency(cfg.latency_days, cfg.latency_clips_per_hour, cfg.latency_queries,
                                         run.path("latency_stores"), cfg.latency_embedder, cfg.seed,
                                         k=cfg.k_answer, query_embedder=cfg.embedder)
    store.close()
    claims = make_claims(cfg, results)
    write_report(run, cfg, results, claims, PAPER)
    return run.dir
