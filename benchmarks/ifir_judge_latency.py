"""IFIR judge cost, measured in one run: seconds per G-Eval judgement of real SciFact rubric prompts with
the same SmolLM2-135M weights through llama.cpp (``default``) and through transformers (``default-hf``),
with the answer stopped after the score (quick tier) and, optionally, the full answer (paper: max_tokens 512).

    python benchmarks/ifir_judge_latency.py [--prompts 4] [--passage-words 120] [--full]

Each judge scores the same ``--prompts`` prompts (level-3 rubric, claim + instruction, passages cut to
``--passage-words``) with the request cache off; the first call of each backend is a warm-up (lazy model
loads), reported apart. Writes ``benchmarks/ifir_judge_latency.json``: per judge the median seconds per
call, the mean prompt tokens and the ratio of the two backends. No absolute-time assertions: the
numbers are this machine's (a llama.cpp build without native SIMD is much slower at prompt processing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--passage-words", type=int, default=120)
    ap.add_argument("--full", action="store_true", help="also time full answers (max_tokens 512)")
    args = ap.parse_args()
    os.environ["PAPERLAB_CACHE"] = ":memory:"
    from paperlab.core.models import load_lm
    from paperlab.ifir.data import load_scifact
    from paperlab.ifir.instfol import judge_params, resolve_judge, rubric_prompt
    from paperlab.ifir.instructions import build_units

    data = load_scifact("subset")
    units = [u for u in build_units(data) if u.level == 3][: args.prompts + 1]
    docs = list(data.corpus)
    prompts = [rubric_prompt(3, f"{u.query} {u.instruction}", " ".join(data.corpus[docs[i]].split()[: args.passage_words]))
               for i, u in enumerate(units)]
    modes = [("early_stop", judge_params(24, True))] + ([("full", judge_params(512, False))] if args.full else [])
    out: dict = {"prompts": len(prompts) - 1, "passage_words": args.passage_words, "cpu_count": os.cpu_count(),
                 "load_average_1min": os.getloadavg()[0], "judges": {}}
    for spec in ("default", "default-hf"):
        t = time.perf_counter()
        lm = load_lm(resolve_judge(spec), cache=False)
        row: dict = {"load_s": time.perf_counter() - t}
        for mode, params in modes:
            t = time.perf_counter()
            lm.chat([[{"role": "user", "content": prompts[0]}]], params)      # warm-up
            row[f"{mode}_warmup_s"] = time.perf_counter() - t
            secs, toks = [], []
            for p in prompts[1:]:
                t = time.perf_counter()
                r = lm.chat([[{"role": "user", "content": p}]], params)[0]
                secs.append(time.perf_counter() - t)
                toks.append(r.prompt_tokens)
            row[f"{mode}_median_s"] = statistics.median(secs)
            row["prompt_tokens_mean"] = statistics.mean(toks)
        out["judges"][spec] = row
        print(spec, json.dumps(row), flush=True)
    a, b = out["judges"]["default"], out["judges"]["default-hf"]
    out["llamacpp_over_hf_early_stop"] = a["early_stop_median_s"] / b["early_stop_median_s"]
    Path(__file__).with_suffix(".json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
