"""Audio Flamingo 2 (Ghosh et al., arXiv 2503.03983): long-audio understanding with AF-CLAP and a frozen LM.

**The paper.** AF2 conditions a frozen LLM (Qwen2.5-3B) on audio. Its audio encoder, AF-CLAP, is a CLAP
model trained with a contrastive loss that (i) takes several *linguistic variants* of a caption as
positives and (ii) adds *compositional negatives* (the same caption with two events' order swapped or one
attribute changed), so that the embedding knows "A then B" from "B then A". Audio is cut into
non-overlapping 10 s windows (zero-padded, at most 3 / 12 / 30 windows); each window gives 64 audio tokens;
the tokens of all windows pass a *representation transform* (3 self-attention layers with RoPE over the
token index) and feed *XATTN-Dense* blocks placed before every LM layer, whose ``tanh`` gates start at 0 (the
untrained model is exactly the LM). Training follows a 3-stage curriculum: alignment (10 s, CLAP and LM
frozen), skill learning (30 s, CLAP unfrozen), long audio (up to 5 min).

**Claims tested here** (``paperlab af2 run``):

- ``afclap_beats_infonce_on_order``: the AF-CLAP loss beats plain InfoNCE at telling a caption from its
  order-swapped version (paired over held-out scenes, bootstrap interval);
- ``gates_open``: the zero-initialised gates open, the model with open gates answers better than the same
  model with its gates set back to 0 (the plain LM), and better with its own clip than with another clip's
  audio (so the gain is heard, not a text-only shift through the dense gate);
- ``long_audio_uses_all_windows``: on questions whose evidence lies after the first 10 s, all windows beat
  the first window only.

**Modules.** :mod:`~paperlab.af2.clap` (encoders, :func:`~paperlab.af2.clap.info_nce`,
:func:`~paperlab.af2.clap.af_clap_loss`), :mod:`~paperlab.af2.flamingo` (representation transform with
partial RoPE, :class:`~paperlab.af2.flamingo.GatedXAttnDense`, :class:`~paperlab.af2.flamingo.FlamingoLM`),
:mod:`~paperlab.af2.curriculum` (stages, freezing, the training loop), :mod:`~paperlab.af2.data` (scenes,
windows, log-mels, LM samples), :mod:`~paperlab.af2.experiment` (``run``), :mod:`~paperlab.af2.cli`
(``run``, ``clap-score``). Front end and scenes come from :mod:`paperlab.core.audio` and
:mod:`paperlab.core.audio_scenes`.

**API.** ``reproduce(quick, out) -> Path``; ``load_clap(run_dir) -> Clap``;
``score_captions(clap, wav_path, captions) -> list[dict]`` (what ``paperlab af2 clap-score`` prints).
"""

from __future__ import annotations

from pathlib import Path

PAPER = ("Audio Flamingo 2: An Audio-Language Model with Long-Audio Understanding and Expert Reasoning "
         "Abilities, arXiv:2503.03983, https://arxiv.org/abs/2503.03983")

__all__ = ["PAPER", "load_clap", "score_captions", "reproduce"]


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    from paperlab.af2.experiment import reproduce as _reproduce

    return _reproduce(quick=quick, out=out, **overrides)


def load_clap(run_dir: Path | str):
    """The AF-CLAP model trained by an ``af2`` run (``<run_dir>/clap_afclap.pt``)."""
    import torch

    from paperlab.af2.clap import Clap

    state = torch.load(Path(run_dir) / "clap_afclap.pt", map_location="cpu", weights_only=False)
    return Clap.from_state(state)


def score_captions(clap, wav_path: Path | str, captions: list[str], max_windows: int = 30) -> list[dict]:
    """Rank ``captions`` by cosine with the clip (10 s windows, at most ``max_windows``, averaged)."""
    import numpy as np

    from paperlab.af2.clap import rank_captions
    from paperlab.core.audio import load_wav, log_mel, sliding_windows

    windows, _ = sliding_windows(load_wav(wav_path), max_windows=max_windows)
    return rank_captions(clap, np.stack([log_mel(w) for w in windows]), captions)
