"""The LLMVoX speech decoder (paper §3.2; official ``src/model.py``): a small decoder-only transformer that
turns a byte stream into speech-codec tokens, one token per step, greedily, with a KV cache.

At step ``t`` the input vector is (paper Eq. 1)

    x_t = L2-normalise( concat( E(b_t), F(c_{t-1}) ) ),       F(c_{-1}) = 0 (only the speech half is zero at t=0)

where ``b_t`` is the t-th id of the byte stream (:mod:`.bytes`), ``E`` a byte embedding table and ``F`` the
codec's codebook vector of the previous speech token (frozen: not a learned table). The transformer is
nanoGPT's: learned absolute positions added to ``x_t``, pre-LayerNorm blocks (causal self-attention,
tanh-GELU MLP x4), no biases, a final LayerNorm and ``lm_head`` onto the codebook. It has **no input
token table**: its inputs are these external vectors. Training: cross-entropy of ``c_t`` (padding targets
ignored); the target sequence ends with the end-of-audio code, an ordinary codebook entry (see
:func:`make_example`).

Paper vs. here (choices where we must differ, see the fact sheet):

=====================  ==============================  =====================================================
                       paper / official                here (defaults of :class:`DecoderConfig`)
=====================  ==============================  =====================================================
layers / heads / dim   4 / 8 / 768                     4 / 4 / 256
E                      frozen ByT5-G2P embed (256-d)   learned from scratch (``n_embd - code_dim``-d): no
                                                       ByT5 weights offline
F                      WavTokenizer codebook (512-d)   our codec's codebook (``code_dim``, 64-d), frozen
vocabulary             4,096 codes, EOA = 453          our codebook (512), EOA = one ordinary code
positions              8,192                           1,024
=====================  ==============================  =====================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.llmvox.bytes import BYTE_VOCAB, PAD_ID, training_stream


@dataclass
class DecoderConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    code_dim: int = 64  # the codec codebook's vector size: the speech half of the input
    codebook_size: int = 512  # lm_head outputs
    block_size: int = 1024  # learned positions
    eoa_code: int = 0  # the end-of-audio code (an ordinary codebook entry)
    dropout: float = 0.0

    @property
    def byte_dim(self) -> int:
        return self.n_embd - self.code_dim

    @property
    def max_seq_len(self) -> int:
        return self.block_size

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if not 0 < self.code_dim < self.n_embd:
            raise ValueError(f"code_dim {self.code_dim} must lie in (0, n_embd={self.n_embd})")
        if not 0 <= self.eoa_code < self.codebook_size:
            raise ValueError(f"eoa_code {self.eoa_code} is not a code of a {self.codebook_size}-entry codebook")


KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class SelfAttention(nn.Module):
    """Causal multi-head self-attention; with ``cache`` the new keys/values are appended to the layer's past."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        S = k.shape[2]  # keys seen: the past ones and these T
        if T == 1:
            y = F.scaled_dot_product_attention(q, k, v)  # one new query sees everything before it
        elif S == T:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # T new queries after S - T cached keys: query i sees keys 0 .. S - T + i
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, T, C)), (k, v)


class Block(nn.Module):
    """Pre-LN block: x + Attn(LN(x)), then x + MLP(LN(x)), MLP = W2 GELU_tanh(W1 x), hidden 4 n_embd."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=False)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=False)
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=False)
        self.out = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=False)

    def forward(self, x, past):
        a, kv = self.attn(self.ln1(x), past)
        x = x + a
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh")), kv


class LLMVoXDecoder(nn.Module):
    """The decoder. ``forward(x, targets)`` takes ``x`` = LongTensor (B, T, 2): byte ids and previous codes
    (-1 = none, the zero speech half at t = 0); returns ``(logits, loss)`` like nanoGPT."""

    def __init__(self, cfg: DecoderConfig, codebook: torch.Tensor | None = None):
        super().__init__()
        self.config = cfg
        self.byte_embed = nn.Embedding(BYTE_VOCAB, cfg.byte_dim)  # E (learned here; frozen ByT5 in the paper)
        cb = codebook if codebook is not None else torch.randn(cfg.codebook_size, cfg.code_dim)
        if tuple(cb.shape) != (cfg.codebook_size, cfg.code_dim):
            raise ValueError(f"codebook shape {tuple(cb.shape)} != ({cfg.codebook_size}, {cfg.code_dim})")
        self.register_buffer("codebook", cb.detach().float().clone())  # F: frozen codec vectors
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=False)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.codebook_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # nanoGPT: scaled init of the residual projections
            if name.endswith(("proj.weight", "out.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 1: x_t = L2-normalise(concat(E(b_t), F(c_{t-1}))), F(-1) = 0."""
        b, c = x[..., 0], x[..., 1]
        speech = self.codebook[c.clamp(min=0)] * (c >= 0).unsqueeze(-1).to(self.codebook.dtype)
        return F.normalize(torch.cat([self.byte_embed(b), speech], dim=-1), p=2, dim=-1, eps=1e-8)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None,
                start: int = 0):
        """``x`` (B, T, 2) at positions ``start .. start+T-1``; with ``cache`` (the past's keys/values per
        layer) returns ``(logits, loss, new_cache)`` instead of ``(logits, loss)``."""
        T = x.shape[1]
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} steps exceeds block_size {self.config.block_size}")
        pos = torch.arange(start, start + T, device=x.device)
        h = self.drop(self.inputs(x) + self.wpe(pos))
        new_cache: KVCache = []
        for i, block in enumerate(self.blocks):
            h, kv = block(h, cache[i] if cache else None)
            new_cache.append(kv)
        logits = self.lm_head(self.ln_f(h))
        loss = None
        if targets is not None:  # padded targets are -1 (the official code uses -1000): ignored
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return (logits, loss, new_cache) if cache is not None else (logits, loss)


