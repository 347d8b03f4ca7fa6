"""The packaged human-evaluation release (``paperlab/data/lingoly/``): six UKLO problems, each as the
original (``unobfuscated/<id>_0000.json``) and two obfuscations (``obfuscated_{1,2}/<id>_000k.json``),
the 172 human responses (``responses.csv``), the UKLO metadata sheet, and our derived templates."""

from __future__ import annotations

import ast
import csv
from dataclasses import dataclass, field
from pathlib import Path

from paperlab.core.data import data_path
from paperlab.lingoly.obfuscation import Template, load_template
from paperlab.lingoly.problems import load_problem

PROBLEMS = ("88", "147", "160", "191", "207", "210")


@dataclass
class Released:
    pid: str
    original: dict
    obfuscations: list[dict] = field(default_factory=list)   # the released ones, obf_num order

    @property
    def language(self) -> str:
        return language_metadata().get(self.pid, {}).get("language", "")


def root() -> Path:
    return data_path("lingoly")


def load_released() -> dict[str, Released]:
    base = root()
    out = {}
    for pid in PROBLEMS:
        orig = load_problem(base / "unobfuscated" / f"{pid}_0000.json")
        obfs = [load_problem(p) for d in ("obfuscated_1", "obfuscated_2") for p in sorted((base / d).glob(f"{pid}_*.json"))]
        out[pid] = Released(pid, orig, sorted(obfs, key=lambda o: int(o["obf_num"])))
    return out


def language_metadata() -> dict[str, dict]:
    """Problem id -> language name and family (the UKLO metadata sheet)."""
    out = {}
    with open(root() / "past-exam-papers.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            pid = row["Overall Question Number"].strip()
            if pid in PROBLEMS:
                lang = ast.literal_eval(row["Language"])
                fam = ast.literal_eval(row["Language Family"])
                out[pid] = {"language": lang[0] if lang else "", "family": [x for x in fam if x != "nan"]}
    return out


def template_path(pid: str) -> Path:
    return root() / "templates" / f"{pid}.json"


def load_templates() -> dict[str, Template]:
    return {pid: load_template(template_path(pid)) for pid in PROBLEMS}


def responses_path() -> Path:
    return root() / "responses.csv"
