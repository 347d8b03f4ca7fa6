"""Structural priming in bilingual LMs — "On the Acquisition of Shared Grammatical Representations in Bilingual
Language Models" (Arnett, Chang, Michaelov, Bergen; arXiv:2503.03962, ACL 2025). https://arxiv.org/abs/2503.03962
(code and data on OSF, osf.io/5cw2e; models ``catherinearnett/B-GPT_*``).

**Claim.** Bilingual GPT-2 models trained on two languages show structural priming within each language and,
after the second language is introduced, *crosslingual* priming (a prime in one language raises the probability
of the same structure in the other): evidence of shared grammatical representations that emerge during
training. The effects differ by direction and pair and are weaker for typologically less similar pairs; data
amount and exposure order (sequential vs. simultaneous) matter.

**Regimes** (B-GPT): 128k steps, L2 from step 64k. Sequential: L1 only, then L2 only. Simultaneous: L1 only,
then a 50/50 mix. Checkpoints dense right after the onset.

**Measure** (the fact sheet's reading of Michaelov et al. 2023; NOT verified against the OSF code)::

    P(T | P)      = prod_j p(t_j | prime, t_<j)                     target tokens only, prime as context
    P_N(T_x | P)  = P(T_x | P) / (P(T_x | P) + P(T_y | P))
    effect        = P_N(T_x | P_x) - P_N(T_x | P_y)                  > 0: priming (x/y symmetric)
    PE (Prime-LM) = log P(T_x | P_x) - log P(T_x | P_y)              secondary (Sinclair et al. 2022, verified)

for the dative (x = prepositional object, y = double object) and voice (x = active, y = passive)
alternations, within L1, within L2, L1→L2 and L2→L1.

**Our small-scale version** (:mod:`~paperlab.priming.experiment`): template-grammar languages with disjoint
lexicons (:mod:`~paperlab.priming.grammar`: an English-like SVO L1; a similar SVO L2; a dissimilar verb-final L2
with case postpositions and another passive), documents with a structural-persistence knob (the source of
priming in natural text) and no cross-language persistence; tiny core transformers trained with the core trainer
in both regimes, plus a positive-control model whose post-onset data contain code-switched documents
(:mod:`~paperlab.priming.regimes`; never used by a claim); the effect at
every checkpoint with t-tests, Wilcoxon tests and t-intervals over items (:mod:`~paperlab.priming.measure`).

API::

    from paperlab.priming import Grammar, make_items, cell_logprobs, priming_effects, transformer_scorer
    g = Grammar(); items = make_items(g, "dative", "en", "sim", n=50, seed=0)
    eff = priming_effects(cell_logprobs(transformer_scorer(model, g), items))["effect"]   # per item

    paperlab priming run --quick                                           # claims + report
    paperlab priming measure --model hf:<path> --items items.jsonl         # priming in your model (JSON)
"""

# The API is imported lazily (PEP 562) so that ``paperlab.priming.cli`` stays cheap to import (no torch).
_API = {
    "Grammar": "grammar", "CorpusSpec": "grammar", "Content": "grammar", "realise": "grammar",
    "make_lexicon": "grammar", "mix_stream": "grammar", "ALTERNATIONS": "grammar", "STRUCTURES": "grammar",
    "PAIRS": "grammar",
    "make_items": "measure", "cell_logprobs": "measure", "priming_effects": "measure",
    "transformer_scorer": "measure", "hf_scorer": "measure",
    "checkpoint_steps": "regimes", "RegimeData": "regimes", "train_regime": "regimes",
    "load_snapshot": "apply", "summarise_items": "apply",
    "PrimingConfig": "experiment", "reproduce": "experiment", "default_config": "experiment",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f"paperlab.priming.{_API[name]}"), name)
    raise AttributeError(f"module 'paperlab.priming' has no attribute {name!r}")
