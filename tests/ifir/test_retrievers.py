"""Retrievers on real SciFact abstracts: BM25, window-averaged dense, the Instructor prompt, an endpoint."""

from __future__ import annotations

import numpy as np
import pytest

from paperlab.core.errors import UserError
from paperlab.ifir.data import load_scifact
from paperlab.ifir.ndcg import per_query_ndcg
from paperlab.ifir.retrievers import (
    INSTRUCTOR_QUERY,
    DenseRetriever,
    check_retriever,
    instructed,
    make_retriever,
)
from tests_helpers import EmbeddingServer


@pytest.fixture(scope="module")
def data():
    return load_scifact("subset")


def test_bm25_finds_documents_by_their_titles(data):
    bm25 = make_retriever("bm25")
    bm25.index(data.corpus)
    some = list(data.corpus)[:20]
    hits = bm25.search({d: data.titles[d] for d in some if data.titles[d]}, 3)
    assert sum(next(iter(h), None) == d for d, h in hits.items()) >= 0.9 * len(hits)
    assert bm25.search({"q": "the of and"}, 5) == {"q": {}}        # only stop words: nothing to rank


def test_dense_windows_cover_long_passages_and_average(data):
    dense = DenseRetriever("embed:minilm", window=64, stride=48)
    long_doc = max(data.corpus.values(), key=len)
    segs = dense.segments(long_doc)
    n_tok = len(dense._tokenize(long_doc))
    assert len(segs) == len(range(0, n_tok, 48)) > 1               # the official range(0, n, stride)
    v = dense.encode([long_doc])
    mean = dense.embedder.embed(segs).mean(0)
    assert np.allclose(v[0], mean / np.linalg.norm(mean), atol=1e-5)
    assert np.allclose(np.linalg.norm(dense.encode(["short", long_doc]), axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_dense_and_instruct_rank_cited_abstracts(data):
    qids = data.judged_queries()[:12]
    qrels = {q: data.qrels[q] for q in qids}
    judged = {d for q in qids for d in qrels[q]}
    docs = {d: t for d, t in data.corpus.items() if d in judged or int(d) % 17 == 0}   # judged + ~15 others
    scores = {}
    for name in ("dense", "instruct"):
        r = make_retriever(name)
        r.index(docs)
        run = r.search({q: r.query_text(data.queries[q]) for q in qids}, 10)
        scores[name] = np.mean(list(per_query_ndcg(run, qrels, 10).values()))
    assert scores["dense"] > 0.3 and scores["instruct"] > 0.3
    inst = make_retriever("instruct")
    assert inst.query_prompt == INSTRUCTOR_QUERY and inst.window == make_retriever("dense").window
    assert inst.query_text("q", "do x") == instructed("q", "do x") == "q do x"


def test_an_embedding_endpoint_serves_as_a_dense_retriever(data):
    local = make_retriever("dense").embedder
    docs = dict(list(data.corpus.items())[:12])
    with EmbeddingServer(lambda texts: local.embed(texts)) as srv:
        remote = make_retriever(f"embed:openai:{srv.url}#minilm", window=10_000)   # one window: the raw text
        remote.index(docs)
        assert np.allclose(remote.matrix, local.embed(list(docs.values())), atol=1e-5)
        q = {"a": data.titles[next(iter(docs))]}
        top = remote.search(q, 5)["a"]
        expected = np.argsort(-(local.embed([q["a"]]) @ remote.matrix.T)[0], kind="stable")[:5]
        assert list(top) == [list(docs)[i] for i in expected] and next(iter(top)) == next(iter(docs))
        assert srv.requests >= 1


def test_bad_retriever_names_are_one_line_errors():
    for bad in ("bm26", "embed:", "embed:foo", "embed:openai:nohttp#m"):
        with pytest.raises(UserError):
            check_retriever(bad)
    assert check_retriever("embed:hf:/some/folder") == "embed:hf:/some/folder"
