"""The EgoRAG memory bank M = {(c_i, d_i, t_i)} (paper §4.2) as a persistent store.

**On disk** (``<store>/memory.sqlite``, one SQLite file, WAL journal):

- ``clips``: one row per 30 s clip -- ``t_start``/``t_end`` (seconds), the caption ``text`` (d_i), an optional
  structured scene record ``scene`` (the stand-in for the clip feature c_i of Eq. 2), and their embeddings as
  float32 blobs. The key is a content hash of (t_start, t_end, text), so re-ingesting the same captions adds
  nothing (``INSERT OR IGNORE`` on a UNIQUE column).
- ``summaries``: the hourly and daily summaries t_i: text, the sentences they consist of with a time each,
  and the sentences' embeddings. Daily summaries are made from the hourly ones (10 min -> 1 h -> day in the
  released code; we have no 10-minute level: our captions are already 30 s, and the hour is the finest level
  retrieval selects).
- ``meta``: the embedder and summariser the store was made with (another one is refused on reopen).

**Vector index: embeddings are blobs in SQLite, faiss is built on load.** The alternative, a faiss index file
next to the database, would be a second thing to keep consistent after a crash. Here a chunk of clips, its
embeddings and the summaries it changes are written in *one* transaction: a store killed mid-ingestion
reopens at the last committed chunk, with every clip's hour and day summarised, and the next ingest of the
same file resumes (already stored clips are skipped by their hash). On open, the clips are loaded in time
order into a float32 matrix and a ``faiss.IndexFlatIP`` (exact inner product = cosine on normalised rows):
flat top-k is a faiss search restricted to clips before the query time (``IDSelectorRange`` over the
time-sorted ids), and the window of hierarchical retrieval is a ``searchsorted`` slice of the same matrix.

**Summaries.** ``summarizer="extractive"`` (default, offline, fast) keeps the most mutually dissimilar captions
of an hour (greedy max-min diversity from the caption nearest the hour's centroid, near-duplicates above
``dup_threshold`` dropped) up to ``hour_words`` words (500, the released hour prompt's bound); a day keeps,
by the same rule, up to ``day_words`` (1,500) words of its hours' sentences. Any model spec (``default``,
``gguf:``, ``hf:``, ``openai:``) instead asks that LLM for the summaries (prompts in :mod:`.prompts`), split
into sentences and embedded. Every summary sentence carries a time (its clip's start for extractive ones, the
last summarised clip's start for LLM ones): retrieval at query time ``T`` sees only sentences before ``T``,
as the released code shows its selector only earlier days and today's hours up to ``T``.

Embedders: any core spec (``embed:minilm`` default, ``hf:``, ``openai:``) or ``hash:<dim>``, a feature-hashing
bag of words and bigrams (scikit-learn ``HashingVectorizer``) for scale tests where only the cost of search
matters.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperlab.core.errors import UserError

DAY_S, HOUR_S = 86400, 3600
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clips(
    id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, t_start REAL NOT NULL, t_end REAL NOT NULL,
    text TEXT NOT NULL, scene TEXT, emb BLOB NOT NULL, scene_emb BLOB);
CREATE INDEX IF NOT EXISTS clips_t ON clips(t_start);
CREATE TABLE IF NOT EXISTS summaries(
    level TEXT NOT NULL, key INTEGER NOT NULL, text TEXT NOT NULL, sentences TEXT NOT NULL, emb BLOB NOT NULL,
    n_clips INTEGER NOT NULL, source TEXT NOT NULL, PRIMARY KEY(level, key));
"""


# ------------------------------------------------------------------------------------------ embedders


class HashEmbedder:
    """Feature hashing of word unigrams + bigrams into ``dim`` signed buckets, L2-normalised (no model)."""

    def __init__(self, dim: int = 384):
        from sklearn.feature_extraction.text import HashingVectorizer

        self.id, self.dim = f"hash:{dim}", dim
        self._vec = HashingVectorizer(n_features=dim, ngram_range=(1, 2), norm="l2", alternate_sign=True)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), np.float32)
        x = self._vec.transform(list(texts)).toarray().astype(np.float32)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.maximum(n, 1e-12)


def load_embedder(spec: str):
    """``hash:<dim>`` here; every other spec through :func:`paperlab.core.embeddings.load_embedder`."""
    if spec.startswith("hash:"):
        try:
            dim = int(spec[5:])
        except ValueError:
            dim = 0
        if dim < 8:
            raise UserError(f"bad embedder spec {spec!r}", "write hash:<dimension>, e.g. hash:384")
        return HashEmbedder(dim)
    from paperlab.core.embeddings import load_embedder as core_load

    return core_load(spec)


