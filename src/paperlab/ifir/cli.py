"""``paperlab ifir``: the IFIR experiment on SciFact, and evaluating retrievers on your own BEIR data
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
    check_writable_file,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)

app = system_app("ifir", "IFIR (2503.04644): instruction-following retrieval, nDCG and InstFol.")


@app.callback()
def ifir() -> None:
    """IFIR (arXiv 2503.04644): BM25 / dense / instruction-aware retrievers, nDCG, InstFol with an LLM judge."""


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    data: Annotated[str | None, typer.Option("--data", help="full: SciFact's BEIR test split (default) | subset: the "
                                             "packaged 294-abstract subset (default of --quick).")] = None,
    scifact: Annotated[Path | None, typer.Option("--scifact", help="SciFact BEIR folder (default: $PAPERLAB_SCIFACT, "
                                                 "the project's shared data, or ~/.cache/paperlab/data/scifact).")] = None,
    retrievers: Annotated[str | None, typer.Option("--retrievers", help="Comma-separated: bm25, dense, instruct, "
                                                   "embed:<spec>. Default: bm25,dense,instruct (quick: bm25,dense); InstFol judges bm25 and dense among them.")] = None,
    judge: Annotated[str | None, typer.Option("--judge", help="Judge LM spec: default-hf (SmolLM2-135M via "
                                              "transformers) | default | gguf:<file> | hf:<path> | openai:<url>#<model> "
                                              "(paper: gpt-4o-mini).")] = None,
    instfol_claims: Annotated[int | None, typer.Option("--instfol-claims", min=1, help="Claims judged (x 3 levels; "
                                                       "default 30, quick 3).")] = None,
    instfol_k: Annotated[int | None, typer.Option("--instfol-k", min=1, max=100, help="Passages judged per list "
                                                  "(paper 20; default 10, quick 2).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the instructions and the judged sample.")] = None,
    reference: Annotated[bool | None, typer.Option("--reference/--no-reference", help="BM25 on the full SciFact "
                                                   "test split vs BEIR's 0.665 (needs the full data).")] = None,
) -> None:
    """nDCG@10 vs ir-measures and BEIR's BM25, instructed SciFact (3 levels), InstFol per retriever and level;
    writes report.md + results.json."""
    overrides: dict = {}
    if data is not None:
        from paperlab.core.cli import check_choice

        overrides["data"] = check_choice(data, "--data", ("full", "subset"))
    if scifact is not None:
        from paperlab.ifir.data import scifact_root

        overrides["data_path"] = str(scifact_root(scifact))
    if retrievers is not None:
        names = parse_names(retrievers, "--retrievers", example="bm25,dense")
        overrides["retrievers"] = names
        overrides["instfol_retrievers"] = [n for n in ("bm25", "dense") if n in names] or names[:1]
    if judge is not None:
        overrides["judge"] = check_model_spec(judge, "--judge")
    for key, val in (("instfol_claims", instfol_claims), ("instfol_k", instfol_k), ("seed", seed),
                     ("reference", reference)):
        if val is not None:
            overrides[key] = val
    from paperlab.ifir.experiment import default_config, load_data, load_reference_data, reproduce

    cfg = default_config(quick, **overrides)
    load_reference_data(cfg, load_data(cfg))          # settings and data checked before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command("eval")
def eval_(
    corpus: Annotated[Path, typer.Option("--corpus", help="BEIR corpus.jsonl: {\"_id\", \"title\", \"text\"} per line.")],
    queries: Annotated[Path, typer.Option("--queries", help="BEIR queries.jsonl: {\"_id\", \"text\"} per line; an "
                                          "optional \"instruction\" (and \"level\" 1-3, the judge's rubric, default "
                                          "3) makes it an instructed query: ranked plain and instructed.")],
    qrels: Annotated[Path, typer.Option("--qrels", help="Qrels: BEIR TSV (query-id, corpus-id, score; header) or "
                                        "TREC (qid 0 docid grade).")],
    retriever: Annotated[str, typer.Option("--retriever", help="bm25 | dense | instruct | embed:<spec> "
                                           "(embed:minilm, embed:hf:<folder>, embed:openai:<url>#<model>).")] = "bm25",
    judge: Annotated[str | None, typer.Option("--judge", help="Judge LM spec for InstFol (needs instructed queries): "
                                              "default-hf | default | gguf:<file> | hf:<path> | openai:<url>#<model>.")] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Cut-off of nDCG@k and of the judged lists.")] = 10,
    judge_max_tokens: Annotated[int, typer.Option("--judge-max-tokens", min=4, help="Judge reply budget "
                                                  "(paper: 512).")] = 512,
    max_passage_words: Annotated[int | None, typer.Option("--max-passage-words", min=20, help="Cut passages shown "
                                                          "to the judge to this many words (default: whole).")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write the JSON here (default: stdout).")] = None,
    run_file: Annotated[Path | None, typer.Option("--run-file", help="Also write the rankings as a TREC run.")] = None,
) -> None:
    """Rank your BEIR data with one retriever; per-query and mean nDCG@k (standard, and the IFIR-code variant);
    with instructed queries, nDCG of plain vs instructed rankings and, with --judge, InstFol@k. Writes JSON."""
    from paperlab.ifir.retrievers import check_retriever

    for p, opt in ((corpus, "--corpus"), (queries, "--queries"), (qrels, "--qrels")):
        check_readable_file(p, opt)
    check_retriever(retriever)
    if judge is not None:
        check_model_spec(judge, "--judge")
    for p, opt in ((output, "--output"), (run_file, "--run-file")):
        if p is not None:
            check_writable_file(p, opt)
    from paperlab.ifir.apply import evaluate_files

    result = evaluate_files(corpus, queries, qrels, retriever, judge, k, judge_max_tokens, run_file, max_passage_words)
    text = json.dumps(result, indent=1, ensure_ascii=False)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {output}: {len(result['queries'])} queries, mean nDCG@{k} "
                   f"{result['mean']['ndcg']['value']:.4f}", err=True)
