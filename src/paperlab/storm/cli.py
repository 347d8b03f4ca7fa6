"""``paperlab storm``: the STORM experiment, and a trained variant applied to your clips
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
    check_choice,
    check_readable_file,
    check_writable_file,
    parse_ints,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("storm", "STORM (2503.04130): Mamba temporal encoder + token reduction for video LLMs.")

ENCODERS = ("random", "efficientnet_lite0")


@app.callback()
def storm() -> None:
    """STORM (arXiv 2503.04130): a Mamba temporal encoder between the frame encoder and the LLM, then temporal /
    spatial pooling and test-time sampling; Linear vs. Mamba projector on procedural videos."""


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    encoders: Annotated[str | None, typer.Option("--encoders", help="Frozen frame encoders, comma-separated: "
                                                 "random, efficientnet_lite0, hf:<path> of a vision model (SigLIP, "
                                                 "CLIP, ViT) (default the first two; quick: random).")] = None,
    train_videos: Annotated[int | None, typer.Option("--train-videos", min=8, help="Training clips.")] = None,
    test_videos: Annotated[int | None, typer.Option("--test-videos", min=8, help="Held-out clips.")] = None,
    frames: Annotated[int | None, typer.Option("--frames", min=4, max=512, help="Frames per clip (default 16).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Training steps per model.")] = None,
    d_model: Annotated[int | None, typer.Option("--d-model", min=8, help="Model width (a multiple of 8).")] = None,
    mamba_layers: Annotated[int | None, typer.Option("--mamba-layers", min=1, max=12, help="Mamba layers.")] = None,
    temporal_pool: Annotated[int | None, typer.Option("--temporal-pool", min=2, help="k of Eq. 6 (default 4).")] = None,
    samples: Annotated[str | None, typer.Option("--samples", help="Test-time sampling rates s, comma-separated "
                                                "(default 2,4).")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="Training seeds per variant (default 0,1).")] = None,
    scan: Annotated[str | None, typer.Option("--scan", help="Selective scan: auto | parallel | sequential | cuda.")] = None,
    size: Annotated[int | None, typer.Option("--size", min=16, max=128, help="Frame size in px, a multiple of 8 "
                                             "(default 16: 2x2 tokens per frame).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Torch CPU threads (default 2).")] = None,
    answer_lm: Annotated[str | None, typer.Option("--answer-lm", help="hf:<folder> of a transformers causal LM as "
                                                  "the answer model (visual prefix tokens; use a GPU), instead of "
                                                  "the small decoder.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Data seed.")] = None,
) -> None:
    """Train Linear and Mamba projectors with no / temporal / spatial pooling on the same clips, evaluate at 1x, kx,
    k*s x and p^2 x token budgets on held-out clips, check the parallel scan; writes report.md + results.json."""
    overrides: dict = {}
    if encoders is not None:
        overrides["encoders"] = parse_names(encoders, "--encoders", example="random,efficientnet_lite0")
        bad = [e for e in overrides["encoders"] if not (e in ENCODERS or (e.startswith("hf:") and len(e) > 3))]
        if bad:
            raise UserError(f"--encoders: unknown {', '.join(map(repr, bad))}",
                            f"use some of: {', '.join(ENCODERS)}, hf:<path>")
    if samples is not None:
        overrides["samples"] = parse_ints(samples, "--samples", min=2, example="2,4")
    if seeds is not None:
        overrides["train_seeds"] = parse_ints(seeds, "--seeds", min=0, example="0,1")
    check_choice(scan, "--scan", ("auto", "parallel", "sequential", "cuda"))
    for key, val in (("train_videos", train_videos), ("test_videos", test_videos), ("n_frames", frames),
                     ("steps", steps), ("d_model", d_model), ("mamba_layers", mamba_layers),
                     ("temporal_pool", temporal_pool), ("scan", scan), ("size", size), ("threads", threads),
                     ("answer_lm", answer_lm), ("seed", seed)):
        if val is not None:
            overrides[key] = val
    from paperlab.storm.experiment import default_config, reproduce

    default_config(quick, **overrides)   # the settings' own checks, before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def answer(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="A finished `paperlab storm run` folder.",
                                             file_okay=False)],
    video: Annotated[Path | None, typer.Option("--video", help="The clip: a .gif or a .npy (T, H, W, 3) array.")] = None,
    question: Annotated[str | None, typer.Option("--question", help="The question about --video.")] = None,
    choices: Annotated[str | None, typer.Option("--choices", help="Answer words, comma-separated.")] = None,
    batch: Annotated[Path | None, typer.Option("--batch", help="JSONL instead: one {video, question, choices} a "
                                               "line (choices a list).")] = None,
    encoder: Annotated[str | None, typer.Option("--encoder", help="Frame encoder of the variant (default: the "
                                                "run's first).")] = None,
    projector: Annotated[str, typer.Option("--projector", help="linear | mamba.")] = "mamba",
    pool: Annotated[str, typer.Option("--pool", help="Variant trained with: none | temporal | spatial.")] = "temporal",
    sample: Annotated[int, typer.Option("--sample", min=1, help="Test-time temporal sampling s (Eq. 8).")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Training seed of the variant.")] = 0,
    output: Annotated[Path | None, typer.Option("--output", help="Also write the JSON answers here.")] = None,
) -> None:
    """Answer multiple-choice questions about your clip(s) with a trained variant. Prints JSON (one object, or a
    list for --batch): the answer, each choice's probability, the visual tokens used."""
    from paperlab.storm.apply import check_items, open_run

    check_choice(projector, "--projector", ("linear", "mamba"))
    check_choice(pool, "--pool", ("none", "temporal", "spatial"))
    if not checkpoint.is_dir():
        raise UserError(f"--checkpoint {checkpoint} is not a folder", "pass the --out folder of a storm run")
    cfg, vocab = open_run(checkpoint)
    encoder = check_choice(encoder, "--encoder", cfg["encoders"]) or cfg["encoders"][0]
    if output is not None:
        check_writable_file(output, "--output")
    if batch is not None:
        if video is not None or question is not None or choices is not None:
            raise UserError("--batch replaces --video/--question/--choices", "pass either --batch or the three")
        items = _read_batch(check_readable_file(batch, "--batch"))
    else:
        if video is None or question is None or choices is None:
            raise UserError("missing --video, --question or --choices", "pass all three, or --batch FILE.jsonl")
        items = [{"video": str(video), "question": question,
                  "choices": parse_names(choices, "--choices", example="left,right,up,down")}]
    check_items(items, vocab)
    for it in items:
        check_readable_file(Path(it["video"]), "--video")
    from paperlab.storm.apply import answer_questions, read_video

    by_video: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_video.setdefault(it["video"], []).append(i)
    answers: dict[int, dict] = {}
    for path, idx in by_video.items():
        frames = read_video(Path(path), cfg["n_frames"], cfg["size"])
        res = answer_questions(checkpoint, frames, [items[i] for i in idx], encoder, projector, pool, seed, sample)
        for i, r in zip(idx, res, strict=True):
            answers[i] = {"video": path} | r
    results = [answers[i] for i in range(len(items))]
    text = json.dumps(results if batch is not None else results[0], indent=1)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


def _read_batch(path: Path) -> list[dict]:
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            it = json.loads(line)
        except ValueError:
            raise UserError(f"--batch {path} line {n} is not JSON", "one {video, question, choices} object a line") from None
        if not isinstance(it, dict) or not {"video", "question", "choices"} <= set(it) \
                or not isinstance(it["choices"], list):
            raise UserError(f"--batch {path} line {n} lacks video, question or a choices list",
                            'e.g. {"video": "clip.gif", "question": "...", "choices": ["yes", "no"]}')
        base = path.parent
        v = Path(it["video"])
        items.append({"video": str(v if v.is_absolute() else base / v), "question": str(it["question"]),
                      "choices": [str(c) for c in it["choices"]]})
    if not items:
        raise UserError(f"--batch {path} holds no items", "one {video, question, choices} object a line")
    return items
