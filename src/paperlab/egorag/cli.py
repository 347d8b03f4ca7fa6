"""``paperlab egorag``: the EgoRAG experiment, and a persistent memory for your own captions
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
    check_model_spec,
    check_readable_file,
    check_writable_dir,
    check_writable_file,
    parse_floats,
    parse_ints,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("egorag", "EgoRAG (EgoLife, 2503.03803): hierarchical day -> hour -> clip memory retrieval.")

METHODS = ("hierarchical", "flat", "eq2", "llm")


@app.callback()
def egorag() -> None:
    """EgoRAG (EgoLife, arXiv 2503.03803): a persistent caption memory with hourly/daily summaries, hierarchical
    vs. flat retrieval, on a simulated life log or your own captions."""


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    model: Annotated[str | None, typer.Option("--model", help="Answer model spec (default | gguf:<file> | hf:<path> | "
                                              "openai:<url>#<model>), or 'none' for retrieval only.")] = None,
    days: Annotated[int | None, typer.Option("--days", min=2, max=60, help="Simulated days (default 7).")] = None,
    clips_per_hour: Annotated[int | None, typer.Option("--clips-per-hour", min=1, max=120,
                                                       help="30 s clips per hour, a divisor of 120 "
                                                       "(default 120; quick 30).")] = None,
    questions: Annotated[int | None, typer.Option("--questions", min=4, help="Questions per EgoLifeQA kind.")] = None,
    lambdas: Annotated[str | None, typer.Option("--lambdas", help="Eq. 2 λ values, comma-separated.")] = None,
    latency_days: Annotated[str | None, typer.Option("--latency-days", help="Store sizes in days for the latency "
                                                     "measurement (default 1,7,365).")] = None,
    latency_clips_per_hour: Annotated[int | None, typer.Option("--latency-clips-per-hour", min=1, max=120,
                                                               help="Clip density of the latency stores.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Simulator seed.")] = None,
) -> None:
    """Simulate a life log, build the memory store, compare hierarchical / flat / Eq. 2 retrieval (recall@5),
    answer with an LLM, measure latency at 1 day / 1 week / 1 year; writes report.md + results.json."""
    overrides: dict = {}
    if model is not None:
        if model != "none":
            check_model_spec(model)
        overrides["model"] = model
    if lambdas is not None:
        overrides["lambdas"] = parse_floats(lambdas, "--lambdas", min=0.0, example="0,0.5,1,2")
    if latency_days is not None:
        overrides["latency_days"] = parse_ints(latency_days, "--latency-days", min=1, example="1,7,365")
    for key, val in (("days", days), ("clips_per_hour", clips_per_hour), ("questions_per_kind", questions),
                     ("latency_clips_per_hour", latency_clips_per_hour), ("seed", seed)):
        if val is not None:
            overrides[key] = val
    from paperlab.egorag.experiment import default_config, reproduce

    default_config(quick, **overrides)   # the settings' own checks, before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


StoreOpt = Annotated[Path, typer.Option("--store", help="Memory store folder (created by ingest).", file_okay=False)]


@app.command()
def ingest(
    store: StoreOpt,
    captions: Annotated[Path, typer.Option("--captions", help="JSONL, one clip a line: t_start, t_end (seconds or "
                                           "ISO date-times), text; optional scene (a clip-level description used "
                                           "by --retrieval eq2).")],
    embedder: Annotated[str | None, typer.Option("--embedder", help="embed:minilm (default) | hf:<path> | "
                                                 "openai:<url>#<model> | hash:<dim>; fixed per store.")] = None,
    summarizer: Annotated[str | None, typer.Option("--summarizer", help="'extractive' (default, offline) or an LLM "
                                                   "spec for the hourly/daily summaries; fixed per store.")] = None,
    chunk: Annotated[int, typer.Option("--chunk", min=1, help="Clips per transaction.")] = 2000,
) -> None:
    """Add captions to a persistent memory store (idempotent: clips already stored are skipped by content hash;
    a killed ingest resumes). Prints a JSON summary."""
    check_writable_dir(store, "--store")
    check_readable_file(captions, "--captions")
    if summarizer is not None and summarizer != "extractive":
        check_model_spec(summarizer, "--summarizer")
    from paperlab.egorag.memory import MemoryStore, read_captions

    caps = read_captions(captions)
    with MemoryStore.open(store, embedder=embedder, summarizer=summarizer) as ms:
        stats = ms.ingest(caps, chunk=chunk)
        stats["check"] = ms.check()
    typer.echo(json.dumps(stats))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    store: StoreOpt,
    model: Annotated[str, typer.Option("--model", help="Answer model spec, or 'none' for retrieval only.")] = "default",
    retrieval: Annotated[str, typer.Option("--retrieval", help="hierarchical (default) | flat | eq2 | llm "
                                           "(the --model picks day and hours).")] = "hierarchical",
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Clips retrieved (paper: 3).")] = 3,
    at: Annotated[str | None, typer.Option("--at", help="Query time (seconds or ISO date-time); default: just "
                                           "after the last stored clip.")] = None,
    lam: Annotated[float, typer.Option("--lam", min=0.0, help="Eq. 2 λ (--retrieval eq2).")] = 1.0,
    output: Annotated[Path | None, typer.Option("--output", help="Also write the JSON answer to this file.")] = None,
) -> None:
    """Answer a question from a memory store: retrieve clips, then ask the model. Prints JSON: the answer, the
    retrieved clips (times, captions, scores) and the day/hour window."""
    if retrieval not in METHODS:
        raise UserError(f"unknown --retrieval {retrieval!r}", f"use one of: {', '.join(METHODS)}")
    if not question.strip():
        raise UserError("the question is empty", "pass the question as the first argument")
    if model != "none":
        check_model_spec(model)
    elif retrieval == "llm":
        raise UserError("--retrieval llm needs a model", "pass --model default (or another spec)")
    if output is not None:
        check_writable_file(output, "--output")
    from paperlab.egorag.memory import MemoryStore, clock, parse_time

    when = parse_time(float(at) if at is not None and _is_number(at) else at, "--at") if at is not None else None
    with MemoryStore.open(store, create=False) as ms:
        index = ms.index
        if not len(index):
            raise UserError(f"the store in {store} holds no clips", "ingest captions first")
        if retrieval == "eq2" and not index.has_scene.any():
            raise UserError("--retrieval eq2 needs a scene field in the ingested captions",
                            "ingest captions with a 'scene' description, or use hierarchical")
        from paperlab.egorag.retrieval import RetrievalConfig, retrieve

        before = when if when is not None else float(index.times[-1]) + 1.0
        lm = None
        if model != "none":
            from paperlab.core.models import load_lm

            lm = load_lm(model)
        q = ms.embedder.embed([question])[0]
        r = retrieve(index, q, before, retrieval, RetrievalConfig(k=k, lam=lam), question, lm)
        ids = [int(index.ids[p]) for p in r.positions]
        rows = {i: (t, e, x) for i, t, e, x in ms.conn.execute(
            f"SELECT id, t_start, t_end, text FROM clips WHERE id IN ({','.join('?' * len(ids))})", ids)}
        clips = [{"t_start": rows[i][0], "t_end": rows[i][1], "time": clock(rows[i][0]), "text": rows[i][2],
                  "score": float(s)} for i, s in zip(ids, r.scores, strict=True)]
    answer = None
    if lm is not None:
        from paperlab.egorag.answering import answer_open

        answer = answer_open(lm, question, before, sorted((c["t_start"], c["text"]) for c in clips))
    res = {"question": question, "answer": answer, "model": model, "retrieval": retrieval, "query_time": before,
           "days": r.days, "hours": r.hours, "clips": clips}
    if r.info:
        res["selection"] = r.info
    text = json.dumps(res, ensure_ascii=False, indent=1)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True
