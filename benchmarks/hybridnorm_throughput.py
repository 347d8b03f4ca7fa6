"""Tokens/s of each HybridNorm block variant, training and inference, as ratios to Pre-Norm.

    python benchmarks/hybridnorm_throughput.py [--d-model 128 --layers 8 --batch 8 --seq 128 --repeats 5]

All variants are timed in one process, interleaved round-robin (so machine load hits them alike);
each number is the median over ``--repeats`` rounds. Training = forward + backward + AdamW step;
inference = a no-grad forward of the whole batch. Writes ``hybridnorm_throughput.json`` next to this file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from paperlab.core.runs import library_versions
from paperlab.core.transformer import TransformerConfig
from paperlab.hybridnorm.blocks import LABELS, VARIANTS, build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iters", type=int, default=3, help="steps per timing")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    dev = torch.device(args.device)
    d_ff = 8 * -(-8 * args.d_model // 3 // 8)
    cfg = TransformerConfig(vocab_size=args.vocab, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                            d_ff=d_ff, max_seq_len=args.seq, small_init=True)
    torch.manual_seed(0)
    models = {v: build_model(v, cfg).to(dev) for v in VARIANTS}
    opts = {v: torch.optim.AdamW(m.parameters(), lr=1e-4) for v, m in models.items()}
    x = torch.randint(0, args.vocab, (args.batch, args.seq), device=dev)
    y = torch.roll(x, -1, 1)
    tokens = args.batch * args.seq * args.iters

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def train_time(v):
        m, o = models[v], opts[v]
        sync()
        t = time.perf_counter()
        for _ in range(args.iters):
            _, loss = m(x, y)
            loss.backward()
            o.step()
            o.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - t

    @torch.no_grad()
    def infer_time(v):
        m = models[v]
        sync()
        t = time.perf_counter()
        for _ in range(args.iters):
            m(x)
        sync()
        return time.perf_counter() - t

    for v in VARIANTS:                       # warm-up
        train_time(v)
        infer_time(v)
    times = {v: {"train": [], "infer": []} for v in VARIANTS}
    for _ in range(args.repeats):
        for v in VARIANTS:
            times[v]["train"].append(train_time(v))
            times[v]["infer"].append(infer_time(v))

    rows = {}
    for v in VARIANTS:
        tr = tokens / statistics.median(times[v]["train"])
        inf = tokens / statistics.median(times[v]["infer"])
        rows[v] = {"train_tokens_per_s": tr, "infer_tokens_per_s": inf,
                   "fwd_flops_per_token": models[v].flops_per_token(args.seq)}
    base = rows["pre"]
    for r in rows.values():
        r["train_ratio_vs_pre"] = r["train_tokens_per_s"] / base["train_tokens_per_s"]
        r["infer_ratio_vs_pre"] = r["infer_tokens_per_s"] / base["infer_tokens_per_s"]
        r["flops_ratio_vs_pre"] = r["fwd_flops_per_token"] / base["fwd_flops_per_token"]

    print(f"d={args.d_model} layers={args.layers} batch={args.batch}x{args.seq} device={dev} "
          f"threads={torch.get_num_threads()} (median of {args.repeats})")
    print(f"{'variant':<13} {'train tok/s':>12} {'ratio':>6} {'infer tok/s':>12} {'ratio':>6} {'FLOPs ratio':>11}")
    for v, r in rows.items():
        print(f"{LABELS[v]:<13} {r['train_tokens_per_s']:>12.0f} {r['train_ratio_vs_pre']:>6.3f} "
              f"{r['infer_tokens_per_s']:>12.0f} {r['infer_ratio_vs_pre']:>6.3f} {r['flops_ratio_vs_pre']:>11.4f}")
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps({"args": vars(args), "device": str(dev), "threads": torch.get_num_threads(),
                               "results": rows, "versions": library_versions()}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
