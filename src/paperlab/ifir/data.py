"""BEIR-layout data: corpus, queries, qrels; where SciFact lives; the packaged SciFact subset.

A BEIR folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl``
(``{"_id", "text", "metadata"?}``) and ``qrels/<split>.tsv`` (``query-id  corpus-id  score``, one header
line). The IFIR code builds a document as ``title + " " + text`` (empty parts skipped), as here.

SciFact (8 MB) is not copied into the package: :func:`scifact_root` finds it at ``$PAPERLAB_SCIFACT``,
the project's shared folder, or ``~/.cache/paperlab/data/scifact`` and otherwise fails with one line that
says where to put it. A real subset (``paperlab/data/ifir/``: every test query's judged documents for
the first test claims plus BM25 distractors, see its SOURCE.md) runs the tests and ``--data subset``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from paperlab.core.data import read_jsonl
from paperlab.core.errors import UserError

#: Where ``scifact_root`` looks, after ``$PAPERLAB_SCIFACT``.
SHARED_SCIFACT = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "ir" / "scifact"
USER_SCIFACT = Path.home() / ".cache" / "paperlab" / "data" / "scifact"
SUBSET = Path(__file__).resolve().parent.parent / "data" / "ifir"


@dataclass
class BeirData:
    """One BEIR data set in memory. ``qrels[qid][docid] = grade``; ``metadata[qid]`` as in queries.jsonl."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    metadata: dict[str, dict] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    name: str = "beir"

    def judged_queries(self) -> list[str]:
        """Query ids with at least one relevant document, in qrels order."""
        return [q for q, d in self.qrels.items() if q in self.queries and any(g > 0 for g in d.values())]


def scifact_root(path: str | Path | None = None) -> Path:
    """The SciFact BEIR folder: ``path``, ``$PAPERLAB_SCIFACT``, the shared folder or the user cache."""
    candidates = [Path(path).expanduser()] if path else []
    if not path and os.environ.get("PAPERLAB_SCIFACT"):
        candidates.append(Path(os.environ["PAPERLAB_SCIFACT"]).expanduser())
    if not path:
        candidates += [SHARED_SCIFACT, USER_SCIFACT]
    for c in candidates:
        if (c / "corpus.jsonl").is_file() and (c / "queries.jsonl").is_file() and (c / "qrels" / "test.tsv").is_file():
            return c
    where = candidates[0] if path else USER_SCIFACT
    raise UserError(f"SciFact (BEIR layout) not found at {where}",
                    f"put BEIR's scifact corpus.jsonl, queries.jsonl and qrels/test.tsv in {USER_SCIFACT} "
                    "(or set $PAPERLAB_SCIFACT, or pass --scifact DIR), or run --data subset --no-reference")


def doc_text(row: dict) -> str:
    """``title + " " + text`` as the IFIR code builds a passage (empty parts skipped)."""
    return " ".join(x for x in (str(row.get("title") or "").strip(), str(row.get("text") or "").strip()) if x)


def read_corpus(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """``{doc id: passage}`` and ``{doc id: title}`` of a BEIR corpus.jsonl; one-line errors for bad rows."""
    corpus, titles = {}, {}
    for i, row in enumerate(read_jsonl(path), 1):
        if "_id" not in row or not ({"text", "title"} & set(row)):
            raise UserError(f"{path}: record {i} lacks _id or text", 'write {"_id": ..., "title": ..., "text": ...}')
        corpus[str(row["_id"])] = doc_text(row)
        titles[str(row["_id"])] = str(row.get("title") or "")
    return corpus, titles


def read_queries(path: str | Path) -> tuple[dict[str, str], dict[str, dict]]:
    queries, meta = {}, {}
    for i, row in enumerate(read_jsonl(path), 1):
        if "_id" not in row or not isinstance(row.get("text"), str):
            raise UserError(f"{path}: record {i} lacks _id or text", 'write {"_id": ..., "text": ...} per line')
        queries[str(row["_id"])] = row["text"]
        meta[str(row["_id"])] = row.get("metadata") or {}
    return queries, meta


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """A BEIR qrels TSV (header ``query-id corpus-id score``) or a TREC qrels file (``qid 0 docid grade``)."""
    qrels: dict[str, dict[str, int]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read qrels {path}: {e.__class__.__name__}", "pass a readable TSV file") from None
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts or (n == 1 and not parts[-1].lstrip("-").isdigit()):
            continue  # blank line or header
        if len(parts) == 3:
            q, d, g = parts
        elif len(parts) == 4:
            q, _, d, g = parts
        else:
            raise UserError(f"{path}:{n} has {len(parts)} columns", "write query-id<TAB>corpus-id<TAB>score")
        try:
            qrels.setdefault(q, {})[d] = int(float(g))
        except ValueError:
            raise UserError(f"{path}:{n}: score {g!r} is not a number", "write an integer relevance grade") from None
    if not qrels:
        raise UserError(f"{path} holds no judgements", "write query-id<TAB>corpus-id<TAB>score lines")
    return qrels


def load_beir(corpus: str | Path, queries: str | Path, qrels: str | Path, name: str = "beir") -> BeirData:
    """Load and cross-check a BEIR data set; judged documents missing from the corpus are an error."""
    docs, titles = read_corpus(corpus)
    qs, meta = read_queries(queries)
    rels = read_qrels(qrels)
    missing_q = sorted(set(rels) - set(qs))
    if len(missing_q) == len(rels):
        raise UserError(f"no query id of {qrels} is in {queries}", "pass the queries that the qrels judge")
    missing_d = sorted({d for r in rels.values() for d in r} - set(docs))
    if missing_d:
        raise UserError(f"{len(missing_d)} judged document(s) of {qrels} are not in {corpus} (e.g. {missing_d[0]})",
                        "pass the corpus the qrels were made for")
    return BeirData(docs, qs, {q: r for q, r in rels.items() if q in qs}, meta, titles, name)


def load_scifact(which: str = "full", path: str | Path | None = None) -> BeirData:
    """SciFact's test split: ``full`` (the BEIR folder, see :func:`scifact_root`) or ``subset`` (packaged)."""
    if which == "subset":
        return load_beir(SUBSET / "corpus.jsonl", SUBSET / "queries.jsonl", SUBSET / "qrels" / "test.tsv",
                         "scifact-subset")
    if which != "full":
        raise UserError(f"unknown data {which!r}", "use full or subset")
    root = scifact_root(path)
    return load_beir(root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / "test.tsv", "scifact")


def write_trec_run(run: dict[str, dict[str, float]], path: str | Path, tag: str = "paperlab") -> None:
    """A run in TREC format (``qid Q0 docid rank score tag``), ranks by descending score."""
    with open(path, "w", encoding="utf-8") as f:
        for q, docs in run.items():
            for r, (d, s) in enumerate(sorted(docs.items(), key=lambda x: (-x[1], x[0])), 1):
                f.write(f"{q} Q0 {d} {r} {s:.6f} {tag}\n")