def embed_unique(embedder, texts: Sequence[str]) -> np.ndarray:
    """Embed each distinct text once (life-log captions repeat)."""
    uniq = list(dict.fromkeys(texts))
    if not uniq:
        return np.zeros((0, 0), np.float32)
    vecs = np.asarray(embedder.embed(uniq), dtype=np.float32)
    pos = {t: i for i, t in enumerate(uniq)}
    return vecs[[pos[t] for t in texts]]


# ------------------------------------------------------------------------------------------ records


@dataclass
class Caption:
    t_start: float
    t_end: float
    text: str
    scene: str | None = None

    @property
    def key(self) -> str:
        """Content hash: the same clip ingested twice has the same key."""
        return hashlib.sha256(f"{self.t_start:.3f}|{self.t_end:.3f}|{self.text}".encode()).hexdigest()


def parse_time(v, where: str) -> float:
    """Seconds: a number, or an ISO-8601 date-time (UTC unless it says otherwise)."""
    import datetime as dt

    if isinstance(v, bool):
        raise UserError(f"{where}: {v!r} is not a time", "give seconds (a number) or an ISO date-time")
    if isinstance(v, (int, float)):
        if not np.isfinite(v):
            raise UserError(f"{where}: {v!r} is not a finite time", "give seconds or an ISO date-time")
        return float(v)
    if isinstance(v, str):
        try:
            d = dt.datetime.fromisoformat(v.strip())
        except ValueError:
            raise UserError(f"{where}: {v!r} is not a time", "give seconds or an ISO date-time, "
                            "e.g. 2025-03-01T14:05:30") from None
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.UTC)
        return d.timestamp()
    raise UserError(f"{where}: {v!r} is not a time", "give seconds (a number) or an ISO date-time")


