"""CLI helpers shared by every system's ``cli.py``: the common options, input validators, the report printout.

Every ``paperlab <system> run`` takes ``--quick`` and ``--out``; use the annotated types below so
the help text reads the same everywhere.

**Validate before any work.** A command checks every value it was given (numbers, lists, choices,
model specs, input files, output paths) before it creates a run folder or loads anything heavy.
The validators below raise :class:`~paperlab.core.errors.UserError` with one line that names the
option and the fix; ``paperlab``'s ``main`` prints it and exits with status 2. Numeric ranges of
single values use typer's ``min=``/``max=`` (a usage error, also one line, also status 2).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from paperlab.core.errors import UserError


def _check_creatable(p: Path, option: str, what: str) -> None:
    """``p`` does not exist: its nearest existing ancestor must be a folder we can write into."""
    anc = p.absolute().parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"{option} {p} cannot be created: {anc} is a file", f"pass a {what} path")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"{option} {p} cannot be created: {anc} is not writable",
                        f"pass a {what} path you can write to")


def check_writable_dir(path: Path | str, option: str = "--out") -> Path:
    """``path`` is, or can be made as, a folder this process can write into. Creates nothing."""
    p = Path(path).expanduser()
    try:
        if not p.exists():
            _check_creatable(p, option, "folder")
        elif not p.is_dir():
            raise UserError(f"{option} {p} is a file, not a folder", "pass a folder path")
        elif not os.access(p, os.W_OK | os.X_OK):
            raise UserError(f"{option} {p} is not writable", "pass a folder you can write to")
    except (OSError, ValueError) as e:
        raise UserError(f"{option} {str(p)!r} is not a usable path ({e.__class__.__name__})",
                        "pass a plain folder path") from None
    return p


def check_writable_file(path: Path | str, option: str = "--output", parent_must_exist: bool = False) -> Path:
    """``path`` can be written as a file: a writable file, or a new one whose folder exists (or, unless
    ``parent_must_exist``, can be made). Creates nothing."""
    p = Path(path).expanduser()
    try:
        if not p.exists():
            if parent_must_exist and not p.absolute().parent.is_dir():
                raise UserError(f"{option} {p}: the folder {p.absolute().parent} does not exist",
                                "create it first or pass another path")
            _check_creatable(p, option, "file")
        elif p.is_dir():
            raise UserError(f"{option} {p} is a folder", "pass a file path")
        elif not os.access(p, os.W_OK):
            raise UserError(f"{option} {p} is not writable", "pass a file you can write")
    except (OSError, ValueError) as e:
        raise UserError(f"{option} {str(p)!r} is not a usable path ({e.__class__.__name__})",
                        "pass a plain file path") from None
    return p


def check_readable_file(path: Path | str, option: str) -> Path:
    """``path`` is an existing, readable file."""
    p = Path(path).expanduser()
    try:
        if not p.exists():
            raise UserError(f"{option} {p} does not exist", "check the path")
        if not p.is_file():
            raise UserError(f"{option} {p} is not a file", "pass a file path")
        if not os.access(p, os.R_OK):
            raise UserError(f"{option} {p} is not readable", "pass a file you can read")
    except (OSError, ValueError) as e:
        raise UserError(f"{option} {str(p)!r} is not a usable path ({e.__class__.__name__})",
                        "pass a plain file path") from None
    return p


def check_choice(value: str | None, option: str, choices: Iterable[str]) -> str | None:
    """``value`` (unless None) is one of ``choices``."""
    choices = tuple(choices)
    if value is not None and value not in choices:
        raise UserError(f"unknown {option} {value!r}", f"use one of: {', '.join(choices)}")
    return value


def check_model_spec(spec: str | None, option: str = "--model") -> str | None:
    """``spec`` (unless None) is a valid model spec (see :func:`paperlab.core.models.parse_spec`)."""
    if spec is None:
        return None
    from paperlab.core.models import parse_spec

    try:
        parse_spec(spec)
    except UserError as e:
        raise UserError(f"{option}: {e.problem}", e.fix) from None
    return spec


def _parse_list(text: str | None, option: str, cast: Callable[[str], Any], kind: str, one: str,
                example: str) -> list | None:
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise UserError(f"{option} is empty", f"give a comma-separated list of {kind}, e.g. {option} {example}")
    out = []
    for x in items:
        try:
            out.append(cast(x))
        except (ValueError, OverflowError):
            raise UserError(f"{option} {text!r}: {x!r} is not {one}",
                            f"give a comma-separated list of {kind}, e.g. {option} {example}") from None
    return out


def _finite_float(x: str) -> float:
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(x)
    return v


def parse_floats(text: str | None, option: str, *, min: float | None = None, positive: bool = False,
                 example: str = "0.5,1.0") -> list[float] | None:
    """A comma-separated list of finite numbers (None stays None); ``min``/``positive`` bound each one."""
    vals = _parse_list(text, option, _finite_float, "numbers", "a finite number", example)
    for v in vals or ():
        if positive and v <= 0:
            raise UserError(f"{option}: {v:g} is not positive", f"e.g. {option} {example}")
        if min is not None and v < min:
            raise UserError(f"{option}: {v:g} is below {min:g}", f"e.g. {option} {example}")
    return vals


def parse_ints(text: str | None, option: str, *, min: int | None = None, example: str = "8,24") -> list[int] | None:
    """A comma-separated list of integers (None stays None); ``min`` bounds each one."""
    vals = _parse_list(text, option, int, "integers", "an integer", example)
    for v in vals or ():
        if min is not None and v < min:
            raise UserError(f"{option}: {v} is below {min}", f"e.g. {option} {example}")
    return vals


def parse_names(text: str | None, option: str, choices: Iterable[str] | None = None,
                example: str = "a,b") -> list[str] | None:
    """A comma-separated list of names (None stays None), each one of ``choices`` when given."""
    vals = _parse_list(text, option, str, "names", "a name", example)
    if choices is not None:
        choices = tuple(choices)
        bad = [v for v in vals or () if v not in choices]
        if bad:
            raise UserError(f"{option}: unknown {', '.join(map(repr, bad))}", f"use some of: {', '.join(choices)}")
    return vals


def _out_callback(value: Path | None) -> Path | None:
    return None if value is None else check_writable_dir(value, "--out")


Quick = Annotated[bool, typer.Option("--quick", help="Small, fast configuration (minutes on 2 CPU cores).")]
Out = Annotated[
    Path | None,
    typer.Option("--out", help="Run directory (default: runs/<system>/<timestamp>/).", file_okay=False,
                 callback=_out_callback),
]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Discard what --out holds from an earlier run (of any configuration) "
                 "and start afresh. Without it, a folder of the same configuration is resumed and one of "
                 "another configuration is refused."),
]
Model = Annotated[
    str,
    typer.Option(
        "--model",
        help="Model spec: default | hf:<path> | gguf:<file> | openai:<base_url>#<model>  (see `paperlab models`).",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]


def system_app(name: str, help: str) -> typer.Typer:
    """A typer sub-app for one system, configured like every other."""
    return typer.Typer(name=name, help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False)


def start_fresh(out: Path | None, overwrite: bool) -> None:
    """Under ``--overwrite``, empty ``out`` when it is an earlier paperlab run folder (call it after every
    value has been validated, right before the run). A folder holding anything else is refused."""
    if overwrite and out is not None:
        from paperlab.core.runs import discard_run_folder

        discard_run_folder(out)


_VERDICT_STYLE = {"holds": "[green]holds[/]", "contradicted": "[red]contradicted[/]",
                  "inconclusive": "[yellow]inconclusive[/]", "by_construction": "[blue]by construction[/]"}


def print_run(run_dir: Path) -> None:
    """Print the claims of a finished run (verdict, interval) and where its report is."""
    from rich.console import Console
    from rich.table import Table

    from paperlab.core.runs import Claim, counts_line, load_results, verdict_counts

    res = load_results(run_dir)
    claims = [Claim(**c) for c in res["claims"]]
    table = Table(title=f"{res['system']}: claims ({counts_line(verdict_counts(claims))})")
    for col in ("claim", "verdict", "estimate [95% CI]", "statement"):
        table.add_column(col)
    for c in claims:
        ev = c.values.get("evidence") or {}
        ev = {"": ev} if "value" in ev else ev
        iv = "; ".join(f"{k + ' ' if k else ''}{_num(e.get('value'))} [{_num(e.get('lo'))}, {_num(e.get('hi'))}]"
                       for k, e in ev.items() if isinstance(e, dict))
        table.add_row(c.id, _VERDICT_STYLE.get(c.verdict, c.verdict), iv, c.statement)
    console = Console()
    console.print(table)
    console.print(f"report: {run_dir / 'report.md'}")


def _num(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) else "–"
