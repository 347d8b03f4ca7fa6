"""``paperlab``: list the systems, run one system's experiment, or reproduce them all.

Start-up imports no system package, however many there are: each ``paperlab <system>`` subcommand
is a placeholder (its name and paper title, from the registry) until it is invoked, and only then
is ``paperlab.<system>.cli`` imported (:class:`LazySystemsGroup`).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from paperlab.core.cli import Out, Quick, check_writable_dir
from paperlab.core.errors import UserError
from paperlab.registry import BY_NAME, SYSTEMS, System

try:  # typer >= 0.20 vendors click, whose exceptions subclass TyperException; older typer uses click's
    from click.exceptions import ClickException as _ClickException
except ImportError:  # pragma: no cover
    _ClickException = typer.TyperException

REPRODUCE_ROOT = Path("runs") / "reproduce"
STATUS_FILE = "reproduce.json"


def _placeholder(system: System) -> TyperGroup:
    """A stand-in command for help listings: the system's name and title, nothing imported."""
    cmd = TyperGroup(name=system.name, help=system.title)
    cmd.paperlab_system = system  # type: ignore[attr-defined]
    return cmd


class LazySystemsGroup(TyperGroup):
    """The top-level group: ``list``, ``reproduce`` and one subcommand per implemented system.

    Listing (``paperlab --help``) uses placeholders built from the registry; a system's real typer
    app is imported when the command line invokes it (:meth:`resolve_command`).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        systems = {s.name: _placeholder(s) for s in SYSTEMS if s.name not in self.commands and s.implemented}
        self.commands = {**systems, **self.commands}

    def resolve_command(self, ctx, args):
        if args:
            system = getattr(self.commands.get(args[0]), "paperlab_system", None)
            if system is not None:
                self.commands[args[0]] = system.cli_command()
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazySystemsGroup,
    help="paperlab: runnable implementations of 21 research systems (early-2025 arXiv papers).\n\n"
    "Each system is a subcommand: `paperlab <system> run [--quick] [--out DIR]` runs its experiment and "
    "writes a report (markdown, PNG plots, results.json with the paper's claims tested).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def select_systems(only: list[str] | None) -> list[str]:
    """The systems ``paperlab reproduce`` runs: all implemented ones, or ``--only`` (validated, in order)."""
    if not only:
        return [s.name for s in SYSTEMS if s.implemented]
    names: list[str] = []
    for item in only:
        for n in (x.strip() for x in item.split(",")):
            if not n:
                continue
            if n not in BY_NAME:
                raise UserError(f"--only: unknown system '{n}'", "run `paperlab list` for the names")
            if not BY_NAME[n].implemented:
                raise UserError(f"--only: system '{n}' is not implemented yet", "run `paperlab list` to see which are")
            if n not in names:
                names.append(n)
    if not names:
        raise UserError("--only is empty", "name at least one system, e.g. --only telephone")
    return names


def _read_status(root: Path) -> dict:
    try:
        data = json.loads((root / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _latest_root(quick: bool) -> Path | None:
    """The newest ``runs/reproduce/<stamp>`` folder of the same mode (for ``--skip-done`` without ``--out``)."""
    if not REPRODUCE_ROOT.is_dir():
        return None
    for d in sorted((p for p in REPRODUCE_ROOT.iterdir() if p.is_dir()), reverse=True):
        if _read_status(d).get("quick") is quick:
            return d
    return None


def _one_line(e: BaseException) -> str:
    if isinstance(e, UserError):
        text = str(e)
    else:
        text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    text = " ".join(text.split())  # one line in the index
    return text if len(text) <= 300 else text[:297] + "..."


def _summary(res: dict) -> str:
    from paperlab.core.runs import counts_line, verdict_counts

    claims = res.get("claims") or []
    try:
        return counts_line(res.get("verdict_counts") or verdict_counts(claims))
    except (TypeError, ValueError, KeyError):
        return f"{sum(bool(c.get('holds')) for c in claims)}/{len(claims)} claims hold"


@app.command()
def reproduce(
    quick: Quick = False,
    out: Out = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run only these systems (repeatable, or comma-separated).")] = None,
    skip_done: Annotated[bool, typer.Option(
        "--skip-done", help="Do not rerun a system whose results.json in the output folder was made by this "
        "paperlab version with the configuration it would run now (without --out: the newest "
        "runs/reproduce/ folder of the same mode).")] = False,
) -> None:
    """The main job: run every implemented system's experiment and write one index report.

    A system that fails is marked failed in the index (with its one-line error) and the others
    still run; the command then exits with status 1.
    """
    from rich.console import Console
    from rich.markup import escape

    from paperlab.core.runs import Claim, claims_table, load_results, paperlab_version

    names = select_systems(only)
    root = out or (skip_done and _latest_root(quick)) or (
        REPRODUCE_ROOT / _dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    check_writable_dir(root)
    console = Console()
    root.mkdir(parents=True, exist_ok=True)
    status = _read_status(root)
    systems_status = status.get("systems") if isinstance(status.get("systems"), dict) else {}
    status = {"quick": quick, "paperlab_version": paperlab_version(), "systems": systems_status}

    entries: list[dict] = []
    for n in names:
        system, run_dir = BY_NAME[n], root / n
        console.rule(f"[bold]{n}")
        entry: dict[str, Any] = {"system": n}
        try:
            previous = systems_status.get(n, {})
            if skip_done and previous.get("status") != "failed" and system.is_done(run_dir, quick):
                entry["status"] = "skipped"
                console.print(f"{n}: results exist for this version and configuration — skipped")
            else:
                run_dir = Path(system.reproduce(quick=quick, out=run_dir))
                entry["status"] = "ran"
            res = load_results(run_dir)
            entry.update(dir=str(run_dir), summary=_summary(res), claims=res.get("claims") or [])
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one system failing does not stop the others
            entry.update(status="failed", error=_one_line(e))
            if not isinstance(e, UserError):
                tb = root / f"{n}.traceback.txt"
                tb.write_text("".join(traceback.format_exception(e)), encoding="utf-8")
                entry["traceback"] = tb.name
            console.print(f"[red]{n} failed:[/] {escape(entry['error'])}", highlight=False)
        entries.append(entry)
        systems_status[n] = {k: v for k, v in entry.items() if k != "claims"}
        (root / STATUS_FILE).write_text(json.dumps(status, indent=2, ensure_ascii=False))

    failed = [e for e in entries if e["status"] == "failed"]
    counts = {k: sum(e["status"] == k for e in entries) for k in ("ran", "skipped", "failed")}
    lines = ["# paperlab: reproduction index", "",
             f"Mode: {'quick' if quick else 'full'} · paperlab {status['paperlab_version']} · "
             f"{len(entries)} systems: {counts['ran']} ran, {counts['skipped']} skipped (results exist), "
             f"{counts['failed']} failed", ""]
    for e in entries:
        n = e["system"]
        if e["status"] == "failed":
            extra = f" (traceback: [{e['traceback']}]({e['traceback']}))" if "traceback" in e else ""
            lines.append(f"- **{n}: failed** — {e['error']}{extra}")
            continue
        try:
            rel = Path(e["dir"]).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = Path(e["dir"]).as_posix()
        note = " (skipped: finished earlier with this version and configuration)" if e["status"] == "skipped" else ""
        lines.append(f"- [{n}]({rel}/report.md): {e['summary']}{note}")
    lines += ["", "## All claims", ""]
    for e in entries:
        if e["status"] == "failed" or not e["claims"]:
            continue
        try:
            lines.append(claims_table([Claim(**c) for c in e["claims"]], system=e["system"]))
        except (TypeError, ValueError):
            lines.append(f"{e['system']}: claims unreadable, see its results.json")
        lines.append("")
    index = root / "index.md"
    index.write_text("\n".join(lines), encoding="utf-8")
    console.print("\n".join(lines[: len(entries) + 4]), markup=False, highlight=False)
    console.print(f"index: {index}")
    if failed:
        console.print(f"[red]{len(failed)} of {len(entries)} systems failed:[/] {', '.join(e['system'] for e in failed)}")
        raise typer.Exit(1)


_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")


def error_line(e: BaseException | str) -> str:
    """``error: <message>`` on one line, whatever line breaks the message (or the user's input it quotes) holds."""
    return "error: " + _LINE_BREAKS.sub(" ", str(e)).strip()


def _usage_error(e: Exception) -> int:
    """A usage error (bad option value, unknown command) on one line; help when no arguments were given."""
    code = getattr(e, "exit_code", 2)
    if type(e).__name__ == "NoArgsIsHelpError" or not hasattr(e, "format_message"):
        if hasattr(e, "show"):
            e.show()
        else:
            print(error_line(e), file=sys.stderr)
        return code
    msg = " ".join(str(e.format_message()).split())
    ctx = getattr(e, "ctx", None)
    hint = f" — see `{ctx.command_path} --help`" if ctx is not None and getattr(ctx, "command_path", None) else ""
    print(error_line(f"{msg}{hint}"), file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors for bad input, exit codes (2 = user error, 130 = interrupted)."""
    try:
        rv = app(args=argv, prog_name="paperlab", standalone_mode=False)
    except UserError as e:
        print(error_line(e), file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        return 130
    except (typer.TyperException, _ClickException) as e:  # usage errors (bad option values)
        return _usage_error(e)
    except KeyboardInterrupt:
        print("interrupted — re-run the same command to resume from the cache", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0  # typer returns the code of a typer.Exit when not standalone


if __name__ == "__main__":
    sys.exit(main())
