"""``paperlab ifir run``: nDCG against the reference, instructed SciFact, InstFol per retriever and level.

The driver (:func:`run_experiment`) is a list of steps:

1. :func:`load_data` — SciFact's BEIR test split (300 claims, 5,183 abstracts) or the packaged subset.
2. :func:`standard_runs` — each retriever answers the plain claims (top ``depth``); every run is written
   as a TREC run file and scored by our nDCG@10 and by ir-measures (pytrec_eval) on that file.
3. :func:`instructed_units` — the instructed queries at levels 1-3 (:mod:`.instructions`).
4. :func:`instructed_runs` — per retriever and unit, the top-k of the plain claim and of the instructed
   query (``query + " " + instruction``); standard nDCG@k and the paper-compat variant of both, against
   the unit's gold set (the official "no_inst" vs "inst" comparison, without its overwrite bug: the plain
   ranking is the plain query's for every instruction).
5. :func:`judge_units` — the G-Eval judge on both lists of the InstFol units, against the instructed
   query; InstFol per unit (:mod:`.instfol`). Scores are appended to ``instfol.jsonl`` unit by unit, and
   every judge answer is in the request cache, so a killed run resumes.
6. :func:`~paperlab.ifir.report.make_claims`, then the report and plots (:mod:`.report`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

from paperlab.core.runs import Run, build_config
from paperlab.ifir.data import BeirData, load_scifact, write_trec_run
from paperlab.ifir.instructions import Unit, build_units
from paperlab.ifir.ndcg import ir_measures_ndcg, per_query_ndcg
from paperlab.ifir.retrievers import Retriever, check_retriever, make_retriever

PAPER = ("IFIR: A Comprehensive Benchmark for Evaluating Instruction-Following in Expert-Domain Information "
         "Retrieval, arXiv:2503.04644, https://arxiv.org/abs/2503.04644")


class IfirConfig(BaseModel):
    """Configuration of ``paperlab ifir run`` (saved with every run)."""

    data: Literal["full", "subset"] = Field("full", description="SciFact BEIR test split, or the packaged subset")
    data_path: str | None = Field(None, description="SciFact BEIR folder (default: see paperlab.ifir.data)")
    retrievers: list[str] = Field(default_factory=lambda: ["bm25", "dense", "instruct"])
    instfol_retrievers: list[str] = Field(default_factory=lambda: ["bm25", "dense"])
    n_queries: int | None = Field(None, ge=2, description="plain claims scored (None: all 300 test claims)")
    ndcg_k: int = Field(10, ge=1, le=1000, description="BEIR's nDCG cut-off for the reference check")
    depth: int = Field(100, ge=1, le=1000, description="documents kept per query in the run files")
    ifir_k: int = Field(20, ge=1, le=1000, description="top-k of the instructed evaluation (paper: 20)")
    instfol_claims: int = Field(30, ge=1, description="claims whose three levels are judged")
    instfol_k: int = Field(10, ge=1, le=100, description="passages judged per list (paper: 20)")
    judge: str = Field("default-hf", description="judge LM spec, or default-hf (paper: gpt-4o-mini)")
    reference: bool = Field(True, description="BM25 on the full SciFact test split vs BEIR's published nDCG@10")
    judge_max_tokens: int = Field(512, ge=4, description="judge reply budget (paper: 512)")
    judge_early_stop: bool = Field(False, description="stop the judge's answer after the score (quick tier)")
    strip_tokens: bool = Field(True, description="ignore whitespace around the score token (fix 3)")
    judge_ctx: int = Field(2048, ge=512, description="llama.cpp context for a gguf judge")
    max_passage_words: int | None = Field(None, ge=20, description="truncate passages given to the judge")
    window: int | None = Field(None, ge=8, description="dense window (default: the encoder's input - 2)")
    stride: int | None = Field(None, ge=1, description="dense stride (default: 3/4 of the window)")
    seed: int = Field(0, description="seed of the instructions and of the InstFol claim sample")
    reference_ndcg: float = Field(0.665, description="BEIR's BM25 nDCG@10 on SciFact")
    reference_margin: float = Field(0.07, gt=0, description="accepted |ours - BEIR| (implementation spread + CI)")
    identity_tol: float = Field(1e-9, gt=0, description="max |our nDCG - ir-measures'| per query")
    n_boot: int = Field(2000, ge=200)

    @field_validator("retrievers", "instfol_retrievers")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("retrievers must be distinct")
        for name in v:
            check_retriever(name)
        return v

    @field_validator("judge")
    @classmethod
    def _judge(cls, v: str) -> str:
        from paperlab.core.cli import check_model_spec

        return check_model_spec(v, "judge")

    @classmethod
    def quick(cls, **overrides) -> IfirConfig:
        """Quick tier: BM25 on all 300 claims of the full corpus for the reference check; BM25 and dense on
        the packaged 294-abstract subset (100 claims); InstFol on 10 claims x 3 levels, top-2 lists, passages cut
        to 120 words, the judge's answer stopped after its score (3 claims' judging took 55 s alone)."""
        return cls(**({"data": "subset", "retrievers": ["bm25", "dense"], "instfol_claims": 10, "instfol_k": 2,
                       "judge_early_stop": True, "judge_max_tokens": 24, "max_passage_words": 120,
                       "n_boot": 1000} | overrides))


def default_config(quick: bool = False, **overrides) -> IfirConfig:
    return build_config(IfirConfig, "ifir", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)


# ---------------------------------------------------------------------------------------------- steps


def load_data(cfg: IfirConfig) -> BeirData:
    return load_scifact(cfg.data, cfg.data_path)


def load_reference_data(cfg: IfirConfig, data: BeirData) -> BeirData | None:
    """The full SciFact test split for the BEIR comparison (None when ``reference`` is off)."""
    if not cfg.reference:
        return None
    return data if cfg.data == "full" else load_scifact("full", cfg.data_path)


def reference_run(cfg: IfirConfig, full: BeirData | None, run: Run) -> dict | None:
    """BM25 on all SciFact test claims over the full corpus, scored like :func:`standard_runs`."""
    if full is None:
        return None
    bm25 = make_retriever("bm25")
    bm25.index(full.corpus)
    sub = IfirConfig.model_construct(**(cfg.model_dump() | {"n_queries": None}))
    return standard_runs(sub, full, {"bm25": bm25}, run, prefix="reference_")["bm25"]


def plain_queries(cfg: IfirConfig, data: BeirData) -> list[str]:
    qids = data.judged_queries()
    return qids if cfg.n_queries is None else qids[: cfg.n_queries]


def vector_dir() -> Path:
    """Where document vectors are kept between runs: ``$PAPERLAB_HOME/ifir`` (default ``~/.cache/paperlab/ifir``)."""
    return Path(os.environ.get("PAPERLAB_HOME", Path.home() / ".cache" / "paperlab")) / "ifir"


def vector_cache(corpus: dict[str, str]):
    """Document vectors kept in :func:`vector_dir`, keyed by the encoder's signature (model, windows, prompts)
    and the corpus content: embedding SciFact's 5,183 abstracts takes many CPU minutes, once."""
    digest = hashlib.sha256(json.dumps(sorted(corpus.items())).encode()).hexdigest()[:12]

    def cached(signature: str, compute):
        key = hashlib.sha256(f"{signature}|{digest}".encode()).hexdigest()[:16]
        path = vector_dir() / f"vectors_{key}.npy"
        if path.exists():
            return np.load(path)
        vecs = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npy")
        np.save(tmp, vecs)
        tmp.replace(path)   # atomic: a killed run never leaves a half-written file
        return vecs

    return cached


