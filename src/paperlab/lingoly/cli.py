"""``paperlab lingoly``: the LINGOLY-TOO experiment, and obfuscating / validating / scoring your own problems
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
    check_writable_dir,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("lingoly", "LINGOLY-TOO (2503.02972): templatised orthographic obfuscation, M_og vs. M_obf.")


@app.callback()
def lingoly() -> None:
    """LINGOLY-TOO (arXiv 2503.02972): obfuscation templates, the paper's scorer, memorisation vs. reasoning."""


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    models: Annotated[str | None, typer.Option(
        "--models", help="Comma-separated LLM specs (default | gguf:<file> | hf:<path> | openai:<url>#<model>); "
        "'none' for no LLM. Default: default.")] = None,
    obfuscations: Annotated[int | None, typer.Option("--obfuscations", min=1, max=50,
                                                     help="Fresh obfuscations per problem (paper: 6).")] = None,
    llm_obfuscations: Annotated[int | None, typer.Option(
        "--llm-obfuscations", min=0, max=50, help="Fresh obfuscations per problem given to the LLMs "
        "(default 6; quick 1).")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=16, help="LLM reply budget per question.")]
    = None,
    seed: Annotated[int | None, typer.Option("--seed", help="random.seed for the obfuscations (paper: 317).")] = None,
) -> None:
    """Templates, reproduction of the released obfuscations, fresh obfuscations and their round trip, the
    memorising vs. rule-inducing solvers, the human responses and LLMs; writes report.md + results.json."""
    overrides: dict = {}
    if models is not None:
        names = [] if models.strip().lower() == "none" else parse_names(models, "--models", example="default")
        from paperlab.core.cli import check_model_spec

        for m in names:
            check_model_spec(m, "--models")
        overrides["models"] = names
    for key, val in (("n_obfuscations", obfuscations), ("llm_obfuscations", llm_obfuscations),
                     ("max_tokens", max_tokens), ("seed", seed)):
        if val is not None:
            overrides[key] = val
    from paperlab.lingoly.experiment import default_config, reproduce

    default_config(quick, **overrides)   # the settings' own checks, before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


def _template(path: Path, check: bool = True):
    from paperlab.lingoly.obfuscation import load_template

    return load_template(check_readable_file(path, "--template"), check=check)


def _problem(path: Path) -> dict:
    from paperlab.lingoly.problems import load_problem

    return load_problem(check_readable_file(path, "--problem"))


TemplateOpt = Annotated[Path, typer.Option("--template", help="Template JSON (tables, sets, fixed, problemese, "
                                           "metadata; see paperlab.lingoly.obfuscation.Template).")]


@app.command()
def validate(
    template: TemplateOpt,
    problem: Annotated[Path | None, typer.Option("--problem", help="Problem JSON whose Problemese (@@@ spans, else the "
                                                 "template's words) is checked for unmapped characters.")] = None,
) -> None:
    """List a template's ambiguities (overlapping graphemes, prefixes, unmapped characters); exit 2 on errors."""
    from paperlab.lingoly.obfuscation import (
        OBF_MARK,
        count_mappings,
        mark_problemese,
        normalise,
        validate_template,
    )
    from paperlab.lingoly.problems import iter_fields

    tpl = _template(template, check=False)
    texts = list(tpl.problemese)
    if problem is not None:
        prob = _problem(problem)
        texts = [s for _, t in iter_fields(prob) for s in mark_problemese(normalise(t), tpl).split(OBF_MARK)[1::2]]
    issues = validate_template(tpl, texts)
    for i in issues:
        typer.echo(f"{i.severity}: {i.kind}: {i.message}")
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise UserError(f"template {template} has {len(errors)} error(s) (listed above)", "fix them and validate again")
    typer.echo(f"ok: {len(tpl.normalised().graphemes())} graphemes, {count_mappings(tpl.normalised())} possible "
               f"obfuscations, {len(issues)} warning(s)")


@app.command()
def obfuscate(
    template: TemplateOpt,
    problem: Annotated[Path, typer.Option("--problem", help="Problem JSON (the released format; Problemese in @@@ "
                                          "markers, or listed in the template's 'problemese').")],
    seed: Annotated[int, typer.Option("--seed", help="random.seed set before sampling (paper: 317).")] = 317,
    n: Annotated[int, typer.Option("--n", min=1, max=1000, help="Obfuscations to draw (paper: 6).")] = 6,
    out: Annotated[Path | None, typer.Option("--out", file_okay=False, help="Write <name>_0000.json (original) ... "
                                             "<name>_000k.json here; default: print them as a JSON list.")] = None,
    keep_marks: Annotated[bool, typer.Option("--keep-marks", help="Keep @@@ around obfuscated spans.")] = False,
) -> None:
    """Draw obfuscations of one problem with its template (answers obfuscated with the same mapping)."""
    import random

    from paperlab.lingoly.obfuscation import sample_mappings
    from paperlab.lingoly.problems import obfuscate_problem, original_version

    tpl = _template(template)
    prob = _problem(problem)
    if out is not None:
        check_writable_dir(out, "--out")
    maps = sample_mappings(tpl.normalised(), n, random.Random(seed))
    versions = [original_version(prob, tpl)] + [obfuscate_problem(prob, m, tpl, i + 1, keep_marks)
                                                for i, m in enumerate(maps)]
    if out is None:
        typer.echo(json.dumps(versions, ensure_ascii=False, indent=1))
        return
    out.mkdir(parents=True, exist_ok=True)
    stem = problem.stem.split("_")[0]
    for i, v in enumerate(versions):
        (out / f"{stem}_{i:04}.json").write_text(json.dumps(v, ensure_ascii=False, indent=1), encoding="utf-8")
    typer.echo(f"wrote {len(versions)} files ({len(maps)} obfuscations + the original) to {out}")


@app.command()
def score(
    problem: Annotated[Path, typer.Option("--problem", help="Problem JSON holding the reference answers.")],
    answers: Annotated[Path, typer.Option("--answers", help="JSON object: sub-question id (question_n/part, or "
                                          "'q/s' indices) -> answer; or a list of answers in order.")],
) -> None:
    """Score answers with the paper's scorer (exact match, BLEU, chrF per sub-question, and the means)."""
    from paperlab.lingoly.obfuscation import read_json_file
    from paperlab.lingoly.problems import subquestions
    from paperlab.lingoly.scoring import score as score_one

    prob = _problem(problem)
    given = read_json_file(check_readable_file(answers, "--answers"), "answers")
    sqs = subquestions(prob, "p", 0)
    if isinstance(given, list):
        if len(given) != len(sqs):
            raise UserError(f"--answers lists {len(given)} answers, the problem has {len(sqs)} sub-questions",
                            "give one answer per sub-question, in order")
        preds = [str(x) for x in given]
    elif isinstance(given, dict):
        preds = [str(given.get(f"{s.q_index}/{s.s_index}", given.get(f"{s.question_n.strip()}/{s.part.strip()}", "")))
                 for s in sqs]
    else:
        raise UserError("--answers must hold a JSON object or list", "e.g. {\"0/0\": \"answer\"}")
    rows = [{"id": f"{s.q_index}/{s.s_index}", "prediction": p, "reference": s.answer,
             **{m: score_one(p, s.answer, m) for m in ("exact", "bleu", "chrf")}} for s, p in zip(sqs, preds, strict=False)]
    means = {m: sum(r[m] for r in rows) / len(rows) for m in ("exact", "bleu", "chrf")}
    typer.echo(json.dumps({"subquestions": rows, "mean": means}, ensure_ascii=False, indent=1))
