"""Feedback-Edit against a local OpenAI-compatible server: wall time of the pipeline with concurrent
requests vs. one at a time (a ratio, measured in one run; absolute times are printed, never judged).

Starts ``python -m llama_cpp.server`` on the default GGUF (SmolLM2-135M-Instruct) on a free loopback
port, then runs the same pipeline (every role the server's model, the same seeds) with
``OpenAILM(concurrency=1)`` and with ``concurrency=C``, alternating ``--repeats`` times, without the
request cache, after one untimed warm-up run. Each stage is one batched call, so with ``C > 1`` a
stage's requests are in flight together. Reports ``ratio = sequential / concurrent`` (median over
repeats), the requests per run, and the share of edited responses that are identical in the two
modes: llama-cpp-python's server reuses the previous request's prompt prefix (KV cache), whose last
bits depend on request order, so seeded samples may differ between modes (the in-process backend
resets the cache per request and is exact).

llama-cpp-python's server evaluates one request at a time, so on it the ratio shows what overlapping
HTTP round trips and tokenisation buys; a batching server (vLLM, llama.cpp's own ``llama-server
--parallel``) would show more.

Usage: ``python benchmarks/feedback_edit_concurrency.py [--prompts 4] [--concurrency 8] [--repeats 2]``.
Writes ``benchmarks/feedback_edit_concurrency.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(gguf: str, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = ["--model", gguf, "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads),
            "--n_ctx", "2048", "--model_alias", "smollm2"]
    cmd = [sys.executable, "-m", "llama_cpp.server", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/models", timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("llama_cpp.server exited at start") from None
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("llama_cpp.server did not start in 120 s")


def run_once(url: str, concurrency: int, problems, n: int, m: int, k: int, max_tokens: int):
    from paperlab.core.models import OpenAILM
    from paperlab.feedback_edit import pipeline as fe

    # a long timeout and no retries: queued requests on a one-at-a-time server must not time out and be
    # sent again (the server would compute the abandoned ones as well)
    lm = OpenAILM(url, "smollm2", concurrency=concurrency, timeout=900, max_retries=0)
    roles = fe.Roles(lm, lm, lm, lm)
    sampling = fe.Sampling(max_tokens_generator=max_tokens, max_tokens_feedback=max_tokens,
                           max_tokens_editor=max_tokens)
    t = time.perf_counter()
    trees = fe.run_pipeline(roles, [p.prompt for p in problems], [p.uid for p in problems], n, m, k,
                            sampling=sampling, seed=0)
    return time.perf_counter() - t, trees


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--m", type=int, default=1)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="the server's llama.cpp threads")
    ap.add_argument("--json", type=Path, default=Path(__file__).with_suffix(".json"))
    args = ap.parse_args()
    if min(args.prompts, args.n, args.m, args.k, args.max_tokens, args.concurrency, args.repeats) < 1:
        ap.error("every count must be >= 1")

    from paperlab.core.models import default_gguf_path
    from paperlab.feedback_edit import pipeline as fe
    from paperlab.feedback_edit.tasks import arithmetic

    problems = arithmetic(args.prompts, seed=1)
    proc, url = start_server(str(default_gguf_path()), args.threads)
    try:
        # warm-up, untimed: the server's first requests, and its prompt-prefix reuse primed for both modes
        run_once(url, 1, problems, args.n, args.m, args.k, args.max_tokens)
        seq, conc, texts = [], [], {1: [], args.concurrency: []}
        for r in range(args.repeats):  # alternating, order swapped every repeat: load changes touch both alike
            order = ((1, seq), (args.concurrency, conc))
            for c, into in (order if r % 2 == 0 else order[::-1]):
                s, trees = run_once(url, c, problems, args.n, args.m, args.k, args.max_tokens)
                into.append(s)
                texts[c].append([e.text for t in trees for row in t.edits for ks in row for e in ks])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    a, b = texts[1][-1], texts[args.concurrency][-1]
    same = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    ratio = statistics.median(seq) / statistics.median(conc)
    per_prompt = fe.generation_calls(args.n, args.m, args.k) + args.n * args.m * args.k + args.n
    res = {
        "what": "Feedback-Edit pipeline wall time against llama_cpp.server: sequential / concurrent",
        "setting": {"prompts": args.prompts, "n": args.n, "m": args.m, "k": args.k, "max_tokens": args.max_tokens,
                    "concurrency": args.concurrency, "server_threads": args.threads},
        "requests_per_run": per_prompt * args.prompts,
        "seconds_sequential": seq, "seconds_concurrent": conc,
        "ratio_sequential_over_concurrent": ratio,
        "share_of_edits_identical_sequential_vs_concurrent": same,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    args.json.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
