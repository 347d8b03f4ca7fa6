"""Model internals for every system that reads or edits a transformers causal LM from the inside.

One implementation of the plumbing that steering, probing and scoring systems share (TSV, L²M;
requant, translationese, priming and AF2 to follow). Models come from
:func:`paperlab.core.models.load_torch_model`; everything here works on any Hugging Face decoder-only
LM whose decoder blocks :func:`decoder_layers` can find.

**Layer indexing.** ``layer = L`` always names decoder block ``L`` (0-based, negative counts from the
end) and *its output*: the residual stream after blocks ``0..L``, i.e. the input of block ``L + 1``.
With ``output_hidden_states=True`` transformers returns ``hidden_states[0]`` = the embeddings and
``hidden_states[L + 1]`` = the output of block ``L`` — except for the last block, whose entry
``hidden_states[-1]`` is taken *after* the final norm (Llama, Mistral, Qwen, GPT-2, ...). Here the
output of the last block is the raw block output, and the final-normed state (the LM head's input)
is called ``"final"``.

API
---

Model structure

- :func:`decoder_layers` ``(model) -> nn.ModuleList`` — the decoder blocks (Llama/Mistral/Qwen/Gemma
  ``model.model.layers``, GPT-2/GPT-J/Falcon/Bloom ``transformer.h``, GPT-NeoX ``gpt_neox.layers``,
  OPT ``model.decoder.layers``, MPT ``transformer.blocks``, and the bare base models).
- :func:`base_model` ``(model) -> nn.Module`` — the decoder stack without the LM head.
- :func:`model_device` ``(model) -> torch.device``.
- :func:`lm_logits` ``(model, hidden) -> Tensor`` — the LM head (plus any logit soft-cap or scale
  the model applies) on final hidden states.

Hooks

- :func:`residual_hook` ``(model, layer, *, add=None, edit=None, positions=None, capture=True,
  detach=True)`` — context manager that reads and/or edits the output of block ``layer``; yields a
  :class:`Residual` whose ``.hidden`` is the captured ``[B, T, d]`` block output (``capture="all"``
  keeps every forward call in ``.states``, e.g. each generation step).

Batched forward passes

- :func:`pad_batch` ``(seqs, pad_value=0, side="right") -> (padded, mask)``.
- :func:`last_token` ``(hidden, mask) -> [B, d]`` — state of the last real token (either padding side).
- :func:`forward_base` ``(model, ids, attention_mask=None) -> BaseModelOutput`` — base-model forward with
  position ids derived from the mask, so left padding gives the same states as right padding.
- :func:`sequence_logprobs` ``(model, ids, attention_mask=None, *, chunk=256) -> [B, T-1]`` —
  ``log p(ids[:, t+1] | ids[:, :t+1])``, log-softmax over position chunks (no ``[B, T, V]`` tensor).
- :func:`head_logprobs` ``(model, hidden, targets, chunk=None) -> Tensor`` — ``log p(target | hidden)``.
- :func:`token_logprobs` ``(model, tokenizer, texts, contexts=None, *, start="bos", batch_size=16,
  chunk=256) -> list[Tensor]`` — per-token log-probs of texts or token-id lists, optionally of a
  continuation given a context.
- :func:`hidden_states` ``(model, tokenizer, texts, layers, positions="last", *, batch_size=16,
  padding_side="right", add_special_tokens=True, max_length=None)`` — states of chosen positions at
  chosen layers.

All log-probabilities are natural logarithms computed in float32.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from paperlab.core.errors import UserError

# Where the decoder blocks live, tried in order (attribute paths from the model object).
_LAYER_PATHS = (
    "model.layers",  # Llama, Mistral, Qwen2/3, Gemma, Phi-3, SmolLM, OLMo, ...
    "model.decoder.layers",  # OPT
    "model.language_model.layers",  # multimodal wrappers (Gemma 3, Llava, ...)
    "transformer.h",  # GPT-2, GPT-J, GPT-Neo, Falcon, Bloom, CodeGen
    "transformer.blocks",  # MPT
    "gpt_neox.layers",  # GPT-NeoX, Pythia
    "layers",  # bare base models: LlamaModel, GPTNeoXModel, ...
    "h",  # GPT2Model, ...
    "decoder.layers",  # OPTModel
    "blocks",  # MPTModel
)

Positions = int | Sequence[int] | torch.Tensor | None
Layer = int | str


# --------------------------------------------------------------------------------------------
# Model structure
# --------------------------------------------------------------------------------------------


def _get_path(obj: Any, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ``ModuleList`` of decoder blocks of a transformers causal LM (or its base model).

    One-line :class:`UserError` for an architecture whose blocks are not at a known path.
    """
    for path in _LAYER_PATHS:
        layers = _get_path(model, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return layers
    raise UserError(f"cannot find the decoder blocks of {type(model).__name__}",
                    "use a decoder-only transformers model (Llama, Qwen, Mistral, Gemma, GPT-2, GPT-NeoX, OPT)")


def base_model(model: nn.Module) -> nn.Module:
    """The decoder stack without the LM head (``model.model`` for Llama-style checkpoints).

    Its forward returns ``last_hidden_state``: the final-normed states the LM head reads.
    """
    prefix = getattr(model, "base_model_prefix", "model")
    return getattr(model, prefix, model)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's (first) parameters."""
    return next(model.parameters()).device


def _text_config(model: nn.Module):
    cfg = getattr(model, "config", None)
    get = getattr(cfg, "get_text_config", None)
    return get() if callable(get) else cfg


def lm_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The model's logits from final (normed) hidden states: the LM head, then the post-head transforms
    some families apply in their ``forward`` (Gemma 2/3 soft-capping, Cohere ``logit_scale``, Granite
    ``logits_scaling``). Equals ``model(...).logits`` at the same positions."""
    logits = model.get_output_embeddings()(hidden)
    cfg = _text_config(model)
    if cfg is None:
        return logits
    scale = getattr(cfg, "logit_scale", None)  # Cohere
    if isinstance(scale, int | float) and scale != 1:
        logits = logits * scale
    scaling = getattr(cfg, "logits_scaling", None)  # Granite
    if isinstance(scaling, int | float) and scaling != 1:
        logits = logits / scaling
    cap = getattr(cfg, "final_logit_softcapping", None)  # Gemma 2/3
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


# --------------------------------------------------------------------------------------------
# Residual-stream hooks
# --------------------------------------------------------------------------------------------


def _block_hidden(output) -> torch.Tensor:
    """The hidden-state tensor of a block's output (a tensor, or the first item of a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def _with_hidden(output, hidden: torch.Tensor):
    """``output`` with its hidden-state tensor replaced (same container type)."""
    if isinstance(output, tuple):
        return (hidden,) + tuple(output[1:])
    return hidden


def _select(positions: Positions, hidden: torch.Tensor):
    """An index into ``hidden`` [B, T, d] selecting ``positions`` (see :func:`residual_hook`)."""
    if isinstance(positions, int):
        positions = [positions]
    if not isinstance(positions, torch.Tensor):
        positions = torch.tensor(list(positions), dtype=torch.long)
    positions = positions.to(hidden.device)
    if positions.dtype == torch.bool and positions.dim() == 2:
        return (positions,)  # [B, T] mask -> h[mask] is [N, d]
    return (slice(None), positions)  # [T] mask or index list -> h[:, pos] is [B, n, d]


@dataclass
class Residual:
    """What :func:`residual_hook` records at one block: its output on the latest forward call
    (``capture=True``) or on every call, oldest first (``capture="all"``)."""

    layer: int
    states: list[torch.Tensor] = field(default_factory=list)

    @property
    def hidden(self) -> torch.Tensor:
        """The block output [B, T, d] of the latest forward call."""
        if not self.states:
            raise RuntimeError(f"no forward pass has run through block {self.layer} inside residual_hook")
        return self.states[-1]


@contextmanager
def residual_hook(model: nn.Module, layer: int, *, add: torch.Tensor | None = None,
                  edit: Callable[[torch.Tensor], torch.Tensor] | None = None, positions: Positions = None,
                  capture: bool | str = True, detach: bool = True) -> Iterator[Residual]:
    """Read and/or edit the residual stream after decoder block ``layer`` inside the ``with`` block.

    A forward hook on block ``layer`` (see the module docstring for the indexing convention) turns its
    hidden-state output ``h`` [B, T, d] into

    - ``edit(h[sel])`` if ``edit`` is given (a callable returning a tensor of the same shape), then
    - ``h[sel] + add`` if ``add`` is given (``[d]``, broadcast over positions, or any tensor
      broadcastable to ``h[sel]``; cast to ``h``'s dtype and device, gradients flow through it),

    where ``sel`` is every position (``positions=None``), the position indices ``positions`` (an int
    or a sequence of ints, negative from the end; the same for every row), a boolean ``[T]`` mask, or a
    boolean ``[B, T]`` mask (per-row positions, e.g. each row's last real token). Positions index each
    forward call's own sequence dimension: during cached generation every step after the first has
    ``T = 1``. Every later block sees the edited stream.

    With ``capture=True`` the yielded :class:`Residual` holds the (edited) block output of the latest
    forward call as ``.hidden`` (memory stays bounded in a batch loop); ``capture="all"`` keeps every
    call in ``.states`` (e.g. each step of ``generate``); ``capture=False`` records nothing.
    ``detach=False`` keeps the captured states in the autograd graph. The hook is removed on exit, also
    when the body raises.
    """
    if capture not in (True, False, "all"):
        raise ValueError(f"capture must be True, False or 'all', not {capture!r}")
    layers = decoder_layers(model)
    n = len(layers)
    if not -n <= layer < n:
        raise UserError(f"layer {layer} is out of range for a model with {n} decoder blocks",
                        f"use a layer between 0 and {n - 1} (or negative from the end)")
    record = Residual(layer % n)

    def hook(module, args, output):
        h = _block_hidden(output)
        if edit is not None or add is not None:
            if positions is None:
                if edit is not None:
                    h = edit(h)
                if add is not None:
                    h = h + add.to(dtype=h.dtype, device=h.device)
            else:
                sel = _select(positions, h)
                part = h[sel]
                if edit is not None:
                    part = edit(part)
                if add is not None:
                    part = part + add.to(dtype=h.dtype, device=h.device)
                h = h.clone()
                h[sel] = part
            output = _with_hidden(output, h)
        if capture:
            if capture != "all":
                record.states.clear()
            record.states.append(h.detach() if detach else h)
        return output

    handle = layers[layer].register_forward_hook(hook)
    try:
        yield record
    finally:
        handle.remove()


@contextmanager
def _embedding_capture(model: nn.Module) -> Iterator[Residual]:
    """Capture the input of block 0 (the embeddings, ``hidden_states[0]``) as a :class:`Residual`."""
    record = Residual(-1)

    def pre_hook(module, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        record.states.append(h.detach())

    handle = decoder_layers(model)[0].register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        yield record
    finally:
        handle.remove()


# --------------------------------------------------------------------------------------------
# Padding and batched forward passes
# --------------------------------------------------------------------------------------------


def pad_batch(seqs: Sequence[torch.Tensor], pad_value: float = 0, side: str = "right"
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a list of ``[T_i, ...]`` tensors to ``[B, T, ...]`` on the ``right`` or ``left``; return it
    and the ``[B, T]`` attention mask (1 = real token)."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', not {side!r}")
    t = max(len(s) for s in seqs)
    out = seqs[0].new_full((len(seqs), t, *seqs[0].shape[1:]), pad_value)
    mask = torch.zeros(len(seqs), t, dtype=torch.long)
    for i, s in enumerate(seqs):
        if side == "right":
            out[i, : len(s)] = s
            mask[i, : len(s)] = 1
        elif len(s):
            out[i, t - len(s):] = s
            mask[i, t - len(s):] = 1
    return out, mask


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """State of the last real (mask 1) token of each row: ``[B, T, d] -> [B, d]``, either padding side."""
    mask = mask.to(hidden.device)
    pos = torch.arange(mask.shape[1], device=hidden.device)
    last = (mask.long() * (pos + 1)).argmax(1)  # index of the last 1 in each row
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


@functools.cache
def _accepts_position_ids(cls: type) -> bool:
    try:
        return "position_ids" in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False


def forward_base(model: nn.Module, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw):
    """Forward ``ids`` [B, T] through the base model (no LM head, ``use_cache=False``).

    With a mask, position ids are ``cumsum(mask) - 1`` (when the model takes them), so a left-padded
    row gets the same positions, and the same states, as the unpadded sequence. Runs on the model's
    device; gradients flow unless the caller disables them.
    """
    dev = model_device(model)
    base = base_model(model)
    kw = {"use_cache": False, **kw}
    if attention_mask is not None:
        attention_mask = attention_mask.to(dev)
        kw["attention_mask"] = attention_mask
        if _accepts_position_ids(type(base)):
            kw["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return base(input_ids=ids.to(dev), **kw)


def head_logprobs(model: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, chunk: int | None = None
                  ) -> torch.Tensor:
    """``log p(targets | hidden)``: log-softmax (float32) of :func:`lm_logits` gathered at ``targets``.

    ``hidden`` [..., T, d] are final hidden states (``last_hidden_state``) and ``targets`` [..., T] the
    token ids they predict. ``chunk`` splits the ``T`` axis so at most ``chunk`` positions of logits exist
    at once (a 49k vocabulary makes ``[B, T, V]`` large).
    """
    targets = targets.to(hidden.device)
    t = hidden.shape[-2]
    step = chunk or max(t, 1)
    parts = []
    for s in range(0, t, step):
        logits = lm_logits(model, hidden[..., s: s + step, :]).float()
        logp = torch.log_softmax(logits, dim=-1)
        parts.append(logp.gather(-1, targets[..., s: s + step, None])[..., 0])
    if not parts:
        return hidden.new_zeros(targets.shape, dtype=torch.float32)
    return torch.cat(parts, dim=-1)


def sequence_logprobs(model: nn.Module, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                      chunk: int | None = 256) -> torch.Tensor:
    """``out[b, t] = log p(ids[b, t+1] | ids[b, :t+1])`` for a batch ``ids`` [B, T]: shape [B, T-1], float32,
    on the model's device.

    Nothing predicts ``ids[:, 0]``: prepend a start token to score the first token. The last token is not
    fed (its prediction is never needed). Entries whose target is padding are meaningless; either
    padding side works with ``attention_mask``. Log-softmax runs over ``chunk`` positions at a time.
    Gradients flow unless the caller wraps the call in ``torch.no_grad()``.
    """
    mask = attention_mask[:, :-1] if attention_mask is not None else None
    hidden = forward_base(model, ids[:, :-1], mask).last_hidden_state
    return head_logprobs(model, hidden, ids[:, 1:], chunk=chunk)


# --------------------------------------------------------------------------------------------
# Texts in, log-probs and hidden states out
# --------------------------------------------------------------------------------------------


def _as_ids(tokenizer, x: str | Sequence[int] | torch.Tensor, add_special_tokens: bool = False) -> list[int]:
    """Token ids of a string (tokenised), or a token-id sequence (used as is)."""
    if isinstance(x, str):
        return list(tokenizer(x, add_special_tokens=add_special_tokens)["input_ids"]) if x else []
    if isinstance(x, torch.Tensor):
        return [int(t) for t in x.reshape(-1).tolist()]
    return [int(t) for t in x]


def _start_ids(tokenizer, start: str | int | None) -> list[int]:
    if start is None:
        return []
    if start == "bos":
        if tokenizer.bos_token_id is None:
            raise UserError("the tokenizer has no BOS token to open the sequences",
                            "pass start=None (the first token is then not scored) or start=<token id>")
        return [int(tokenizer.bos_token_id)]
    if isinstance(start, int):
        return [start]
    raise ValueError(f"start must be 'bos', a token id or None, not {start!r}")


@torch.no_grad()
def token_logprobs(model: nn.Module, tokenizer, texts: Sequence[str | Sequence[int]],
                   contexts: Sequence[str | Sequence[int]] | None = None, *, start: str | int | None = "bos",
                   batch_size: int = 16, chunk: int | None = 256) -> list[torch.Tensor]:
    """Per-token natural-log probabilities of each text, optionally as the continuation of a context.

    Each item of ``texts`` (and ``contexts``) is a string, tokenised without special tokens, or a list
    of token ids, used as is. The sequence fed to the model is ``start + context + text``:

    - ``start="bos"`` (default) prepends the tokenizer's BOS token (a one-line :class:`UserError` if it
      has none), an ``int`` prepends that token, ``None`` prepends nothing;
    - the result for item ``i`` is a float32 CPU tensor with one entry per token of ``texts[i]``:
      ``log p(text_j | start, context, text_<j)``; context tokens are not scored;
    - with ``start=None`` and an empty context nothing predicts the first text token, so it is left
      out (the result has ``len(text) - 1`` entries).

    A context string and its text are tokenised separately and concatenated (a word split across the
    boundary is tokenised as two pieces). Sequences are sorted by length, right-padded and run
    ``batch_size`` at a time; results come back in input order and do not depend on the batching.
    """
    if contexts is not None and len(contexts) != len(texts):
        raise ValueError(f"{len(contexts)} contexts for {len(texts)} texts")
    head = _start_ids(tokenizer, start)
    seqs, n_scored = [], []
    for i, x in enumerate(texts):
        ctx = _as_ids(tokenizer, contexts[i]) if contexts is not None else []
        txt = _as_ids(tokenizer, x)
        full = head + ctx + txt
        seqs.append(full)
        n_scored.append(min(len(txt), len(full) - 1) if full else 0)
    out: list[torch.Tensor | None] = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        live = [i for i in idx if n_scored[i] > 0]
        for i in idx:
            if n_scored[i] <= 0:
                out[i] = torch.zeros(0)
        if not live:
            continue
        ids, mask = pad_batch([torch.tensor(seqs[i], dtype=torch.long) for i in live])
        lp = sequence_logprobs(model, ids, mask, chunk=chunk).float().cpu()
        for j, i in enumerate(live):
            end = len(seqs[i]) - 1  # lp[:, t] scores token t + 1
            out[i] = lp[j, end - n_scored[i]: end].clone()
    return out


def _layer_spec(layer: Layer, n: int) -> int | str:
    if layer in ("final", "embed"):
        return layer
    if isinstance(layer, int) and not isinstance(layer, bool):
        if not -n <= layer < n:
            raise UserError(f"layer {layer} is out of range for a model with {n} decoder blocks",
                            f"use a layer between 0 and {n - 1}, 'embed' or 'final'")
        return layer % n
    raise UserError(f"unknown layer {layer!r}", "use a block index, 'embed' or 'final'")


def _pool(h: torch.Tensor, mask: torch.Tensor, lengths: list[int], positions) -> list[torch.Tensor]:
    """Per-row selection from one batch's states ``h`` [B, T, d] (``mask`` [B, T], either padding side)."""
    mask = mask.to(h.device)
    if positions == "last":
        return list(last_token(h, mask))
    if positions == "mean":
        m = mask.to(h.dtype)[..., None]
        return list((h * m).sum(1) / m.sum(1).clamp(min=1))
    rows = []
    for b, n in enumerate(lengths):
        real = h[b][mask[b].bool()]  # [n, d]: real tokens in order
        if positions == "all":
            rows.append(real)
            continue
        idx = [positions] if isinstance(positions, int) else list(positions)
        bad = [p for p in idx if not -n <= p < n]
        if bad:
            raise UserError(f"position {bad[0]} is outside a sequence of {n} tokens",
                            "use positions within every sequence (negative counts from the end)")
        rows.append(real[positions] if isinstance(positions, int)
                    else real[torch.tensor(idx, dtype=torch.long, device=h.device)])
    return rows


@torch.no_grad()
def hidden_states(model: nn.Module, tokenizer, texts: Sequence[str | Sequence[int]],
                  layers: Layer | Sequence[Layer], positions: str | int | Sequence[int] = "last", *,
                  batch_size: int = 16, padding_side: str = "right", add_special_tokens: bool = True,
                  max_length: int | None = None) -> torch.Tensor | list[torch.Tensor]:
    """Hidden states of chosen positions at chosen layers, float32 on the CPU, in input order.

    ``texts`` are strings (tokenised with the tokenizer's special tokens unless
    ``add_special_tokens=False``, right-truncated to ``max_length``) or token-id lists (used as is).

    ``layers``: a block index ``L`` (the output of block ``L`` = ``output_hidden_states[L + 1]`` for all
    but the last block), ``"embed"`` (the input of block 0 = ``hidden_states[0]``), ``"final"`` (the
    final-normed state the LM head reads = ``last_hidden_state``), or a list of these.

    ``positions`` (over each sequence's real tokens, whatever the padding):

    - ``"last"``: the last token — result ``[N, d]`` (one layer) or ``[N, n_layers, d]``;
    - ``"mean"``: the mean over the tokens — same shapes;
    - an int or a list of ints (negative from the end): ``[N, d]`` / ``[N, n_layers, d]`` for an int,
      ``[N, n_pos, d]`` / ``[N, n_layers, n_pos, d]`` for a list;
    - ``"all"``: a list of ``N`` tensors ``[T_i, d]`` / ``[T_i, n_layers, d]``.

    One forward pass per batch of ``batch_size`` length-sorted sequences, padded on ``padding_side``
    (``right`` or ``left``; the states agree up to float rounding).
    """
    if isinstance(positions, str) and positions not in ("last", "mean", "all"):
        raise UserError(f"unknown positions {positions!r}", "use 'last', 'mean', 'all' or token indices")
    single = isinstance(layers, int | str)
    wanted = [layers] if single else list(layers)
    n_blocks = len(decoder_layers(model))
    specs = [_layer_spec(layer, n_blocks) for layer in wanted]
    seqs = []
    for x in texts:
        ids = _as_ids(tokenizer, x, add_special_tokens=add_special_tokens)
        if isinstance(x, str) and max_length is not None:
            ids = ids[:max_length]
        if not ids:
            raise UserError("an input has no tokens", "pass non-empty texts")
        seqs.append(ids)
    out: list[Any] = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        ids, mask = pad_batch([torch.tensor(seqs[i], dtype=torch.long) for i in idx], side=padding_side)
        with ExitStack() as stack:
            recs: dict[int | str, Residual] = {}
            for spec in specs:
                if isinstance(spec, int) and spec not in recs:
                    recs[spec] = stack.enter_context(residual_hook(model, spec))
                elif spec == "embed" and spec not in recs:
                    recs[spec] = stack.enter_context(_embedding_capture(model))
            res = forward_base(model, ids, mask)
        lengths = [len(seqs[i]) for i in idx]
        per_layer = []
        for spec in specs:
            h = res.last_hidden_state if spec == "final" else recs[spec].hidden
            per_layer.append(_pool(h.float(), mask, lengths, positions))
        for j, i in enumerate(idx):
            rows = [p[j] for p in per_layer]
            # stack layers after the token axis for "all" ([T, L, d]), before the position axis otherwise
            dim = 1 if positions == "all" else 0
            out[i] = (rows[0] if single else torch.stack(rows, dim=dim)).cpu()
    if positions == "all":
        return out
    return torch.stack(out)


__all__ = [
    "Residual",
    "base_model",
    "decoder_layers",
    "forward_base",
    "head_logprobs",
    "hidden_states",
    "last_token",
    "lm_logits",
    "model_device",
    "pad_batch",
    "residual_hook",
    "sequence_logprobs",
    "token_logprobs",
]
