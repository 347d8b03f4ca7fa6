"""A fixed-state recurrent language model, the L²M counterpart of the shared small transformer.

The L²M condition (Section 4 of the paper) says a model can only capture the bipartite mutual
information ``I(X_{1:L}; Y) ~ L^beta`` if its *history state* ``z_L`` (everything it carries from the
first ``L`` tokens to the rest) grows at least as fast: ``dim(z_L) >~ L^beta``. A transformer's history
state is its KV cache (linear in ``L``); a recurrent model's is a fixed-size vector, whatever ``L``.

:class:`RecurrentLM` is the paper's SSM/RNN side at our scale: a stack of pre-norm residual blocks whose
token mixer is a GRU (state ``h_t = GRU(h_{t-1}, x_t)``, the history state) followed by the shared
SwiGLU MLP — the transformer block with attention swapped for a recurrence. It plugs into
:func:`paperlab.core.trainer.train` unchanged: it has ``config.max_seq_len``/``vocab_size``/``d_model``,
``blocks`` (per-layer gradient norms), ``norm`` and per-module ``flops_per_token``, and ``forward(idx,
targets) -> (logits, loss)``. :func:`matched_config` picks the MLP width so that it has the same
parameter count as a given transformer config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.core import flops as fl
from paperlab.core.transformer import RMSNorm, SwiGLU, TransformerConfig


@dataclass
class RecurrentConfig:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    d_ff: int = 344
    max_seq_len: int = 256           # longest training window (the recurrence itself has no limit)
    tie_embeddings: bool = True
    norm_eps: float = 1e-5

    @property
    def state_size(self) -> int:
        """Numbers carried from one token to the next: one hidden vector per layer, independent of ``L``."""
        return self.n_layers * self.d_model


class GRUBlock(nn.Module):
    """``x' = x + GRU(Norm(x))``, ``x_{l+1} = x' + MLP(Norm(x'))``; the GRU state ``h_t`` is the history state.

    GRU (Cho et al. 2014): ``r, z = sigma(W x_t + U h_{t-1})``, ``n = tanh(W_n x_t + r * U_n h_{t-1})``,
    ``h_t = (1 - z) * n + z * h_{t-1}``.
    """

    def __init__(self, config: RecurrentConfig):
        super().__init__()
        self.d_model = config.d_model
        mlp_cfg = TransformerConfig(vocab_size=config.vocab_size, d_model=config.d_model, n_heads=1,
                                    d_ff=config.d_ff, n_layers=config.n_layers, max_seq_len=2)
        self.mix_norm = RMSNorm(config.d_model, config.norm_eps)
        self.gru = nn.GRU(config.d_model, config.d_model, batch_first=True)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(mlp_cfg)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        y, h = self.gru(self.mix_norm(x), h)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), h

    def flops_per_token(self, seq_len: int = 0) -> float:
        d = self.d_model
        # three gates, each an input and a recurrent matrix-vector product, plus ~10 element-wise ops per unit
        gru = 3 * (fl.linear_flops(d, d) + fl.linear_flops(d, d)) + 10 * d
        return gru + self.mlp.flops_per_token() + 2 * fl.norm_flops(d) + 2 * fl.RESIDUAL_ADD_PER_ELEMENT * d


class RecurrentLM(nn.Module):
    """Embed -> GRU blocks -> norm -> LM head. ``forward(idx, targets)`` returns ``(logits, loss)``."""

    def __init__(self, config: RecurrentConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(GRUBlock(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        self.last_aux_loss = None
        nn.init.normal_(self.tok_emb.weight, 0.0, 0.02)
        for b in self.blocks:
            for w in (b.mlp.w1.weight, b.mlp.w3.weight):
                nn.init.normal_(w, 0.0, 0.02)
            nn.init.normal_(b.mlp.w2.weight, 0.0, 0.02 / (2 * config.n_layers) ** 0.5)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                state: list[torch.Tensor] | None = None, return_state: bool = False):
        x = self.tok_emb(idx)
        new_state = []
        for i, block in enumerate(self.blocks):
            x, h = block(x, None if state is None else state[i])
            new_state.append(h)
        logits = self.lm_head(self.norm(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        if return_state:
            return logits, loss, new_state
        return logits, loss

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.tok_emb.weight.numel() if non_embedding else n

    def flops_per_token(self, seq_len: int) -> float:
        return fl.model_flops_per_token(self, seq_len)


def transformer_params(cfg: TransformerConfig) -> int:
    """Parameters of :class:`paperlab.core.transformer.Transformer` with the default block (tied head)."""
    d, kv = cfg.d_model, cfg.kv_heads * cfg.head_dim
    attn = d * d * 2 + 2 * d * kv                   # W_Q, W_O, W_K, W_V
    mlp = 3 * d * cfg.d_ff
    per_layer = attn + mlp + 2 * d                  # two RMSNorm gains
    head = 0 if cfg.tie_embeddings else cfg.vocab_size * d
    return cfg.vocab_size * d + cfg.n_layers * per_layer + d + head


def matched_config(cfg: TransformerConfig) -> RecurrentConfig:
    """A :class:`RecurrentConfig` with the transformer's width, depth and vocabulary and an MLP width chosen so
    that the total parameter count matches (a GRU layer has ``6 d^2 + 6 d`` parameters, attention ``4 d^2``)."""
    d = cfg.d_model
    gru = 6 * d * d + 6 * d
    budget = transformer_params(cfg)
    fixed = cfg.vocab_size * d + d + (0 if cfg.tie_embeddings else cfg.vocab_size * d)
    per_layer = (budget - fixed) / cfg.n_layers - gru - 2 * d
    d_ff = max(8, int(round(per_layer / (3 * d))))
    return RecurrentConfig(vocab_size=cfg.vocab_size, d_model=d, n_layers=cfg.n_layers, d_ff=d_ff,
                           max_seq_len=cfg.max_seq_len, tie_embeddings=cfg.tie_embeddings, norm_eps=cfg.norm_eps)
