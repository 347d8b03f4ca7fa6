"""TSV — "How to Steer LLM Latents for Hallucination Detection?" (Park, Du, Yeh, Wang, Li; ICML 2025,
`arXiv 2503.01917 <https://arxiv.org/abs/2503.01917>`_; official code ``deeplearning-wisc/tsv``).

**Claim.** An LLM's own latent space does not separate truthful from hallucinated answers well, but a
single learned vector added to the residual stream — the *Truthfulness Separator Vector* — reshapes
it so that they separate, with only a few dozen labelled answers plus unlabelled generations.
The paper reports AUROC ~84 on TruthfulQA with LLaMA-3.1-8B, well above uncertainty, consistency
and probe baselines.

**Method.**

1. *Steering* (:mod:`~paperlab.tsv.steering`): :math:`h_l \\leftarrow h_l + \\lambda v` at the output of
   decoder block :math:`l`, every position; LLM frozen, :math:`v` zero-initialised.
2. *Embedding*: :math:`r` = final-layer hidden state of the last token, L2-normalised.
3. *vMF prototypes* (:mod:`~paperlab.tsv.prototypes`): :math:`p(c \\mid r) = \\mathrm{softmax}_c(
   \\mu_c^\\top r / \\tau)`, :math:`\\tau = 0.1`; loss :math:`-\\sum_c y_c \\log p(c \\mid r)`; prototypes
   follow EMA updates :math:`\\mu_c \\leftarrow \\mathrm{normalize}(0.99\\,\\mu_c + 0.01\\,\\bar r_c)`,
   no gradient.
4. *Stage 1*: train on :math:`N = 32` labelled exemplars (AdamW, lr 5e-3, 20 epochs, batch 128).
5. *Stage 2* (:mod:`~paperlab.tsv.sinkhorn`): pseudo-label the unlabelled answers by Sinkhorn optimal
   transport (cost :math:`-\\log p`, :math:`\\varepsilon = 0.05`, 3 iterations, class marginal = the
   exemplars' class prior), keep the :math:`k = 128` most confident (class-balanced), retrain 20 epochs
   on exemplars + selected.
6. *Score*: :math:`p(\\text{truthful} \\mid r)`; metric AUROC.

Answers are embedded in the context they were generated in (the chat template with the paper's
prompt as the user turn; :func:`~paperlab.tsv.labelling.scoring_context`). ``paperlab tsv run``
tests the claim on TruthfulQA's gold reference answers (``--mode gold``, the quick default: exact
labels, offline) or on the LM's own answers labelled by reference similarity (``--mode paper``),
against the baselines a user tries first (perplexity, PMI of answer and question, question-answer
cosine, raw prototypes, a probe), with lambda, learning rate and epochs selected on validation over
3 seeds.

Training runs only the blocks after :math:`l` on cached :math:`h_l` (the prefix is frozen); see
``benchmarks/tsv_prefix_cache.py`` for the speed-up.

**API.**

- :class:`SteeringVector`, :func:`encode_dataset`, :func:`prefix_mode` — the hook and the prefix cache;
- :class:`VMFPrototypes` — prototypes, posterior, EMA;
- :func:`sinkhorn_pseudo_labels`, :func:`select_confident` — stage-2 pseudo-labels;
- :class:`TSVTrainer`, :class:`TSVHyper` — the two-stage algorithm;
- :class:`Detector` — save / load / score a trained detector
  (``paperlab tsv score --detector DIR --input pairs.jsonl``);
- :func:`encode_answers`, :func:`scoring_context` — answers in their generation context;
- :func:`gold_items` — TruthfulQA's reference answers as labelled items, split by question;
- :func:`mean_auroc_diff` — seed-mean AUROC difference, paired bootstrap;
- :func:`reproduce` — ``paperlab tsv run [--quick]``: TruthfulQA with the paper's split, baselines,
  claims ``tsv_beats_baselines`` and ``tsv_ot_stage``, report.
"""

_API = {
    "Detector": "detector", "score_file": "detector",
    "VMFPrototypes": "prototypes", "soft_cross_entropy": "prototypes",
    "select_confident": "sinkhorn", "sinkhorn_pseudo_labels": "sinkhorn",
    "SteeringVector": "steering", "encode_dataset": "steering", "prefix_mode": "steering",
    "suffix_embeddings": "steering",
    "TSVHyper": "training", "TSVTrainer": "training",
    "reproduce": "experiment", "mean_auroc_diff": "experiment",
    "encode_answers": "steering", "scoring_context": "labelling", "gold_items": "data",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    # lazy: ``paperlab.tsv.cli`` must import without torch
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f"paperlab.tsv.{_API[name]}"), name)
    raise AttributeError(f"module 'paperlab.tsv' has no attribute {name!r}")
