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
    check_meta(meta, cfg.param_dim, d)
    model.eval()
    return model, meta


#: ODE methods a checkpoint may name as its default
ODE_METHODS = ("euler", "midpoint", "rk4", "dopri5")


def check_meta(meta: dict, param_dim: int, where: Path | str = "checkpoint") -> None:
    """Every field ``paperlab fm_inverse sample`` reads, checked up front: a one-line :class:`UserError`."""
    def bad(field: str, want: str) -> UserError:
        return UserError(f"checkpoint in {where}: field '{field}' {want} (got {str(meta.get(field))[:60]!r})",
                         "re-create it with `paperlab fm_inverse run`")

    if not isinstance(meta, dict):
        raise UserError(f"checkpoint in {where}: {META_FILE} is not a JSON object", "re-create it with `paperlab fm_inverse run`")
    if meta.get("problem") not in ("seir", "darcy"):
        raise bad("problem", "must be 'seir' or 'darcy'")
    names = meta.get("param_names")
    if not isinstance(names, list) or len(names) != param_dim or not all(isinstance(x, str) for x in names):
        raise bad("param_names", f"must list {param_dim} parameter names")
    if meta.get("source") not in ("gaussian", "uniform"):
        raise bad("source", "must be 'gaussian' or 'uniform'")
    if meta.get("ode_method") not in ODE_METHODS:
        raise bad("ode_method", f"must be one of {', '.join(ODE_METHODS)}")
    steps = meta.get("ode_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 10_000:
        raise bad("ode_steps", "must be an integer in 1..10000")
    train_n = meta.get("train_n", [])
    if not isinstance(train_n, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in train_n):
        raise bad("train_n", "must be a list of positive integers")
    om = meta.get("observation_model", {})
    if not isinstance(om, dict) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in om.values()):
        raise bad("observation_model", "must be an object of numbers")
