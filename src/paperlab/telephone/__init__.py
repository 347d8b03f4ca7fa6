"""LLM as a Broken Telephone: Iterative Generation Distorts Information (arXiv 2502.20258).

Claim. Passing a text through a chain of LLM generations — translate to another language and back,
again and again, or rephrase it repeatedly — distorts it progressively, like the children's game.
Textual similarity to the original (BLEU, chrF, METEOR, BERTScore) and factuality (FActScore)
fall with the number of iterations. Distortion grows faster with a distant pivot language, with
more models and languages in the chain (multiplayer), with higher sampling temperature, and with
less constrained prompts; at temperature ~0 the chain barely moves.

The chain (Section 3). With generation 0 the original passage ``x_0`` and ``f`` one translation hop,

    x_t = f_{X->EN}(f_{EN->X}(x_{t-1}))                 bilingual (self-loop or two-player)
    x_t = f_{L_k->EN} ∘ … ∘ f_{EN->L_1}(x_{t-1})          multiplayer, L_1..L_k reshuffled each t

and every metric compares ``x_t`` with ``x_0``:

    chrF_beta = (1 + beta^2) · chrP · chrR / (beta^2 · chrP + chrR)
    FActScore(x_t) = |{a ∈ A(x_t) : a supported by x_0}| / |A(x_t)|     (a precision; |A(x_t)| facts per response)
    fact_recall(x_t) = |{a ∈ A(x_0) : a supported by x_t}| / |A(x_0)|   (the reverse, an extra)

Public API
----------
- :mod:`paperlab.telephone.chains` — :class:`Setup`, :class:`MTPlayer`, :class:`LMPlayer`,
  :func:`run_chain` (self-loop, two-player, multiplayer, rephrase).
- :mod:`paperlab.telephone.prompts` — the three constraint levels (Simple, Base, Constrained).
- :mod:`paperlab.telephone.metrics` — :func:`score_pairs` (BLEU, chrF, METEOR, ROUGE-1/L, BERTScore;
  ``standard`` or ``paper`` conventions, the latter reproducing the paper's stored values).
- :mod:`paperlab.telephone.factscore` — atomic facts of the generation verified against the original
  (LLM judge or offline fallback), and the reverse recall.
- :mod:`paperlab.telephone.experiment` — the small-scale reproduction and its claims.

CLI: ``paperlab telephone run [--quick]`` and ``paperlab telephone score --original F --generations F``.
"""

_API = {"LMPlayer": "chains", "MTPlayer": "chains", "Setup": "chains", "run_chain": "chains",
        "LEVELS": "prompts", "build_prompt": "prompts"}
__all__ = sorted(_API)


def __getattr__(name: str):
    # lazy: ``paperlab telephone --help`` must not import the model backends
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f"paperlab.telephone.{_API[name]}"), name)
    raise AttributeError(f"module 'paperlab.telephone' has no attribute {name!r}")
