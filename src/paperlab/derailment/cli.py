"""``paperlab derailment``: the experiment, and derailment prediction on your own threads
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
    check_model_spec,
    check_readable_file,
    check_writable_file,
    print_run,
    start_fresh,
    system_app,
)

app = system_app("derailment", "Derailment in toxic GitHub conversations (2503.02191): markers, SCD summaries, "
                 "early warning.")


@app.callback()
def derailment() -> None:
    """Understanding and Predicting Derailment in Toxic Conversations on GitHub (arXiv 2503.02191)."""


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    model: Annotated[str | None, typer.Option(
        "--model", help="LLM spec for the SCD pipeline (default | gguf:<file> | hf:<path> | openai:<url>#<model>); "
        "'none' runs the feature baseline only.")] = None,
    probability: Annotated[str | None, typer.Option(
        "--probability", help="How the LLM's probability is read: yes_no (log-probs, default) or stated "
        "(the number it writes, as the paper).")] = None,
    llm_threads: Annotated[int | None, typer.Option("--llm-threads", min=2,
                                                    help="Held-out threads given to the LLM (quick: 48).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the split and subsamples.")] = None,
) -> None:
    """Markers, the feature baseline, the SCD pipeline (summary -> probability), early warning; writes
    report.md + results.json + plots."""
    overrides: dict = {}
    if model is not None:
        if model != "none":
            check_model_spec(model)
        overrides["model"] = model
    if probability is not None:
        overrides["probability"] = check_choice(probability, "--probability", ("yes_no", "stated"))
    for key, val in (("llm_threads", llm_threads), ("seed", seed)):
        if val is not None:
            overrides[key] = val
    from paperlab.derailment.experiment import default_config, reproduce

    default_config(quick, **overrides)  # the settings' own checks, before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def predict(
    threads: Annotated[Path, typer.Option(
        "--threads", help="JSONL, one thread per line: {\"id\": ..., \"comments\": [{\"author\": ..., \"text\": ..., "
        "\"author_association\": ...}, ...]} or a bare list of comments. Comments marked \"toxic\": true end the "
        "input (only the comments before the first toxic one are used).")],
    method: Annotated[str, typer.Option("--method", help="features (the logistic-regression baseline trained on the "
                                        "packaged threads) or llm (SCD summary -> probability).")] = "features",
    model: Annotated[str, typer.Option("--model", help="LLM spec for --method llm (default | gguf:<file> | "
                                       "hf:<path> | openai:<url>#<model>).")] = "default",
    probability: Annotated[str, typer.Option("--probability", help="--method llm: yes_no (log-probs) or stated "
                                             "(the number the model writes).")] = "yes_no",
    prompt: Annotated[str, typer.Option("--prompt", help="--method llm: ltm (the paper's least-to-most summary), "
                                        "ltm_compact (the same steps, shorter) or hua (plain SCD summary).")] = "ltm",
    summary_tokens: Annotated[int, typer.Option("--summary-tokens", min=16, max=4096,
                                                help="--method llm: token budget of each summary.")] = 200,
    threshold: Annotated[float, typer.Option("--threshold", min=0.0, max=1.0,
                                             help="Alarm when probability >= threshold.")] = 0.5,
    early_warning: Annotated[bool, typer.Option("--early-warning", help="Also score every prefix (after each "
                                                "comment) and report where the alarm first fires (features: with "
                                                "a classifier trained on every prefix).")] = False,
    output: Annotated[Path | None, typer.Option("--output", help="Write JSONL here (default: stdout).")] = None,
) -> None:
    """Probability that each thread derails into toxicity, one JSON line per thread:
    {id, method, probability, alarm, threshold, comments_used[, summary, answer, readable][, prefix_probabilities,
    alarm_at_comment]}."""
    from paperlab.derailment.data import read_user_threads

    check_choice(method, "--method", ("features", "llm"))
    check_choice(probability, "--probability", ("yes_no", "stated"))
    check_choice(prompt, "--prompt", ("ltm", "ltm_compact", "hua"))
    if method == "llm":
        check_model_spec(model)
    if output is not None:
        check_writable_file(output, "--output")
    items = read_user_threads(check_readable_file(threads, "--threads"))
    rows = _predict_rows(items, method, model, probability, prompt, summary_tokens, threshold, early_warning)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(rows)} predictions to {output}", err=True)


def _predict_rows(items, method: str, model: str, probability: str, prompt: str, summary_tokens: int,
                  threshold: float, early_warning: bool) -> list[dict]:
    from paperlab.derailment.evaluation import prefix_lengths

    prefixes = [t.prefix for t in items]
    rows = [{"id": t.id, "method": method, "threshold": threshold, "comments_used": len(t.prefix)} for t in items]
    if method == "features":
        from paperlab.derailment.data import load_threads
        from paperlab.derailment.features import FeatureClassifier

        packaged = load_threads()
        clf = FeatureClassifier().fit(packaged)
        for r, p in zip(rows, clf.predict_proba(prefixes), strict=True):
            r["probability"] = float(p)
        if early_warning:  # prefix-wise: the classifier trained on every prefix (see FeatureClassifier.training_rows)
            every = FeatureClassifier(train_prefixes="all").fit(packaged)

        def score(ps):
            return [float(x) for x in every.predict_proba(ps)]
    else:
        from paperlab.core.models import load_lm, parse_spec
        from paperlab.derailment.scd import SCDPredictor

        kw = {"n_ctx": 4096} if parse_spec(model).kind == "gguf" else {}
        pred = SCDPredictor(load_lm(model, **kw), prompt=prompt, probability=probability,
                            summary_tokens=summary_tokens)

        def score(ps):
            return [p.probability for p in pred.predict(ps)]
        for r, p in zip(rows, pred.predict(prefixes), strict=True):
            r |= {"probability": p.probability, "readable": p.readable, "summary": p.summary, "answer": p.answer}
    for r in rows:
        r["alarm"] = r["probability"] >= threshold
    if early_warning:
        for r, t in zip(rows, items, strict=True):
            lengths = prefix_lengths(len(t.prefix))
            probs = score([t.prefix[:k] for k in lengths])
            r["prefix_probabilities"] = probs
            r["alarm_at_comment"] = next((k for k, p in zip(lengths, probs, strict=True) if p >= threshold), None)
    return rows