# ---------------------------------------------------------------- training pairs


def make_example(text: str, codes: Sequence[int], eoa: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One training pair: natural occurrences of the end-of-audio code are dropped from the speech, the code
    is appended; inputs (L, 2) = (aligned byte stream, previous code with -1 at t = 0), targets (L,)."""
    target = [int(c) for c in codes if int(c) != eoa] + [eoa]
    prev = [-1] + target[:-1]
    x = torch.tensor(list(zip(training_stream(text, len(target)), prev, strict=True)), dtype=torch.long)
    return x, torch.tensor(target, dtype=torch.long)


def collate(examples: Sequence[tuple[torch.Tensor, torch.Tensor]], eoa: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch to its longest pair: bytes with [PAD], speech inputs with the end-of-audio code's feature
    (as the official collator does), targets with -1 (ignored)."""
    L = max(len(y) for _, y in examples)
    x = torch.empty(len(examples), L, 2, dtype=torch.long)
    x[..., 0], x[..., 1] = PAD_ID, eoa
    y = torch.full((len(examples), L), -1, dtype=torch.long)
    for i, (xi, yi) in enumerate(examples):
        x[i, : len(yi)], y[i, : len(yi)] = xi, yi
    return x, y


# ---------------------------------------------------------------- greedy decoding


class DecodeState:
    """One utterance's decoding state: the KV cache, the position and the previous code. :meth:`step` feeds
    one byte id and returns the greedy (argmax) next code."""

    def __init__(self, model: LLMVoXDecoder):
        self.model, self.cache, self.t, self.prev = model, None, 0, -1

    @torch.no_grad()
    def step(self, byte_id: int) -> int:
        m = self.model
        x = torch.tensor([[[byte_id, self.prev]]], dtype=torch.long, device=m.codebook.device)
        logits, _, self.cache = m(x, cache=self.cache or [], start=self.t)
        self.t += 1
        self.prev = int(logits[0, -1].argmax())
        return self.prev


def byte_schedule(ids: Sequence[int]):
    """The byte fed at each step: the text ids, then [PAD] forever."""
    yield from ids
    while True:
        yield PAD_ID


@torch.no_grad()
def greedy_decode(model: LLMVoXDecoder, ids: Sequence[int], max_steps: int | None = None) -> list[int]:
    """Speech codes for a whole sentence (non-streaming), KV-cached greedy decoding until the end-of-audio
    code (not returned) or ``max_steps`` (default: the model's block size)."""
    eoa = model.config.eoa_code
    limit = min(max_steps or model.config.block_size, model.config.block_size)
    state, out = DecodeState(model), []
    for _, b in zip(range(limit), byte_schedule(ids), strict=False):
        c = state.step(b)
        if c == eoa:
            break
        out.append(c)
    return out


@torch.no_grad()
def greedy_decode_recompute(model: LLMVoXDecoder, ids: Sequence[int], max_steps: int | None = None
                            ) -> tuple[list[int], list[torch.Tensor]]:
    """The same decoding by full recomputation of the whole prefix at every step (no cache): the reference
    that KV-cached decoding must equal. Returns the codes and each step's logits."""
    eoa = model.config.eoa_code
    limit = min(max_steps or model.config.block_size, model.config.block_size)
    rows, out, logits_seq, prev = [], [], [], -1
    for _, b in zip(range(limit), byte_schedule(ids), strict=False):
        rows.append([b, prev])
        logits, _ = model(torch.tensor([rows], dtype=torch.long, device=model.codebook.device))
        logits_seq.append(logits[0, -1])
        prev = int(logits[0, -1].argmax())
        if prev == eoa:
            break
        out.append(prev)
    return out, logits_seq
