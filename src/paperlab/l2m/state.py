"""History-state size and the L²M condition.

A model's *history state* ``z_L`` after ``L`` tokens is everything it keeps to predict what follows
(Definition in Section 4 of the paper). The L²M condition: to capture the bipartite MI of text,
``I(X_{1:L}; Y) ~ L^beta``, the state must scale at least as fast::

    dim(z_L) >~ I_{L/2; L}  ~  L^beta          (beta < 1 for natural language)

- transformer: ``z_L`` is the KV cache, ``2 n_layers n_kv_heads head_dim L`` numbers — linear in ``L``, so
  the condition holds for any ``beta <= 1``;
- recurrent/SSM model: a fixed vector (``n_layers d`` for our GRU), so ``dim(z_L) ~ L^0`` fails it for any
  ``beta > 0``: at long enough ``L`` it cannot store the information the text carries.

:func:`measured_kv_cache_size` reads the real cache a transformers model builds; :func:`measured_rnn_state_size`
runs the recurrent model and counts the state it hands on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from paperlab.l2m.fits import fit_power_law


def kv_cache_size(n_layers: int, n_kv_heads: int, head_dim: int, length: int) -> int:
    """Numbers in a KV cache after ``length`` tokens: keys and values of every layer and KV head."""
    return 2 * n_layers * n_kv_heads * head_dim * length


def hf_kv_cache_size(config, length: int) -> int:
    """:func:`kv_cache_size` for a transformers model config (``num_key_value_heads`` aware)."""
    n_heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or n_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    return kv_cache_size(config.num_hidden_layers, kv, head_dim, length)


@torch.no_grad()
def measured_kv_cache_size(model, length: int) -> int:
    """Run a transformers causal LM on ``length`` tokens and count the numbers in its returned KV cache."""
    ids = torch.randint(0, model.config.vocab_size, (1, length), device=model.device)
    cache = model(input_ids=ids, use_cache=True).past_key_values
    total = 0
    if hasattr(cache, "layers"):                                  # transformers >= 4.56 Cache objects
        for layer in cache.layers:
            total += layer.keys.numel() + layer.values.numel()
    elif hasattr(cache, "key_cache"):
        total = sum(k.numel() for k in cache.key_cache) + sum(v.numel() for v in cache.value_cache)
    else:                                                         # legacy tuples
        total = sum(t.numel() for layer in cache for t in layer)
    return int(total)


@torch.no_grad()
def measured_rnn_state_size(model, length: int) -> int:
    """Run :class:`~paperlab.l2m.recurrent.RecurrentLM` over ``length`` tokens; count the state it returns."""
    ids = torch.randint(0, model.config.vocab_size, (1, length))
    _, _, state = model(ids, return_state=True)
    return int(sum(h.numel() for h in state))


@dataclass
class L2MCondition:
    """Exponents of the state size and of the bipartite MI; the condition holds if ``state_exp >= beta``."""

    lengths: list[int]
    state_sizes: list[int]
    state_exponent: float
    beta: float

    @property
    def satisfied(self) -> bool:
        # a 0.05 margin absorbs fit noise on exactly linear or constant sizes
        return self.state_exponent >= self.beta - 0.05


def l2m_condition(lengths: Sequence[int], state_sizes: Sequence[int], beta: float) -> L2MCondition:
    """Fit ``dim(z_L) ~ L^alpha`` and compare ``alpha`` with the MI exponent ``beta``."""
    sizes = np.asarray(state_sizes, dtype=np.float64)
    if np.allclose(sizes, sizes[0]):
        alpha = 0.0
    else:
        alpha = fit_power_law(lengths, sizes).beta
    return L2MCondition([int(x) for x in lengths],
                        [int(s) for s in state_sizes], float(alpha), float(beta))
