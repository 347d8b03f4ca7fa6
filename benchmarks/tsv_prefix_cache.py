"""TSV prefix cache vs. full forward passes: time per training epoch and per scoring pass (ratios).

Blocks 0..l never see the steering vector, so TSV caches their output once and trains/scores by
running only blocks l+1..L-1. This script measures, in one process on the same inputs:

- one training epoch (forward + backward to v, micro-batches) with the full model and a hook, vs.
  the same epoch on the prefix cache;
- one scoring pass (forward only), full vs. cached;
- the one-time cost of building the cache, and the total for the paper's 40 epochs (20 + 20).

Inputs: TruthfulQA questions with their reference answers in the paper's prompt (no generation).
Usage: ``python benchmarks/tsv_prefix_cache.py [--n 32] [--model default] [--repeats 2]``.
Writes ``benchmarks/tsv_prefix_cache.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="inputs (the paper's 32 exemplars per epoch)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from paperlab.core.models import load_torch_model
    from paperlab.tsv.data import load_truthfulqa
    from paperlab.tsv.labelling import answer_prompt
    from paperlab.tsv.prototypes import VMFPrototypes, soft_cross_entropy
    from paperlab.tsv.steering import (
        SteeringVector,
        decoder_layers,
        encode_dataset,
        encode_texts,
        forward_embeddings,
        suffix_embeddings,
    )
    from paperlab.tsv.training import default_layer

    qs = load_truthfulqa()[: args.n]
    model, tok = load_torch_model(args.model)
    for p in model.parameters():
        p.requires_grad_(False)
    layer = default_layer(len(decoder_layers(model)))
    enc = encode_texts(tok, [answer_prompt(q.question) for q in qs],
                       [" " + (q.correct[0] if i % 2 else q.incorrect[0]) for i, q in enumerate(qs)])
    y = torch.nn.functional.one_hot(torch.tensor([i % 2 for i in range(len(qs))]), 2).float()
    dim = model.config.hidden_size
    steer = SteeringVector(dim).to(next(model.parameters()).device)
    with torch.no_grad():
        steer.v.normal_(0, 0.05)
    protos = VMFPrototypes(dim, 2)
    mb = args.micro_batch
    batches = [list(range(s, min(s + mb, len(enc)))) for s in range(0, len(enc), mb)]

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    t0 = time.perf_counter()
    cache = encode_dataset(model, enc, layer, batch_size=mb)
    t_cache = time.perf_counter() - t0

    def train_full():
        for b in batches:
            with steer.attached(model, layer):
                r = forward_embeddings(model, [enc[i] for i in b])
            soft_cross_entropy(protos.log_probs(r), y[b]).backward()

    def train_cached():
        for b in batches:
            r = suffix_embeddings(model, cache, b, steer)
            soft_cross_entropy(protos.log_probs(r), y[b]).backward()

    def score_full():
        with torch.no_grad(), steer.attached(model, layer):
            for b in batches:
                forward_embeddings(model, [enc[i] for i in b])

    def score_cached():
        with torch.no_grad():
            for b in batches:
                suffix_embeddings(model, cache, b, steer)

    # correctness: the cached embeddings are the full-forward ones
    with torch.no_grad(), steer.attached(model, layer):
        full_r = forward_embeddings(model, [enc[i] for i in batches[0]])
    with torch.no_grad():
        max_diff = float((suffix_embeddings(model, cache, batches[0], steer) - full_r).abs().max())

    times = {k: [] for k in ("train_full", "train_cached", "score_full", "score_cached")}
    for _ in range(args.repeats):  # interleaved, so load changes hit both sides
        for name, fn in (("train_full", train_full), ("train_cached", train_cached),
                         ("score_full", score_full), ("score_cached", score_cached)):
            times[name].append(timed(fn))
    best = {k: min(v) for k, v in times.items()}
    epochs = 40
    result = {
        "model": args.model, "n_inputs": len(enc), "layer": layer, "n_layers": len(decoder_layers(model)),
        "mean_tokens": sum(len(e.ids) for e in enc) / len(enc), "threads": args.threads,
        "seconds_best_of_repeats": best, "cache_build_seconds": t_cache,
        "train_epoch_speedup": best["train_full"] / best["train_cached"],
        "score_pass_speedup": best["score_full"] / best["score_cached"],
        "paper_40_epochs_speedup_incl_cache": (epochs * best["train_full"])
        / (t_cache + epochs * best["train_cached"]),
        "max_abs_embedding_diff": max_diff,
    }
    print(f"TSV prefix cache ({args.model}, steering block {layer} of {result['n_layers']}, {len(enc)} inputs, "
          f"{result['mean_tokens']:.0f} tokens on average)")
    print(f"{'pass':<28}{'full (s)':>10}{'cached (s)':>12}{'speed-up':>10}")
    print(f"{'training epoch (fwd+bwd)':<28}{best['train_full']:>10.2f}{best['train_cached']:>12.2f}"
          f"{result['train_epoch_speedup']:>9.2f}x")
    print(f"{'scoring pass (fwd)':<28}{best['score_full']:>10.2f}{best['score_cached']:>12.2f}"
          f"{result['score_pass_speedup']:>9.2f}x")
    print(f"cache build {t_cache:.2f} s; 40 epochs incl. cache build: "
          f"{result['paper_40_epochs_speedup_incl_cache']:.2f}x; max |r_cached - r_full| = {max_diff:.1e}")
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
