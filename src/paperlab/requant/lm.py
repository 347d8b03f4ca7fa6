"""Plumbing between the algorithms and a language model: the quantized layers, the per-token loss, token
windows of WikiText-2 and the sliding-window perplexity.

A :class:`TargetModel` is a causal LM (a transformers model, or the shared small transformer of
:mod:`paperlab.core.transformer`) plus the ``nn.Linear`` layers to quantize, by qualified name. The LM
head (tied to the embeddings in SmolLM2 and in our small transformer) and the embeddings stay in full
precision, as in every weight-only quantization paper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.core.errors import UserError


@dataclass
class Prefix:
    """Hidden states entering decoder block ``start``, one ``[1, T_i - 1, d]`` per sequence."""

    start: int
    states: list[torch.Tensor]


@dataclass
class TargetModel:
    model: nn.Module
    layers: dict[str, nn.Linear]
    kind: str                 # "hf" (transformers causal LM) | "tiny" (paperlab.core.transformer)

    def nll(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-token negative log-likelihood ``[B, T-1]`` of ``ids [B, T]`` (token ``t+1`` given ``:t+1``);
        gradients flow to whatever requires them."""
        if self.kind == "hf":
            from paperlab.core.internals import sequence_logprobs

            return -sequence_logprobs(self.model, ids, chunk=256)
        logits, _ = self.model(ids[:, :-1])
        return F.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")

    def start_block(self) -> int:
        """Index of the first decoder block holding a target layer (0 for the small transformer)."""
        if self.kind != "hf" or not self.layers:
            return 0
        from paperlab.core.internals import decoder_layers

        names = {id(m): i for i, blk in enumerate(decoder_layers(self.model)) for m in blk.modules()}
        return min(names.get(id(lin), 0) for lin in self.layers.values())

    def prefix(self, seqs: Sequence[torch.Tensor]) -> Prefix | None:
        """The hidden states entering the first block that holds a target layer, for each 1-D token sequence
        of ``seqs`` (input = the sequence without its last token): the blocks before it cannot change while
        only target layers move, so they run once. None when there is nothing to skip (every block holds a
        target, or the small transformer) or when the shortcut does not reproduce the full forward pass on
        the first sequence (a decoder that scales ``inputs_embeds``, say)."""
        l0 = self.start_block()
        if l0 == 0 or not len(seqs):
            return None
        from paperlab.core.internals import base_model, residual_hook

        base = base_model(self.model)
        states = []
        with torch.no_grad(), residual_hook(self.model, l0 - 1) as rec:
            for seq in seqs:
                base(input_ids=seq[None, :-1], use_cache=False)
                states.append(rec.hidden.clone())
        pre = Prefix(l0, states)
        with torch.no_grad():
            ok = torch.allclose(self.nll_after(pre, 0, seqs[0]), self.nll(seqs[0][None]), rtol=1e-4, atol=1e-4)
        return pre if ok else None

    def nll_after(self, pre: Prefix, i: int, seq: torch.Tensor) -> torch.Tensor:
        """Per-token NLL ``[1, T-1]`` of ``seq`` from its cached state ``pre.states[i]``: runs only the decoder
        blocks from ``pre.start`` on (with whatever layers they hold now), the final norm and the head."""
        from paperlab.core.internals import base_model, decoder_layers, head_logprobs

        base = base_model(self.model)
        blocks = decoder_layers(self.model)
        owner = next(m for m in base.modules() if getattr(m, "layers", None) is blocks)
        owner.layers = nn.ModuleList(list(blocks)[pre.start:])
        try:
            hidden = base(inputs_embeds=pre.states[i], use_cache=False).last_hidden_state
        finally:
            owner.layers = blocks
        return -head_logprobs(self.model, hidden, seq[None, 1:], chunk=256)

    @contextmanager
    def frozen_prefix(self, seqs: torch.Tensor, pre: Prefix | None | bool = True
                      ) -> Iterator[Callable[[int], torch.Tensor]]:
        """``nll_of(s)``: the per-token NLL ``[1, T-1]`` of row ``s`` of ``seqs [n, T]``, through
        :meth:`prefix` (computed here when ``pre`` is True, given, or not used when False/None) when it
        applies, else the full forward pass."""
        if pre is True:
            pre = self.prefix(list(seqs))
        elif pre is False:
            pre = None
        if pre is None:
            yield lambda s: self.nll(seqs[s: s + 1])
        else:
            yield lambda s: self.nll_after(pre, s, seqs[s])

    @property
    def n_weights(self) -> int:
        return sum(lin.weight.numel() for lin in self.layers.values())

    def weights(self) -> dict[str, torch.Tensor]:
        """A copy of the current weights of the target layers."""
        return {n: lin.weight.detach().clone() for n, lin in self.layers.items()}

    @torch.no_grad()
    def set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        for n, w in weights.items():
            self.layers[n].weight.copy_(w)


