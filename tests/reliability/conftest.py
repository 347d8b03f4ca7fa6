"""The reliability ledger: each reliability test records what it injected and what survived.

``benchmarks/reliability.py`` sets ``PAPERLAB_RELIABILITY_LOG`` to a JSONL file and runs this folder; every
``ledger.record(...)`` appends one line, and the benchmark sums them into the table
"faults injected / survived, kill points / resumed identically, fuzz examples, results lost".
Outside the benchmark the records are only checked, not written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import pytest

KINDS = ("fault", "kill", "fuzz", "concurrency", "sandbox")


@dataclass
class Record:
    system: str        # a system name, or "core"
    kind: str          # one of KINDS
    what: str          # e.g. "429 without Retry-After", "kill -9 during training", "TREC qrels parser"
    tried: int         # faults injected / kill points / examples / writers
    survived: int      # completed or refused cleanly / resumed identically / accepted or one-line error
    lost: int = 0      # finished results lost or recomputed (must stay 0)


class Ledger:
    def __init__(self, path: str | None):
        self.path = path
        self.records: list[Record] = []

    def record(self, system: str, kind: str, what: str, tried: int, survived: int, lost: int = 0) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if not 0 <= survived <= tried or lost < 0:
            raise ValueError(f"inconsistent record: tried={tried} survived={survived} lost={lost}")
        rec = Record(system, kind, what, tried, survived, lost)
        self.records.append(rec)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(rec)) + "\n")


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(os.environ.get("PAPERLAB_RELIABILITY_LOG"))
