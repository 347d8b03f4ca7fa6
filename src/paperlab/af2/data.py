"""Data for the AF2 experiment, from the core's synthetic scenes (:mod:`paperlab.core.audio_scenes`).

- **CLAP scenes**: 10 s scenes (one AF2 window) of 2–4 events, each with a pool of caption variants (the
  canonical caption + paraphrases) and, per variant, its compositional negatives (one order swap, one
  attribute swap). AF-CLAP's positives are variants from the pool; its negatives, theirs.
- **Long scenes**: 30 s – 5 min clips with questions (first/last sound, counts, what follows a spoken word,
  which of two comes first, what happens in the last minute) and the windows that hold each answer.
- :func:`scene_mels`: the clips' 10 s windows (:func:`~paperlab.core.audio.sliding_windows`: zero-padded
  to whole windows, cut at ``max_windows``) as log-mels (:func:`~paperlab.core.audio.log_mel`), float16,
  cached on disk under the paperlab cache, keyed by the generator's settings: reruns skip synthesis.
- LM text: ``<audio> {prompt} <sep> {answer} <eoc>`` (AF2's ``<audio>{prompt}<SEP>{answer}<|endofchunk|>``);
  the loss covers the answer and ``<eoc>``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from paperlab.core.audio import audio_cache_dir, sliding_windows
from paperlab.core.audio_scenes import QA, LongScene, Scene, make_long_scene, make_scene
from paperlab.core.errors import UserError

AUDIO, SEP, EOC = "<audio>", "<sep>", "<eoc>"
LM_SPECIALS = (AUDIO, SEP, EOC)
CAPTION_PROMPT = "describe the sound ."


@dataclass
class ClapItem:
    """A 10 s scene's caption pool (``variants[0]`` canonical) and per-variant negatives (order first)."""

    seed: int
    variants: list[str]
    negatives: list[list[str]]          # negatives[j] = [order swap, attribute swap] of variants[j]
    order_negative: list[str | None]    # the order-swapped negative of each variant (None: no swap exists)


def clap_item(scene: Scene, n_variants: int) -> ClapItem:
    caps = [scene.caption, *scene.paraphrases(n_variants - 1)]
    negs, order = [], []
    for c in caps:
        ns = scene.negatives(of=c, n_order=1, n_attribute=1)
        order.append(next((n.text for n in ns if n.kind == "order"), None))
        texts = [n.text for n in ns]
        negs.append((texts * 2)[:2] if texts else [c, c])      # always two (a missing swap repeats the other)
    return ClapItem(scene.seed, [c.text for c in caps], negs, order)


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


def scene_mels(scenes: list[Scene], max_windows: int, tag: str, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``mels`` (S, W, 1001, 64) float16 and ``mask`` (S, W) bool of the scenes' windows (W = the most
    windows any scene has, at most ``max_windows``; a shorter clip's extra windows are zeros masked 0),
    cached on disk unless ``cache=False``. The log-mel is the core's, computed in torch over all windows at
    once (:class:`~paperlab.core.audio.LogMel`, equal to :func:`~paperlab.core.audio.log_mel`)."""
    import torch

    from paperlab.core.audio import LogMel

    key = _key({"tag": tag, "max_windows": max_windows, "scenes": [repr(s) for s in scenes], "v": 1})
    path = audio_cache_dir("af2") / f"{tag}-{key}.npz"
    if cache and path.is_file():
        with np.load(path) as z:
            return z["mels"], z["mask"]
    per, front = [], LogMel()
    for s in scenes:
        windows, _ = sliding_windows(s.render(), max_windows=max_windows)
        with torch.no_grad():
            per.append(front(torch.from_numpy(windows)).numpy().astype(np.float16))
    W = max(len(m) for m in per)
    mels = np.zeros((len(per), W, *per[0].shape[1:]), np.float16)
    mask = np.zeros((len(per), W), bool)
    for i, m in enumerate(per):
        mels[i, : len(m)], mask[i, : len(m)] = m, True
    if cache:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, mels=mels, mask=mask)
        tmp.replace(path)
    return mels, mask


def clap_scenes(seeds: range, kinds) -> list[Scene]:
    return [make_scene(s, kinds=kinds) for s in seeds]


def long_scenes(seeds: range, duration_s: float, events_per_minute: float, kinds) -> list[LongScene]:
    """``len(seeds)`` long scenes; a seed whose draw leaves fewer than 2 events is replaced by the next
    unused seed after the range."""
    out, extra = [], seeds.stop
    for s in seeds:
        while True:
            try:
                out.append(make_long_scene(s, duration_s=duration_s, kinds=kinds, events_per_minute=events_per_minute))
                break
            except UserError:
                s, extra = extra, extra + 1
    return out


@dataclass
class QAItem:
    """One LM sample: the clip it is about, prompt, answer, choices (QA only) and whether the evidence lies
    beyond the first window."""

    clip: int
    prompt: str
    answer: str
    choices: tuple[str, ...] = ()
    kind: str = "caption"
    later: bool = False

    @classmethod
    def of(cls, clip: int, qa: QA) -> QAItem:
        return cls(clip, qa.question, qa.answer, qa.choices, qa.kind, qa.needs_later_windows)


def lm_text(prompt: str, answer: str) -> tuple[str, str]:
    """(context, continuation): ``<audio> prompt <sep>`` and ``answer <eoc>``."""
    return f"{AUDIO} {prompt} {SEP}", f"{answer} {EOC}"
