"""Derailment: seconds per SCD summary and per probability read, for each summary prompt (uncached).

    python benchmarks/derailment_prompt_cost.py [--model default] [--threads 3] [--out benchmarks/derailment_prompt_cost.json]

Why the quick tier uses the compact least-to-most prompt: the cost of a summary is dominated by reading the
prompt. Prompts are interleaved within every thread (load from other processes hits them alike); the median
over threads is reported, with prompt tokens, and the ratio of each prompt's cost to the compact one's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from paperlab.core.models import load_lm, parse_spec
from paperlab.derailment.experiment import default_config, llm_subset, load_and_split
from paperlab.derailment.scd import PROMPTS, SCDPredictor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=3, help="held-out threads to summarise")
    ap.add_argument("--summary-tokens", type=int, default=48)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = ap.parse_args()
    cfg = default_config(True)
    threads = llm_subset(load_and_split(cfg), cfg)[: args.threads]
    kw = {"n_ctx": 4096} if parse_spec(args.model).kind == "gguf" else {}
    lm = load_lm(args.model, cache=False, **kw)  # uncached: every call is timed for real
    preds = {p: SCDPredictor(lm, prompt=p, summary_tokens=args.summary_tokens, max_comment_chars=cfg.max_comment_chars,
                             max_chars=cfg.max_chars) for p in PROMPTS}
    times: dict[str, dict[str, list[float]]] = {p: {"summary": [], "yes_no": [], "prompt_tokens": []} for p in PROMPTS}
    for t in threads:
        for p, pred in preds.items():
            t0 = time.perf_counter()
            s = pred.summarise([t.prefix])[0]
            t1 = time.perf_counter()
            pred.predict_from_summaries([s], "yes_no")
            t2 = time.perf_counter()
            times[p]["summary"].append(t1 - t0)
            times[p]["yes_no"].append(t2 - t1)
            times[p]["prompt_tokens"].append(s.prompt_tokens)
    med = {p: {k: statistics.median(v) for k, v in d.items()} for p, d in times.items()}
    base = med["ltm_compact"]["summary"]
    out = {"system": "derailment", "model": args.model, "threads": len(threads), "summary_tokens": args.summary_tokens,
           "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
           "median_seconds": med, "summary_cost_vs_ltm_compact": {p: m["summary"] / base for p, m in med.items()}}
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
