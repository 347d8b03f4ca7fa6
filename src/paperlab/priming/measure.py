"""The priming measure: prime/target items and the normalised priming effect (Michaelov et al. 2023 style).

For a prime ``P`` and a target with alternants ``T_x`` / ``T_y`` (same words, structure ``x`` or ``y``)::

    P(T | P)       = prod_j p(t_j | <doc>, P, t_<j)                 target tokens only, prime as context
    P_N(T_x | P)   = P(T_x | P) / (P(T_x | P) + P(T_y | P))  = sigmoid(log P(T_x|P) - log P(T_y|P))
    effect         = P_N(T_x | P_x) - P_N(T_x | P_y)                 (primary; > 0 means priming)

Because ``P_N(T_y | P) = 1 - P_N(T_x | P)``, the effect computed for ``y`` targets,
``P_N(T_y | P_y) - P_N(T_y | P_x)``, is the same number: the normalised measure is symmetric in x and y.
Secondary (Prime-LM, Sinclair et al. 2022): ``PE_x = log P(T_x | P_x) - log P(T_x | P_y)`` and
``PE_y = log P(T_y | P_y) - log P(T_y | P_x)``; we report their mean per item.

The fact sheet could not verify the exact measure of the paper against its OSF code; we follow the sheet's
reading (normalised, above) as primary and report Prime-LM's (verified) log ratio beside it.

An *item* is a JSON object with ``prime_x``, ``prime_y``, ``target_x``, ``target_y`` (strings); items built
here (:func:`make_items`) share no content word between prime and target ("novel lexical combinations").
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np

from paperlab.priming.grammar import DOC, END, STRUCTURES, Grammar, content_words, random_content, realise

ITEM_KEYS = ("prime_x", "prime_y", "target_x", "target_y")
#: the four scored (prime structure, target structure) pairs
CELLS = (("x", "x"), ("x", "y"), ("y", "x"), ("y", "y"))

Scorer = Callable[[Sequence[str], Sequence[str]], np.ndarray]   # (contexts, texts) -> sum log p(text | context)


def make_items(grammar: Grammar, alternation: str, prime_lang: str, target_lang: str, n: int,
               seed: int) -> list[dict]:
    """``n`` prime/target items: the prime in ``prime_lang``, the target in ``target_lang``; no content word
    of the prime occurs in the target (trivially so across languages, whose lexicons are disjoint)."""
    rng = random.Random(f"items/{seed}/{alternation}/{prime_lang}/{target_lang}")
    x, y = STRUCTURES[alternation]
    items = []
    for i in range(n):
        lp, lt = grammar.lex[prime_lang], grammar.lex[target_lang]
        cp = random_content(lp, alternation, rng)
        avoid = frozenset(content_words(lp, cp)) if prime_lang == target_lang else frozenset()
        ct = random_content(lt, alternation, rng, avoid=avoid)
        items.append({
            "id": i, "alternation": alternation, "prime_lang": prime_lang, "target_lang": target_lang,
            "prime_x": " ".join([*realise(lp, prime_lang, cp, x), END]),
            "prime_y": " ".join([*realise(lp, prime_lang, cp, y), END]),
            "target_x": " ".join([*realise(lt, target_lang, ct, x), END]),
            "target_y": " ".join([*realise(lt, target_lang, ct, y), END]),
        })
    return items


def check_items(items: Sequence[dict]) -> None:
    """Every item has the four non-empty string fields (ValueError naming the first bad one)."""
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            raise ValueError(f"item {i + 1} is not a JSON object")
        for k in ITEM_KEYS:
            if not isinstance(it.get(k), str) or not it[k].strip():
                raise ValueError(f"item {i + 1} has no non-empty string field {k!r}")


def cell_logprobs(scorer: Scorer, items: Sequence[dict]) -> dict[str, np.ndarray]:
    """``log P(T_t | P_p)`` per item for the four cells, keyed ``"xx", "xy", "yx", "yy"`` (prime, target)."""
    contexts, texts = [], []
    for p, t in CELLS:
        for it in items:
            contexts.append(it[f"prime_{p}"])
            texts.append(it[f"target_{t}"])
    lp = np.asarray(scorer(contexts, texts), dtype=float).reshape(len(CELLS), len(items))
    return {p + t: lp[k] for k, (p, t) in enumerate(CELLS)}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))       # = 1 / (1 + e^-z), stable for large |z|


def priming_effects(lp: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-item measures from :func:`cell_logprobs` (see the module docstring)."""
    pn_x_px = _sigmoid(lp["xx"] - lp["xy"])          # P_N(T_x | P_x)
    pn_x_py = _sigmoid(lp["yx"] - lp["yy"])          # P_N(T_x | P_y)
    pe_x = lp["xx"] - lp["yx"]
    pe_y = lp["yy"] - lp["xy"]
    return {"effect": pn_x_px - pn_x_py, "pn_x_px": pn_x_px, "pn_x_py": pn_x_py,
            "logratio": 0.5 * (pe_x + pe_y), "logratio_x": pe_x, "logratio_y": pe_y}


# ----------------------------------------------------------------------------------------------
# Scorers


def transformer_scorer(model, grammar: Grammar, batch_size: int = 512) -> Scorer:
    """Scores with a :class:`paperlab.core.transformer.Transformer` over the grammar's word vocabulary: the
    sequence is ``<doc> prime target`` (sentences follow each other inside a document, as in training)."""
    import torch

    doc = grammar.stoi[DOC]

    @torch.no_grad()
    def score(contexts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        was_training = model.training
        model.eval()
        out = np.empty(len(texts))
        try:
            for s in range(0, len(texts), batch_size):
                ctx = [[doc, *grammar.encode(c)] for c in contexts[s: s + batch_size]]
                txt = [grammar.encode(t) for t in texts[s: s + batch_size]]
                seqs = [c + t for c, t in zip(ctx, txt, strict=True)]
                T = max(map(len, seqs))
                ids = torch.zeros(len(seqs), T, dtype=torch.long)
                scored = torch.zeros(len(seqs), T - 1, dtype=torch.bool)
                for b, (c, q) in enumerate(zip(ctx, seqs, strict=True)):
                    ids[b, : len(q)] = torch.tensor(q)
                    scored[b, len(c) - 1: len(q) - 1] = True     # position t predicts token t + 1
                logits = model(ids[:, :-1])[0].float()
                lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
                out[s: s + len(seqs)] = (lp * scored).sum(1).numpy()
        finally:
            model.train(was_training)
        return out

    return score


def hf_scorer(model, tokenizer, separator: str = " ", batch_size: int = 16) -> Scorer:
    """Scores with a transformers causal LM through :func:`paperlab.core.internals.token_logprobs`: the
    sequence is ``BOS prime separator target`` (no BOS when the tokenizer has none)."""
    import torch

    from paperlab.core.internals import token_logprobs

    start = "bos" if tokenizer.bos_token_id is not None else None

    @torch.no_grad()
    def score(contexts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        lps = token_logprobs(model, tokenizer, [separator + t for t in texts], list(contexts), start=start,
                             batch_size=batch_size)
        return np.array([float(x.sum()) for x in lps])

    return score
