"""``paperlab landiff``: the LanDiff experiment, and text-to-video generation from a finished run
(cheap to import: torch and the models load inside the commands)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import Out, Overwrite, Quick, check_writable_file, print_run, start_fresh, system_app
from paperlab.core.errors import UserError

app = system_app("landiff", "LanDiff (2503.04606): semantic tokens by an LM, pixels by a diffusion detokenizer.")


@app.callback()
def landiff() -> None:
    """LanDiff (arXiv 2503.04606): a semantic tokenizer (I/P query tokens, EMA VQ), an autoregressive LM over
    its tokens conditioned on caption, frame count and motion, and a flow detokenizer with a zero-initialised
    control branch, on procedural videos."""


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    encoder: Annotated[str | None, typer.Option("--encoder", help="Frozen semantic frame encoder: random "
                                                "(default) | efficientnet_lite0.")] = None,
    text_encoder: Annotated[str | None, typer.Option("--text-encoder", help="Frozen text encoder: embed:minilm "
                                                     "(default) | hf:<sentence-transformers folder>.")] = None,
    lm_backbone: Annotated[str | None, typer.Option("--lm-backbone", help="small (default) | hf:<path>: a "
                                                    "transformers decoder run on input embeddings.")] = None,
    cfg_scale: Annotated[float | None, typer.Option("--cfg-scale", min=1.0, help="CFG scale on logits "
                                                    "(paper default 7.5).")] = None,
    n_train: Annotated[int | None, typer.Option("--n-train", min=16, help="Training clips.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of data and training.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any configuration field, KEY=VALUE (JSON "
                                                   "value), repeatable, e.g. --set lm_steps=400.")] = None,
) -> None:
    """Train tokenizer, LM, detokenizer and judges on procedural clips; measure compression, caption following,
    motion control and long-video drift; write report.md (with GIFs) + results.json."""
    overrides: dict = {}
    for key, val in (("encoder", encoder), ("text_encoder", text_encoder), ("lm_backbone", lm_backbone),
                     ("cfg_scale", cfg_scale), ("n_train", n_train), ("seed", seed)):
        if val is not None:
            overrides[key] = val
    overrides |= parse_sets(set_ or [])
    for key in ("text_encoder", "lm_backbone"):
        v = overrides.get(key)
        if isinstance(v, str) and v.startswith("hf:") and not Path(v[3:]).expanduser().is_dir():
            raise UserError(f"--{key.replace('_', '-')} {v}: folder not found", "pass hf:<existing folder>")
    from paperlab.landiff.experiment import default_config, reproduce

    default_config(quick, **overrides)   # the settings' own checks, before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


def parse_sets(items: list[str]) -> dict:
    """``KEY=VALUE`` pairs -> overrides (values parsed as JSON, else kept as strings); unknown keys refused."""
    from paperlab.landiff.experiment import LanDiffConfig

    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"--set {item!r} is not KEY=VALUE", "e.g. --set lm_steps=400")
        if key not in LanDiffConfig.model_fields:
            raise UserError(f"--set: unknown setting {key!r}", "see the fields of LanDiffConfig in "
                            "paperlab/landiff/experiment.py")
        try:
            out[key] = json.loads(val)
        except ValueError:
            out[key] = val
    return out


@app.command()
def generate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Folder of a finished `paperlab landiff run`.",
                                             file_okay=False)],
    caption: Annotated[str, typer.Option("--caption", help='e.g. "a blue square moves up slowly".')],
    out: Annotated[Path, typer.Option("--out", help="GIF to write; its JSON metadata goes beside it.")],
    frames: Annotated[int, typer.Option("--frames", min=2, max=512, help="Frames; beyond the run's clip length "
                                        "the video is generated chunk by chunk.")] = 16,
    motion: Annotated[float | None, typer.Option("--motion", help="Requested motion score in [0, 1] (default: "
                                                 "the training median).")] = None,
    cfg_scale: Annotated[float | None, typer.Option("--cfg-scale", min=1.0, help="CFG scale (default: the "
                                                    "run's).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
) -> None:
    """Generate a clip for a caption from a trained run: LM -> semantic tokens -> detokenizer -> GIF + JSON."""
    if not caption.strip():
        raise UserError("the caption is empty", 'pass --caption "a red circle moves left quickly"')
    if motion is not None and not (math.isfinite(motion) and 0.0 <= motion <= 1.0):
        raise UserError(f"--motion {motion} is not in [0, 1]", "a motion score is a mean pixel change, e.g. 0.02")
    if out.suffix.lower() != ".gif":
        raise UserError(f"--out {out} must end in .gif", "e.g. --out clip.gif")
    check_writable_file(out, "--out")
    if not checkpoint.is_dir():
        raise UserError(f"--checkpoint {checkpoint} is not a folder", "pass the --out folder of `paperlab landiff run`")
    from paperlab.landiff.generate import generate_to_file

    meta = generate_to_file(checkpoint, caption.strip(), frames, motion, cfg_scale, seed, out)
    typer.echo(json.dumps(meta, indent=1))
