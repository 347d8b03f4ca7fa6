"""`paperlab fm_inverse`: run the experiment, or sample a posterior for your own observations."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import (
    Out,
    Overwrite,
    Quick,
    Seed,
    check_choice,
    check_readable_file,
    check_writable_file,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("fm_inverse", "Flow matching + transformers for Bayesian inverse problems (SEIR, Darcy).")


def check_device(device: str) -> str:
    """``--device``: auto, cpu, cuda or cuda:<index>."""
    if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit() and device[5:].isascii()):
        return device
    raise UserError(f"unknown --device {device!r}", "use auto, cpu, cuda or cuda:<index>")


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    problem: Annotated[str, typer.Option("--problem", help="seir (default) or darcy.")] = "seir",
    seed: Seed = 0,
    steps: Annotated[int | None, typer.Option("--steps", help="Training steps (default: the config's).")] = None,
    strategy: Annotated[str | None, typer.Option("--strategy", help="per_n | accumulate (variable-length batches).")] = None,
    noise_free: Annotated[bool, typer.Option("--noise-free", help="Noise-free observations (default: noisy).")] = False,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")] = "auto",
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads (1 is faster on a busy machine).")] = 2,
    peers: Annotated[str | None, typer.Option(
        "--peers", help="sbi peers trained on the same simulator and budget: comma-separated NPE,FMPE (default "
        "both; 'none' to skip). Needs the optional sbi package (pip install 'paperlab[sbi]').")] = None,
    no_packaged_references: Annotated[bool, typer.Option(
        "--no-packaged-references", help="Recompute every emcee reference instead of loading the copy shipped "
        "with paperlab for the same inputs (adds ~1.5 min per quick case).")] = False,
) -> None:
    """Train the CFM transformer, compare with MCMC and sbi's NPE/FMPE, and write the report (SEIR: ~9 min with
    --quick on 2 idle cores)."""
    # every value is checked before any work: a bad one is a one-line error and leaves no run folder
    check_choice(problem, "--problem", ("seir", "darcy"))
    if steps is not None and not 1 <= steps <= MAX_TRAIN_STEPS:
        raise UserError(f"--steps must be in 1..{MAX_TRAIN_STEPS} (got {steps})",
                        "the quick run trains for a few thousand steps, the full one for 40,000")
    check_choice(strategy, "--strategy", ("per_n", "accumulate"))
    check_device(device)
    peer_list = [] if peers is not None and peers.strip().lower() == "none" else parse_names(
        peers, "--peers", ("NPE", "FMPE"), example="NPE,FMPE")
    from paperlab.fm_inverse.experiment import reproduce

    train = {k: v for k, v in (("steps", steps), ("strategy", strategy)) if v is not None}
    start_fresh(out, overwrite)
    run_dir = reproduce(quick=quick, out=out, problem=problem, seed=seed, device=device, threads=threads,
                        noise="noise_free" if noise_free else "noisy", train=train or None, peers=peer_list,
                        packaged_references=False if no_packaged_references else None)
    print_run(run_dir)


#: upper bounds of ``--steps`` (ODE steps of ``sample``; optimiser steps of ``run``)
MAX_ODE_STEPS = 10_000
MAX_TRAIN_STEPS = 10_000_000


def observation_warnings(parsed: dict, meta: dict) -> list[str]:
    """Where the observations leave what the model was trained on (it still samples; the user is told)."""
    import numpy as np

    out = []
    tokens = parsed["tokens"]
    seen = meta.get("train_n", [])
    if seen and not min(seen) <= len(tokens) <= max(seen):
        out.append(f"{len(tokens)} observations, outside the trained range {min(seen)}..{max(seen)}: an extrapolation")
    om = meta.get("observation_model", {})
    if meta["problem"] == "seir" and "t_low" in om and "t_high" in om:
        t = tokens[:, 2]
        if t.min() < om["t_low"] or t.max() > om["t_high"]:
            out.append(f"observation times {t.min():g}..{t.max():g} leave the training range [{om['t_low']:g}, "
                       f"{om['t_high']:g}]: the posterior there is an extrapolation")
    if meta["problem"] == "darcy":
        e = np.asarray(parsed["context"])
        if e.min() < 0 or e.max() > 1:
            out.append(f"design e = ({e[0]:g}, {e[1]:g}) outside the training range [0, 1]^2: an extrapolation")
        cells = {(min(int(r * 3), 2), min(int(c * 3), 2)) for r, c in tokens[:, 1:3]}
        if len(cells) < len(tokens):
            out.append("several observations share a cell of the 3 x 3 grid (training used one point per cell)")
    return out


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _is_finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except OverflowError:  # an integer beyond float range
        return False


def read_observations(path: Path, problem: str) -> dict:
    """Parse an observation file into arrays; every problem is a one-line :class:`UserError`.

    SEIR: ``{"t": [...], "I": [...], "R": [...]}`` or a list of ``{"t", "I", "R"}`` records
    (any number of observations, times in [0, 4]). Darcy: ``{"e": [e1, e2], "u": [...],
    "row": [...], "col": [...]}`` with row/col in [0, 1].
    """
    import numpy as np

    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise UserError(f"observation file {path} does not exist", "pass an existing JSON file with --obs") from e
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise UserError(f"observation file {path} is not valid JSON ({e})", "fix the JSON syntax") from e
    except OSError as e:
        raise UserError(f"cannot read observation file {path}: {e.__class__.__name__}",
                        "pass a readable JSON file with --obs") from e
    fields = ("t", "I", "R") if problem == "seir" else ("u", "row", "col")
    if problem == "seir" and isinstance(raw, dict) and "observations" in raw:
        raw = raw["observations"]
    if isinstance(raw, list):
        if not all(isinstance(r, dict) for r in raw):
            raise UserError(f"{path}: a list of observations must hold objects with keys {fields}",
                            'write e.g. [{"t": 1.5, "I": 3.2, "R": 1.1}, ...]')
        raw = {k: [r.get(k) for r in raw] for k in fields}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object with keys {', '.join(fields)}",
                        'write e.g. {"t": [1.0, 2.0], "I": [3.1, 20.4], "R": [0.5, 9.8]}')
    missing = [k for k in fields if k not in raw]
    if missing:
        raise UserError(f"{path}: missing key(s) {', '.join(missing)}", f"give lists for {', '.join(fields)}")
    cols = {}
    for k in fields:
        v = raw[k]
        if not isinstance(v, list) or not all(_is_number(x) for x in v):
            raise UserError(f"{path}: '{k}' must be a list of numbers", "remove nulls/strings from it")
        if not all(_is_finite(x) for x in v):
            raise UserError(f"{path}: '{k}' holds a non-finite number", "use finite values")
        cols[k] = np.asarray(v, dtype=np.float64)
    lengths = {len(c) for c in cols.values()}
    if len(lengths) != 1:
        raise UserError(f"{path}: {', '.join(fields)} have different lengths "
                        f"({', '.join(str(len(cols[k])) for k in fields)})", "give one value of each per observation")
    if lengths == {0}:
        raise UserError(f"{path}: no observations", "give at least one observation")
    out: dict = {"tokens": np.stack([cols[k] for k in fields], axis=1)}
    if problem == "seir":
        t = cols["t"]
        if t.min() < 0 or t.max() > 4:
            raise UserError(f"{path}: observation times must lie in [0, 4] (got {t.min():g}..{t.max():g})",
                            "the SEIR model is defined on t in [0, 4]")
        out["tokens"] = out["tokens"][:, [1, 2, 0]]          # model tokens are (I, R, t)
    else:
        if ("e" not in raw or not isinstance(raw["e"], list) or len(raw["e"]) != 2
                or not all(_is_number(x) and _is_finite(x) for x in raw["e"])):
            raise UserError(f"{path}: Darcy observations need 'e': [e1, e2]", "add the boundary-condition design")
        if cols["row"].min() < 0 or cols["row"].max() > 1 or cols["col"].min() < 0 or cols["col"].max() > 1:
            raise UserError(f"{path}: row/col must be normalised to [0, 1]", "divide grid indices by 63")
        out["context"] = np.asarray(raw["e"], dtype=np.float64)
    return out


@app.command()
def sample(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Run folder (or its checkpoint/) of a trained model.")],
    obs: Annotated[Path, typer.Option("--obs", help="JSON observations: SEIR {\"t\": [...], \"I\": [...], \"R\": [...]}.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of posterior samples.")] = 4000,
    out: Annotated[Path, typer.Option("--out", help="Output .npy file, shape (n, parameters).")] = Path("samples.npy"),
    seed: Seed = 0,
    steps: Annotated[int | None, typer.Option("--steps", help="ODE steps (default: the checkpoint's).")] = None,
    method: Annotated[str | None, typer.Option("--method", help="euler | midpoint | rk4 | dopri5.")] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads (1 is faster on a busy machine).")] = 2,
) -> None:
    """Draw posterior samples for your own observations with a trained model (one batch)."""
    if n < 1:
        raise UserError(f"--n must be positive (got {n})", "ask for at least one sample")
    if method is not None and method not in ("euler", "midpoint", "rk4", "dopri5"):
        raise UserError(f"unknown --method {method!r}", "use euler, midpoint, rk4 or dopri5")
    if steps is not None and not 1 <= steps <= MAX_ODE_STEPS:
        raise UserError(f"--steps must be in 1..{MAX_ODE_STEPS} (got {steps})",
                        "16-32 fixed steps are plenty; more only costs time")
    if steps is not None and method == "dopri5":
        raise UserError("--steps applies to the fixed-step methods (euler, midpoint, rk4), not dopri5",
                        "drop --steps, or choose a fixed-step --method")
    if out.suffix != ".npy":
        raise UserError(f"--out {out} must end in .npy", "e.g. --out samples.npy")
    check_writable_file(out, "--out")
    check_readable_file(obs, "--obs")
    if not checkpoint.exists():
        raise UserError(f"--checkpoint {checkpoint} does not exist", "pass the folder of a finished fm_inverse run")
    from paperlab.fm_inverse.checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    if steps is not None and method is None and meta["ode_method"] == "dopri5":
        raise UserError("--steps applies to fixed-step methods; this checkpoint samples with dopri5",
                        "add --method midpoint (or euler, rk4), or drop --steps")
    parsed = read_observations(obs, meta["problem"])
    for line in observation_warnings(parsed, meta):
        typer.echo(f"warning: {line}", err=True)
    import time

    import numpy as np
    import torch

    from paperlab.fm_inverse.flow import sample_posterior

    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    samples = sample_posterior(model, parsed["tokens"], n, context=parsed.get("context"), source=meta["source"],
                               method=method or meta["ode_method"], steps=steps or meta["ode_steps"], seed=seed)
    seconds = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, samples.astype(np.float64))
    from rich.console import Console
    from rich.table import Table

    k = len(parsed["tokens"])
    table = Table(title=f"posterior from {k} observations: {n} samples in {seconds:.2f} s")
    for col in ("parameter", "mean", "5%", "95%"):
        table.add_column(col)
    for i, name in enumerate(meta["param_names"]):
        q = np.quantile(samples[:, i], [0.05, 0.95])
        table.add_row(name, f"{samples[:, i].mean():.4f}", f"{q[0]:.4f}", f"{q[1]:.4f}")
    Console().print(table)
    Console().print(f"samples ({n}, {len(meta['param_names'])}) in order {', '.join(meta['param_names'])}: {out}")
