"""The priming measure: exact values for known scorers, item construction, and the transformer scorer checked
against a token-by-token computation."""

import math

import numpy as np
import pytest
import torch

from paperlab.core.transformer import Transformer, TransformerConfig
from paperlab.priming.grammar import DOC, Grammar
from paperlab.priming.measure import (
    cell_logprobs,
    check_items,
    make_items,
    priming_effects,
    transformer_scorer,
)

G = Grammar()


def _structure(sentence: str) -> str:
    """x or y of an English-like sentence (PO and active are x)."""
    words = sentence.split()
    if "to" in words:
        return "x"
    if "by" in words:
        return "y"
    return "x" if len(words) == 6 else "y"      # active: "the A V the P ." ; DO: 8 words


def _oracle(p_same: float):
    """A scorer under which a target has probability p_same when its structure matches the prime's."""
    def score(contexts, texts):
        return np.array([math.log(p_same if _structure(c) == _structure(t) else 1 - p_same)
                         for c, t in zip(contexts, texts, strict=True)])
    return score


@pytest.mark.parametrize("alt", ["dative", "voice"])
def test_effect_of_known_scorers(alt):
    items = make_items(G, alt, "en", "en", 10, seed=0)
    eff = priming_effects(cell_logprobs(_oracle(0.8), items))
    # P_N(T_x|P_x) = 0.8 / (0.8 + 0.2), P_N(T_x|P_y) = 0.2: effect 0.6; log ratio log(0.8 / 0.2) for x and y
    np.testing.assert_allclose(eff["effect"], 0.6, atol=1e-12)
    np.testing.assert_allclose(eff["logratio"], math.log(4), atol=1e-12)
    anti = priming_effects(cell_logprobs(_oracle(0.3), items))
    np.testing.assert_allclose(anti["effect"], -0.4, atol=1e-12)
    deaf = priming_effects(cell_logprobs(lambda c, t: np.array([-len(x) for x in t], dtype=float), items))
    np.testing.assert_allclose(deaf["effect"], 0.0, atol=1e-12)       # the prime is ignored: no priming


def test_effect_is_symmetric_in_x_and_y():
    rng = np.random.default_rng(0)
    lp = {k: rng.normal(-20, 3, 50) for k in ("xx", "xy", "yx", "yy")}
    eff = priming_effects(lp)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    effect_y = sig(lp["yy"] - lp["yx"]) - sig(lp["xy"] - lp["xx"])        # P_N(T_y|P_y) - P_N(T_y|P_x)
    np.testing.assert_allclose(eff["effect"], effect_y, atol=1e-12)
    assert np.all(np.abs(eff["effect"]) <= 1)


@pytest.mark.parametrize("prime,target", [("en", "en"), ("sim", "sim"), ("dis", "dis"), ("en", "dis")])
@pytest.mark.parametrize("alt", ["dative", "voice"])
def test_items_are_exact_alternants_without_shared_words(alt, prime, target):
    items = make_items(G, alt, prime, target, 30, seed=1)
    check_items(items)
    func = {w for lang in G.languages for w in G.lex[lang].function.values()} | {"."}
    for it in items:
        px, py, tx, ty = (set(it[k].split()) - func for k in ("prime_x", "prime_y", "target_x", "target_y"))
        assert it["prime_x"] != it["prime_y"] and it["target_x"] != it["target_y"]
        nouns = lambda s: {w for w in s if w in G.lex[prime].animate + G.lex[prime].things  # noqa: E731
                           + G.lex[target].animate + G.lex[target].things}
        assert nouns(px) == nouns(py) and nouns(tx) == nouns(ty)
        assert not (px | py) & (tx | ty)                                  # no content word shared
    assert items == make_items(G, alt, prime, target, 30, seed=1)         # deterministic
    with pytest.raises(ValueError):
        check_items([{"prime_x": "a", "prime_y": "b", "target_x": "c"}])


def test_transformer_scorer_matches_token_by_token_logprobs():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=G.vocab_size, d_model=32, n_layers=1, n_heads=2, d_ff=64,
                                          max_seq_len=64))
    items = make_items(G, "dative", "en", "sim", 4, seed=0) + make_items(G, "voice", "dis", "dis", 3, seed=0)
    contexts = [it["prime_x"] for it in items] + [it["prime_y"] for it in items]
    texts = [it["target_y"] for it in items] + [it["target_x"] for it in items]
    batched = transformer_scorer(model, G, batch_size=3)(contexts, texts)
    for c, t, got in zip(contexts, texts, batched, strict=True):
        ids = [G.stoi[DOC], *G.encode(c)]
        total = 0.0
        for tok in G.encode(t):                  # one forward per target token, no padding
            with torch.no_grad():
                logits = model(torch.tensor([ids]))[0][0, -1]
            total += float(torch.log_softmax(logits, -1)[tok])
            ids.append(tok)
        assert got == pytest.approx(total, abs=1e-4)
