"""``paperlab telephone``: run the broken-telephone experiment, or score your own chains."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import Out, Quick, Seed, print_run, system_app

app = system_app("telephone", "LLM as a Broken Telephone: iterative translation/rephrasing distorts information.")


def _csv(v: str | None) -> list[str] | None:
    return [x.strip() for x in v.split(",") if x.strip()] if v else None


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    passages: Annotated[int | None, typer.Option(min=1, help="Passages for the MT chains.")] = None,
    lm_passages: Annotated[int | None, typer.Option(min=1, help="Passages for the LM rephrase chains.")] = None,
    iterations: Annotated[int | None, typer.Option(min=1, help="Iterations of the MT chains.")] = None,
    lm_iterations: Annotated[int | None, typer.Option(min=1, help="Iterations of the LM chains.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="LM for the rephrase chains (model spec).")] = None,
    pool: Annotated[str | None, typer.Option(help="Comma-separated LM specs: a self-loop each and the "
                                             "two-player chain over them (e.g. vLLM endpoints).")] = None,
    pivot: Annotated[str | None, typer.Option(help="Pivot language of the --pool chains (e.g. fr, th).")] = None,
    temperatures: Annotated[str | None, typer.Option(help="Comma-separated temperatures (0 = greedy).")] = None,
    domains: Annotated[str | None, typer.Option(help="Comma-separated domains (news2024,booksum,...).")] = None,
    judge: Annotated[str | None, typer.Option(help="FActScore judge: lexical (offline fallback) or a model spec.")] = None,
    compat: Annotated[str | None, typer.Option(help="Metric convention: standard or paper.")] = None,
    passage_file: Annotated[Path | None, typer.Option(help="Your own passages: JSONL, {\"text\": ...} per line.")] = None,
    no_mt: Annotated[bool, typer.Option("--no-mt", help="Skip the MT chains.")] = False,
    no_rephrase: Annotated[bool, typer.Option("--no-rephrase", help="Skip the LM rephrase chains.")] = False,
    seed: Seed = 0,
) -> None:
    """Run the chains, compute BLEU/chrF/METEOR/BERTScore/FActScore per iteration, test the paper's claims."""
    from paperlab.telephone.experiment import reproduce

    overrides = {k: v for k, v in dict(
        passages=passages, lm_passages=lm_passages, mt_iterations=iterations, lm_iterations=lm_iterations,
        lm=model, pool=_csv(pool), passage_file=str(passage_file) if passage_file else None, pivot=pivot, domains=_csv(domains), judge=judge, compat=compat,
        temperatures=[float(t) for t in _csv(temperatures)] if temperatures else None,
    ).items() if v is not None}
    overrides.update(mt=not no_mt, rephrase=not no_rephrase, seed=seed)
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

    from paperlab.telephone.scoring import score_files

    result = score_files(original, generations, compat=compat, judge=judge)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if output:
        output.write_text(text)
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text)
