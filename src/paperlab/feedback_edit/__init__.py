"""Feedback-Edit inference-time scaling — Wang et al., "Dedicated Feedback and Edit Models Empower
Inference-Time Scaling for Open-Ended General-Domain Tasks" (arXiv 2503.04378; ACL 2025 title
"HelpSteer3: Human-Annotated Feedback and Edit Data to Empower Inference-Time Scaling in Open-Ended
General-Domain Tasks").

**Claim.** Dedicated Feedback and Edit models, trained on human feedback/edit data (HelpSteer3), let a
model spend more compute at inference time on open-ended tasks: sample ``N`` responses, ``M`` feedbacks
per response, ``K`` edits per feedback, and let a reward model select one. Scaling ``N, M, K`` raises
Arena Hard (Llama-3.3-Nemotron-Super-49B 88.3 -> 93.4), beyond what best-of-N buys.

**Pipeline** (:mod:`.pipeline`; prompts as data in :mod:`.prompts`)::

    r_i   ~ Generator(x)                   i = 1..N       sample_initial
    f_ij  ~ Feedback(x, r_i)               j = 1..M       write_feedback   (ranked: rank_feedback)
    e_ijk ~ Edit(x, r_i, f_ij)             k = 1..K       write_edits
    y     = argmax_ijk  R(x, e_ijk)                       judge + select

    generation calls  C(N, M, K) = N + N·M + N·M·K;   best-of-N' at equal calls: N' = C(N, M, K).

**Offline here.** Every role is a backend spec (the same small LM may play all four); the selector
``R`` is an LM judge, ``log P(Yes) - log P(No)`` of its answer to "Is the proposed response correct
and helpful?". The claims are measured where the reward is exact (:mod:`.tasks`: generated one-step
and two-step arithmetic, GSM8K): the *reported* reward is correctness of the selected answer's final number.

Claims (``paperlab feedback_edit run``): ``feedback_edit_scales`` (reward at the largest minus the
smallest (N, M, K)), ``beats_best_of_n_equal_calls`` (Feedback-Edit minus best-of-N' at the same
generation calls) — paired bootstrap over problems, reported either way. Beside them the report
gives, per setting, the oracle (some candidate correct: the selector's headroom), the reward under
self-consistency voting over the same candidates (``pipeline.vote``, model-free), the selector's
AUROC, whether edits beat their unedited responses, and calls and tokens per role.

Public API: :func:`~paperlab.feedback_edit.pipeline.run_pipeline`, the stage functions
(``sample_initial``, ``write_feedback``, ``rank_feedback``, ``write_edits``, ``judge``, ``select``),
``select_feedback_edit`` / ``select_best_of_n`` and ``compute_feedback_edit`` / ``compute_best_of_n``
(calls and tokens per role) in :mod:`.pipeline`; :func:`~paperlab.feedback_edit.experiment.reproduce`;
CLI ``paperlab feedback_edit run [--quick]`` and ``paperlab feedback_edit solve --input prompts.jsonl
--n N --m M --k K --generator SPEC --feedback SPEC --editor SPEC --selector SPEC``.
"""
