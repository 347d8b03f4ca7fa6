"""The truthfulness separator vector and the frozen-prefix cache (TSV, Sec. 3.1 and Appendix).

TSV adds one trainable vector :math:`v \\in \\mathbb{R}^d` to the residual stream at the output of
decoder block :math:`l`, at every token position, while the language model stays frozen:

.. math::

    h_l^{(t)} \\leftarrow h_l^{(t)} + \\lambda v \\qquad \\text{for every position } t.

The steered model's final-layer hidden state of the last token (after the final norm),
L2-normalised, is the embedding :math:`r` that the vMF prototypes classify
(:mod:`paperlab.tsv.prototypes`).

:class:`SteeringVector` implements the edit as a forward hook on block :math:`l`
(:func:`paperlab.core.internals.residual_hook`; no patched model class). Block lookup, padding and
log-prob plumbing come from :mod:`paperlab.core.internals`; the prefix cache (which swaps
``model.model.layers``) needs a Llama-style decoder (Llama, Qwen, Mistral, Gemma, ...).

**Prefix cache.** Blocks :math:`0..l` do not depend on :math:`v`, so their output
:math:`h_l` is computed once per input (:func:`encode_dataset`) and training runs only blocks
:math:`l+1..L-1` (:func:`prefix_mode`): blocks :math:`0..l` are swapped for stubs, the stub in
slot :math:`l` returns the cached :math:`h_l` and the steering hook on that slot adds
:math:`\\lambda v` exactly as on the real block. The model's own forward still builds the attention
mask and rotary position embeddings, so the suffix computation is the full forward's (tested).
Sequences are right-padded: with a causal mask, real-token states do not depend on the padding,
so states cached per sequence can be re-batched freely. The saving is the forward pass of blocks
:math:`0..l` — about :math:`(l+1)/L` of a scoring pass, less of a training step, whose backward pass
through blocks :math:`l+1..L-1` is the same either way (``benchmarks/tsv_prefix_cache.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.errors import UserError
from paperlab.core.internals import (
    base_model,
    decoder_layers,
    head_logprobs,
    last_token,
    model_device,
    pad_batch,
    residual_hook,
)


class SteeringVector(nn.Module):
    """:math:`h_l \\leftarrow h_l + \\lambda v` at every position, as a forward hook on block :math:`l`.

    :math:`v` starts at zero (the steered model starts as the original model).
    """

    def __init__(self, hidden_size: int, lam: float = 5.0):
        super().__init__()
        self.lam = lam
        self.v = nn.Parameter(torch.zeros(hidden_size))

    def edit(self, h: torch.Tensor) -> torch.Tensor:
        # h_l + lambda * v, broadcast over batch and positions (lambda * v computed per forward: grad reaches v)
        return h + (self.lam * self.v).to(h.dtype)

    @contextmanager
    def attached(self, model: nn.Module, layer: int) -> Iterator[None]:
        """Steer ``model`` at block ``layer`` inside the ``with`` block; the hook is removed after."""
        with residual_hook(model, layer, edit=self.edit, capture=False):
            yield


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass
class Encoded:
    """One tokenised (question, answer) text: ``ids`` and the answer tokens' span ``[start, end)``."""

    ids: torch.Tensor  # [T] long
    answer_start: int
    answer_end: int = -1  # -1: up to the last token

    def __post_init__(self):
        if self.answer_end < 0:
            self.answer_end = len(self.ids)


def encode_texts(tokenizer, prompts: Sequence[str], answers: Sequence[str], max_length: int = 256,
                 add_special_tokens: bool = True) -> list[Encoded]:
    """Tokenise ``prompt + answer`` pairs (right-truncated to ``max_length``) and locate the answer
    tokens (special tokens the tokenizer adds before or after the text are not answer tokens).

    ``add_special_tokens=False`` for a chat-templated prompt, which already holds its special tokens."""
    out = []
    for p, a in zip(prompts, answers, strict=True):
        ids = tokenizer(p + a, add_special_tokens=add_special_tokens, truncation=True,
                        max_length=max_length)["input_ids"]
        plain = tokenizer(p + a, add_special_tokens=False)["input_ids"]
        n_lead = next((k for k in range(len(ids) - len(plain) + 1) if ids[k: k + len(plain)] == plain), 0)
        n_lead = min(n_lead, len(ids) - len(plain)) if len(ids) >= len(plain) else n_lead
        n_prompt = len(tokenizer(p, add_special_tokens=False)["input_ids"])
        start = max(1, min(n_lead + n_prompt, len(ids) - 1))
        end = max(start + 1, min(n_lead + len(plain), len(ids)))
        out.append(Encoded(torch.tensor(ids, dtype=torch.long), start, end))
    return out


