"""The effect the system measures is learned from structural persistence in the data, and only from it: two tiny
models trained alike on L1 documents, one with persistence 0.9 and one with none (slow: about a minute on a
busy machine; `pytest -m slow tests/priming`)."""

import random

import numpy as np
import pytest
import torch

from paperlab.core.lm_data import TokenData
from paperlab.core.stats import mean_ci
from paperlab.core.trainer import TrainConfig, train
from paperlab.core.transformer import Transformer, TransformerConfig
from paperlab.priming.grammar import CorpusSpec, Grammar, mix_stream
from paperlab.priming.measure import cell_logprobs, make_items, priming_effects, transformer_scorer

G = Grammar(("en",))


def _trained(persistence: float):
    rng = random.Random(0)
    pool = {"en": G.documents(["en"], 40000, CorpusSpec(persistence=persistence), rng)}
    data = TokenData(torch.tensor(mix_stream(pool, {"en": 1.0}, 40000, rng)))
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=G.vocab_size, d_model=64, n_layers=2, n_heads=4, d_ff=128,
                                          max_seq_len=64))
    cfg = TrainConfig(steps=300, batch_size=16, seq_len=64, lr=3e-3, warmup_steps=20, eval_every=300,
                      eval_tokens=1024, cpu=True)
    train(model, data, data, cfg)
    return model


def _effects(model) -> np.ndarray:
    scorer = transformer_scorer(model, G)
    return np.concatenate([priming_effects(cell_logprobs(scorer, make_items(G, alt, "en", "en", 30, seed=0)))["effect"]
                           for alt in ("dative", "voice")])


@pytest.mark.slow
def test_priming_is_learned_from_persistence_and_only_from_it():
    with_p, without = _effects(_trained(0.9)), _effects(_trained(0.0))
    assert mean_ci(with_p).lo > 0.1                       # repeat rate 0.95 in the data: strong priming
    assert abs(without.mean()) < 0.05                     # no persistence in the data: none
    assert mean_ci(with_p - without).lo > 0.1
