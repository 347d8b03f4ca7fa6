"""``paperlab af2``: the Audio Flamingo 2 experiment, and caption ranking with a trained AF-CLAP
(cheap to import: the work happens inside the commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import (
    Out,
    Overwrite,
    Quick,
    check_readable_file,
    check_writable_file,
    parse_ints,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("af2", "Audio Flamingo 2 (2503.03983): AF-CLAP, gated XATTN-Dense over a frozen LM, long audio.")


@app.callback()
def af2() -> None:
    """Audio Flamingo 2 (arXiv 2503.03983): AF-CLAP vs. InfoNCE on synthetic audio scenes, zero-gated XATTN-Dense
    over a frozen tiny LM trained with the 3-stage curriculum, long-audio QA with all windows vs. the first."""


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    clap_steps: Annotated[int | None, typer.Option("--clap-steps", min=1, help="CLAP steps per loss.")] = None,
    clap_train: Annotated[int | None, typer.Option("--clap-train", min=8, help="10 s training scenes.")] = None,
    clap_test: Annotated[int | None, typer.Option("--clap-test", min=4, help="Held-out 10 s scenes.")] = None,
    stage_steps: Annotated[str | None, typer.Option("--stage-steps", help="Steps of curriculum stages 1,2,3.")] = None,
    lm_steps: Annotated[int | None, typer.Option("--lm-steps", min=1, help="Text-only LM pretraining steps.")] = None,
    short_scenes: Annotated[int | None, typer.Option("--short-scenes", min=4, help="30 s scenes (stage 2).")] = None,
    long_scenes: Annotated[int | None, typer.Option("--long-scenes", min=4, help="Long scenes (stage 3).")] = None,
    long_test: Annotated[int | None, typer.Option("--long-test", min=2, help="Held-out long scenes.")] = None,
    long_s: Annotated[float | None, typer.Option("--long-s", min=30.0, max=300.0,
                                                 help="Long-scene length in seconds (default 300; quick 60).")] = None,
    kinds: Annotated[str | None, typer.Option("--kinds", help="Event kinds, comma-separated (tone,noise,chirp,"
                                              "clicks,word,prompt).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Torch CPU threads (default 2).")] = None,
) -> None:
    """Train AF-CLAP and InfoNCE CLAPs, pretrain and freeze a tiny LM, run the 3-stage curriculum, evaluate
    order-swap discrimination, gates and long-scene QA; writes report.md + results.json + plots."""
    from paperlab.core.audio_scenes import KINDS

    overrides: dict = {}
    if stage_steps is not None:
        overrides["stage_steps"] = parse_ints(stage_steps, "--stage-steps", min=1, example="150,150,250")
        if len(overrides["stage_steps"]) != 3:
            raise UserError("--stage-steps needs three numbers (stages 1, 2, 3)", "e.g. --stage-steps 150,150,250")
    if kinds is not None:
        overrides["kinds"] = parse_names(kinds, "--kinds", KINDS, example="tone,chirp,word")
    for key, val in (("clap_steps", clap_steps), ("clap_train", clap_train), ("clap_test", clap_test),
                     ("lm_steps", lm_steps), ("short_scenes", short_scenes), ("long_scenes", long_scenes),
                     ("long_test", long_test), ("long_s", long_s), ("seed", seed), ("threads", threads)):
        if val is not None:
            overrides[key] = val
    from paperlab.af2.experiment import default_config, reproduce

    default_config(quick, **overrides)   # the settings' own checks, before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


def latest_run(root: Path = Path("runs") / "af2") -> Path:
    """The newest run folder under ``runs/af2`` holding a trained AF-CLAP, or a one-line UserError."""
    runs = sorted((p for p in root.glob("*") if (p / "clap_afclap.pt").is_file()), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UserError(f"no trained AF-CLAP found under {root}/",
                        "run `paperlab af2 run --quick` first, or pass --checkpoint RUN_DIR")
    return runs[-1]


@app.command("clap-score")
def clap_score(
    audio: Annotated[Path, typer.Option("--audio", help="Audio file (WAV/FLAC/OGG; any rate, resampled to 16 kHz).")],
    captions: Annotated[Path, typer.Option("--captions", help="Text file, one candidate caption per line.")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="An af2 run folder (default: the latest "
                                                    "under runs/af2/).", file_okay=False)] = None,
    max_windows: Annotated[int, typer.Option("--max-windows", min=1, max=30, help="10 s windows read (AF2: "
                                             "3 / 12 / 30).")] = 30,
    output: Annotated[Path | None, typer.Option("--output", help="Also write the JSON to this file.")] = None,
) -> None:
    """Rank captions for an audio clip with the trained AF-CLAP (cosine of the clip's mean window embedding with
    each caption's embedding); prints JSON, best first."""
    check_readable_file(audio, "--audio")
    check_readable_file(captions, "--captions")
    if output is not None:
        check_writable_file(output, "--output")
    lines = [x.strip() for x in captions.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    if not lines:
        raise UserError(f"--captions {captions} holds no caption", "write one caption per line")
    if checkpoint is not None:
        if not (checkpoint / "clap_afclap.pt").is_file():
            raise UserError(f"--checkpoint {checkpoint} holds no clap_afclap.pt",
                            "pass the folder of a finished `paperlab af2 run`")
        run_dir = checkpoint
    else:
        run_dir = latest_run()
    from paperlab.af2 import load_clap, score_captions
    from paperlab.core.audio import load_wav

    load_wav(audio)  # unreadable audio -> one-line error before the model loads
    ranking = score_captions(load_clap(run_dir), audio, lines, max_windows=max_windows)
    text = json.dumps({"audio": str(audio), "checkpoint": str(run_dir), "ranking": ranking}, indent=1,
                      ensure_ascii=False)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)
