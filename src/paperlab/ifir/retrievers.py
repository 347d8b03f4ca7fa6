"""Retrievers behind one interface (the paper's Section 4 set-up): BM25, dense, instruction-aware.

Every retriever indexes a corpus ``{doc id: passage}`` and answers query texts with its top-k
``{query id: {doc id: score}}``. How an *instructed* query is written is the retriever's
:meth:`Retriever.query_text`; the IFIR code writes ``query + " " + instruction`` for every model
(``src/eval.py``, ``src/llm_eval_pre.py``), and so do we.

=================  ==============================================================================
``bm25``           bm25s (Lucene BM25, k1 = 1.2, b = 0.75 as Elasticsearch, which the paper uses),
                   English stop words and the Snowball stemmer (PyStemmer) when installed
``dense``          the offline all-MiniLM-L6-v2 (``embed:minilm``), cosine similarity; passages *and*
                   queries longer than one window are cut into token windows, each embedded, and the
                   window vectors averaged (the official ``segment_text``: windows start every
                   ``stride`` tokens, ``range(0, n, stride)``, each ``window`` tokens long; the paper's
                   512/384 is scaled to MiniLM's 256-token input: 254/190, the same 3/4 stride)
``instruct``       the dense encoder with the official Instructor prompts (``src/utils/embeddings.py``,
                   domain variant for science): queries are embedded after ``"Represent the science
                   query for retrieve relevant paragraphs: "``, passages after ``"Represent the science
                   paragraph for retrieval: "``; with an instruction-tuned ``hf:`` encoder this is the
                   paper's Instructor set-up, with MiniLM it only tests the prompt
``embed:<spec>``   any embedding spec of :mod:`paperlab.core.embeddings` (``embed:minilm``,
                   ``hf:<folder>``, ``openai:<url>#<model>``): dense retrieval with it (windows of
                   whitespace words for an endpoint, whose tokenizer we do not have)
=================  ==============================================================================

Exact search (a matrix product over L2-normalised vectors) replaces Elasticsearch's kNN: on a corpus of
thousands of passages it is exact and fast; faiss would add nothing at this size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from paperlab.core.errors import UserError

INSTRUCTOR_QUERY = "Represent the science query for retrieve relevant paragraphs: "
INSTRUCTOR_DOC = "Represent the science paragraph for retrieval: "
NAMES = ("bm25", "dense", "instruct")
RETRIEVER_HELP = "use bm25 | dense | instruct | embed:<spec> (embed:minilm, embed:hf:<folder>, embed:openai:<url>#<model>)"


def instructed(query: str, instruction: str | None) -> str:
    """The IFIR instructed query: ``query + " " + instruction``."""
    return query if not instruction else f"{query} {instruction}"


class Retriever:
    """Index a corpus, then return each query's top-k documents with scores."""

    name = "abstract"

    def query_text(self, query: str, instruction: str | None = None) -> str:
        return instructed(query, instruction)

    def index(self, corpus: Mapping[str, str]) -> None:
        raise NotImplementedError

    def search(self, queries: Mapping[str, str], k: int = 10) -> dict[str, dict[str, float]]:
        raise NotImplementedError


