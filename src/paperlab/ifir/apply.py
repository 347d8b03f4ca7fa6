"""``paperlab ifir eval``: one retriever on the user's BEIR files; nDCG@k, and InstFol@k with a judge."""

from __future__ import annotations

from pathlib import Path

from paperlab.core.data import read_jsonl
from paperlab.core.errors import UserError
from paperlab.core.stats import mean_ci
from paperlab.ifir.data import load_beir, write_trec_run
from paperlab.ifir.ndcg import ir_measures_ndcg, per_query_ndcg, signature


def _cut(text: str, max_words: int | None) -> str:
    words = text.split()
    return text if max_words is None or len(words) <= max_words else " ".join(words[:max_words])


def read_instructions(path: Path) -> dict[str, tuple[str, int]]:
    """``{query id: (instruction, rubric level)}`` from the optional fields of queries.jsonl."""
    out = {}
    for i, row in enumerate(read_jsonl(path), 1):
        inst = row.get("instruction")
        if inst is None:
            continue
        level = row.get("level", 3)
        if not isinstance(inst, str) or not inst.strip():
            raise UserError(f"{path}: record {i} has an empty or non-text instruction", "write a non-empty string")
        if level not in (1, 2, 3):
            raise UserError(f"{path}: record {i} has level {level!r}", "use level 1, 2 or 3 (the judge's rubric)")
        out[str(row["_id"])] = (inst, int(level))
    return out


def evaluate_files(corpus: Path, queries: Path, qrels: Path, retriever: str = "bm25", judge: str | None = None,
                   k: int = 10, judge_max_tokens: int = 512, run_file: Path | None = None,
                   max_passage_words: int | None = None) -> dict:
    from paperlab.ifir.retrievers import instructed, make_retriever

    data = load_beir(corpus, queries, qrels, "user")
    insts = read_instructions(queries)
    if judge is not None and not insts:
        raise UserError("--judge needs instructed queries", 'add "instruction" to the queries in --queries')
    qids = data.judged_queries()
    if not qids:
        raise UserError(f"no query of {qrels} has a relevant document", "give relevance grades > 0")
    r = make_retriever(retriever)
    r.index(data.corpus)
    plain = r.search({q: data.queries[q] for q in qids}, k)
    inst_q = [q for q in qids if q in insts]
    inst_run = r.search({q: r.query_text(data.queries[q], insts[q][0]) for q in inst_q}, k) if inst_q else {}
    if run_file is not None:
        write_trec_run(plain | {f"{q}-inst": v for q, v in inst_run.items()}, run_file, tag=retriever)
    qrels_ = {q: data.qrels[q] for q in qids}
    ours, ref = per_query_ndcg(plain, qrels_, k), ir_measures_ndcg(plain, qrels_, k)
    compat = per_query_ndcg(plain, qrels_, k, "ifir")
    rows = [{"_id": q, "ndcg": ours[q], "ndcg_ifir_variant": compat[q], "top": list(plain.get(q, {}))} for q in qids]
    by_id = {row["_id"]: row for row in rows}
    for q in inst_q:
        by_id[q]["instruction"] = insts[q][0]
        by_id[q]["ndcg_instructed"] = per_query_ndcg({q: inst_run.get(q, {})}, {q: qrels_[q]}, k)[q]
        by_id[q]["top_instructed"] = list(inst_run.get(q, {}))
    result = {"retriever": retriever, "retriever_signature": getattr(r, "signature", retriever), "k": k,
              "metric": signature(k), "variant_metric": signature(k, "ifir"),
              "max_abs_diff_vs_ir_measures": max(abs(ours[q] - ref[q]) for q in qids),
              "mean": {"ndcg": mean_ci(list(ours.values()), bounds=(0, 1)).as_dict(),
                       "ndcg_ifir_variant": mean_ci(list(compat.values()), bounds=(0, 1)).as_dict()},
              "queries": rows}
    if inst_q:
        result["mean"]["ndcg_instructed"] = mean_ci([by_id[q]["ndcg_instructed"] for q in inst_q], bounds=(0, 1)).as_dict()
    if judge is not None:
        from paperlab.ifir.instfol import Judge, instfol, rubric_prompt

        jd = Judge(judge, max_tokens=judge_max_tokens)
        vals = []
        for q in inst_q:
            qi = instructed(data.queries[q], insts[q][0])
            docs = by_id[q]["top"] + by_id[q]["top_instructed"]
            scores = jd([rubric_prompt(insts[q][1], qi, _cut(data.corpus[d], max_passage_words)) for d in docs])
            n = len(by_id[q]["top"])
            by_id[q] |= {"plain_scores": scores[:n], "inst_scores": scores[n:], "instfol": instfol(scores[:n], scores[n:])}
            vals.append(by_id[q]["instfol"])
        result["judge"] = judge
        result["judge_max_passage_words"] = max_passage_words
        result["judge_failures"] = jd.failures
        result["mean"]["instfol"] = mean_ci(vals).as_dict()
    return result
