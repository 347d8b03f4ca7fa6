"""Understanding and Predicting Derailment in Toxic Conversations on GitHub (Imran et al., arXiv 2503.02191).

**The paper's claim.** Toxic comments on GitHub rarely come out of nowhere: the conversations that turn
toxic *derail* first, and the comments before the first toxic one carry markers of it — second-person
pronouns, negation, the tones *Bitter frustration* and *Impatience*, and a contributor-vs-outsider
dynamic. An LLM that first writes a *conversation trajectory summary* (SCD: how the dynamics evolve,
not the technical content) with a 7-step least-to-most (LtM) guideline, and then states the probability
``p`` that the conversation derails into toxicity, predicts it from those earlier comments alone: F1
0.70 (P 0.76, R 0.65) at ``p >= 0.5`` on 822 conversations with llama3.1:70b (the stored results of the
replication package), above the SCD prompts of Hua et al. (F1 0.48) and a GitHub few-shot SCD (0.64).

**The prediction.** For a thread with comments ``c_1 .. c_n`` and first toxic comment ``c_{t+1}``,
the input is the prefix ``x = c_1 .. c_t`` (all ``n`` comments of a non-toxic thread)::

    s = LLM(LtM_guideline ⊕ transcript(x))             # step 1: trajectory summary
    p = LLM(predict_prompt ⊕ s)  ∈ [0, 1]              # step 2: probability of derailment
    alarm = [p >= 0.5]                                   # label 1 = the thread turns toxic

    precision = TP / (TP + FP),  recall = TP / (TP + FN),  F1 = 2 TP / (2 TP + FP + FN)

Early warning scores every prefix ``c_1 .. c_k`` (``k = 1 .. t``); the lead of a warned toxic thread is
``t + 1 - min{k : p_k >= 0.5}`` comments before the toxic one.

**What we add at small scale.** A feature baseline (:mod:`.features`: the markers as numbers, logistic
regression), the pipeline with any LLM backend (:mod:`.scd`, default SmolLM2-135M offline), bootstrap
intervals on a seeded held-out split by conversation, a threshold sweep and early warning
(:mod:`.evaluation`), on the public release of the data (:mod:`.data`).

Public API::

    from paperlab.derailment import (Thread, Comment, load_threads, split_threads, read_user_threads,
                                     FeatureClassifier, prefix_features, comment_markers,
                                     SCDPredictor, transcript, parse_probability, yes_no_probability,
                                     prf, prf_estimates, f1_difference, threshold_sweep, early_warning)
    clf = FeatureClassifier().fit(load_threads())
    clf.predict_proba([thread.prefix])                        # P(toxic) from the markers
    SCDPredictor(load_lm("default"), prompt="ltm").predict([thread.prefix])  # summary -> probability

CLI: ``paperlab derailment run [--quick]`` (the experiment) and ``paperlab derailment predict --threads
FILE.jsonl [--method features|llm] [--model SPEC]`` (your threads -> JSONL probabilities).
"""

import importlib

# The API is loaded lazily (PEP 562): ``paperlab derailment --help`` imports this package and must stay cheap.
_API = {
    "data": ("Comment", "Thread", "load_threads", "read_user_threads", "split_threads"),
    "features": ("FeatureClassifier", "comment_markers", "prefix_features"),
    "scd": ("SCDPredictor", "transcript", "parse_probability", "yes_no_probability"),
    "evaluation": ("prf", "prf_estimates", "f1_difference", "threshold_sweep", "early_warning"),
}
_WHERE = {name: module for module, names in _API.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"paperlab.derailment.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'paperlab.derailment' has no attribute {name!r}")