def forward_embeddings(model: nn.Module, batch: Sequence[Encoded]) -> torch.Tensor:
    """Full forward: L2-normalised last-token final hidden states [B, d] (grad flows if enabled)."""
    ids, mask = pad_batch([e.ids for e in batch])
    dev = model_device(model)
    out = base_model(model)(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False)
    return F.normalize(last_token(out.last_hidden_state, mask).float(), dim=-1)


# --------------------------------------------------------------------------------------------
# Prefix cache
# --------------------------------------------------------------------------------------------


@dataclass
class EncodedSet:
    """What one frozen forward pass gives for each input (:func:`encode_dataset`)."""

    states: list[torch.Tensor]  # h_l per input, [T_i, d] (real tokens only)
    ids: list[torch.Tensor]  # token ids per input, [T_i]
    embeddings: torch.Tensor  # unsteered r, [N, d], L2-normalised
    answer_logprob: torch.Tensor  # mean log p(answer token | prefix), [N]
    layer: int
    answer_logprob_sum: torch.Tensor | None = None  # log p(answer | prefix) = sum over its tokens, [N]


@torch.no_grad()
def encode_dataset(model: nn.Module, encoded: Sequence[Encoded], layer: int, batch_size: int = 16,
                   progress=None) -> EncodedSet:
    """One unsteered forward per input: cache :math:`h_l`, the raw embedding and the answer log-prob.

    Inputs are batched by length (less padding); results come back in input order.
    """
    n = len(encoded)
    order = sorted(range(n), key=lambda i: len(encoded[i].ids))
    states: list[torch.Tensor | None] = [None] * n
    emb: list[torch.Tensor | None] = [None] * n
    lp, lp_sum = torch.zeros(n), torch.zeros(n)
    dev = model_device(model)
    with residual_hook(model, layer) as h_l:
        for s in range(0, n, batch_size):
            idx = order[s: s + batch_size]
            batch = [encoded[i] for i in idx]
            ids, mask = pad_batch([e.ids for e in batch])
            out = base_model(model)(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False)
            hidden = out.last_hidden_state
            reps = F.normalize(last_token(hidden, mask.to(dev)).float(), dim=-1).cpu()
            for j, i in enumerate(idx):
                t = len(encoded[i].ids)
                states[i] = h_l.hidden[j, :t].cpu().clone()
                emb[i] = reps[j]
                a, b = encoded[i].answer_start, encoded[i].answer_end
                # mean_t log p(x_t | x_<t) over the answer tokens
                tok_lp = head_logprobs(model, hidden[j, a - 1: b - 1], encoded[i].ids[a:b]).cpu()
                lp[i], lp_sum[i] = tok_lp.mean(), tok_lp.sum()
            if progress is not None:
                progress(len(idx))
    return EncodedSet(states=states, ids=[e.ids for e in encoded], embeddings=torch.stack(emb),
                      answer_logprob=lp, layer=layer, answer_logprob_sum=lp_sum)


@torch.no_grad()
def answer_logprob_sums(model: nn.Module, encoded: Sequence[Encoded], batch_size: int = 16) -> torch.Tensor:
    """:math:`\\log p(a \\mid \\text{context}) = \\sum_t \\log p(a_t \\mid \\text{context}, a_{<t})` per input
    (unsteered, nothing cached): the answer's total log-probability after its context."""
    n = len(encoded)
    order = sorted(range(n), key=lambda i: len(encoded[i].ids))
    out = torch.zeros(n)
    dev = model_device(model)
    for s in range(0, n, batch_size):
        idx = order[s: s + batch_size]
        ids, mask = pad_batch([encoded[i].ids for i in idx])
        hidden = base_model(model)(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False).last_hidden_state
        for j, i in enumerate(idx):
            a, b = encoded[i].answer_start, encoded[i].answer_end
            out[i] = head_logprobs(model, hidden[j, a - 1: b - 1], encoded[i].ids[a:b]).sum().cpu()
    return out


class _Skip(nn.Module):
    """Stands in for a frozen block below the steering layer: passes its input through."""

    def __init__(self, real: nn.Module, tuple_out: bool):
        super().__init__()
        self.tuple_out = tuple_out
        if hasattr(real, "attention_type"):  # some models route masks by block type
            self.attention_type = real.attention_type

    def forward(self, hidden_states, *args, **kwargs):
        return (hidden_states,) if self.tuple_out else hidden_states