def build_retrievers(cfg: IfirConfig, data: BeirData, run: Run) -> dict[str, Retriever]:
    cache = vector_cache(data.corpus)
    out = {}
    for name in dict.fromkeys(cfg.retrievers + cfg.instfol_retrievers):
        r = make_retriever(name, cfg.window, cfg.stride, cache_vectors=cache)
        r.index(data.corpus)
        out[name] = r
    return out


def standard_runs(cfg: IfirConfig, data: BeirData, retrievers: dict[str, Retriever], run: Run,
                  prefix: str = "") -> dict:
    """Plain-claim runs, written as TREC files; our nDCG@k and ir-measures' on each."""
    import ir_measures

    qids = plain_queries(cfg, data)
    qrels = {q: data.qrels[q] for q in qids}
    out = {}
    for name, r in retrievers.items():
        ranked = r.search({q: data.queries[q] for q in qids}, cfg.depth)
        path = run.path(f"{prefix}run_{name.replace(':', '_').replace('/', '_')}.trec")
        write_trec_run(ranked, path, tag=name)
        from_file: dict[str, dict[str, float]] = {}   # read back from the file: both metrics see the same run
        for row in ir_measures.read_trec_run(str(path)):
            from_file.setdefault(row.query_id, {})[row.doc_id] = float(row.score)
        ours = per_query_ndcg(from_file, qrels, cfg.ndcg_k)
        ref = ir_measures_ndcg(from_file, qrels, cfg.ndcg_k)
        compat = per_query_ndcg(from_file, qrels, cfg.ndcg_k, variant="ifir")
        out[name] = {"ours": ours, "ir_measures": ref, "ifir_variant": compat,
                     "signature": getattr(r, "signature", name), "run_file": path.name}
    return out


def instructed_units(cfg: IfirConfig, data: BeirData) -> list[Unit]:
    return build_units(data, plain_queries(cfg, data), cfg.seed)


