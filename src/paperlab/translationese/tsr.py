"""§3 of the paper: the Translationese Span Ratio (TSR) from human error-span annotations.

Annotators mark spans of a translation in Label Studio and label each one. TSR follows the official
notebook (``Annotation/translationese_error_span/ana_annos.ipynb``, ``style_ratio_check``) exactly:

.. math::

    \\mathrm{TSR}_a(y) = \\frac{\\sum_{s \\in S_a(y),\\ \\mathrm{label}_0(s) \\in F} (\\mathrm{end}_s - \\mathrm{start}_s)}
                             {|y|}, \\qquad
    \\mathrm{TSR}(y) = \\frac{1}{A} \\sum_{a=1}^{A} \\mathrm{TSR}_a(y)

where :math:`S_a(y)` are the spans of the *first* annotation (``annotations[0]``) of the task in annotator
``a``'s project file, ``label_0`` is a span's first label, ``F`` = {"Unnatural Phrase Flow", "Unnatural
Sentence Flow"} (every other label -- mistranslation, terminology, ... -- is not translationese), ``|y|`` is
the translation's length in Python characters, and overlapping spans are not merged. The ``A`` project files
of one task hold the same items in the same order (aligned by position; we check that the translations
agree). A translation *is translationese* when ``TSR(y) > 0.2`` (strict).

API: :func:`read_export` (a Label Studio JSON export, ``.json`` or ``.json.gz`` -> :class:`Task` list,
one-line :class:`~paperlab.core.errors.UserError` on anything malformed), :func:`annotator_tsr`,
:func:`aggregate` (several annotators' files -> :class:`Item` list), :func:`system_table` (share of
translationese per system with a Wilson interval, mean TSR with a bootstrap interval), :func:`compare_paper`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperlab.core.errors import UserError

FLOW_LABELS = ("Unnatural Phrase Flow", "Unnatural Sentence Flow")
THRESHOLD = 0.2

#: system code in the ``type`` field -> the paper's name. ``*_trans``: the plain prompt, ``*_end2end``: the
#: "Specified" prompt (naturalness requirements), ``*_ctx_pivot``/``*_contextual_pivot``: "Polish" (translate,
#: then refine its own translation).
SYSTEM_NAMES = {
    "alma_7B_trans": "ALMA-7B", "alma-7b_trans": "ALMA-7B",
    "alma_13B_trans": "ALMA-13B", "alma-13b_trans": "ALMA-13B",
    "mistral_trans": "Mistral-7B",
    "gpt-3.5-turbo_trans": "GPT-3.5", "gpt-3.5-turbo_end2end": "GPT-3.5-Specified",
    "gpt-3.5-turbo_ctx_pivot": "GPT-3.5-Polish", "gpt-3.5-turbo_contextual_pivot": "GPT-3.5-Polish",
    "gpt-4-turbo_trans": "GPT-4", "gpt-4-turbo_end2end": "GPT-4-Specified",
    "gpt-4-turbo_ctx_pivot": "GPT-4-Polish", "gpt-4-turbo_contextual_pivot": "GPT-4-Polish",
}

#: the paper's order of systems (tables and plots)
ORDER = ("ALMA-7B", "ALMA-13B", "Mistral-7B", "GPT-3.5", "GPT-3.5-Specified", "GPT-3.5-Polish", "GPT-4",
         "GPT-4-Specified", "GPT-4-Polish")

#: The paper's share of translations with TSR > 0.2, as given in the fact sheet (EN-ZH, 200 documents per
#: system). For DE-EN the fact sheet gives only the range over the nine systems, ".42-.59".
PAPER_SHARES = {("enzh", "ALMA-7B"): 0.40, ("enzh", "ALMA-13B"): 0.36, ("enzh", "Mistral-7B"): 0.76,
                ("enzh", "GPT-3.5"): 0.52, ("enzh", "GPT-4"): 0.43, ("enzh", "GPT-4-Polish"): 0.25}
PAPER_SHARE_RANGE = {"deen": (0.42, 0.59)}
#: SFT references (500 per pair): mean TSR and share with TSR > 0.2.
PAPER_SFT = {"enzh": {"mean_tsr": 0.197, "share": 0.41}, "deen": {"mean_tsr": 0.188, "share": 0.36}}


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str          # the span's first label, labels[0]


@dataclass
class Task:
    """One annotated task: the translation, its source, its system code, and the spans of annotations[0]."""

    translation: str
    source: str
    system: str
    spans: list[Span]
    annotator: Any = None
    index: int = 0


@dataclass
class Item:
    """One translation annotated by several annotators (their project files aligned by position)."""

    system: str
    source: str
    translation: str
    tsr_each: list[float]
    extra: dict = field(default_factory=dict)

    @property
    def tsr(self) -> float:
        return sum(self.tsr_each) / len(self.tsr_each)

    def translationese(self, threshold: float = THRESHOLD) -> bool:
        return self.tsr > threshold


def _bad(where: str, what: str) -> UserError:
    return UserError(f"{where}: {what}", "pass a Label Studio JSON export (a list of tasks, each with "
                     "data.translation and annotations[0].result spans {value: {start, end, labels}})")


def load_json(path: Path | str) -> Any:
    """A JSON file, gzip-compressed or not, with one-line errors."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{p} does not exist", "check the path") from None
    except OSError as e:
        raise UserError(f"cannot read {p}: {e.strerror}", "pass a readable file") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, gzip.BadGzipFile):
        raise UserError(f"{p} is a broken gzip file", "re-export it or pass the plain .json") from None
    except UnicodeDecodeError:
        raise UserError(f"{p} is not UTF-8 text", "pass a Label Studio JSON export") from None
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise UserError(f"{p} is not valid JSON ({str(e)[:80]})", "pass a Label Studio JSON export") from None


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse_export(obj: Any, name: str = "export") -> list[Task]:
    """Tasks of a Label Studio JSON export (already decoded); every structural problem is one UserError.

    Result entries without ``value.labels`` (comments, ratings) are skipped; a labelled span must have integer
    offsets ``0 <= start <= end <= len(translation)`` and a non-empty list of string labels.
    """
    if not isinstance(obj, list):
        raise _bad(name, f"the top level is a JSON {type(obj).__name__}, not a list of tasks")
    if not obj:
        raise _bad(name, "no tasks")
    tasks = []
    for i, t in enumerate(obj):
        where = f"{name} task {i}"
        if not isinstance(t, dict):
            raise _bad(where, "is not an object")
        data = t.get("data")
        if not isinstance(data, dict):
            raise _bad(where, "has no 'data' object")
        y = data.get("translation")
        if not isinstance(y, str) or not y:
            raise _bad(where, "has no non-empty data.translation")
        anns = t.get("annotations")
        if not isinstance(anns, list) or not anns:
            raise UserError(f"{where} has no annotation", "export only annotated tasks")
        a0 = anns[0]
        if not isinstance(a0, dict) or not isinstance(a0.get("result"), list):
            raise _bad(where, "annotations[0] has no 'result' list")
        spans = []
        for j, r in enumerate(a0["result"]):
            if not isinstance(r, dict) or not isinstance(r.get("value"), dict):
                raise _bad(f"{where} result {j}", "has no 'value' object")
            v = r["value"]
            if "labels" not in v:
                continue  # not a labelled span (a comment, a rating ...)
            labels, s, e = v["labels"], v.get("start"), v.get("end")
            if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
                raise _bad(f"{where} result {j}", "value.labels is not a non-empty list of strings")
            if not (_int(s) and _int(e)):
                raise _bad(f"{where} result {j}", "value.start/value.end are not integers")
            if not 0 <= s <= e <= len(y):
                raise _bad(f"{where} result {j}", f"span [{s}, {e}) lies outside the translation "
                           f"(length {len(y)})")
            spans.append(Span(s, e, labels[0]))
        src = data.get("text", "")
        system = data.get("type", "all")
        tasks.append(Task(translation=y, source=src if isinstance(src, str) else str(src),
                          system=system if isinstance(system, str) else str(system), spans=spans,
                          annotator=a0.get("completed_by"), index=i))
    return tasks