class _Cached(_Skip):
    """Stands in for block ``l``: returns the cached, right-padded :math:`h_l` of the batch."""

    def __init__(self, real: nn.Module, tuple_out: bool, states: torch.Tensor):
        super().__init__(real, tuple_out)
        self.states = states

    def forward(self, hidden_states, *args, **kwargs):
        h = self.states.to(hidden_states.device, hidden_states.dtype)
        return (h,) if self.tuple_out else h


def _returns_tuple(model: nn.Module) -> bool:
    """Whether decoder blocks return a tuple (older transformers) or a tensor (probed once per model)."""
    if hasattr(model, "_tsv_tuple_out"):
        return model._tsv_tuple_out
    seen = {}

    def probe(module, args, output):
        seen["t"] = isinstance(output, tuple)

    h = decoder_layers(model)[-1].register_forward_hook(probe)
    try:
        with torch.no_grad():
            base_model(model)(input_ids=torch.zeros(1, 1, dtype=torch.long, device=model_device(model)),
                              use_cache=False)
    finally:
        h.remove()
    model._tsv_tuple_out = seen["t"]
    return seen["t"]


@contextmanager
def prefix_mode(model: nn.Module, layer: int, states: torch.Tensor) -> Iterator[None]:
    """Run only blocks ``layer+1..`` on cached ``states`` [B, T, d] inside the ``with`` block.

    Blocks ``0..layer`` are swapped for stubs (restored on exit); a steering hook attached to
    block ``layer`` inside the block acts on the cached states.
    """
    base = base_model(model)
    real = decoder_layers(model)
    if getattr(base, "layers", None) is not real:  # stubs are swapped in at base.layers
        raise UserError(f"the TSV prefix cache needs a Llama-style decoder (blocks at model.model.layers), "
                        f"not {type(model).__name__}", "use a Llama, Qwen, Mistral or Gemma model")
    tuple_out = _returns_tuple(model)
    stubs = [_Skip(real[i], tuple_out) for i in range(layer)] + [_Cached(real[layer], tuple_out, states)]
    base.layers = nn.ModuleList(stubs + list(real[layer + 1:]))
    try:
        yield
    finally:
        base.layers = real


def suffix_embeddings(model: nn.Module, cache: EncodedSet, idx: Sequence[int], steer: SteeringVector | None
                      ) -> torch.Tensor:
    """Embeddings :math:`r` of inputs ``idx`` computed from the cached :math:`h_l` (grad reaches ``v``)."""
    states, mask = pad_batch([cache.states[i] for i in idx])
    ids, _ = pad_batch([cache.ids[i] for i in idx])
    dev = model_device(model)
    with prefix_mode(model, cache.layer, states):
        if steer is not None:
            with steer.attached(model, cache.layer):
                out = base_model(model)(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False)
        else:
            out = base_model(model)(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False)
    return F.normalize(last_token(out.last_hidden_state, mask.to(dev)).float(), dim=-1)


def full_embeddings(model: nn.Module, encoded: Sequence[Encoded], steer: SteeringVector | None, layer: int,
                    batch_size: int = 16) -> torch.Tensor:
    """Embeddings of ``encoded`` by full steered forward passes (no cache), in input order."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    out: list[torch.Tensor | None] = [None] * len(encoded)
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            idx = order[s: s + batch_size]
            batch = [encoded[i] for i in idx]
            if steer is not None:
                with steer.attached(model, layer):
                    reps = forward_embeddings(model, batch)
            else:
                reps = forward_embeddings(model, batch)
            for j, i in enumerate(idx):
                out[i] = reps[j].cpu()
    return torch.stack(out)


def encode_answers(tokenizer, questions: Sequence[str], answers: Sequence[str], max_length: int = 256,
                   chat: bool | None = None, prompt: str | None = None) -> list[Encoded]:
    """Encode (question, answer) pairs in the context the answers were generated in
    (:func:`paperlab.tsv.labelling.scoring_context`: the chat template when the tokenizer has one)."""
    from paperlab.tsv.labelling import PROMPT, scoring_context, uses_chat

    chat = uses_chat(tokenizer) if chat is None else chat
    ctx = [scoring_context(tokenizer, q, chat, prompt or PROMPT) for q in questions]
    texts = [sep + a.strip() for (_, sep), a in zip(ctx, answers, strict=True)]
    return encode_texts(tokenizer, [c for c, _ in ctx], texts, max_length=max_length, add_special_tokens=not chat)