def instfol_claims(cfg: IfirConfig, units: list[Unit]) -> list[str]:
    """The claims whose units are judged: a seeded sample (in claim order)."""
    claims = sorted({u.qid for u in units}, key=lambda q: (len(q), q))
    rng = random.Random(cfg.seed)
    picked = set(rng.sample(claims, min(cfg.instfol_claims, len(claims))))
    return [q for q in claims if q in picked]


def instructed_runs(cfg: IfirConfig, data: BeirData, units: list[Unit], retrievers: dict[str, Retriever]) -> dict:
    """Per retriever: the plain and instructed top-k of every unit, with nDCG of both (both variants)."""
    out = {}
    for name, r in retrievers.items():
        plain = r.search({q: data.queries[q] for q in dict.fromkeys(u.qid for u in units)}, cfg.ifir_k)
        inst = r.search({u.uid: r.query_text(u.query, u.instruction) for u in units}, cfg.ifir_k)
        rows = []
        for u in units:
            p, i = plain.get(u.qid, {}), inst.get(u.uid, {})
            rows.append({"uid": u.uid, "qid": u.qid, "level": u.level,
                         "plain": list(p), "instructed": list(i),
                         "ndcg_plain": per_query_ndcg({u.uid: p}, {u.uid: u.gold}, cfg.ifir_k)[u.uid],
                         "ndcg_inst": per_query_ndcg({u.uid: i}, {u.uid: u.gold}, cfg.ifir_k)[u.uid],
                         "ifir_plain": per_query_ndcg({u.uid: p}, {u.uid: u.gold}, cfg.ifir_k, "ifir")[u.uid],
                         "ifir_inst": per_query_ndcg({u.uid: i}, {u.uid: u.gold}, cfg.ifir_k, "ifir")[u.uid]})
        out[name] = rows
    return out


def _passage(text: str, max_words: int | None) -> str:
    if max_words is None:
        return text
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words])


def judge_units(cfg: IfirConfig, data: BeirData, units: list[Unit], runs: dict, run: Run) -> list[dict]:
    """G-Eval scores of the plain and instructed top-k of every InstFol unit, against the instructed query."""
    from rich.progress import track

    from paperlab.ifir.instfol import Judge, instfol, rubric_prompt
    from paperlab.ifir.retrievers import instructed

    chosen = set(instfol_claims(cfg, units))
    by_uid = {u.uid: u for u in units}
    done = {(r["retriever"], r["uid"]) for r in run.read("instfol")}
    todo = [(name, row) for name in cfg.instfol_retrievers for row in runs[name]
            if row["qid"] in chosen and (name, row["uid"]) not in done]
    if todo:
        judge = Judge(cfg.judge, cfg.judge_max_tokens, cfg.judge_early_stop, cfg.strip_tokens, cfg.judge_ctx)
        for name, row in track(todo, description="InstFol judge"):
            u = by_uid[row["uid"]]
            q_inst = instructed(u.query, u.instruction)   # both lists are judged against Q + " " + I
            docs = row["plain"][: cfg.instfol_k] + row["instructed"][: cfg.instfol_k]
            prompts = [rubric_prompt(u.level, q_inst, _passage(data.corpus[d], cfg.max_passage_words)) for d in docs]
            scores = judge(prompts)
            nq = len(row["plain"][: cfg.instfol_k])
            qs, is_ = scores[:nq], scores[nq:]
            run.append("instfol", {"retriever": name, "uid": u.uid, "qid": u.qid, "level": u.level,
                                   "plain_docs": docs[:nq], "inst_docs": docs[nq:], "plain_scores": qs,
                                   "inst_scores": is_, "instfol": instfol(qs, is_),
                                   "plain_gold": [d in u.gold for d in docs[:nq]],
                                   "inst_gold": [d in u.gold for d in docs[nq:]]})
    return [r for r in run.read("instfol") if r["qid"] in chosen and r["retriever"] in cfg.instfol_retrievers]


# ---------------------------------------------------------------------------------------------- driver


def run_experiment(cfg: IfirConfig, out: Path | None = None) -> Path:
    from paperlab.ifir.report import make_claims, write_report

    data = load_data(cfg)             # a missing data folder fails here, before the run folder exists
    full = load_reference_data(cfg, data)
    run = Run("ifir", out=out, config=cfg)
    results: dict = {"data": {"name": data.name, "documents": len(data.corpus),
                              "claims": len(plain_queries(cfg, data))}}
    results["reference"] = reference_run(cfg, full, run)
    retrievers = build_retrievers(cfg, data, run)
    results["standard"] = standard_runs(cfg, data, retrievers, run)
    units = instructed_units(cfg, data)
    results["units"] = [vars(u) for u in units]
    results["instructed"] = instructed_runs(cfg, data, units, retrievers)
    results["instfol"] = judge_units(cfg, data, units, results["instructed"], run)
    claims = make_claims(cfg, results)
    write_report(run, cfg, results, claims, PAPER)
    return run.dir