def read_export(path: Path | str) -> list[Task]:
    """A Label Studio JSON export file (``.json`` or gzip-compressed) as tasks."""
    return parse_export(load_json(path), Path(path).name)


def annotator_tsr(task: Task, labels: Iterable[str] = FLOW_LABELS) -> float:
    """TSR_a(y): summed length of the spans whose first label is a flow label, over len(translation)."""
    keep = set(labels)
    return sum(s.end - s.start for s in task.spans if s.label in keep) / len(task.translation)


def aggregate(projects: Sequence[Sequence[Task]], labels: Iterable[str] = FLOW_LABELS,
              names: Sequence[str] | None = None) -> list[Item]:
    """Items from the project files of one task set (one file per annotator, aligned by position)."""
    names = list(names) if names is not None else [f"file {k}" for k in range(len(projects))]
    if not projects:
        raise UserError("no annotation files", "pass at least one --annotations FILE")
    n = len(projects[0])
    for k, p in enumerate(projects):
        if len(p) != n:
            raise UserError(f"{names[k]} has {len(p)} tasks but {names[0]} has {n}",
                            "pass the project files of one task set (the same items in the same order)")
    labels = tuple(labels)
    items = []
    for i in range(n):
        first = projects[0][i]
        for k, p in enumerate(projects[1:], 1):
            if p[i].translation != first.translation:
                raise UserError(f"task {i} of {names[k]} annotates another translation than {names[0]}",
                                "pass the project files of one task set, aligned by position")
        items.append(Item(system=first.system, source=first.source, translation=first.translation,
                          tsr_each=[annotator_tsr(p[i], labels) for p in projects]))
    return items


