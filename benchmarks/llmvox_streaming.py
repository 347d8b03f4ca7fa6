"""LLMVoX streaming: time to first audio and real-time factor by chunk policy, against non-streaming synthesis.

    python benchmarks/llmvox_streaming.py [--checkpoint RUN_DIR] [--model default] [--prompts 8]
                                          [--policies 10/160x3,10/160x2,40/160x2,160/160x2] [--max-tokens 96]
                                          [--out FILE]

Needs a trained checkpoint (``paperlab llmvox run [--quick]``; default: the newest ``runs/llmvox/*/model.pt``);
without one it says so and exits 0 (so ``make bench`` goes on).
For each prompt the LM's answer is generated once, live, with the arrival time of every token recorded; then
the same token stream is *replayed with its recorded timing* into the streaming engine under each policy, so
the policies see identical text at identical times (the LM's run-to-run jitter is out of the comparison). The
non-streaming reference waits for the last token, then decodes and vocodes the whole answer.

Ratios (median over prompts): time to first audio of each policy / the non-streaming time to audio; RTF of each
policy; each policy's first-audio time / the official policy's (10/160 x3). Writes
``benchmarks/llmvox_streaming.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def replay(pieces: list[tuple[float, str]], t0: float):
    """Yield the recorded pieces at their recorded offsets from ``t0``."""
    for at, text in pieces:
        wait = t0 + at - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        yield text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--model", default="default")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--policies", default="10/160x3,10/160x2,40/160x2,160/160x2")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = ap.parse_args()

    from paperlab.core.errors import UserError
    from paperlab.core.models import GenerationParams, load_lm
    from paperlab.core.threads import torch_threads
    from paperlab.llmvox.bytes import text_ids
    from paperlab.llmvox.cli import parse_policies
    from paperlab.llmvox.decoder import greedy_decode
    from paperlab.llmvox.experiment import PROMPTS, SYSTEM_PROMPT, _sentences
    from paperlab.llmvox.inference import find_checkpoint, load_checkpoint, warm_up
    from paperlab.llmvox.streaming import ChunkPolicy, StreamingEngine, clean_token

    try:
        ckpt = find_checkpoint(Path(args.checkpoint) if args.checkpoint else None)
    except UserError as e:  # `make bench` on a fresh clone: say why and let the other benchmarks run
        print(f"llmvox_streaming skipped: {e}", file=sys.stderr)
        return
    codec, decoder, n_iter = load_checkpoint(ckpt)
    policies = [ChunkPolicy((a, b), g, max(1280, a, b)) for a, b, g in parse_policies(args.policies)]
    engines = {p.label: StreamingEngine(decoder, codec, p, griffin_lim_iters=n_iter) for p in policies}
    lm = load_lm(args.model, cache=False)
    params = GenerationParams(temperature=0.0, max_tokens=args.max_tokens)
    rows = []
    with torch_threads(1):
        warm_up(codec, decoder, n_iter)
        for pi, prompt in enumerate(PROMPTS[: args.prompts]):
            msgs = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
            t0 = time.perf_counter()
            pieces = [(time.perf_counter() - t0, p) for p in lm.stream_chat(msgs, params)]
            t_lm = time.perf_counter() - t0
            text = clean_token("".join(p for _, p in pieces))
            t1 = time.perf_counter()
            audio = sum(len(codec.decode(greedy_decode(decoder, text_ids(s)), n_iter)) for s in _sentences(text))
            row = {"prompt": pi, "text": text, "lm_s": t_lm, "tts_s": time.perf_counter() - t1,
                   "non_streaming_s": t_lm + time.perf_counter() - t1, "audio_s": audio / 16000, "policies": {}}
            for label, eng in engines.items():
                t0 = time.perf_counter()
                res = eng.run(replay(pieces, t0), t0=t0)
                row["policies"][label] = {k: v for k, v in res.summary().items()}
            rows.append(row)
            print(json.dumps({"prompt": pi, "non_streaming_s": round(row["non_streaming_s"], 3),
                              **{k: round(v["first_audio_s"], 3) for k, v in row["policies"].items()}}))
    base = policies[0].label
    summary = {}
    for label in engines:
        fa = np.array([r["policies"][label]["first_audio_s"] for r in rows])
        summary[label] = {
            "median_first_audio_s": float(np.median(fa)),
            "median_first_audio_over_non_streaming": float(np.median(fa / np.array([r["non_streaming_s"]
                                                                                    for r in rows]))),
            "median_first_audio_over_official": float(np.median(
                fa / np.array([r["policies"][base]["first_audio_s"] for r in rows]))),
            "median_rtf": float(np.median([r["policies"][label]["rtf"] for r in rows])),
            "mean_stall_s": float(np.mean([r["policies"][label]["stall_s"] for r in rows])),
        }
    summary["non_streaming"] = {"median_s": float(np.median([r["non_streaming_s"] for r in rows])),
                                "median_lm_s": float(np.median([r["lm_s"] for r in rows]))}
    out = {"benchmark": "llmvox_streaming", "args": vars(args), "checkpoint": str(ckpt), "summary": summary,
           "measurements": rows}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
