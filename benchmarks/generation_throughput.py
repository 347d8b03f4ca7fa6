"""Generation throughput: which backend should serve the default model, and what concurrency buys.

Measured in one run, reported as ratios:

1. llama.cpp (in-process, GGUF Q4_1) vs. transformers (the same GGUF dequantised to fp32):
   generated tokens/s on the same chat prompts, greedy.
2. The OpenAI-compatible backend against a local ``llama_cpp.server``: concurrent (8 threads) vs.
   sequential requests. llama.cpp's server decodes one request at a time on CPU, so expect ~1x:
   the gain appears with servers that batch (vLLM).
3. The same client against a local endpoint with a fixed 0.25 s latency per request (a stand-in
   for network/queueing latency of a remote server): concurrency hides latency, expect ~8x.

Usage: python benchmarks/generation_throughput.py [--prompts 6] [--max-tokens 64]
Writes benchmarks/results/generation_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from paperlab.core.models import HFLM, GenerationParams, LlamaCppLM, OpenAILM, default_gguf_path, parse_spec  # noqa: E402
from tests_helpers import FaultyServer, free_port  # noqa: E402

PROMPTS = [
    "Rephrase in your own words: The council approved a new budget for the city's hospitals on Tuesday.",
    "Translate to French: The weather was cold, so we stayed inside and read books all afternoon.",
    "Summarise: Rivers carry sediment to the sea, building deltas that farmers have used for millennia.",
    "Write one sentence about a lighthouse keeper who finds a message in a bottle.",
    "Explain in two sentences why the sky looks blue.",
    "List three uses of copper.",
    "Rephrase: The match was postponed because heavy rain flooded the stadium.",
    "Describe a market at dawn in one sentence.",
]


def tokens_per_second(lm, batch, params, count_tokens) -> tuple[float, int, float]:
    t0 = time.perf_counter()
    outs = [r.text for r in lm.chat(batch, params)]
    dt = time.perf_counter() - t0
    n = sum(count_tokens(o) for o in outs)
    return n / dt, n, dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    batch = [[{"role": "user", "content": p}] for p in PROMPTS[: args.prompts]]
    params = GenerationParams(temperature=0.0, max_tokens=args.max_tokens)
    gguf = str(default_gguf_path())
    results: dict = {"prompts": len(batch), "max_tokens": args.max_tokens}

    llama = LlamaCppLM(gguf)
    count = lambda text: len(llama._llm.tokenize(text.encode(), add_bos=False))  # noqa: E731
    llama.chat(batch[:1], params)  # warm-up
    results["llama_cpp_tok_s"], _, _ = tokens_per_second(llama, batch, params, count)
    hf = HFLM(parse_spec("default"))
    hf.chat(batch[:1], params.replace(max_tokens=4))
    t0 = time.perf_counter()
    hf_seq = [hf.chat([b], params)[0].text for b in batch]  # one at a time, like llama.cpp
    dt = time.perf_counter() - t0
    results["transformers_tok_s"] = sum(count(o) for o in hf_seq) / dt
    t0 = time.perf_counter()
    hf_batched = [r.text for r in hf.chat(batch, params)]
    results["transformers_batched_tok_s"] = sum(count(o) for o in hf_batched) / (time.perf_counter() - t0)
    results["ratio_llama_cpp_over_transformers"] = results["llama_cpp_tok_s"] / results["transformers_tok_s"]

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--model_alias", "m"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(url + "/models", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        client = OpenAILM(url, "m", concurrency=1)
        client.chat(batch[:1], params)
        results["server_sequential_tok_s"], _, ts = tokens_per_second(client, batch, params, count)
        client.concurrency = 8
        results["server_concurrent_tok_s"], _, tc = tokens_per_second(client, batch, params, count)
        results["ratio_server_concurrent_over_sequential"] = ts / tc
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    latency_batch = [[{"role": "user", "content": f"q{i}"}] for i in range(16)]
    with FaultyServer(latency=0.25) as srv:
        c = OpenAILM(srv.url, "m", concurrency=1)
        t0 = time.perf_counter()
        c.chat(latency_batch, params)
        seq = time.perf_counter() - t0
        c.concurrency = 8
        t0 = time.perf_counter()
        c.chat(latency_batch, params)
        conc = time.perf_counter() - t0
    results["latency_endpoint_ratio_concurrent_over_sequential"] = seq / conc

    out = Path(__file__).resolve().parent / "results" / "generation_throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"{'measure':55s} value")
    for k, v in results.items():
        print(f"{k:55s} {v:.2f}" if isinstance(v, float) else f"{k:55s} {v}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
