"""The truthfulness separator vector and the frozen-prefix cache (TSV, Sec. 3.1 and Appendix).

TSV adds one trainable vector :math:`v \\in \\mathbb{R}^d` to the residual stream at the output of
decoder block :math:`l`, at every token position, while the language model stays frozen:

.. math::

    h_l^{(t)} \\leftarrow h_l^{(t)} + \\lambda v \\qquad \\text{for every position } t.

The steered model's final-layer hidden state of the last token (after the final norm),
L2-normalised, is the embedding :math:`r` that the vMF prototypes classify
(:mod:`paperlab.tsv.prototypes`).

:class:`SteeringVector` implements the edit as a forward hook on block :math:`l` (any transformers
decoder whose blocks sit in a ``layers`` ``ModuleList``; no patched model class).

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


def base_model(model: nn.Module) -> nn.Module:
    """The decoder stack without the LM head (``model.model`` for Llama-style checkpoints)."""
    prefix = getattr(model, "base_model_prefix", "model")
    return getattr(model, prefix, model)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ``ModuleList`` of decoder blocks."""
    base = base_model(model)
    layers = getattr(base, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"{type(model).__name__} has no `layers` ModuleList; TSV needs a decoder-only "
                        "transformers model (Llama, Qwen, Mistral, Gemma, ...)")
    return layers


def _add_to_output(output, delta: torch.Tensor):
    """Add ``delta`` to a block's hidden-state output (a tensor, or a tuple in older transformers)."""
    if isinstance(output, tuple):
        return (output[0] + delta.to(output[0].dtype),) + tuple(output[1:])
    return output + delta.to(output.dtype)


class SteeringVector(nn.Module):
    """:math:`h_l \\leftarrow h_l + \\lambda v` at every position, as a forward hook on block :math:`l`.

    :math:`v` starts at zero (the steered model starts as the original model).
    """

    def __init__(self, hidden_size: int, lam: float = 5.0):
        super().__init__()
        self.lam = lam
        self.v = nn.Parameter(torch.zeros(hidden_size))

    def hook(self, module: nn.Module, args, output):
        # h_l + lambda * v, broadcast over batch and positions
        return _add_to_output(output, self.lam * self.v)

    @contextmanager
    def attached(self, model: nn.Module, layer: int) -> Iterator[None]:
        """Steer ``model`` at block ``layer`` inside the ``with`` block; the hook is removed after."""
        handle = decoder_layers(model)[layer].register_forward_hook(self.hook)
        try:
            yield
        finally:
            handle.remove()


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


def encode_texts(tokenizer, prompts: Sequence[str], answers: Sequence[str], max_length: int = 256) -> list[Encoded]:
    """Tokenise ``prompt + answer`` pairs (right-truncated to ``max_length``) and locate the answer
    tokens (special tokens the tokenizer adds before or after the text are not answer tokens)."""
    out = []
    for p, a in zip(prompts, answers, strict=True):
        ids = tokenizer(p + a, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
        plain = tokenizer(p + a, add_special_tokens=False)["input_ids"]
        n_lead = next((k for k in range(len(ids) - len(plain) + 1) if ids[k: k + len(plain)] == plain), 0)
        n_lead = min(n_lead, len(ids) - len(plain)) if len(ids) >= len(plain) else n_lead
        n_prompt = len(tokenizer(p, add_special_tokens=False)["input_ids"])
        start = max(1, min(n_lead + n_prompt, len(ids) - 1))
        end = max(start + 1, min(n_lead + len(plain), len(ids)))
        out.append(Encoded(torch.tensor(ids, dtype=torch.long), start, end))
    return out


def pad_batch(seqs: Sequence[torch.Tensor], pad_value: float = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a list of [T_i, ...] tensors to [B, T, ...]; return it and the [B, T] attention mask."""
    t = max(len(s) for s in seqs)
    out = seqs[0].new_full((len(seqs), t, *seqs[0].shape[1:]), pad_value)
    mask = torch.zeros(len(seqs), t, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return out, mask


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of the last non-pad token of each right-padded row: [B, T, d] -> [B, d]."""
    last = mask.sum(1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last.to(hidden.device)]


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


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
    lp = torch.zeros(n)
    captured: dict[str, torch.Tensor] = {}

    def capture(module, args, output):
        captured["h"] = output[0] if isinstance(output, tuple) else output

    handle = decoder_layers(model)[layer].register_forward_hook(capture)
    head = model.get_output_embeddings()
    dev = model_device(model)
    try:
        for s in range(0, n, batch_size):
            idx = order[s: s + batch_size]
            batch = [encoded[i] for i in idx]
            ids, mask = pad_batch([e.ids for e in batch])
            out = base_model(model)(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False)
            hidden = out.last_hidden_state
            reps = F.normalize(last_token(hidden, mask.to(dev)).float(), dim=-1).cpu()
            for j, i in enumerate(idx):
                t = len(encoded[i].ids)
                states[i] = captured["h"][j, :t].detach().cpu().clone()
                emb[i] = reps[j]
                a, b = encoded[i].answer_start, encoded[i].answer_end
                # mean_t log p(x_t | x_<t) over the answer tokens
                logits = head(hidden[j, a - 1: b - 1]).float()
                tok_lp = torch.log_softmax(logits, -1).gather(1, encoded[i].ids[a:b, None].to(dev))[:, 0]
                lp[i] = tok_lp.mean().cpu()
            if progress is not None:
                progress(len(idx))
    finally:
        handle.remove()
    return EncodedSet(states=states, ids=[e.ids for e in encoded], embeddings=torch.stack(emb),
                      answer_logprob=lp, layer=layer)


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
