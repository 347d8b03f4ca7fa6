"""EgoRAG query latency as the memory grows: 1 day, 1 week, 1 year of 30 s captions, hierarchical vs. flat.

    python benchmarks/egorag_latency.py [--days 1,7,365] [--clips-per-hour 120] [--queries 60]
                                        [--embedder hash:384] [--repeats 3] [--root DIR] [--out FILE]

For each size a simulated life log (:mod:`paperlab.egorag.simulator`, 16 waking hours a day) is ingested into a
real :class:`~paperlab.egorag.memory.MemoryStore` (SQLite + faiss, extractive summaries), then the same
``--queries`` questions are asked at the end of the log: median seconds per query (of ``--repeats``) of
hierarchical retrieval (BM25 over the day summaries, dense over the chosen day's hour summaries, top 3
captions in a two-hour window) and of flat retrieval (faiss top 3 over every caption). Query embedding is
timed apart with MiniLM (it does not depend on the store's size). The store's embedder defaults to feature
hashing (384 dimensions, MiniLM's): search cost depends only on the vector count and dimension, and hashing
lets a year of captions be ingested in minutes instead of hours.

At EgoLife's density (``--clips-per-hour 120``, one clip every 30 s) a year is 700,800 clips (~1.1 GB of
float32 vectors in the store, ~3 GB of RAM while ingesting); lower it on a small machine and say so.

Writes ``benchmarks/egorag_latency.json``: per size the clip count, build and load time, the per-query
latencies, the medians, the hierarchical / flat ratio, and the log-log slopes with bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", default="1,7,365")
    ap.add_argument("--clips-per-hour", type=int, default=120)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--embedder", default="hash:384")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--root", default=None, help="where the stores are built (default: a temporary folder)")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = ap.parse_args()

    from paperlab.egorag.experiment import measure_latency
    from paperlab.egorag.report import latency_arrays, latency_ratio, loglog_slope

    days = sorted(int(x) for x in args.days.split(","))
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        lat = measure_latency(days, args.clips_per_hour, args.queries, Path(tmp), args.embedder,
                              repeats=args.repeats)
    sizes, arr = latency_arrays(lat)
    summary = {"clips": [int(s) for s in sizes],
               "median_ms": {m: [float(np.median(a[:, j]) * 1e3) for j in range(len(sizes))] for m, a in arr.items()},
               "slope": {m: loglog_slope(sizes, a, 2000).as_dict() for m, a in arr.items()},
               "ratio_hierarchical_to_flat": [latency_ratio(arr["hierarchical"][:, j], arr["flat"][:, j], 2000).as_dict()
                                              for j in range(len(sizes))]}
    out = {"benchmark": "egorag_latency", "args": vars(args), "summary": summary, "measurements": lat}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