class BM25Retriever(Retriever):
    """Lucene BM25 via bm25s (a well-kept, fast implementation)."""

    def __init__(self, k1: float = 1.2, b: float = 0.75, stem: bool = True):
        self.name, self.k1, self.b = "bm25", k1, b
        self.stemmer = None
        if stem:
            try:
                import Stemmer

                self.stemmer = Stemmer.Stemmer("english")
            except ImportError:  # PyStemmer is optional: without it BM25 runs unstemmed (said in the signature)
                self.stemmer = None

    @property
    def signature(self) -> str:
        import bm25s

        stem = "snowball-english" if self.stemmer is not None else "no stemming"
        return f"bm25s {getattr(bm25s, '__version__', '?')}|lucene|k1={self.k1}|b={self.b}|stopwords=en|{stem}"

    def _tokens(self, texts: Sequence[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(list(texts), stopwords="en", stemmer=self.stemmer, return_ids=False,
                              show_progress=False)

    def index(self, corpus):
        import bm25s

        self.ids = list(corpus)
        self.model = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        self.model.index(self._tokens([corpus[d] for d in self.ids]), show_progress=False)
        self.vocab = self.model.vocab_dict

    def search(self, queries, k=10):
        k = min(k, len(self.ids))
        out = {}
        for qid, toks in zip(queries, self._tokens(list(queries.values())), strict=True):
            known = [t for t in toks if t in self.vocab]
            if not known:  # nothing to match: an empty ranking (scores 0 would rank arbitrarily)
                out[qid] = {}
                continue
            scores = self.model.get_scores(known)
            top = np.argsort(-scores, kind="stable")[:k]
            out[qid] = {self.ids[i]: float(scores[i]) for i in top if scores[i] > 0}
        return out


class DenseRetriever(Retriever):
    """Bi-encoder retrieval with window-averaged embeddings (the official ``segment_text`` + mean)."""

    def __init__(self, spec: str = "embed:minilm", window: int | None = None, stride: int | None = None,
                 query_prompt: str = "", doc_prompt: str = "", name: str = "dense",
                 cache_vectors: Callable[[str, Callable[[], np.ndarray]], np.ndarray] | None = None):
        from paperlab.core.embeddings import load_embedder

        self.name, self.spec = name, spec
        self.embedder = load_embedder(spec)
        self.query_prompt, self.doc_prompt = query_prompt, doc_prompt
        st = getattr(self.embedder, "model", None)
        self.tokenizer = getattr(st, "tokenizer", None)
        if self.tokenizer is not None:
            limit = int(getattr(st, "max_seq_length", 512) or 512) - 2   # [CLS] and [SEP]
            self.window = window or min(512, limit)
        else:
            self.window = window or 512      # whitespace words for an endpoint
        self.stride = stride or max(1, self.window * 3 // 4)
        if self.stride > self.window:
            raise UserError(f"stride {self.stride} > window {self.window}", "use stride <= window")
        self.cache_vectors = cache_vectors

    @property
    def signature(self) -> str:
        unit = "tokens" if self.tokenizer is not None else "words"
        return (f"{self.embedder.id}|cosine|windows of {self.window} {unit}, stride {self.stride}, mean-pooled"
                + (f"|query prompt {self.query_prompt!r}" if self.query_prompt else "")
                + (f"|passage prompt {self.doc_prompt!r}" if self.doc_prompt else ""))

    def _tokenize(self, text: str) -> list[str]:
        """Word pieces of a whole passage (windows come next, so transformers' "longer than the maximum
        sequence length" warning does not apply and is silenced)."""
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            return self.tokenizer.tokenize(text)
        finally:
            hf_logging.set_verbosity(level)

    def segments(self, text: str, prompt: str = "") -> list[str]:
        """The official ``segment_text``: windows starting at 0, stride, 2*stride, ... (the window
        shrinks by the prompt's length, as for Instructor)."""
        if self.tokenizer is not None:
            toks = self._tokenize(text)
            width = self.window - (len(self._tokenize(prompt)) if prompt else 0)
            segs = [self.tokenizer.convert_tokens_to_string(toks[i:i + width]) for i in range(0, len(toks), self.stride)]
        else:
            toks = text.split()
            segs = [" ".join(toks[i:i + self.window]) for i in range(0, len(toks), self.stride)]
        segs = [s for s in segs if s]
        return segs or [text]

    def encode(self, texts: Sequence[str], prompt: str = "") -> np.ndarray:
        """One vector per text: the mean of its window vectors, L2-normalised (cosine search)."""
        owner, segs = [], []
        for i, t in enumerate(texts):
            for s in self.segments(t, prompt):
                owner.append(i)
                segs.append(prompt + s)
        vecs = self.embedder.embed(segs) if segs else np.zeros((0, 1), np.float32)
        out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
        np.add.at(out, np.asarray(owner, dtype=int), vecs)
        out /= np.maximum(np.bincount(owner, minlength=len(texts)), 1)[:, None]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def index(self, corpus):
        self.ids = list(corpus)

        def compute() -> np.ndarray:
            return self.encode([corpus[d] for d in self.ids], self.doc_prompt)

        self.matrix = self.cache_vectors(self.signature + "|docs", compute) if self.cache_vectors else compute()

    def search(self, queries, k=10):
        k = min(k, len(self.ids))
        q = self.encode(list(queries.values()), self.query_prompt)
        sims = q @ self.matrix.T
        out = {}
        for qid, row in zip(queries, sims, strict=True):
            top = np.argsort(-row, kind="stable")[:k]
            out[qid] = {self.ids[i]: float(row[i]) for i in top}
        return out


def check_retriever(name: str) -> str:
    """One-line error unless ``name`` is a retriever name or ``embed:<spec>`` (checked before any work)."""
    if name in NAMES:
        return name
    kind, sep, rest = name.partition(":")
    if kind == "embed" and rest:
        if not (rest == "minilm" or rest.startswith(("hf:", "openai:"))):
            raise UserError(f"unknown embedding spec in --retriever {name!r}", RETRIEVER_HELP)
        if rest.startswith("openai:"):
            base, _, model = rest[len("openai:"):].partition("#")
            if not base.startswith(("http://", "https://")) or not model:
                raise UserError(f"bad endpoint in --retriever {name!r}", "write embed:openai:http://host:port/v1#<model>")
        return name
    raise UserError(f"unknown retriever {name!r}", RETRIEVER_HELP)


def make_retriever(name: str, window: int | None = None, stride: int | None = None,
                   cache_vectors=None) -> Retriever:
    """A retriever by name (see the module table)."""
    check_retriever(name)
    if name == "bm25":
        return BM25Retriever()
    if name == "dense":
        return DenseRetriever("embed:minilm", window, stride, cache_vectors=cache_vectors)
    if name == "instruct":
        return DenseRetriever("embed:minilm", window, stride, INSTRUCTOR_QUERY, INSTRUCTOR_DOC, name="instruct",
                              cache_vectors=cache_vectors)
    rest = name.partition(":")[2]
    spec = "embed:minilm" if rest == "minilm" else rest
    return DenseRetriever(spec, window, stride, name=name, cache_vectors=cache_vectors)
