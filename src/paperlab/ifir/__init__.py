"""IFIR — "A Comprehensive Benchmark for Evaluating Instruction-Following in Expert-Domain Information
Retrieval" (Song et al., arXiv:2503.04644; official code ``SighingSnow/IFIR``).

**Claim.** Expert users write queries with instructions (a patient's history, a legal party's side, a
financial situation, whether a claim should be supported or refuted). IFIR (2,426 instructed queries,
finance / law / healthcare / science, instruction levels 1-3) shows that retrievers mostly ignore such
instructions: BM25 stays strong, instruction-tuned and LLM-based retrievers follow instructions best,
and every model gets worse as the instruction grows more complex. Beside nDCG@20 it proposes InstFol,
an LLM-judged measure of whether adding the instruction brings passages that follow it:

    s(p | Q_I)  = sum_d d P(d) / sum_d P(d)       (G-Eval: digit tokens d in 0..5 with P >= 0.01 among the
                                                   judge's top-10 alternatives at its score token)
    q_avg = mean_{p in top-k(Q)} s(p | Q_I),   i_avg = mean_{p in top-k(Q_I)} s(p | Q_I)
    InstFol = (i_avg - q_avg) / (3 - q_avg)       (0 if equal; i_avg - q_avg if q_avg = 3)

with ``Q_I = Q + " " + instruction``, positions with a failed judgement dropped from both lists, the
mean over queries per level. nDCG is the standard one (pytrec_eval, as MTEB's IFIR tasks).

**Here.** SciFact (BEIR) has no instructions: :mod:`~paperlab.ifir.instructions` builds three levels per
claim from its evidence labels and the anchor abstract's title, with the gold set under each
instruction defined by the same metadata. ``paperlab ifir run`` checks our nDCG against ir-measures and
BEIR's BM25 number, compares plain vs instructed rankings per level, and measures InstFol of BM25 and
the dense MiniLM retriever with any log-prob-returning LM as judge (default SmolLM2-135M, offline).

**Public API**

- :mod:`~paperlab.ifir.retrievers`: :class:`~paperlab.ifir.retrievers.Retriever`,
  :class:`~paperlab.ifir.retrievers.BM25Retriever`, :class:`~paperlab.ifir.retrievers.DenseRetriever`
  (window-averaged embeddings; Instructor prompts for ``instruct``), :func:`~paperlab.ifir.retrievers.make_retriever`
  (``bm25 | dense | instruct | embed:<spec>``)
- :mod:`~paperlab.ifir.ndcg`: :func:`~paperlab.ifir.ndcg.ndcg_at_k` (standard), :func:`~paperlab.ifir.ndcg.ndcg_ifir`
  (the official code's variant, labelled), :func:`~paperlab.ifir.ndcg.ir_measures_ndcg` (reference)
- :mod:`~paperlab.ifir.instfol`: :func:`~paperlab.ifir.instfol.rubric_prompt`, :func:`~paperlab.ifir.instfol.geval_score`,
  :func:`~paperlab.ifir.instfol.instfol`, :class:`~paperlab.ifir.instfol.Judge`
- :mod:`~paperlab.ifir.instructions`: :func:`~paperlab.ifir.instructions.build_units`
- :mod:`~paperlab.ifir.data`: :func:`~paperlab.ifir.data.load_beir`, :func:`~paperlab.ifir.data.load_scifact`
- ``paperlab ifir run | eval`` (:mod:`~paperlab.ifir.cli`)
"""