def system_table(items: Sequence[Item], threshold: float = THRESHOLD, n_boot: int = 2000,
                 seed: int = 0) -> list[dict]:
    """Per system (the paper's order, then unknown codes in order of appearance): n, share with TSR > threshold (Wilson interval), mean TSR
    (bootstrap interval), and each annotator's own share."""
    from paperlab.core.stats import bootstrap_ci, wilson

    order: dict[str, list[Item]] = {}
    for it in items:
        order.setdefault(it.system, []).append(it)
    rank = {name: i for i, name in enumerate(ORDER)}
    systems = sorted(order, key=lambda s: rank.get(SYSTEM_NAMES.get(s, s), len(ORDER)))  # stable for unknowns
    rows = []
    for system in systems:
        its = order[system]
        k = sum(it.translationese(threshold) for it in its)
        n_ann = len(its[0].tsr_each)
        rows.append({
            "system": system, "name": SYSTEM_NAMES.get(system, system), "n": len(its), "k": k,
            "share": wilson(k, len(its)).as_dict(),
            "mean_tsr": bootstrap_ci([it.tsr for it in its], n_boot=n_boot, seed=seed).as_dict(),
            "share_per_annotator": [sum(it.tsr_each[a] > threshold for it in its) / len(its) for a in range(n_ann)],
            "mean_tsr_per_annotator": [sum(it.tsr_each[a] for it in its) / len(its) for a in range(n_ann)],
        })
    return rows


def compare_paper(pair: str, rows: Sequence[dict]) -> list[dict]:
    """Each recomputed share next to the paper's figure (where the fact sheet gives one) and |difference|."""
    out = []
    for r in rows:
        paper = PAPER_SHARES.get((pair, r["name"]))
        if paper is not None:
            v = r["share"]["value"]
            out.append({"pair": pair, "system": r["system"], "name": r["name"], "recomputed": v, "paper": paper,
                        "abs_diff": abs(v - paper)})
    if pair in PAPER_SHARE_RANGE:
        lo, hi = PAPER_SHARE_RANGE[pair]
        vals = [r["share"]["value"] for r in rows]
        out += [{"pair": pair, "system": "min over systems", "name": "min over systems", "recomputed": min(vals),
                 "paper": lo, "abs_diff": abs(min(vals) - lo)},
                {"pair": pair, "system": "max over systems", "name": "max over systems", "recomputed": max(vals),
                 "paper": hi, "abs_diff": abs(max(vals) - hi)}]
    return out


def rounds_to(value: float, paper: float) -> bool:
    """``value`` rounded half-up to two decimals equals the paper's two-decimal figure (0.395 -> 0.40)."""
    from decimal import ROUND_HALF_UP, Decimal

    return Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) == Decimal(repr(paper)).quantize(
        Decimal("0.01"))


# ----------------------------------------------------------------------------------------------------------
# The released annotations (packaged under paperlab/data/translationese/)

PAIRS = ("deen", "enzh")
OUTPUTS = "translationese_error_span"                       # LLM outputs: one folder per task set
SFT_REFS = "training_instances_translationese_error_span"   # SFT references: one task set per pair


def released_items(pair: str, which: str = "outputs") -> list[Item]:
    """The paper's annotated items of ``pair`` (``deen``/``enzh``): ``outputs`` (documents translated by 9
    systems, 3 annotators each) or ``sft`` (500 SFT reference translations, 3 annotators)."""
    from paperlab.core.data import data_path

    if pair not in PAIRS or which not in ("outputs", "sft"):
        raise ValueError(f"pair must be one of {PAIRS} and which outputs|sft, not {pair!r}, {which!r}")
    root = data_path("translationese", OUTPUTS if which == "outputs" else SFT_REFS, pair)
    sets = sorted(p for p in root.iterdir() if p.is_dir()) if which == "outputs" else [root]
    items = []
    for folder in sets:
        files = sorted(folder.glob("*.json.gz"))
        items += aggregate([read_export(f) for f in files], names=[f.name for f in files])
    return items
