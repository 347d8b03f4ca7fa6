"""STORM's selective scan: the parallel (Blelloch) scan vs. the sequential recurrence at T = 1024, in one run.

    python benchmarks/storm_scan.py [--length 1024] [--batch 4] [--d-inner 64] [--d-state 16] [--repeats 5]
                                    [--threads 1] [--out benchmarks/storm_scan.json]

Forward and forward+backward, the two implementations interleaved within every repeat (load from other processes
hits both alike); medians over repeats. Also records the largest |parallel - sequential| on the same inputs.
Ratio > 1: the parallel scan is faster.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from paperlab.storm.selective_scan import random_inputs, selective_scan_parallel, selective_scan_ref

FNS = {"sequential": selective_scan_ref, "parallel": selective_scan_parallel}


def timed(fn, x: dict, backward: bool) -> float:
    leaves = {k: (v.detach().requires_grad_() if backward and isinstance(v, torch.Tensor) else v) for k, v in x.items()}
    t = time.perf_counter()
    if backward:
        fn(**leaves).pow(2).sum().backward()
    else:
        with torch.no_grad():
            fn(**leaves)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--d-inner", type=int, default=64)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = random_inputs(a.batch, a.d_inner, a.length, a.d_state, seed=0)
    res: dict = {"length": a.length, "batch": a.batch, "d_inner": a.d_inner, "d_state": a.d_state,
                 "repeats": a.repeats, "threads": a.threads, "torch": torch.__version__,
                 "machine": platform.processor() or platform.machine()}
    with torch.no_grad():
        y0, y1 = selective_scan_ref(**x), selective_scan_parallel(**x)
    res["max_abs_difference_float32"] = float((y0 - y1).abs().max())
    res["output_scale"] = float(y0.abs().max())
    for mode, backward in (("forward", False), ("forward_backward", True)):
        for fn in FNS.values():                                             # warm-up
            timed(fn, x, backward)
        times: dict[str, list[float]] = {k: [] for k in FNS}
        for _ in range(a.repeats):
            for k, fn in FNS.items():
                times[k].append(timed(fn, x, backward))
        med = {k: statistics.median(v) for k, v in times.items()}
        res[mode] = {"seconds": med, "ratio_sequential_over_parallel": med["sequential"] / med["parallel"]}
        print(f"{mode}: sequential {med['sequential'] * 1e3:.1f} ms, parallel {med['parallel'] * 1e3:.1f} ms, "
              f"ratio {med['sequential'] / med['parallel']:.1f}x")
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"max |parallel - sequential| = {res['max_abs_difference_float32']:.2e} (float32); wrote {a.out}")


if __name__ == "__main__":
    main()
