"""``paperlab``: list the systems, run one system's experiment, or reproduce them all."""

from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import Out, Quick
from paperlab.core.errors import UserError
from paperlab.registry import BY_NAME, SYSTEMS

app = typer.Typer(
    help="paperlab: runnable implementations of 21 research systems (early-2025 arXiv papers).\n\n"
    "Each system is a subcommand: `paperlab <system> run [--quick] [--out DIR]` runs its experiment and "
    "writes a report (markdown, PNG plots, results.json with the paper's claims tested).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _system in SYSTEMS:
    if _system.implemented:
        app.add_typer(_system.cli_app(), name=_system.name, help=_system.title)


@app.command("list")
def list_systems() -> None:
    """List the 21 systems, their papers, and whether each is implemented."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="paperlab systems")
    for col in ("system", "paper", "arXiv", "implemented"):
        table.add_column(col)
    for s in SYSTEMS:
        table.add_row(s.name, s.title, s.arxiv, "[green]yes[/]" if s.implemented else "no")
    Console().print(table)


@app.command()
def reproduce(
    quick: Quick = False,
    out: Out = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only these systems (repeatable).")] = None,
) -> None:
    """The main job: run every implemented system's experiment and write one index report."""
    from rich.console import Console

    from paperlab.core.runs import claims_table, load_results

    console = Console()
    names = only or [s.name for s in SYSTEMS if s.implemented]
    for n in names:
        if n not in BY_NAME:
            raise UserError(f"unknown system '{n}'", "run `paperlab list` for the names")
        if not BY_NAME[n].implemented:
            raise UserError(f"system '{n}' is not implemented yet", "run `paperlab list` to see which are")
    root = out or Path("runs") / "reproduce" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    lines = ["# paperlab: reproduction index", "", f"Mode: {'quick' if quick else 'full'}", ""]
    all_claims = []
    for n in names:
        console.rule(f"[bold]{n}")
        run_dir = BY_NAME[n].reproduce(quick=quick, out=root / n)
        res = load_results(run_dir)
        held = sum(c["holds"] for c in res["claims"])
        lines.append(f"- [{n}]({Path(run_dir).relative_to(root)}/report.md): {held}/{len(res['claims'])} claims hold")
        all_claims.append((n, res["claims"]))
    lines += ["", "## All claims", ""]
    from paperlab.core.runs import Claim

    for n, cl in all_claims:
        lines.append(claims_table([Claim(**c) for c in cl], system=n))
        lines.append("")
    index = root / "index.md"
    index.write_text("\n".join(lines))
    console.print("\n".join(lines[: len(names) + 6]))
    console.print(f"index: {index}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors for bad input, exit codes (2 = user error, 130 = interrupted)."""
    try:
        app(args=argv, prog_name="paperlab", standalone_mode=False)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        return 130
    except typer.TyperException as e:  # usage errors (bad option values): click's one-line message
        if hasattr(e, "show"):
            e.show()
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("interrupted — re-run the same command to resume from the cache", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
