"""PQI / ReQuant costs, measured in one run: seconds per PQI integration point (one gradient of the whole
calibration set) and per N-point integral, and the dense-and-sparse layer's forward time as a ratio to
the dense ``nn.Linear`` of the same shape.

    python benchmarks/requant_cost.py [--model tiny|default|hf:<path>] [--blocks -2,-1] [--points 4]
                                      [--calib-seqs 4] [--calib-len 128] [--threads 2]

1. PQI: ``path_scan`` over ``--points`` points of the midpoint rule on ``--calib-seqs`` sequences of
   WikiText-2 ``valid.txt``; reports s/point, s/token/point and the extrapolated time of N = 4, 8, 16, 32
   (the one-off pass through the blocks before the first quantized one is timed apart).
2. Layers, at SmolLM2's shapes (576 -> 1536 and 1536 -> 576), 3-bit, groups of 192, 0.35% sparse: median
   seconds per forward of ``nn.Linear`` (fp32), ``SparseDenseLinear`` (packed codes dequantized every call +
   CSR matmul), and its two parts (dequantization alone, sparse matmul alone), for a decode step (1 token)
   and a prefill (256 tokens). Variants are interleaved within every repeat. No absolute-time assertions:
   the numbers are this machine's.

Writes ``benchmarks/requant_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn


def bench(fns: dict, repeats: int, warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def pqi_cost(model_spec: str, blocks, points: int, n_seqs: int, length: int) -> dict:
    from paperlab.requant.lm import hf_target, tiny_target, windows
    from paperlab.requant.pqi import path_scan, quadrature
    from paperlab.requant.quantizers import rtn_quantize

    if model_spec == "tiny":
        from paperlab.core.transformer import Transformer, TransformerConfig

        torch.manual_seed(0)
        model = Transformer(TransformerConfig(vocab_size=256, d_model=128, n_layers=4, n_heads=4, d_ff=384,
                                              max_seq_len=length))
        target = tiny_target(model)
        calib = torch.randint(0, 256, (n_seqs, length), generator=torch.Generator().manual_seed(0))
    else:
        from paperlab.core.data import data_path
        from paperlab.core.models import load_torch_model

        model, tok = load_torch_model(model_spec, device="cpu")
        target = hf_target(model, blocks)
        text = data_path("wikitext2", "valid.txt").read_text(encoding="utf-8")[: 12 * n_seqs * length]
        calib = windows(torch.tensor(tok(text, add_special_tokens=False)["input_ids"]), length, n_seqs)
    w0 = target.weights()
    dw = {n: rtn_quantize(w, 3, 64).dequantize() - w for n, w in w0.items()}
    ts, cs = quadrature(points, "midpoint")
    t0 = time.perf_counter()
    prefix = target.prefix(list(calib))          # the blocks before the first quantized one run once (None: none)
    t_prefix = time.perf_counter() - t0
    t0 = time.perf_counter()
    scan = path_scan(target, w0, dw, calib, ts, cs, fisher=False, prefix=prefix)
    total = time.perf_counter() - t0
    per_point = total / points
    return {"model": model_spec, "blocks": blocks, "quantized_weights": target.n_weights,
            "calib_tokens_per_point": int(calib.numel()), "points": points, "seconds_prefix_once": t_prefix,
            "seconds_total": total,
            "seconds_per_point": per_point, "seconds_per_token_per_point": per_point / calib.numel(),
            "extrapolated_seconds": {n: n * per_point for n in (4, 8, 16, 32)},
            "pqi_estimate": float(scan.estimate().mean())}


def layer_cost(repeats: int) -> list[dict]:
    from paperlab.requant.layers import SparseDenseLinear
    from paperlab.requant.quantizers import Quantizer, equal_bits_sparse_ratio
    from paperlab.requant.requant import dense_and_sparse, top_mask

    rows = []
    g = torch.Generator().manual_seed(0)
    ratio = equal_bits_sparse_ratio(96, 192)
    for d_in, d_out in ((576, 1536), (1536, 576)):
        lin = nn.Linear(d_in, d_out, bias=False)
        ds = dense_and_sparse("x", lin.weight, Quantizer("rtn", 3, 192),
                              top_mask(lin.weight.abs(), round(ratio * lin.weight.numel())))
        sd = SparseDenseLinear.from_dense_sparse(ds)
        csr = sd.sparse()
        for n_tok in (1, 256):
            x = torch.randn(n_tok, d_in, generator=g)
            with torch.no_grad():
                t = bench({"dense nn.Linear": lambda lin=lin, x=x: lin(x), "SparseDenseLinear": lambda sd=sd, x=x: sd(x),
                           "dequantize only": lambda sd=sd: sd.dense_weight(),
                           "sparse matmul only": lambda csr=csr, x=x: torch.sparse.mm(csr, x.T)}, repeats)
            rows.append({"in": d_in, "out": d_out, "tokens": n_tok, "sparse_entries": int(ds.index.numel()),
                         "seconds": t, "ratio_sparse_dense_to_dense": t["SparseDenseLinear"] / t["dense nn.Linear"],
                         "bits_per_weight": sd.account().bits_per_weight})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="tiny (a random d=128 transformer), default, or hf:<path>")
    ap.add_argument("--blocks", default=None, help="decoder blocks of a transformers model, e.g. -2,-1")
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--calib-seqs", type=int, default=4)
    ap.add_argument("--calib-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    blocks = [int(b) for b in args.blocks.split(",")] if args.blocks else None
    res = {"threads": args.threads, "torch": torch.__version__,
           "pqi": pqi_cost(args.model, blocks, args.points, args.calib_seqs, args.calib_len),
           "layers": layer_cost(args.repeats)}
    args.out.write_text(json.dumps(res, indent=2))
    p = res["pqi"]
    print(f"PQI on {p['model']}: {p['seconds_per_point']:.2f} s per point ({p['calib_tokens_per_point']} tokens), "
          f"N=32 -> {p['extrapolated_seconds'][32]:.0f} s")
    for r in res["layers"]:
        print(f"layer {r['in']}->{r['out']}, {r['tokens']} tokens: SparseDenseLinear / nn.Linear = "
              f"{r['ratio_sparse_dense_to_dense']:.2f}x")


if __name__ == "__main__":
    main()
