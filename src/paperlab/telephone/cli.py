"""``paperlab telephone``: run the broken-telephone experiment, or score your own chains."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import (
    Out,
    Overwrite,
    Quick,
    Seed,
    check_choice,
    check_model_spec,
    check_readable_file,
    check_writable_file,
    parse_floats,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("telephone", "LLM as a Broken Telephone: iterative translation/rephrasing distorts information.")


def _check_judge(judge: str | None, extra: tuple[str, ...] = ()) -> None:
    if judge is not None and judge not in ("lexical", *extra):
        check_model_spec(judge, "--judge")


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    passages: Annotated[int | None, typer.Option(min=1, help="Passages for the MT chains.")] = None,
    lm_passages: Annotated[int | None, typer.Option(min=1, help="Passages for the LM rephrase chains.")] = None,
    lm_passage_words: Annotated[int | None, typer.Option(min=5, help="LM chains rephrase each passage's leading "
                                                         "whole sentences up to this many words.")] = None,
    iterations: Annotated[int | None, typer.Option(min=1, help="Iterations of the MT chains.")] = None,
    lm_iterations: Annotated[int | None, typer.Option(min=1, help="Iterations of the LM chains.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="LM for the rephrase chains (model spec).")] = None,
    pool: Annotated[str | None, typer.Option(help="Comma-separated LM specs: a self-loop each and the "
                                             "two-player chain over them (e.g. vLLM endpoints).")] = None,
    pivot: Annotated[str | None, typer.Option(help="Pivot language of the --pool chains (e.g. fr, th).")] = None,
    temperatures: Annotated[str | None, typer.Option(help="Comma-separated temperatures (0 = greedy).")] = None,
    domains: Annotated[str | None, typer.Option(help="Comma-separated domains (news2024,booksum,...).")] = None,
    judge: Annotated[str | None, typer.Option(help="FActScore judge: lexical (offline fallback) or a model spec.")] = None,
    compat: Annotated[str | None, typer.Option(help="Metric convention: standard, or paper (the official "
                                               "evaluation's calls; reproduces its stored values).")] = None,
    passage_file: Annotated[Path | None, typer.Option(help="Your own passages: JSONL, {\"text\": ...} per line.")] = None,
    repetition_penalty: Annotated[float | None, typer.Option(
        "--repetition-penalty", help="LM decoding: > 1 penalises tokens already in the context (1.0 = off, the "
        "default and the paper's setting); the report still counts repetition loops.")] = None,
    no_mt: Annotated[bool, typer.Option("--no-mt", help="Skip the MT chains.")] = False,
    no_rephrase: Annotated[bool, typer.Option("--no-rephrase", help="Skip the LM rephrase chains.")] = False,
    seed: Seed = 0,
) -> None:
    """Run the chains, compute BLEU/chrF/METEOR/ROUGE/BERTScore/FActScore per iteration, test the paper's claims."""
    # every value is checked before any work: a bad one is a one-line error and leaves no run folder
    temps = parse_floats(temperatures, "--temperatures", min=0, example="0,0.5,1")
    pool_specs = parse_names(pool, "--pool", example="openai:http://127.0.0.1:8000/v1#m1,openai:http://127.0.0.1:8001/v1#m2")
    for spec in pool_specs or ():
        check_model_spec(spec, "--pool")
    check_model_spec(model, "--model")
    if repetition_penalty is not None and not repetition_penalty > 0:
        raise UserError(f"--repetition-penalty must be > 0, got {repetition_penalty}", "use 1.0 (off) or e.g. 1.1")
    _check_judge(judge)
    from paperlab.telephone.metrics import COMPAT

    check_choice(compat, "--compat", COMPAT)
    if pivot is not None and not pivot.strip():
        raise UserError("--pivot is empty", "give a language code, e.g. --pivot fr")
    if passage_file is not None:
        check_readable_file(passage_file, "--passage-file")
    from paperlab.telephone.experiment import DOMAINS, default_config, reproduce

    doms = parse_names(domains, "--domains", choices=DOMAINS, example="news2024,booksum")
    overrides = {k: v for k, v in dict(
        passages=passages, lm_passages=lm_passages, lm_passage_words=lm_passage_words, mt_iterations=iterations, lm_iterations=lm_iterations,
        lm=model, pool=pool_specs, passage_file=str(passage_file) if passage_file else None, pivot=pivot,
        domains=doms, judge=judge, compat=compat, temperatures=temps, repetition_penalty=repetition_penalty,
    ).items() if v is not None}
    overrides.update(mt=not no_mt, rephrase=not no_rephrase, seed=seed)
    default_config(quick, **overrides)  # the settings' own checks, still before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def score(
    original: Annotated[Path, typer.Option(help="JSONL: {\"id\", \"text\"} per original passage.")],
    generations: Annotated[Path, typer.Option(help="JSONL: {\"id\", \"iteration\", \"text\"} per generation, or "
                                              "the paper's per-passage records ({\"id\", \"0_en\", \"2_fr\", ...}).")],
    compat: Annotated[str, typer.Option(help="standard (generation as hypothesis, sacrebleu) or paper.")] = "standard",
    output: Annotated[Path | None, typer.Option("--output", help="Write the JSON here (default: stdout).")] = None,
    judge: Annotated[str, typer.Option(help="FActScore judge: lexical or a model spec; 'none' to skip.")] = "lexical",
) -> None:
    """Score your own chains: every metric of each generation against its original (JSONL in, JSON out)."""
    import json

    check_readable_file(original, "--original")
    check_readable_file(generations, "--generations")
    from paperlab.telephone.metrics import COMPAT

    check_choice(compat, "--compat", COMPAT)
    _check_judge(judge, extra=("none",))
    if output is not None:
        check_writable_file(output, "--output")
    from paperlab.telephone.scoring import score_files

    result = score_files(original, generations, compat=compat, judge=judge)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text)
