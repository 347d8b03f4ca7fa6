"""nDCG: ours equals ir-measures (pytrec_eval) on run files; the IFIR-code variant differs where it should."""

from __future__ import annotations

import math
import random

import ir_measures
import pytest

from paperlab.ifir.data import load_scifact, write_trec_run
from paperlab.ifir.ndcg import ir_measures_ndcg, ndcg_at_k, ndcg_ifir, per_query_ndcg
from paperlab.ifir.retrievers import BM25Retriever


def _read_run(path):
    run = {}
    for row in ir_measures.read_trec_run(str(path)):
        run.setdefault(row.query_id, {})[row.doc_id] = float(row.score)
    return run


def test_bm25_ndcg10_equals_ir_measures_on_the_same_run_file(tmp_path):
    data = load_scifact("subset")
    qids = data.judged_queries()
    bm25 = BM25Retriever()
    bm25.index(data.corpus)
    path = tmp_path / "bm25.trec"
    write_trec_run(bm25.search({q: data.queries[q] for q in qids}, 100), path)
    run = _read_run(path)
    qrels = {q: data.qrels[q] for q in qids}
    ours = per_query_ndcg(run, qrels, 10)
    ref = {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.nDCG @ 10],
                                                                list(ir_measures.read_trec_qrels(_qrels_file(tmp_path, qrels))),
                                                                list(ir_measures.read_trec_run(str(path))))}
    assert set(ours) == set(qids)
    assert max(abs(ours[q] - ref.get(q, 0.0)) for q in qids) < 1e-12
    assert 0.3 < sum(ours.values()) / len(ours) < 1.0          # BM25 finds the cited abstracts


def _qrels_file(tmp_path, qrels):
    p = tmp_path / "qrels.txt"
    p.write_text("".join(f"{q} 0 {d} {g}\n" for q, r in qrels.items() for d, g in r.items()))
    return str(p)


def test_graded_qrels_ties_and_cutoffs_match_pytrec_eval():
    rng = random.Random(3)
    docs = [f"d{i}" for i in range(30)]
    qrels = {f"q{j}": {d: rng.choice([0, 1, 2, 3]) for d in rng.sample(docs, 8)} for j in range(25)}
    qrels = {q: r for q, r in qrels.items() if any(g > 0 for g in r.values())}
    run = {q: {d: float(rng.randint(0, 5)) for d in rng.sample(docs, 20)} for q in qrels}   # many ties
    for k in (1, 5, 10, 20):
        ours, ref = per_query_ndcg(run, qrels, k), ir_measures_ndcg(run, qrels, k)
        assert max(abs(ours[q] - ref[q]) for q in qrels) < 1e-12


def test_hand_computed_values_and_the_ifir_variant():
    # one relevant document at rank 2: 1 / log2(3)
    assert ndcg_at_k({"x": 2.0, "a": 1.0}, {"a": 1}, 10) == pytest.approx(1 / math.log2(3))
    # two relevant, one retrieved at rank 1: standard penalises the miss, the IFIR code's variant does not
    run, gold = {"a": 2.0, "x": 1.0}, {"a": 1, "b": 1}
    assert ndcg_at_k(run, gold, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert ndcg_ifir(run, gold, 10) == pytest.approx(1.0)
    assert ndcg_ifir({"x": 1.0}, gold, 10) == 0.0 == ndcg_at_k({"x": 1.0}, gold, 10)
    # a perfect ranking is 1 under both
    assert ndcg_at_k({"a": 2.0, "b": 1.0}, gold, 10) == pytest.approx(1.0) == ndcg_ifir({"a": 2.0, "b": 1.0}, gold)