def hf_linear_layers(model: nn.Module, blocks: Iterable[int] | None = None) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` inside the decoder blocks (``blocks``: their indices; None = all), by name."""
    from paperlab.core.internals import decoder_layers

    layers = decoder_layers(model)
    n = len(layers)
    idx = list(range(n)) if blocks is None else sorted({b % n for b in blocks})
    bad = [b for b in (blocks or []) if not -n <= b < n]
    if bad:
        raise UserError(f"block {bad[0]} is out of range for a model with {n} decoder blocks",
                        f"use blocks between 0 and {n - 1}")
    names = {id(m): name for name, m in model.named_modules()}
    out: dict[str, nn.Linear] = {}
    for i in idx:
        prefix = names[id(layers[i])]
        for name, mod in layers[i].named_modules():
            if isinstance(mod, nn.Linear):
                out[f"{prefix}.{name}"] = mod
    if not out:
        raise UserError("no nn.Linear layers found in the decoder blocks", "pass a transformers causal LM")
    return out


def hf_target(model: nn.Module, blocks: Iterable[int] | None = None) -> TargetModel:
    return TargetModel(model, hf_linear_layers(model, blocks), "hf")


def tiny_target(model: nn.Module) -> TargetModel:
    """The shared small transformer: every Linear of its blocks (not the tied LM head)."""
    layers = {f"blocks.{i}.{n}": m for i, b in enumerate(model.blocks) for n, m in b.named_modules()
              if isinstance(m, nn.Linear)}
    return TargetModel(model, layers, "tiny")


# ----------------------------------------------------------------------------------------------
# Token windows


def windows(ids: torch.Tensor, length: int, n: int) -> torch.Tensor:
    """The first ``n`` consecutive non-overlapping windows of ``length`` tokens of a 1-D stream ``[n, length]``."""
    if ids.numel() < n * length:
        raise UserError(f"the text has {ids.numel()} tokens, fewer than {n} windows of {length}",
                        "ask for fewer or shorter calibration sequences")
    return ids[: n * length].view(n, length).clone()


def sliding_windows(n_tokens: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """``(begin, end, first_scored)`` of the sliding-window evaluation (as Hugging Face's perplexity guide):
    windows of ``context`` tokens every ``stride`` tokens; each window scores the tokens it adds,
    ``[max(previous end, begin + 1), end)``, each predicted from at least ``context - stride`` tokens of
    context (the very first window scores from its second token)."""
    if stride < 1 or stride > context:
        raise UserError(f"stride {stride} must be in 1..context ({context})", "pass a stride <= the context")
    out, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + context, n_tokens)
        first = max(prev_end, begin + 1)
        if end > first:
            out.append((begin, end, first))
        prev_end = end
        if end == n_tokens:
            break
    return out


def window_prefix(target: TargetModel, ids: torch.Tensor, context: int, stride: int) -> Prefix | None:
    """:meth:`TargetModel.prefix` of every evaluation window (computed once, reused by every quantized model)."""
    return target.prefix([ids[b:e] for b, e, _ in sliding_windows(ids.numel(), context, stride)])


@torch.no_grad()
def window_nll(target: TargetModel, ids: torch.Tensor, context: int, stride: int, batch_size: int = 4,
               prefix: Prefix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Summed NLL and scored-token count of every sliding window (the units of a perplexity interval):
    ``ppl = exp(sum(nll) / sum(count))``. ``prefix`` (:func:`window_prefix`) skips the blocks before the
    first quantized one."""
    spans = sliding_windows(ids.numel(), context, stride)
    sums = np.zeros(len(spans))
    counts = np.zeros(len(spans), dtype=np.int64)
    if prefix is not None:
        groups = [[i] for i in range(len(spans))]
    else:
        full = [i for i, (b, e, _) in enumerate(spans) if e - b == context]
        rest = [i for i in range(len(spans)) if i not in set(full)]
        groups = [full[k: k + batch_size] for k in range(0, len(full), batch_size)] + [[i] for i in rest]
    for group in groups:
        if prefix is not None:
            b, e, _ = spans[group[0]]
            nll = target.nll_after(prefix, group[0], ids[b:e]).float()
        else:
            nll = target.nll(torch.stack([ids[spans[i][0]: spans[i][1]] for i in group])).float()
        for j, i in enumerate(group):      # nll[j, p] scores token begin + p + 1
            b, e, first = spans[i]
            part = nll[j, first - b - 1: e - b - 1]
            sums[i], counts[i] = float(part.sum()), part.numel()
    return sums, counts


def perplexity(sums: np.ndarray, counts: np.ndarray) -> float:
    return float(np.exp(np.sum(sums) / np.sum(counts)))
