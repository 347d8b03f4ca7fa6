"""``paperlab translationese``: the Lost-in-Literalism experiment, TSR of your Label Studio exports, PPL of your
texts (cheap to import; torch is loaded inside the commands)."""

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
    check_model_spec,
    check_readable_file,
    check_writable_file,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("translationese", "Lost in Literalism (2503.04369): translationese span ratio, perplexity, "
                 "filtering and polishing of SFT references.")

SETS = ("deen_sft", "deen_outputs", "enzh_sft", "enzh_outputs")
ARMS = ("base", "raw", "filtered", "polished")


@app.callback()
def translationese() -> None:
    """Lost in Literalism (arXiv 2503.04369): TSR table, PPL vs. TSR, PPL filtering, polishing, LoRA SFT."""


def _check_threshold(value: float | None, option: str = "--threshold") -> None:
    if value is not None and not (math.isfinite(value) and 0 < value < 1):
        raise UserError(f"{option} must be in (0, 1), got {value}", f"e.g. {option} 0.2")


def _local_spec(spec: str | None, option: str) -> None:
    check_model_spec(spec, option)
    if spec is not None and spec.startswith("openai:"):
        raise UserError(f"{option}: an OpenAI-compatible server returns no token log-probabilities of a given text",
                        "use default, hf:<path> or gguf:<file>")


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    ppl_model: Annotated[str | None, typer.Option("--ppl-model", help="Scoring LM: default | hf:<path> | "
                                                  "gguf:<file>.")] = None,
    ppl_sets: Annotated[str | None, typer.Option("--ppl-sets", help=f"Comma-separated annotated sets scored "
                                                 f"({', '.join(SETS)}); the first decides ppl_correlates_tsr.")] = None,
    max_items: Annotated[int | None, typer.Option("--max-items", min=8, help="Score at most this many items "
                                                  "per set.")] = None,
    polish_model: Annotated[str | None, typer.Option("--polish-model", help="LLM that polishes the references: "
                                                     "any model spec (openai:<url>#<model> too).")] = None,
    sft_model: Annotated[str | None, typer.Option("--sft-model", help="Model fine-tuned with LoRA.")] = None,
    arms: Annotated[str | None, typer.Option("--arms", help=f"SFT arms ({', '.join(ARMS)}).")] = None,
    no_sft: Annotated[bool, typer.Option("--no-sft", help="Skip the SFT experiment.")] = False,
    n_train: Annotated[int | None, typer.Option("--n-train", min=4, help="Training pairs of the raw arm.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="LoRA steps per arm.")] = None,
    n_eval: Annotated[int | None, typer.Option("--n-eval", min=4, help="Held-out sentences per arm.")] = None,
    filter_drop: Annotated[float | None, typer.Option("--filter-drop", help="Fraction of highest-PPL references "
                                                      "dropped, in (0, 1).")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="TSR threshold (paper: 0.2).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads (default 2).")] = None,
) -> None:
    """TSR table vs. the paper, PPL vs. TSR, filtering, heuristics, and the LoRA SFT experiment; writes report.md +
    results.json (runs/translationese/<timestamp>/). Re-run with --out to resume."""
    for spec, opt in ((ppl_model, "--ppl-model"), (sft_model, "--sft-model")):
        _local_spec(spec, opt)
    check_model_spec(polish_model, "--polish-model")
    _check_threshold(threshold)
    _check_threshold(filter_drop, "--filter-drop")
    given = {"ppl_model": ppl_model, "ppl_sets": parse_names(ppl_sets, "--ppl-sets", SETS, example="deen_sft"),
             "max_items": max_items, "polish_model": polish_model, "sft_model": sft_model,
             "arms": parse_names(arms, "--arms", ARMS, example="raw,polished"), "n_train": n_train, "steps": steps,
             "n_eval": n_eval, "filter_drop": filter_drop, "threshold": threshold, "threads": threads,
             "sft": False if no_sft else None}
    overrides = {k: v for k, v in given.items() if v is not None}
    from paperlab.translationese.experiment import default_config, reproduce

    default_config(quick, **overrides)  # the settings' own checks, before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def tsr(
    annotations: Annotated[list[Path], typer.Option("--annotations", help="Label Studio JSON export (.json or "
                                                    ".json.gz); repeat it for several annotators' project files of "
                                                    "the same tasks (aligned by position).")],
    threshold: Annotated[float, typer.Option("--threshold", help="Translationese when mean TSR > this.")] = 0.2,
    labels: Annotated[str | None, typer.Option("--labels", help="Comma-separated span labels that count (default: "
                                               "Unnatural Phrase Flow,Unnatural Sentence Flow).")] = None,
    items: Annotated[bool, typer.Option("--items", help="Also list every item's TSR.")] = False,
    output: Annotated[Path | None, typer.Option("--output", help="Write the JSON here (default: stdout).")] = None,
) -> None:
    """TSR per item (mean over the given annotator files) and the per-system table (share of TSR > threshold with a
    Wilson interval, mean TSR), as JSON."""
    from paperlab.translationese import tsr as T

    _check_threshold(threshold)
    label_list = parse_names(labels, "--labels", example="'Unnatural Phrase Flow'") or list(T.FLOW_LABELS)
    for p in annotations:
        check_readable_file(p, "--annotations")
    if output is not None:
        check_writable_file(output, "--output")
    projects = [T.read_export(p) for p in annotations]
    its = T.aggregate(projects, label_list, names=[p.name for p in annotations])
    payload = {"files": [str(p) for p in annotations], "labels": label_list, "threshold": threshold,
               "n_items": len(its), "systems": T.system_table(its, threshold)}
    if items:
        payload["items"] = [{"i": i, "system": it.system, "tsr": it.tsr, "tsr_each": it.tsr_each,
                             "translationese": it.translationese(threshold)} for i, it in enumerate(its)]
    _emit(payload, output)


@app.command()
def ppl(
    input: Annotated[Path, typer.Option("--input", help="JSONL, one object per text.")],
    model: Annotated[str, typer.Option("--model", help="Scoring LM: default | hf:<path> | gguf:<file>.")] = "default",
    field: Annotated[str, typer.Option("--field", help="The key holding the text in each record.")] = "text",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    output: Annotated[Path | None, typer.Option("--output", help="Write the JSON here (default: stdout).")] = None,
) -> None:
    """Perplexity of each text alone (default special tokens, first token unscored), then mean and median."""
    from paperlab.core.data import read_jsonl

    _local_spec(model, "--model")
    check_readable_file(input, "--input")
    if output is not None:
        check_writable_file(output, "--output")
    rows = read_jsonl(input)
    texts = []
    for i, r in enumerate(rows, 1):
        t = r.get(field)
        if not isinstance(t, str) or not t.strip():
            raise UserError(f"{input}: record {i} has no non-empty string field {field!r}",
                            f"give every record a {field!r} text, or pass --field <key>")
        texts.append(t)
    from paperlab.core.models import load_torch_model
    from paperlab.translationese.ppl import perplexities, summarize

    m, tok = load_torch_model(model, device="cpu")
    vals = perplexities(m, tok, texts, batch_size=batch_size)
    _emit({"model": model, "field": field, **summarize(vals),
           "items": [{"i": i, "ppl": v if math.isfinite(v) else None} for i, v in enumerate(vals)]}, output)


def _emit(payload: dict, output: Path | None) -> None:
    from paperlab.core.runs import to_jsonable

    text = json.dumps(to_jsonable(payload), indent=2, ensure_ascii=False)
    if output is None:
        typer.echo(text)
    else:
        Path(output).write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {output}")
