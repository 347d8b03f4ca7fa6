"""CLI helpers shared by every system's ``cli.py``: the common options and the report printout.

Every ``paperlab <system> run`` takes ``--quick`` and ``--out``; use the annotated types below so
the help text reads the same everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Quick = Annotated[bool, typer.Option("--quick", help="Small, fast configuration (minutes on 2 CPU cores).")]
Out = Annotated[
    Path | None,
    typer.Option("--out", help="Run directory (default: runs/<system>/<timestamp>/).", file_okay=False),
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


def print_run(run_dir: Path) -> None:
    """Print the claims of a finished run and where its report is."""
    from rich.console import Console
    from rich.table import Table

    from paperlab.core.runs import load_results

    res = load_results(run_dir)
    table = Table(title=f"{res['system']}: claims")
    for col in ("claim", "holds", "statement"):
        table.add_column(col)
    for c in res["claims"]:
        table.add_row(c["id"], "[green]yes[/]" if c["holds"] else "[red]no[/]", c["statement"])
    console = Console()
    console.print(table)
    console.print(f"report: {run_dir / 'report.md'}")
