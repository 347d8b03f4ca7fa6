"""Threads: the packaged GitHub conversations, users' JSONL threads, the seeded held-out split.

A *thread* is one GitHub issue conversation: its comments in order, each with its author, text and
(where known) ``author_association``. Its label is 1 (toxic) when any comment is toxic. Every model
input is the thread's *prefix*: the comments before the first toxic one (all comments of a non-toxic
thread), exactly as the official ``scripts/scd-script.py`` builds its input; a toxic thread whose
first comment is toxic has an empty prefix and is skipped, as there.

The packaged data (``paperlab/data/derailment/``, release ``beacf36`` of the replication package,
see its SOURCE.md) has 120 derailed-toxic, 64 non-derailed-toxic and 731 non-toxic threads. Two of
its columns exist for only some classes, so they are kept on the comments (for analysis and lexicon
checks) but never become classifier inputs: ``author_association`` is missing from the derailed
file, and the tone annotation ``tbdf`` is all ``0`` in the non-toxic file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paperlab.core.data import data_path, read_text_file
from paperlab.core.errors import UserError

FILES = {
    "derailed": "derailed_toxic_coversations.csv",
    "non_derailed": "non_derailed_toxic_coversations.csv",
    "non_toxic": "representative_conversations.csv",
}
#: ``author_association`` values of GitHub's API; NONE (and FIRST_TIMER / FIRST_TIME_CONTRIBUTOR /
#: MANNEQUIN) are outsiders, the rest have a standing in the repository.
INSIDER = ("OWNER", "MEMBER", "COLLABORATOR", "CONTRIBUTOR")
OUTSIDER = ("NONE", "FIRST_TIMER", "FIRST_TIME_CONTRIBUTOR", "MANNEQUIN")


@dataclass(frozen=True)
class Comment:
    """One comment. ``association`` is GitHub's ``author_association`` (None: unknown); ``tone`` the
    annotated tone-bearing feature (``tbdf``; "" when none or not annotated)."""

    author: str
    text: str
    association: str | None = None
    toxic: bool = False
    tone: str = ""


@dataclass(frozen=True)
class Thread:
    id: str
    comments: tuple[Comment, ...]
    source: str = "user"  # derailed | non_derailed | non_toxic | user
    title: str = ""

    @property
    def first_toxic(self) -> int | None:
        """0-based index of the first toxic comment (None: a non-toxic thread)."""
        return next((i for i, c in enumerate(self.comments) if c.toxic), None)

    @property
    def label(self) -> int:
        return int(self.first_toxic is not None)

    @property
    def prefix(self) -> tuple[Comment, ...]:
        """The comments before the first toxic one: the only input any predictor sees."""
        t = self.first_toxic
        return self.comments if t is None else self.comments[:t]

    @property
    def has_association(self) -> bool:
        return all(c.association is not None for c in self.prefix)


def _association(value: str | None) -> str | None:
    v = (value or "").strip().upper()
    return v if v and v != "[]" else None


def _is_one(value: str) -> bool:
    try:
        return float(value) == 1.0
    except ValueError:
        return False


def read_csv_threads(path: Path, source: str) -> list[Thread]:
    """Threads of one released CSV: grouped by ``issue_id``, ordered by ``comment_sequence``."""
    groups: dict[str, list[tuple[float, int, dict]]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for k, row in enumerate(csv.DictReader(f)):
            try:
                seq = float(row.get("comment_sequence") or k)
            except ValueError:
                seq = float(k)
            groups.setdefault(row["issue_id"], []).append((seq, k, row))
    threads = []
    for tid, rows in groups.items():
        rows.sort(key=lambda x: (x[0], x[1]))
        comments = tuple(Comment(author=r["speaker"], text=r.get("text") or "",
                                 association=_association(r.get("author_association")),
                                 toxic=_is_one(r.get("toxic", "0")),
                                 tone="" if (r.get("tbdf") or "0").strip() == "0" else r["tbdf"].strip())
                         for _, _, r in rows)
        threads.append(Thread(id=f"{source}:{tid}", comments=comments, source=source,
                              title=rows[0][2].get("title") or ""))
    return threads


def load_threads(skip_empty_prefix: bool = True) -> list[Thread]:
    """All packaged threads (derailed, non-derailed toxic, non-toxic), in file order."""
    out = []
    for source, name in FILES.items():
        out += read_csv_threads(data_path("derailment", name), source)
    return [t for t in out if t.prefix] if skip_empty_prefix else out


@dataclass
class Split:
    train: list[Thread]
    test: list[Thread]
    seed: int
    test_fraction: float
    notes: dict = field(default_factory=dict)


def split_threads(threads: list[Thread], test_fraction: float, seed: int) -> Split:
    """A seeded held-out split by conversation, stratified by source (derailed / non-derailed / non-toxic),
    so every class and toxic kind is in both parts in proportion."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for source in sorted({t.source for t in threads}):
        group = [t for t in threads if t.source == source]
        order = rng.permutation(len(group))
        n_test = int(round(test_fraction * len(group)))
        test += [group[i] for i in order[:n_test]]
        train += [group[i] for i in order[n_test:]]
    return Split(train, test, seed, test_fraction)


