"""FuseChat-3.0: Preference Optimization Meets Heterogeneous Model Fusion (Yang et al., arXiv:2503.04222, 2025).

**Claim.** *Implicit model fusion* (IMF) transfers the strengths of several large *source* LLMs into a small
*target* model without merging weights: sample every prompt several times from each source, score the responses
(reward model ArmoRM; math by correctness against the gold answer, code by tests), fine-tune the target on the best
response per prompt (SFT), then run DPO on preference pairs built **within one source** (its best vs. its worst
response, RM gap in ``[0.01, 0.1]``). Same-source pairs keep the pair's difference about quality rather than about
the sources' styles. With Llama-3.1-8B-Instruct as target the 14-benchmark average rises 40.5 -> 43.2 (SFT) -> 47.3
(DPO); AlpacaEval-2 LC 28.3 -> 41.3 -> 65.4.

**Equations.** SFT: ``L_SFT = -E log pi_theta(y* | x)`` with ``y* = argmax_{s,k} r(y_{s,k})``.
Length-normalised DPO (reference ``pi_ref`` = the SFT model, ``beta = 10``)::

    L = -log sigma( beta/|y_w| log(pi_theta(y_w|x)/pi_ref(y_w|x)) - beta/|y_l| log(pi_theta(y_l|x)/pi_ref(y_l|x)) )

**Here.** :mod:`~paperlab.fusechat.imf` builds the data (sampling with the paper's settings, verification, a judge
reward, the SFT / same-source / cross-source selection rules, TRL JSONL); :mod:`~paperlab.fusechat.dpo` trains the
target with LoRA through TRL (``loss_type="sigmoid_norm"`` is exactly the loss above; held to
:func:`~paperlab.fusechat.dpo.ln_dpo_loss` by a test); :mod:`~paperlab.fusechat.experiment` runs SFT then DPO on
same-source vs. cross-source pairs and compares them on held-out verifiable problems
(claims ``dpo_improves_over_sft``, ``same_source_pairs_better``). Offline, the sources are the one shipped LM
(SmolLM2-135M-Instruct) under different system prompts, demonstrations and the paper's two sampling settings — not
the paper's four 27B-123B LLMs — and the reward model is that LM's P(Yes) judgement, not ArmoRM.

Public API: :class:`~paperlab.fusechat.imf.Source`, :func:`~paperlab.fusechat.imf.sample_responses`,
:func:`~paperlab.fusechat.imf.judge_rewards`, :func:`~paperlab.fusechat.imf.verify`,
:func:`~paperlab.fusechat.imf.sft_target`, :func:`~paperlab.fusechat.imf.same_source_pair`,
:func:`~paperlab.fusechat.imf.cross_source_pair`, :func:`~paperlab.fusechat.imf.build_imf`,
:func:`~paperlab.fusechat.dpo.ln_dpo_loss`, :func:`~paperlab.fusechat.dpo.train_sft`,
:func:`~paperlab.fusechat.dpo.train_dpo`, :func:`~paperlab.fusechat.build.build_data`;
CLI ``paperlab fusechat run [--quick]`` and ``paperlab fusechat build --sources ... --prompts FILE``.
"""
