"""nDCG@k: the standard definition (as pytrec_eval / ir-measures compute it) and the IFIR code's variant.

Standard (Järvelin & Kekäläinen; trec_eval's ``ndcg_cut``), for a ranking ``d_1..d_k`` of one query:

    DCG@k  = sum_{i=1..k} g(d_i) / log2(i + 1)
    IDCG@k = the same sum over the judged documents sorted by grade (the *qrels*, not the ranking)
    nDCG@k = DCG@k / IDCG@k          (0 when the query has no relevant document)

with the gain ``g`` = the qrels grade (trec_eval's linear gains). Ties in the run's scores are broken
as trec_eval does: by descending document id. We compute it by hand (a few lines of numpy) because
the paper-compat variant below shares it and because every unit of IFIR is a (query, instruction)
pair with its own gold set; ``tests/ifir`` check it equals ir-measures (pytrec_eval) on run files.

**Paper-compat variant** (``ndcg_ifir``, the official ``src/utils/metrics.py`` nDCG used by
``src/eval.py`` / ``src/offline_ndcg.py``): binary gains, ``rel_i / log2(i + 2)`` with ``i`` from 0,
and the *ideal* DCG built by sorting the retrieved list itself, so a ranking that retrieves any
relevant document in its top-k is only penalised for where it puts it, not for the relevant
documents it misses (0 when it retrieves none). It is reported, labelled, only to compare with the
paper's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Run = Mapping[str, Mapping[str, float]]      # query id -> doc id -> score
Qrels = Mapping[str, Mapping[str, int]]      # query id -> doc id -> grade


def ranking(scores: Mapping[str, float], k: int | None = None) -> list[str]:
    """Doc ids by descending score, ties by descending doc id (trec_eval's order)."""
    order = sorted(scores.items(), key=lambda x: (x[1], x[0]), reverse=True)
    return [d for d, _ in order[:k]]


def _dcg(gains: list[float]) -> float:
    # DCG = sum_i g_i / log2(i + 1), ranks i from 1
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(scores: Mapping[str, float], qrel: Mapping[str, int], k: int = 10) -> float:
    """Standard nDCG@k of one query (linear gains from the qrels, ideal from the qrels)."""
    gains = [max(qrel.get(d, 0), 0) for d in ranking(scores, k)]
    ideal = sorted((g for g in qrel.values() if g > 0), reverse=True)[:k]
    idcg = _dcg(ideal)
    return _dcg(gains) / idcg if idcg > 0 else 0.0


def ndcg_ifir(scores: Mapping[str, float], gold: set[str] | Mapping[str, int], k: int = 10) -> float:
    """The IFIR code's nDCG (paper-compat, non-standard): binary gains, ideal from the retrieved list."""
    gold_ids = {d for d, g in gold.items() if g > 0} if isinstance(gold, Mapping) else set(gold)
    rel = [1.0 if d in gold_ids else 0.0 for d in ranking(scores, k)]
    idcg = _dcg(sorted(rel, reverse=True))   # the official code sorts the *retrieved* relevances
    return _dcg(rel) / idcg if idcg > 0 else 0.0


def per_query_ndcg(run: Run, qrels: Qrels, k: int = 10, variant: str = "standard") -> dict[str, float]:
    """nDCG@k of every judged query that has at least one relevant document (a query missing from
    ``run`` scores 0, as trec_eval with ``-c``)."""
    fn = ndcg_at_k if variant == "standard" else ndcg_ifir
    return {q: fn(run.get(q, {}), rel, k) for q, rel in qrels.items() if any(g > 0 for g in rel.values())}


def ir_measures_ndcg(run: Run, qrels: Qrels, k: int = 10) -> dict[str, float]:
    """The reference: ir-measures' ``nDCG@k`` (pytrec_eval backend) per query."""
    import ir_measures

    measure = ir_measures.nDCG @ k
    qrels_ = {q: {d: int(g) for d, g in r.items()} for q, r in qrels.items() if any(g > 0 for g in r.values())}
    run_ = {q: {d: float(s) for d, s in r.items()} for q, r in run.items() if q in qrels_}
    out = {m.query_id: float(m.value) for m in ir_measures.iter_calc([measure], qrels_, run_)}
    return {q: out.get(q, 0.0) for q in qrels_}


def signature(k: int, variant: str = "standard") -> str:
    """What produced a number (sacrebleu-style): metric, cut-off, gains, ideal."""
    if variant == "standard":
        return f"nDCG@{k}|linear gains from qrels|ideal from qrels|trec_eval tie order"
    return f"nDCG@{k}|IFIR-code variant|binary gains|ideal from the retrieved list"