def subsample(threads: list[Thread], n: int, pos_fraction: float | None, seed: int) -> list[Thread]:
    """``n`` threads drawn without replacement (seeded); ``pos_fraction`` of them toxic when given
    (None: the natural class balance). All threads when ``n`` >= their number."""
    if n >= len(threads):
        return list(threads)
    rng = np.random.default_rng(seed)
    if pos_fraction is None:
        return [threads[i] for i in sorted(rng.choice(len(threads), n, replace=False))]
    pos = [t for t in threads if t.label]
    neg = [t for t in threads if not t.label]
    n_pos = min(len(pos), int(round(pos_fraction * n)))
    n_neg = min(len(neg), n - n_pos)
    pick = [pos[i] for i in sorted(rng.choice(len(pos), n_pos, replace=False))]
    pick += [neg[i] for i in sorted(rng.choice(len(neg), n_neg, replace=False))]
    return pick


# ---------------------------------------------------------------------------------------------- user files


def _comment(obj, where: str) -> Comment:
    if not isinstance(obj, dict):
        raise UserError(f"{where}: a comment is not a JSON object", 'write {"author": ..., "text": ...}')
    text = obj.get("text", obj.get("body"))
    if not isinstance(text, str):
        raise UserError(f"{where}: a comment has no string 'text'", 'write {"author": ..., "text": "..."}')
    author = obj.get("author", obj.get("speaker", obj.get("user", "")))
    if isinstance(author, dict):
        author = author.get("login", "")
    assoc = obj.get("author_association")
    if assoc is not None and not isinstance(assoc, str):
        raise UserError(f"{where}: author_association is not a string", "use e.g. NONE, MEMBER, CONTRIBUTOR")
    return Comment(author=str(author or "unknown"), text=text, association=_association(assoc),
                   toxic=bool(obj.get("toxic", False)))


def read_user_threads(path: Path | str) -> list[Thread]:
    """Threads from a JSONL file, one per line: ``{"id": ..., "comments": [...]}`` or a bare list of
    comments. A comment is ``{"author", "text", "author_association"?, "toxic"?}`` (``speaker``/``body``
    are accepted too). Comments flagged ``"toxic": true`` end the prefix, as in the paper. One-line
    :class:`UserError` naming ``file:line`` for anything malformed."""
    text = read_text_file(path)
    threads = []
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{i}"
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError, ValueError):
            raise UserError(f"{where} is not valid JSON", "write one thread (a JSON object or list) per line") from None
        tid = str(len(threads))
        if isinstance(obj, dict):
            tid = str(obj.get("id", tid))
            obj = obj.get("comments")
        if not isinstance(obj, list):
            raise UserError(f"{where}: no list of comments", 'write {"id": ..., "comments": [{"author", "text"}, ...]}')
        comments = tuple(_comment(c, where) for c in obj)
        t = Thread(id=tid, comments=comments, source="user")
        if not t.prefix:
            raise UserError(f"{where}: thread {tid} has no comment before its first toxic one",
                            "give at least one comment to predict from")
        threads.append(t)
    if not threads:
        raise UserError(f"{path} holds no threads", "write one thread per line")
    return threads


def thread_to_json(t: Thread) -> dict:
    """A thread in the ``predict --threads`` format (used by tests and to export examples)."""
    return {"id": t.id, "comments": [{"author": c.author, "text": c.text, "author_association": c.association,
                                      "toxic": c.toxic} for c in t.comments]}
