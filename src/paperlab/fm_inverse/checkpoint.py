"""Save a trained velocity field with everything needed to sample from it later.

A checkpoint is a folder with ``model.pt`` (the state dict, input normalisation included) and
``model.json`` (the network config, the problem, its parameter order, the observation model, the
source distribution, the default ODE solver and the observation counts seen in training).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

MODEL_FILE = "model.pt"
META_FILE = "model.json"


def save_checkpoint(directory: Path | str, model, meta: dict[str, Any]) -> Path:
    """Write ``model.pt`` + ``model.json`` into ``directory`` (created); return it."""
    import torch

    from paperlab.core.runs import to_jsonable

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), d / MODEL_FILE)
    payload = {"format": "paperlab.fm_inverse/1", "velocity": model.cfg.to_dict()} | dict(meta)
    (d / META_FILE).write_text(json.dumps(to_jsonable(payload), indent=2))
    return d


def load_checkpoint(directory: Path | str):
    """``(model, meta)`` from a folder written by :func:`save_checkpoint` (or a run folder holding
    ``checkpoint/``). Raises :class:`UserError` when it is not a checkpoint."""
    import torch

    from paperlab.fm_inverse.velocity import VelocityConfig, VelocityTransformer

    d = Path(directory)
    if not (d / META_FILE).exists() and (d / "checkpoint" / META_FILE).exists():
        d = d / "checkpoint"
    if not (d / META_FILE).exists() or not (d / MODEL_FILE).exists():
        raise UserError(f"no fm_inverse checkpoint in {directory} (need {META_FILE} and {MODEL_FILE})",
                        "pass the run folder of `paperlab fm_inverse run` or its checkpoint/ folder")
    try:
        meta = json.loads((d / META_FILE).read_text())
        cfg = VelocityConfig(**meta["velocity"])
        model = VelocityTransformer(cfg)
        model.load_state_dict(torch.load(d / MODEL_FILE, map_location="cpu", weights_only=True))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"checkpoint in {d} is unreadable ({type(e).__name__}: {str(e)[:120]})",
                        "re-create it with `paperlab fm_inverse run`") from e
    model.eval()
    return model, meta
