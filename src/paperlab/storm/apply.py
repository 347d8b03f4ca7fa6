"""Apply a trained STORM variant to your own clip: ``paperlab storm answer``.

A finished ``paperlab storm run`` folder holds every trained variant (``models/<encoder>_<projector>_<pool>_seed<s>.pt``),
the vocabulary (``vocab.json``) and the configuration. :func:`read_video` loads a GIF or a ``.npy`` array
``(T, H, W, 3)``, resizes the frames to the run's size and resamples time uniformly to its frame count;
:func:`answer_questions` scores each question's choices (each choice must be a word the model was trained on).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from paperlab.core.errors import UserError


def read_video(path: Path, n_frames: int, size: int) -> np.ndarray:
    """A clip as uint8 ``(n_frames, size, size, 3)``: frames resized (bilinear) and picked at evenly spaced
    times (repeated when the clip is shorter)."""
    from PIL import Image, ImageSequence

    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            if arr.ndim != 4 or arr.shape[-1] != 3:
                raise UserError(f"{path} holds an array of shape {arr.shape}", "save frames as (T, H, W, 3)")
            if arr.dtype != np.uint8:
                arr = (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
            frames = [Image.fromarray(f) for f in arr]
        elif suffix == ".gif":
            with Image.open(path) as im:
                frames = [f.convert("RGB").copy() for f in ImageSequence.Iterator(im)]
        else:
            raise UserError(f"--video {path}: unsupported format {suffix or '(none)'}", "pass a .gif or a .npy file")
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the video {path}: {e}", "pass a readable .gif or .npy (T, H, W, 3) file") from None
    if not frames:
        raise UserError(f"{path} has no frames", "pass a clip with at least one frame")
    idx = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
    return np.stack([np.asarray(frames[i].resize((size, size), Image.BILINEAR)) for i in idx]).astype(np.uint8)


def open_run(run_dir: Path) -> tuple[dict, list[str] | dict]:
    """The configuration and vocabulary of a finished run folder."""
    cfg_p, vocab_p = run_dir / "config.json", run_dir / "vocab.json"
    if not cfg_p.exists() or not vocab_p.exists() or not (run_dir / "models").is_dir():
        raise UserError(f"{run_dir} is not a finished `paperlab storm run` folder (no config.json, vocab.json or "
                        "models/)", "pass the --out folder of a storm run")
    return json.loads(cfg_p.read_text()), json.loads(vocab_p.read_text())


def load_variant(run_dir: Path, encoder: str, projector: str, pool: str, seed: int):
    import torch

    from paperlab.storm.experiment import variant_name
    from paperlab.storm.model import Storm, StormConfig

    path = run_dir / "models" / f"{variant_name(encoder, projector, pool, seed)}.pt"
    if not path.exists():
        have = sorted(p.stem for p in (run_dir / "models").glob("*.pt"))
        raise UserError(f"{run_dir} has no trained model {path.stem}", f"choose one of: {', '.join(have) or 'none'}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    c = dict(state["config"])
    c["grid"] = tuple(c["grid"])
    model = Storm(StormConfig(**c))
    model.load_state_dict(state["model"])
    return model.eval()


def check_items(items: list[dict], vocab_state) -> None:
    from paperlab.storm.model import load_vocab

    vocab = load_vocab(vocab_state)
    for i, it in enumerate(items):
        if not str(it.get("question", "")).strip():
            raise UserError(f"item {i}: the question is empty", "give a question")
        choices = it.get("choices") or []
        if len(choices) < 2:
            raise UserError(f"item {i}: needs at least two choices", "e.g. --choices left,right,up,down")
        bad = [c for c in choices if not vocab.knows(c)]
        if bad:
            raise UserError(f"item {i}: the model does not know the answer word(s) {', '.join(map(repr, bad))}",
                            "use answer words from its training: colours, directions, counts, yes/no")


def answer_questions(run_dir: Path, frames: np.ndarray, items: list[dict], encoder: str, projector: str,
                     pool: str, seed: int, sample: int) -> list[dict]:
    """``items``: ``{"question", "choices"}`` about ``frames``; returns each with the answer and choice scores."""
    import torch

    from paperlab.core.video import encode_frames
    from paperlab.storm.encoders import make_encoder
    from paperlab.storm.experiment import feature_name
    from paperlab.storm.model import load_vocab
    from paperlab.storm.training import QASet

    cfg, state = open_run(run_dir)
    vocab = load_vocab(state)
    model = load_variant(run_dir, encoder, projector, pool, seed)
    enc = make_encoder(encoder, cfg["size"])
    feats = encode_frames(enc, frames[None])
    pca_path = run_dir / "features" / f"{feature_name(encoder)}_pca.pt"
    if pca_path.exists():                                   # the run's fixed PCA of a wide encoder
        from paperlab.storm.experiment import apply_pca

        feats = apply_pca(feats, torch.load(pca_path, map_location="cpu"))
    ids = [vocab.encode(it["question"])[:24] or [1] for it in items]
    kmax = max(len(it["choices"]) for it in items)
    q_ids = torch.zeros(len(items), max(len(x) for x in ids), dtype=torch.long)
    c_ids = torch.full((len(items), kmax), -1, dtype=torch.long)
    for r, (x, it) in enumerate(zip(ids, items, strict=True)):
        q_ids[r, : len(x)] = torch.tensor(x)
        c_ids[r, : len(it["choices"])] = torch.tensor([vocab.choice(c) for c in it["choices"]])
    data = QASet(feats=feats, video=torch.zeros(len(items), dtype=torch.long), q_ids=q_ids,
                 q_len=torch.tensor([len(x) for x in ids]), choice_ids=c_ids,
                 answer=torch.zeros(len(items), dtype=torch.long), kind=["user"] * len(items))
    with torch.no_grad():
        probs = model(data.feats, data.video, data.q_ids, data.q_len, data.choice_ids, sample=sample).softmax(-1)
    out = []
    for it, p in zip(items, probs, strict=True):
        scores = {c: round(float(p[j]), 4) for j, c in enumerate(it["choices"])}
        out.append({"question": it["question"], "answer": max(scores, key=scores.get), "scores": scores,
                    "visual_tokens": model.cfg.visual_tokens(sample),
                    "variant": {"encoder": encoder, "projector": projector, "pool": pool, "seed": seed,
                                "sample": sample}})
    return out
