"""Union of Experts: tokens/s of each block variant (training and inference) as ratios to the dense block,
and the routed layers' batched implementation vs. a per-expert loop.

    python benchmarks/uoe_throughput.py [--quick] [--device cpu|cuda] [--out benchmarks/uoe_throughput.json]

Variants are interleaved within every repeat (so load from other processes hits them alike) and the
median over repeats is reported. Ratios > 1 mean faster than the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from paperlab.core.flops import block_flops
from paperlab.core.transformer import PreNormBlock, Rotary, TransformerConfig, default_attention, default_mlp
from paperlab.uoe.model import UoEConfig, moe_factory, smha_factory, uome_factory
from paperlab.uoe.smha import SelectiveMultiHeadAttention
from paperlab.uoe.uome import UnionOfMLPExperts


def make_block(variant: str, cfg: TransformerConfig, ucfg: UoEConfig) -> PreNormBlock:
    attn = smha_factory(ucfg) if variant in ("smha", "uoe") else default_attention
    mlp = {"moe": moe_factory(ucfg), "uome": uome_factory(ucfg), "uoe": uome_factory(ucfg)}.get(variant, default_mlp)
    return PreNormBlock(cfg, 0, attn(cfg, 0), mlp(cfg, 0))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn, device: str) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def bench(fns: dict[str, callable], device: str, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, interleaved."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            times[k].append(time_call(f, device))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.quick:
        d, H, dff, T, B, reps = 128, 8, 344, 128, 8, args.repeats or 5
    elif args.device == "cpu":
        d, H, dff, T, B, reps = 256, 8, 688, 256, 8, args.repeats or 7
    else:
        d, H, dff, T, B, reps = 1024, 16, 2752, 1024, 16, args.repeats or 20
    cfg = TransformerConfig(vocab_size=256, d_model=d, n_layers=1, n_heads=H, d_ff=dff, max_seq_len=T)
    ucfg = UoEConfig()
    dev = args.device
    rope = Rotary(cfg.head_dim, T).to(dev)
    x = torch.randn(B, T, d, device=dev)
    tokens = B * T

    # 1. block variants
    variants = ("dense", "moe", "uome", "smha", "uoe")
    blocks = {v: make_block(v, cfg, ucfg).to(dev) for v in variants}

    def train_step(block):
        def f():
            block.zero_grad(set_to_none=True)
            block(x, rope).square().mean().backward()
        return f

    def infer(block):
        def f():
            with torch.no_grad():
                block(x, rope)
        return f

    tr = bench({v: train_step(b) for v, b in blocks.items()}, dev, reps)
    inf = bench({v: infer(b) for v, b in blocks.items()}, dev, reps)
    block_rows = []
    for v in variants:
        blocks[v].eval()
        with torch.no_grad():
            blocks[v](x, rope)                  # statistics for the FLOPs count
        block_rows.append({
            "variant": v, "flops_per_token": block_flops(blocks[v], T),
            "train_tokens_per_s": tokens / tr[v], "infer_tokens_per_s": tokens / inf[v],
            "train_ratio_to_dense": tr["dense"] / tr[v], "infer_ratio_to_dense": inf["dense"] / inf[v],
            "flops_ratio_to_dense": block_flops(blocks[v], T) / block_flops(blocks["dense"], T),
        })

    # 2. batched vs. per-expert loop for the routed layers
    layers = {"UoME": UnionOfMLPExperts(d, dff, ucfg.mlp_experts, ucfg.mlp_top_k, ucfg.mlp_capacity).to(dev),
              "SMHA": SelectiveMultiHeadAttention(d, H, capacity=ucfg.attn_capacity).to(dev)}
    loop_rows = []
    for name, layer in layers.items():
        def call(batched, grad, layer=layer, name=name):
            def f():
                layer.batched = batched
                if grad:
                    layer.zero_grad(set_to_none=True)
                    y = layer(x, rope) if name == "SMHA" else layer(x)
                    y.square().mean().backward()
                else:
                    with torch.no_grad():
                        layer(x, rope) if name == "SMHA" else layer(x)
            return f
        for mode, grad in (("train", True), ("inference", False)):
            t = bench({"batched": call(True, grad), "loop": call(False, grad)}, dev, max(3, reps // 2), warmup=1)
            loop_rows.append({"layer": name, "mode": mode, "batched_s": t["batched"], "loop_s": t["loop"],
                              "speedup_batched_vs_loop": t["loop"] / t["batched"]})
        layer.batched = True

    result = {"device": dev, "shape": {"d_model": d, "n_heads": H, "d_ff": dff, "seq_len": T, "batch": B},
              "threads": torch.get_num_threads(), "repeats": reps, "torch": torch.__version__,
              "routing": ucfg.__dict__, "blocks": block_rows, "batched_vs_loop": loop_rows}
    args.out.write_text(json.dumps(result, indent=2))

    print(f"device={dev} d={d} H={H} d_ff={dff} T={T} B={B} (median of {reps})")
    print(f"{'block':8} {'FLOPs/tok':>10} {'FLOPs vs dense':>15} {'train tok/s':>12} {'train vs dense':>15} "
          f"{'infer tok/s':>12} {'infer vs dense':>15}")
    for r in block_rows:
        print(f"{r['variant']:8} {r['flops_per_token']:10.3g} {r['flops_ratio_to_dense']:15.2f} "
              f"{r['train_tokens_per_s']:12.0f} {r['train_ratio_to_dense']:15.2f} "
              f"{r['infer_tokens_per_s']:12.0f} {r['infer_ratio_to_dense']:15.2f}")
    print(f"\n{'layer':6} {'mode':10} {'batched s':>10} {'loop s':>10} {'batched speed-up':>17}")
    for r in loop_rows:
        print(f"{r['layer']:6} {r['mode']:10} {r['batched_s']:10.4f} {r['loop_s']:10.4f} "
              f"{r['speedup_batched_vs_loop']:17.2f}")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
