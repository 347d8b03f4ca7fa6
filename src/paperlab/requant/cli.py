"""``paperlab requant``: the PQI / ReQuant experiment, and quantizing / scoring your own model (cheap to import;
torch is loaded inside the commands)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import (
    Model,
    Out,
    Overwrite,
    Quick,
    check_choice,
    check_model_spec,
    check_readable_file,
    check_writable_dir,
    check_writable_file,
    parse_ints,
    parse_names,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("requant", "PQI / ReQuant (2503.01901): post-quantization integral sensitivity, dense-and-sparse "
                 "requantization.")

BASES = ("rtn", "awq")
RULES = ("left", "right", "midpoint", "trapezoid")
METHODS = ("requant", "rtn", "magnitude", "fisher")


@app.callback()
def requant() -> None:
    """PQI / ReQuant (arXiv 2503.01901): Taylor vs. PQI, PQI concentration, ReQuant vs. magnitude/Fisher sparse."""


def _check_models(text: str | None) -> list[str] | None:
    names = parse_names(text, "--models", example="tiny,default")
    for m in names or ():
        if m != "tiny":
            check_model_spec(m, "--models")
            if m.startswith("openai:"):
                raise UserError("--models: an OpenAI-compatible server exposes no gradients",
                                "use tiny, default, hf:<path> or gguf:<file>")
    return names


def _check_fraction(value: float | None, option: str, lo: float = 0.0, hi: float = 1.0) -> None:
    if value is not None and not (math.isfinite(value) and lo <= value <= hi):
        raise UserError(f"{option} must be in [{lo:g}, {hi:g}], got {value}", f"pass e.g. {option} {(lo + hi) / 2:g}")


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    models: Annotated[str | None, typer.Option(
        "--models", help="Comma-separated: tiny (a small full-precision LM trained here) and/or model specs "
        "(default, hf:<path>, gguf:<file>). Default: tiny,default.")] = None,
    bits: Annotated[str | None, typer.Option("--bits", help="Comma-separated bit widths; the first decides the "
                                             "claims (default 3,2).")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Base quantizer: rtn (group-wise RTN) | awq "
                                             "(activation-aware scaling + RTN).")] = None,
    blocks: Annotated[str | None, typer.Option("--blocks", help="Decoder blocks quantized in transformers models "
                                               "(comma-separated, negative from the end; default all, quick -2,-1).")] = None,
    scan_points: Annotated[int | None, typer.Option("--scan-points", min=1, help="N of the PQI scan (default 32).")] = None,
    calib_seqs: Annotated[int | None, typer.Option("--calib-seqs", min=2, help="Calibration sequences.")] = None,
    calib_len: Annotated[int | None, typer.Option("--calib-len", min=8, help="Tokens per calibration sequence.")] = None,
    eval_tokens: Annotated[int | None, typer.Option("--eval-tokens", min=64, help="WikiText-2 test tokens scored.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="ReQuant's outlier-allocation "
                                                      "temperature T >= 0 (0: uniform ratio).")] = None,
    outlier_share: Annotated[float | None, typer.Option("--outlier-share", help="Share of the sparse budget spent "
                                                        "on outliers, in [0, 1].")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads (default 2).")] = None,
) -> None:
    """Taylor vs. measured vs. PQI, PQI concentration, and ReQuant vs. magnitude/Fisher dense-and-sparse at equal
    bits on WikiText-2; writes report.md + results.json (runs/requant/<timestamp>/). Re-run with --out to resume."""
    # every value is checked before any work: a bad one is a one-line error and leaves no run folder
    model_list = _check_models(models)
    bit_list = parse_ints(bits, "--bits", min=1, example="3,2")
    if bit_list and max(bit_list) > 8:
        raise UserError(f"--bits {bits}: at most 8 bits", "e.g. --bits 3,2")
    check_choice(base, "--base", BASES)
    block_list = _parse_blocks(blocks)
    _check_fraction(outlier_share, "--outlier-share")
    if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
        raise UserError(f"--temperature must be >= 0, got {temperature}", "e.g. --temperature 1")
    from paperlab.requant.experiment import default_config, reproduce

    given = {"models": model_list, "bits": bit_list, "base": base, "blocks": block_list, "scan_points": scan_points,
             "calib_seqs": calib_seqs, "calib_len": calib_len, "eval_tokens": eval_tokens, "temperature": temperature,
             "outlier_share": outlier_share, "threads": threads}
    overrides = {k: v for k, v in given.items() if v is not None}
    if scan_points is not None:
        overrides["convergence_points"] = [n for n in (4, 8, 16, 32, 64) if n <= scan_points and scan_points % n == 0] \
            or [scan_points]
    default_config(quick, **overrides)   # the settings' own checks, still before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


def _parse_blocks(text: str | None) -> list[int] | None:
    if text is None:
        return None
    vals = parse_ints(text, "--blocks", example="-2,-1")
    if len(set(vals)) != len(vals):
        raise UserError(f"--blocks {text!r} repeats a block", "name each block once")
    return vals


@app.command()
def quantize(
    model: Model = "default",
    bits: Annotated[int, typer.Option("--bits", min=1, max=8, help="Bits per dense code.")] = 3,
    out: Annotated[Path, typer.Option("--out", help="Folder for the dense-and-sparse model (config, tokenizer, "
                                      "model.safetensors, requant.json with the bit accounting).", file_okay=False)]
    = Path("requant-model"),
    method: Annotated[str, typer.Option("--method", help="requant | rtn (dense only) | magnitude | fisher "
                                        "(top-|w| / top-grad² per matrix kept sparse).")] = "requant",
    base: Annotated[str, typer.Option("--base", help="rtn | awq.")] = "rtn",
    group_size: Annotated[int, typer.Option("--group-size", min=2, help="Weights per quantization group.")] = 128,
    sparse_ratio: Annotated[float, typer.Option("--sparse-ratio", help="Fraction of weights kept sparse "
                                                "(48 bits each).")] = 0.005,
    outlier_share: Annotated[float, typer.Option("--outlier-share", help="ReQuant: share of the sparse budget "
                                                 "for outliers (the rest: significant weights).")] = 0.5,
    steps: Annotated[int, typer.Option("--steps", min=1, help="ReQuant: significant-weight detach steps.")] = 2,
    temperature: Annotated[float, typer.Option("--temperature", help="ReQuant: outlier allocation temperature.")]
    = 1.0,
    points: Annotated[int, typer.Option("--points", min=1, help="ReQuant: PQI points per scan.")] = 4,
    rule: Annotated[str, typer.Option("--rule", help="ReQuant: PQI rule (left|right|midpoint|trapezoid).")] = "midpoint",
    calib: Annotated[Path | None, typer.Option("--calib", help="Calibration text file (default: WikiText-2 "
                                               "valid.txt).")] = None,
    calib_seqs: Annotated[int, typer.Option("--calib-seqs", min=1, help="Calibration sequences.")] = 16,
    calib_len: Annotated[int, typer.Option("--calib-len", min=8, help="Tokens per calibration sequence.")] = 512,
    blocks: Annotated[str | None, typer.Option("--blocks", help="Decoder blocks to quantize (default all).")] = None,
    overwrite: Overwrite = False,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads.")] = 2,
) -> None:
    """Quantize a causal LM's decoder linear layers to dense low-bit + sparse full-precision weights; prints the
    bit accounting as JSON (also in DIR/requant.json)."""
    check_model_spec(model, "--model")
    if model.startswith("openai:"):
        raise UserError("--model: an OpenAI-compatible server exposes no weights", "pass default, hf:<path> or gguf:<file>")
    check_choice(method, "--method", METHODS)
    check_choice(base, "--base", BASES)
    check_choice(rule, "--rule", RULES)
    _check_fraction(sparse_ratio, "--sparse-ratio", 0.0, 0.5)
    _check_fraction(outlier_share, "--outlier-share")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise UserError(f"--temperature must be >= 0, got {temperature}", "e.g. --temperature 1")
    if method in ("requant", "magnitude", "fisher") and sparse_ratio == 0:
        raise UserError(f"--method {method} needs --sparse-ratio > 0", "pass e.g. --sparse-ratio 0.005, or --method rtn")
    block_list = _parse_blocks(blocks)
    text = None
    if calib is not None:
        from paperlab.core.data import read_text_file

        text = read_text_file(check_readable_file(calib, "--calib"))
        if not text.strip():
            raise UserError(f"--calib {calib} is empty", "pass a text file")
    out = check_writable_dir(out, "--out")
    from paperlab.requant.export import is_quantized_dir

    if out.is_dir() and any(out.iterdir()):
        if not is_quantized_dir(out):
            raise UserError(f"--out {out} is not empty and is not a requant model folder", "pass a new or empty folder")
        if not overwrite:
            raise UserError(f"--out {out} already holds a quantized model", "pass --overwrite to replace it")
    import torch

    torch.set_num_threads(threads)
    from paperlab.requant.export import quantize_to_dir

    meta = quantize_to_dir(model, out, bits, method, base, group_size, sparse_ratio, outlier_share, steps,
                           temperature, points, rule, text, calib_seqs, calib_len, block_list,
                           log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps({"out": str(out), "method": method, "bits": bits, "group_size": group_size,
                           **meta["accounting"]}, indent=2))


@app.command()
def ppl(
    model: Annotated[str, typer.Option("--model", help="A folder written by `requant quantize`, or a model spec "
                                       "(default, hf:<path>, gguf:<file>) for the unquantized model.")],
    data: Annotated[Path | None, typer.Option("--data", help="Text file to score (default: WikiText-2 test.txt).")]
    = None,
    context: Annotated[int, typer.Option("--context", min=2, help="Tokens per window.")] = 512,
    stride: Annotated[int, typer.Option("--stride", min=1, help="Tokens between window starts (<= context).")] = 256,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=2, help="Score the first N tokens (0: all).")]
    = 32768,
    output: Annotated[Path | None, typer.Option("--output", help="Write the JSON here too.")] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads.")] = 2,
) -> None:
    """Sliding-window perplexity (JSON: ppl, 95% bootstrap interval over windows, tokens, bits per weight)."""
    from paperlab.requant.export import is_quantized_dir

    p = Path(model)
    if not is_quantized_dir(model):
        if p.is_dir():
            raise UserError(f"--model {model} is a folder without requant.json",
                            f"pass a `requant quantize` folder, or hf:{model} for a plain checkpoint")
        check_model_spec(model, "--model")
        if model.startswith("openai:"):
            raise UserError("--model: an OpenAI-compatible server exposes no weights", "pass a folder or a local spec")
    if stride > context:
        raise UserError(f"--stride {stride} exceeds --context {context}", "pass a stride <= the context")
    text = None
    if data is not None:
        from paperlab.core.data import read_text_file

        text = read_text_file(check_readable_file(data, "--data"))
        if not text.strip():
            raise UserError(f"--data {data} is empty", "pass a text file")
    if output is not None:
        check_writable_file(output, "--output")
    import torch

    torch.set_num_threads(threads)
    from paperlab.requant.export import perplexity_report

    rep = perplexity_report(model, text, context, stride, max_tokens or None)
    blob = json.dumps(rep, indent=2)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(blob + "\n")
    typer.echo(blob)
