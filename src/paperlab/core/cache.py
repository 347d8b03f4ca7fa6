"""A persistent request cache (SQLite), so a re-run recomputes nothing and a killed run resumes.

Keys hash the backend id, the input and every decoding parameter; values are JSON. Each entry
is committed as soon as it is written, so work finished before a crash or Ctrl-C is kept.
Callers namespace their keys (``make_key("chat/v2", ...)``) and bump the namespace when the stored
value's format changes, so old entries are never misread.
The location is ``$PAPERLAB_CACHE`` or ``~/.cache/paperlab/requests.sqlite``; ``:memory:``
disables persistence.

Written by hand because it is twenty lines over the standard library's sqlite3 and no
well-kept package offers exactly "JSON values, safe for threads, committed per entry".
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any


def default_cache_path() -> str:
    env = os.environ.get("PAPERLAB_CACHE")
    if env:
        return env
    return str(Path.home() / ".cache" / "paperlab" / "requests.sqlite")


def make_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (dict keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Cache:
    """A thread-safe key -> JSON value store in one SQLite file."""

    def __init__(self, path: str | Path | None = None):
        self.path = str(path) if path is not None else default_cache_path()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, json.dumps(value)))
            self._db.commit()

    def __bool__(self) -> bool:  # an empty cache is still a cache (``if cache:`` must not skip it)
        return True

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM kv").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


_shared: dict[str, Cache] = {}


def shared_cache(path: str | Path | None = None) -> Cache:
    """One Cache object per path for the whole process."""
    p = str(path) if path is not None else default_cache_path()
    if p not in _shared:
        _shared[p] = Cache(p)
    return _shared[p]
