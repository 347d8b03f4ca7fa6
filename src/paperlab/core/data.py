"""Data shipped inside the package (``paperlab/data/<dataset>/``, each with a SOURCE.md).

Users who clone the repository do not have the project's ``shared/`` folder, so every data set
a system needs is copied here with its origin and licence noted in SOURCE.md.
"""

from __future__ import annotations

from pathlib import Path

from paperlab.core.errors import UserError

DATA_ROOT = Path(__file__).resolve().parent.parent / "data"


def data_path(*parts: str) -> Path:
    """Path of a packaged data file or folder, e.g. ``data_path("telephone", "all_data.csv")``."""
    p = DATA_ROOT.joinpath(*parts)
    if not p.exists():
        raise UserError(f"packaged data file not found: {p}", "reinstall paperlab from a full clone (`make setup`)")
    return p


def read_text_file(path: Path | str) -> str:
    """Read a user-given text file with a one-line error when it is missing or unreadable."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"file not found: {p}", "check the path") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"cannot read {p}: {e.__class__.__name__}", "pass a readable UTF-8 text file") from None


def read_jsonl(path: Path | str) -> list[dict]:
    """Read a JSONL file of JSON objects, one per line (blank lines skipped).

    One-line :class:`UserError` for a missing or unreadable file, a line that is not JSON, a line
    that is JSON but not an object (a list, a number, a string, null), or a file with no records.
    The error names the line (``file:line``).
    """
    import json

    text = read_text_file(path)
    rows = []
    for i, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 etc. may sit inside a string
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError, ValueError):
            raise UserError(f"{path}:{i} is not valid JSON", "write one JSON object per line") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{i} is a JSON {_json_kind(row)}, not an object",
                            "write one JSON object {...} per line")
        rows.append(row)
    if not rows:
        raise UserError(f"{path} has no records", "write one JSON object per line")
    return rows


def _json_kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array"}.get(type(value), type(value).__name__)