def read_captions(path: Path | str) -> list[Caption]:
    """Read a captions JSONL file (``t_start``, ``t_end``, ``text``, optional ``scene``); every line checked."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{where} is not JSON", "write one JSON object per line") from None
            if not isinstance(r, dict):
                raise UserError(f"{where} is not a JSON object", 'write {"t_start": .., "t_end": .., "text": ..}')
            miss = [k for k in ("t_start", "t_end", "text") if k not in r]
            if miss:
                raise UserError(f"{where} lacks {', '.join(miss)}", "every line needs t_start, t_end and text")
            if not isinstance(r["text"], str) or not r["text"].strip():
                raise UserError(f"{where}: text is empty or not a string", "give the clip's caption as text")
            a, b = parse_time(r["t_start"], where + " t_start"), parse_time(r["t_end"], where + " t_end")
            if b < a:
                raise UserError(f"{where}: t_end {b} is before t_start {a}", "swap or fix the times")
            scene = r.get("scene")
            if scene is not None and not isinstance(scene, str):
                raise UserError(f"{where}: scene is not a string", "give the scene record as one line of text")
            out.append(Caption(a, b, r["text"].strip(), scene))
    if not out:
        raise UserError(f"{path} holds no captions", "write one JSON object per line")
    return out


# ------------------------------------------------------------------------------------------ summaries


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.strip()) > 2]


def diverse_subset(emb: np.ndarray, words: Sequence[int], budget: int, dup_threshold: float) -> list[int]:
    """Greedy max-min diversity: start at the row nearest the centroid, then keep adding the row least similar
    to everything kept, skipping near-duplicates (cosine > ``dup_threshold``), until ``budget`` words.

    Written by hand: it is the extractive fallback for the LLM summary, a few lines of numpy."""
    n = len(emb)
    if n == 0:
        return []
    centre = emb.mean(0)
    first = int(np.argmax(emb @ centre))
    chosen, used = [first], words[first]
    closest = emb @ emb[first]                       # max similarity of each row to the chosen set
    closest[first] = np.inf
    while True:
        i = int(np.argmin(closest))
        if not np.isfinite(closest[i]) or closest[i] > dup_threshold:
            break
        closest[i] = np.inf
        if used + words[i] > budget:
            continue
        chosen.append(i)
        used += words[i]
        closest = np.maximum(closest, emb @ emb[i])
    return sorted(chosen)


@dataclass
class Summary:
    text: str
    sentences: list[str]
    times: list[float]
    emb: np.ndarray


def clock(t: float) -> str:
    d, r = divmod(int(t), DAY_S)
    return f"DAY{d + 1} {r // 3600:02d}:{r % 3600 // 60:02d}:{r % 60:02d}"


class Summarizer:
    """Hourly and daily summaries: extractive (offline) or by an LLM (any core model spec)."""

    def __init__(self, spec: str = "extractive", embedder=None, hour_words: int = 500, day_words: int = 1500,
                 dup_threshold: float = 0.95, max_tokens: int = 400):
        self.spec, self.embedder = spec, embedder
        self.hour_words, self.day_words, self.dup_threshold, self.max_tokens = (hour_words, day_words,
                                                                                 dup_threshold, max_tokens)
        self._lm = None

    def _extract(self, sentences, times, emb, budget) -> Summary:
        idx = diverse_subset(emb, [len(s.split()) for s in sentences], budget, self.dup_threshold)
        sents = [sentences[i] for i in idx]
        ts = [times[i] for i in idx]
        text = " ".join(f"[{clock(t)[-8:-3]}] {s}" for s, t in zip(sents, ts, strict=True))
        return Summary(text, sents, ts, emb[idx])

    def _llm(self, prompt: str, times: Sequence[float]) -> Summary:
        from paperlab.core.models import GenerationParams, load_lm

        if self._lm is None:
            self._lm = load_lm(self.spec)
        r = self._lm.chat([[{"role": "user", "content": prompt}]],
                          GenerationParams(temperature=0.0, max_tokens=self.max_tokens, seed=0))[0]
        sents = split_sentences(r.text) or [r.text.strip() or "(empty summary)"]
        t = float(max(times))
        return Summary(r.text.strip(), sents, [t] * len(sents), embed_unique(self.embedder, sents))

    def hour(self, texts: Sequence[str], times: Sequence[float], emb: np.ndarray) -> Summary:
        if self.spec == "extractive":
            return self._extract(list(texts), list(times), emb, self.hour_words)
        from paperlab.egorag.prompts import hour_summary_prompt

        return self._llm(hour_summary_prompt(texts, times, self.hour_words), times)

    def day(self, hours: Sequence[Summary]) -> Summary:
        sents = [s for h in hours for s in h.sentences]
        times = [t for h in hours for t in h.times]
        if self.spec == "extractive":
            return self._extract(sents, times, np.concatenate([h.emb for h in hours]), self.day_words)
        from paperlab.egorag.prompts import day_summary_prompt

        return self._llm(day_summary_prompt([h.text for h in hours], [max(h.times) for h in hours],
                                            self.day_words), times)


# ------------------------------------------------------------------------------------------ the store


def _blob(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype=np.float32).tobytes()


class MemoryStore:
    """A persistent EgoRAG memory store in ``folder`` (see the module docstring).

    >>> store = MemoryStore.open(folder, embedder="embed:minilm")    # doctest: +SKIP
    >>> store.ingest(captions)            # idempotent, resumable
    >>> store.index.flat(q_vec, k=5, before=T)
    """

    FILE = "memory.sqlite"

    def __init__(self, folder: Path, conn: sqlite3.Connection, embedder, summarizer: Summarizer):
        self.folder, self.conn, self.embedder, self.summarizer = folder, conn, embedder, summarizer
        self._index = None

    # -- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path | str, embedder: str | None = None, summarizer: str | None = None,
             create: bool = True, **summary_kw) -> MemoryStore:
        """Open (or, with ``create``, make) the store in ``folder``; ``embedder``/``summarizer`` default to the
        store's own (``embed:minilm`` / ``extractive`` for a new one) and must match an existing store's."""
        folder = Path(folder)
        path = folder / cls.FILE
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--store {folder} is a file", "pass a folder")
        if not path.exists() and not create:
            raise UserError(f"no memory store in {folder}", "run `paperlab egorag ingest --store DIR ...` first")
        meta: dict[str, str] = {}
        if path.exists():
            try:
                ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                try:
                    meta = dict(ro.execute("SELECT key, value FROM meta"))
                finally:
                    ro.close()
            except sqlite3.DatabaseError as e:
                raise UserError(f"{path} is not a usable memory store ({e})", "pass another --store folder") from None
        want = {"embedder": embedder or meta.get("embedder", "embed:minilm"),
                "summarizer": summarizer or meta.get("summarizer", "extractive")}
        for k, v in want.items():
            if k in meta and meta[k] != v:
                raise UserError(f"the store in {folder} was made with {k} {meta[k]!r}, not {v!r}",
                                f"omit the option or pass {meta[k]!r}, or use a new --store")
        emb = load_embedder(want["embedder"])       # a bad spec fails here, before anything is written
        folder.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        if not meta:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", list(want.items()) + [("version", "1")])
            conn.execute("COMMIT")
        return cls(folder, conn, emb, Summarizer(want["summarizer"], emb, **summary_kw))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- ingestion ---------------------------------------------------------------------------------
    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM clips").fetchone()[0]

    def ingest(self, captions: Iterable[Caption], chunk: int = 2000,
               on_chunk: Callable[[int, int], None] | None = None) -> dict:
        """Add captions not yet stored (by content hash), ``chunk`` clips per transaction in time order,
        each transaction also rewriting the summaries of the hours and days it touches."""
        caps = list({c.key: c for c in captions}.values())
        have = set()
        keys = [c.key for c in caps]
        for s in range(0, len(keys), 900):
            part = keys[s: s + 900]
            have |= {r[0] for r in self.conn.execute(
                f"SELECT hash FROM clips WHERE hash IN ({','.join('?' * len(part))})", part)}
        new = sorted((c for c in caps if c.key not in have), key=lambda c: (c.t_start, c.key))
        done = 0
        for s in range(0, len(new), chunk):
            part = new[s: s + chunk]
            emb = embed_unique(self.embedder, [c.text for c in part])
            scenes = [c.scene for c in part]
            semb = embed_unique(self.embedder, [x for x in scenes if x]) if any(scenes) else None
            rows, j = [], 0
            for c, e in zip(part, emb, strict=True):
                se = None
                if c.scene:
                    se = _blob(semb[j])
                    j += 1
                rows.append((c.key, c.t_start, c.t_end, c.text, c.scene, _blob(e), se))
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany("INSERT OR IGNORE INTO clips(hash, t_start, t_end, text, scene, emb, "
                                      "scene_emb) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                hours = sorted({int(c.t_start // HOUR_S) for c in part})
                for h in hours:
                    self._summarise_hour(h)
                for d in sorted({h * HOUR_S // DAY_S for h in hours}):
                    self._summarise_day(int(d))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            done += len(part)
            if on_chunk is not None:
                on_chunk(done, len(new))
        self._index = None
        return {"given": len(keys), "distinct": len(caps), "already_stored": len(caps) - len(new), "added": done,
                "clips": self.count()}

    def _store_summary(self, level: str, key: int, s: Summary, n: int, source: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (level, key, s.text, json.dumps({"sentences": s.sentences, "times": s.times}),
                           _blob(s.emb), n, source))

    def _source(self, level: str, key: int) -> str | None:
        r = self.conn.execute("SELECT source FROM summaries WHERE level=? AND key=?", (level, key)).fetchone()
        return r[0] if r else None

    def _summarise_hour(self, h: int) -> None:
        rows = self.conn.execute("SELECT hash, t_start, text, emb FROM clips WHERE t_start >= ? AND t_start < ? "
                                 "ORDER BY t_start, id", (h * HOUR_S, (h + 1) * HOUR_S)).fetchall()
        source = hashlib.sha256("".join(r[0] for r in rows).encode()).hexdigest()
        if self._source("hour", h) == source:
            return
        emb = np.frombuffer(b"".join(r[3] for r in rows), np.float32).reshape(len(rows), -1)
        s = self.summarizer.hour([r[2] for r in rows], [r[1] for r in rows], emb)
        self._store_summary("hour", h, s, len(rows), source)

    def _summarise_day(self, d: int) -> None:
        hours = self.conn.execute("SELECT key, sentences, emb, n_clips, source, text FROM summaries "
                                  "WHERE level='hour' AND key >= ? AND key < ? ORDER BY key",
                                  (d * 24, (d + 1) * 24)).fetchall()
        source = hashlib.sha256("".join(r[4] for r in hours).encode()).hexdigest()
        if self._source("day", d) == source:
            return
        summaries = [_summary_row(r[5], r[1], r[2]) for r in hours]
        s = self.summarizer.day(summaries)
        self._store_summary("day", d, s, sum(r[3] for r in hours), source)

    # -- reading -----------------------------------------------------------------------------------
    @property
    def index(self) -> MemoryIndex:
        """The in-memory index over the stored clips and summaries (built on first use, after each ingest)."""
        if self._index is None:
            self._index = MemoryIndex.build(self.conn)
        return self._index

    def check(self) -> dict:
        """Consistency: integrity check, every clip's hour and day summarised with the current clip counts."""
        ok = self.conn.execute("PRAGMA integrity_check").fetchone()[0]
        hours = dict(self.conn.execute("SELECT CAST(t_start / 3600 AS INTEGER) h, COUNT(*) FROM clips "
                                       "GROUP BY h"))
        hs = dict(self.conn.execute("SELECT key, n_clips FROM summaries WHERE level='hour'"))
        days: dict[int, int] = {}
        for h, n in hours.items():
            days[h * HOUR_S // DAY_S] = days.get(h * HOUR_S // DAY_S, 0) + n
        ds = dict(self.conn.execute("SELECT key, n_clips FROM summaries WHERE level='day'"))
        return {"integrity": ok, "clips": sum(hours.values()), "hours_consistent": hours == hs,
                "days_consistent": days == ds, "ok": ok == "ok" and hours == hs and days == ds}


def _summary_row(text: str, sentences_json: str, emb: bytes) -> Summary:
    d = json.loads(sentences_json)
    e = np.frombuffer(emb, np.float32)
    n = len(d["sentences"])
    return Summary(text, d["sentences"], d["times"], e.reshape(n, -1) if n else e.reshape(0, 0))


class MemoryIndex:
    """Clips in time order (times, caption and scene embeddings, faiss flat index) and summary sentences
    (padded per day/hour so a level is scored with one matrix product)."""

    def __init__(self, times, ids, emb, scene_emb, has_scene, days, hours):
        import faiss

        self.times, self.ids, self.emb, self.scene_emb, self.has_scene = times, ids, emb, scene_emb, has_scene
        self.days, self.hours = days, hours
        self.faiss = faiss.IndexFlatIP(emb.shape[1] if emb.size else 1)
        if len(emb):
            self.faiss.add(emb)

    @classmethod
    def build(cls, conn: sqlite3.Connection) -> MemoryIndex:
        rows = conn.execute("SELECT t_start, id, emb, scene_emb FROM clips ORDER BY t_start, id").fetchall()
        n = len(rows)
        times = np.array([r[0] for r in rows], dtype=np.float64)
        ids = np.array([r[1] for r in rows], dtype=np.int64)
        emb = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(n, -1) if n else np.zeros((0, 1),
                                                                                                         np.float32)
        has_scene = np.array([r[3] is not None for r in rows], dtype=bool)
        scene = np.zeros_like(emb)
        if has_scene.any():
            scene[has_scene] = np.frombuffer(b"".join(r[3] for r in rows if r[3] is not None),
                                             np.float32).reshape(int(has_scene.sum()), -1)
        levels = {}
        for level in ("day", "hour"):
            rs = conn.execute("SELECT key, sentences, emb FROM summaries WHERE level=? ORDER BY key",
                              (level,)).fetchall()
            levels[level] = SummaryLevel.build([r[0] for r in rs], [_summary_row("", r[1], r[2]) for r in rs],
                                               emb.shape[1])
        return cls(times, ids, np.ascontiguousarray(emb), scene, has_scene, levels["day"], levels["hour"])

    def __len__(self) -> int:
        return len(self.times)

    def before(self, t: float) -> int:
        """Number of clips starting before ``t`` (they are the first ones: time order)."""
        return int(np.searchsorted(self.times, t, side="left"))

    def flat(self, q: np.ndarray, k: int, before: float) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` clip positions by caption cosine over all clips starting before ``before`` (faiss)."""
        import faiss

        b = self.before(before)
        if b == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        params = None
        if b < len(self):
            sel = faiss.IDSelectorRange(0, b)
            params = faiss.SearchParameters(sel=sel)
        d, i = self.faiss.search(q.reshape(1, -1).astype(np.float32), min(k, b), params=params)
        keep = i[0] >= 0
        return i[0][keep], d[0][keep]

    def window(self, ranges: Sequence[tuple[float, float]], before: float) -> np.ndarray:
        """Positions of the clips starting inside any ``[a, b)`` of ``ranges`` and before ``before``."""
        parts = []
        for a, b in ranges:
            lo, hi = self.before(a), self.before(min(b, before))
            if hi > lo:
                parts.append(np.arange(lo, hi))
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def stem_tokens(text: str) -> list[str]:
    """Lower-cased words, Snowball-stemmed (PyStemmer, as bm25s uses), English stop words dropped."""
    import Stemmer
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stem = _stemmer(Stemmer)
    return [stem.stemWord(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in ENGLISH_STOP_WORDS]


_STEMMER = []


def _stemmer(module):
    if not _STEMMER:
        _STEMMER.append(module.Stemmer("english"))
    return _STEMMER[0]


class SummaryLevel:
    """All summaries of one level: keys, sentence embeddings padded to ``[n_keys, max_sentences, dim]``,
    sentence times (``inf`` for padding), the sentences, and their term counts (for BM25) in the same layout."""

    def __init__(self, keys, emb, times, sentences, texts):
        self.keys, self.emb, self.times, self.sentences, self.texts = keys, emb, times, sentences, texts
        self._terms = None

    def _term_counts(self):
        """Stemmed term counts of every sentence slot ``[n_keys * max_sentences, vocabulary]`` (built on the
        first BM25 query) and the slots' lengths ``[n_keys, max_sentences]``."""
        if self._terms is None:
            from sklearn.feature_extraction.text import CountVectorizer

            n, width = self.times.shape
            flat = [""] * (n * width)
            for i, ss in enumerate(self.sentences):
                flat[i * width: i * width + len(ss)] = ss
            vec = CountVectorizer(analyzer=stem_tokens)
            try:
                terms = vec.fit_transform(flat).tocsc()
            except ValueError:            # no words at all (an empty store)
                self._terms = (None, {}, np.zeros((n, width)))
            else:
                self._terms = (terms, vec.vocabulary_, np.asarray(terms.sum(1)).ravel().reshape(n, width))
        return self._terms

    @classmethod
    def build(cls, keys: list[int], summaries: list[Summary], dim: int) -> SummaryLevel:
        m = max((len(s.sentences) for s in summaries), default=0)
        emb = np.zeros((len(keys), max(m, 1), dim), np.float32)
        times = np.full((len(keys), max(m, 1)), np.inf)
        for i, s in enumerate(summaries):
            k = len(s.sentences)
            if k:
                emb[i, :k] = s.emb
                times[i, :k] = s.times
        return cls(np.array(keys, dtype=np.int64), emb, times, [s.sentences for s in summaries],
                   [s.text for s in summaries])

    def scores(self, q: np.ndarray, before: float, top_m: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Dense relevance of each summary to ``q``: the mean of its ``top_m`` best sentence cosines among
        sentences timed before ``before`` (``-inf`` when it has none). A summary is longer than the embedder's
        input window (MiniLM: 256 tokens), so it is scored by its sentences, not as one text."""
        emb, times = (self.emb, self.times) if rows is None else (self.emb[rows], self.times[rows])
        if not len(emb):
            return np.zeros(0)
        sims = np.where(times < before, emb @ q, -np.inf)
        m = min(top_m, sims.shape[1])
        top = -np.partition(-sims, m - 1, axis=1)[:, :m]
        valid = np.isfinite(top)
        cnt = valid.sum(1)
        total = np.where(valid, top, 0.0).sum(1)
        return np.where(cnt > 0, total / np.maximum(cnt, 1), -np.inf)

    def bm25(self, query: str, before: float, k1: float = 1.5, b: float = 0.75) -> np.ndarray:
        """Okapi BM25 of ``query`` against each summary made of its sentences timed before ``before``; IDF over
        the summaries that have such sentences (``-inf`` for the others).

        Written by hand (sklearn's CountVectorizer + the textbook formula, bm25s's default k1 and b) because
        each query sees a different corpus: only the sentences before its time, as the released selector sees
        only earlier days and today's hours so far; bm25s indexes a fixed corpus."""
        n_docs, width = self.times.shape
        visible = self.times < before
        cand = visible.any(1)
        terms, vocab, lengths = self._term_counts()
        if terms is None or not cand.any():
            return np.full(n_docs, -np.inf)
        cols = sorted({vocab[t] for t in stem_tokens(query) if t in vocab})
        dl = np.where(visible, lengths, 0).sum(1)
        avg = max(dl[cand].mean(), 1e-9)
        score = np.zeros(n_docs)
        if cols:
            tf = terms[:, cols].toarray().reshape(n_docs, width, len(cols))
            tf = np.where(visible[:, :, None], tf, 0).sum(1)                         # [docs, query terms]
            n = cand.sum()
            df = (tf[cand] > 0).sum(0)
            idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
            score = (idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl[:, None] / avg))).sum(1)
        return np.where(cand, score, -np.inf)
