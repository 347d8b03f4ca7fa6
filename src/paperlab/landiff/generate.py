"""Apply a trained LanDiff run to your caption: ``paperlab landiff generate`` (a GIF and its JSON metadata)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from paperlab.core.errors import UserError


def plan_chunks(frames: int, clip: int, prefix: int, stride: int) -> tuple[int, int]:
    """``(chunks, frames of a single short chunk)`` for a request of ``frames`` frames.

    Up to ``clip`` frames: one chunk of ``frames`` rounded up to a multiple of ``stride`` (the LM's frame-count
    condition). Longer: chunks of ``clip`` frames overlapping by ``prefix``, cut to ``frames`` at the end.
    """
    if frames <= clip:
        return 1, -(-frames // stride) * stride
    new = clip - prefix
    return 1 + -(-(frames - clip) // new), clip


def generate_to_file(checkpoint: Path, caption: str, frames: int, motion: float | None, cfg_scale: float | None,
                     seed: int, out: Path) -> dict:
    import torch

    from paperlab.core.threads import torch_threads
    from paperlab.core.video import motion_score, save_gif
    from paperlab.landiff.experiment import generate_clips, generate_long, load_checkpoint

    cfg, models = load_checkpoint(checkpoint)
    chunks, first = plan_chunks(frames, cfg.clip_frames, cfg.prefix_frames, cfg.stride)
    if first < cfg.min_frames:
        raise UserError(f"--frames {frames} is below the shortest clip this run was trained on ({cfg.min_frames})",
                        f"pass --frames {cfg.min_frames} or more")
    if motion is None:
        res = checkpoint / "results.json"
        levels = json.loads(res.read_text())["results"]["motion_sweep"]["levels"] if res.exists() else [0.02]
        motion = float(np.median(levels))
    if cfg_scale is not None:
        cfg = cfg.model_copy(update={"cfg_scale": cfg_scale})
    with torch_threads(cfg.threads), torch.no_grad():
        if chunks == 1:
            clip, codes = generate_clips(models, cfg, [caption], [motion], first, seed)
            video = clip[0, :frames]
            n_tokens = int(codes.shape[1])
        else:
            long_v, _ = generate_long(models, cfg, [caption], [motion], chunks, seed)
            video = long_v[0, :frames]
            n_tokens = None
    save_gif(video, out)
    meta = {"caption": caption, "frames": int(len(video)), "chunks": chunks, "requested_motion": motion,
            "measured_motion": motion_score(video), "cfg_scale": cfg.cfg_scale, "seed": seed,
            "checkpoint": str(checkpoint), "gif": str(out), "tokens_per_chunk": n_tokens}
    if models.judge is not None and len(video) >= cfg.judge_frames:
        from paperlab.landiff.classifiers import ATTRIBUTES, predict

        pred = predict(models.judge, video[None])
        meta["judge"] = {k: ATTRIBUTES[k][int(v[0])] for k, v in pred.items()}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta
