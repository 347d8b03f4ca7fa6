"""``paperlab priming``: the bilingual priming experiment, and measuring structural priming in your own model
(cheap to import; torch is loaded inside the commands)."""

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
    parse_floats,
    parse_ints,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("priming", "Structural priming in bilingual LMs (2503.03962): within- and cross-language priming "
                 "across training, sequential vs. simultaneous bilingual training.")

PAIRS = ("similar", "dissimilar")
REGIMES = ("sequential", "simultaneous")


@app.callback()
def priming() -> None:
    """Shared grammatical representations in bilingual LMs (arXiv 2503.03962): structural priming within and across
    languages at every checkpoint of tiny bilingual GPTs, and a priming measure for your own model."""


def _check_share(value: float | None, option: str, hi_open: bool = False) -> None:
    if value is not None and not (math.isfinite(value) and 0 <= value and (value < 1 if hi_open else value <= 1)):
        raise UserError(f"{option} must be in [0, 1{')' if hi_open else ']'}, got {value}", f"e.g. {option} 0.5")


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    pairs: Annotated[str | None, typer.Option("--pairs", help="Comma-separated: similar (en + SVO pseudo-Dutch), "
                                              "dissimilar (en + SOV case-marking). Default both; quick: similar.")]
    = None,
    regimes: Annotated[str | None, typer.Option("--regimes", help="Comma-separated: sequential, simultaneous "
                                                "(default both).")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="Comma-separated training seeds (default 0,1,2; "
                                              "quick: 0).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=4, help="Training steps (even; L2 starts at half).")]
    = None,
    persistence: Annotated[float | None, typer.Option("--persistence", help="P(a sentence copies the previous "
                                                      "sentence's structure in its document), in [0, 1].")] = None,
    codeswitch: Annotated[float | None, typer.Option("--codeswitch", help="Share of code-switched documents after "
                                                     "the onset in the positive-control model, in [0, 1) (default "
                                                     "0.25; 0: no control). Never used by the claims.")] = None,
    l1_tokens: Annotated[int | None, typer.Option("--l1-tokens", min=1000, help="Distinct L1 text (tokens).")] = None,
    l2_tokens: Annotated[int | None, typer.Option("--l2-tokens", min=1000, help="Distinct L2 text (tokens).")] = None,
    n_items: Annotated[int | None, typer.Option("--items", min=3, help="Items per alternation and direction.")] = None,
    post_onset: Annotated[str | None, typer.Option("--post-onset", help="Checkpoints after the onset as fractions "
                                                   "of it, e.g. 0.01,0.05,0.2,1.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads (default 1).")] = None,
) -> None:
    """Train tiny bilingual GPTs (sequential and simultaneous), measure within- and cross-language priming at every
    checkpoint; writes report.md + results.json (runs/priming/<timestamp>/). Re-run with --out to resume."""
    # every value is checked before any work: a bad one is a one-line error and leaves no run folder
    given = {
        "pairs": parse_names(pairs, "--pairs", PAIRS, example="similar,dissimilar"),
        "regimes": parse_names(regimes, "--regimes", REGIMES, example="sequential,simultaneous"),
        "seeds": parse_ints(seeds, "--seeds", min=0, example="0,1"),
        "post_onset": parse_floats(post_onset, "--post-onset", positive=True, example="0.01,0.1,1"),
        "steps": steps, "persistence": persistence, "control_codeswitch": codeswitch, "l1_tokens": l1_tokens,
        "l2_tokens": l2_tokens, "n_items": n_items, "threads": threads,
    }
    _check_share(persistence, "--persistence")
    _check_share(codeswitch, "--codeswitch", hi_open=True)
    if steps is not None and steps % 2:
        raise UserError(f"--steps {steps} is odd", "pass an even number of steps (L2 starts at half)")
    overrides = {k: v for k, v in given.items() if v is not None}
    from paperlab.priming.experiment import default_config, reproduce

    default_config(quick, **overrides)      # the settings' own checks, still before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def measure(
    model: Annotated[str, typer.Option("--model", help="A priming snapshot (models/.../snap_<step>.pt of a run), or a "
                                       "model spec: default | hf:<path> | gguf:<file>.")],
    items: Annotated[Path, typer.Option("--items", help="JSONL, one item per line with prime_x, prime_y, target_x, "
                                        "target_y (strings); e.g. items_similar.jsonl of a run.")],
    output: Annotated[Path | None, typer.Option("--output", help="Also write the JSON summary here, and the "
                                                "per-item values next to it (<name>.items.jsonl).")] = None,
    separator: Annotated[str, typer.Option("--separator", help="Text between prime and target (transformers "
                                           "models).")] = " ",
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads.")] = 2,
) -> None:
    """Structural priming of your model on your items: the normalised effect P_N(T_x|P_x) - P_N(T_x|P_y) (mean,
    95% t-interval, t-test and Wilcoxon p) and Prime-LM's log ratio, as JSON."""
    from paperlab.core.data import read_jsonl

    path = check_readable_file(items, "--items")
    rows = read_jsonl(path)
    from paperlab.priming.measure import check_items

    try:
        check_items(rows)
    except ValueError as e:
        raise UserError(f"--items {items}: {e}", "give every line prime_x, prime_y, target_x, target_y") from None
    if output is not None:
        check_writable_file(output, "--output")
    snapshot = model.endswith(".pt")
    if snapshot:
        check_readable_file(model, "--model")
    else:
        check_model_spec(model, "--model")
        if model.startswith("openai:"):
            raise UserError("--model: an OpenAI-compatible server returns no prompt log-probabilities here",
                            "pass a priming snapshot, default, hf:<path> or gguf:<file>")
    import torch

    torch.set_num_threads(threads)
    from paperlab.priming.apply import load_scorer, summarise_items

    scorer, describe = load_scorer(model, rows, separator)
    summary, per_item = summarise_items(scorer, rows)
    summary = {"model": describe, "items": str(items), **summary}
    blob = json.dumps(summary, indent=2)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(blob + "\n")
        output.with_suffix(".items.jsonl").write_text("\n".join(json.dumps(r) for r in per_item) + "\n")
    typer.echo(blob)
