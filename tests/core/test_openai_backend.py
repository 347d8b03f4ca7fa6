"""The OpenAI-compatible backend against real local servers: llama.cpp's server and a faulty one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from paperlab.core.cache import Cache
from paperlab.core.errors import UserError
from paperlab.core.models import (
    HFLM,
    CachedLM,
    GenerationParams,
    OpenAILM,
    default_gguf_path,
    load_lm,
    parse_spec,
)
from tests_helpers import FaultyServer, free_port

GREEDY = GenerationParams(temperature=0.0, max_tokens=12, seed=0)


def _llama_server(*extra: str):
    """`python -m llama_cpp.server` serving the default GGUF on a free loopback port."""
    pytest.importorskip("llama_cpp.server")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_gguf_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_threads", "2", "--model_alias", "smollm2", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/models", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("llama_cpp.server exited at start")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not start in 90 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def llama_server():
    yield from _llama_server("--n_ctx", "2048")


@pytest.fixture(scope="module")
def scoring_server():
    """The same server with a BOS token before every prompt: llama-cpp-python 0.3.36 pairs echoed
    prompt log-probs one position off when the model adds no BOS (SmolLM2 adds none)."""
    yield from _llama_server("--n_ctx", "512", "--kv_overrides", "tokenizer.ggml.add_bos_token=bool:true")


def test_real_server_concurrent_matches_sequential(llama_server):
    lm = OpenAILM(llama_server, "smollm2", concurrency=4)
    batch = [[{"role": "user", "content": f"Name a colour. ({i})"}] for i in range(4)]
    concurrent = [r.text for r in lm.chat(batch, GREEDY)]
    lm.concurrency = 1
    sequential = [r.text for r in lm.chat(batch, GREEDY)]
    assert all(t.strip() for t in concurrent)
    assert concurrent == sequential  # greedy decoding: order of arrival must not matter


def test_spec_loads_openai_backend_through_cache(llama_server):
    lm = load_lm(f"openai:{llama_server}#smollm2")
    msgs = [[{"role": "user", "content": "Say hello."}]]
    first = lm.chat(msgs, GREEDY)
    hits = lm.cache.hits
    assert lm.chat(msgs, GREEDY) == first
    assert lm.cache.hits == hits + 1


def test_retries_5xx_then_succeeds():
    with FaultyServer(fail_first=2) as srv:
        lm = OpenAILM(srv.url, "m", max_retries=3, timeout=5)
        out = lm.chat([[{"role": "user", "content": "hi"}]], GREEDY)
        assert [r.text for r in out] == ["echo: hi"] and out[0].finish_reason == "stop"
        assert srv.requests == 3  # two failures, then the answer


def test_retries_are_bounded_for_5xx():
    with FaultyServer(fail_first=100) as srv:
        lm = OpenAILM(srv.url, "m", max_retries=2, timeout=5)
        with pytest.raises(UserError, match="HTTP 500"):
            lm.chat([[{"role": "user", "content": "hi"}]], GREEDY)
        assert srv.requests == 3  # 1 try + 2 retries, then a one-line error


def test_timeout_is_retried_then_reported():
    with FaultyServer(fail_first=100, mode="slow", delay=3.0) as srv:
        lm = OpenAILM(srv.url, "m", max_retries=1, timeout=0.5)
        t0 = time.time()
        with pytest.raises(UserError, match="timed out after 2 tries"):
            lm.chat([[{"role": "user", "content": "hi"}]], GREEDY)
        assert srv.requests == 2
        assert time.time() - t0 < 10


def test_unreachable_server_is_one_line_error():
    lm = OpenAILM(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=0, timeout=2)
    with pytest.raises(UserError, match="cannot reach"):
        lm.chat([[{"role": "user", "content": "hi"}]], GREEDY)


# ------------------------------------------------------------------ result objects on the real server


def test_real_server_finish_reason_length(llama_server):
    lm = OpenAILM(llama_server, "smollm2")
    long = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
    r = lm.chat([long], GenerationParams(temperature=0.0, max_tokens=4))[0]
    assert r.finish_reason == "length" and r.completion_tokens == 4 and r.prompt_tokens > 5
    r = lm.chat([[{"role": "user", "content": "Say hi."}]], GenerationParams(temperature=0.0, max_tokens=64))[0]
    assert r.finish_reason == "stop" and r.completion_tokens < 64
    r = lm.complete(["Once upon a time"], GenerationParams(temperature=0.0, max_tokens=3))[0]
    assert r.finish_reason == "length" and r.text.strip() and r.completion_tokens == 3


def test_real_server_top_logprobs_sorted(llama_server):
    lm = OpenAILM(llama_server, "smollm2")
    p = GenerationParams(temperature=0.0, max_tokens=5, logprobs=True, top_logprobs=3)
    for r in (lm.chat([[{"role": "user", "content": "Name a fruit."}]], p)[0],
              lm.complete(["The capital of France is"], p)[0]):
        assert r.logprobs and len(r.logprobs) == r.completion_tokens
        for t in r.logprobs:
            assert 1 <= len(t.top) <= 3 and all(t.top[0][1] >= x for _, x in t.top)
            # the chosen token is not always the top one: llama.cpp's server applies a repeat penalty
            assert t.logprob <= t.top[0][1] + 1e-4


def test_real_server_score_counts_tokens(scoring_server):
    lm = OpenAILM(scoring_server, "smollm2")
    hf = HFLM(parse_spec("default"))  # the same model, dequantised, in transformers
    contexts = ["The capital of France is", "Water boils at", "My favourite colour"]
    conts = [" Paris, a city of lights.", " one hundred degrees Celsius at sea level.", " is blue"]
    got = lm.score(contexts, conts)
    ref = hf.score([hf.tokenizer.bos_token + c for c in contexts], conts)  # the server's BOS, see the fixture
    for cont, g, h in zip(conts, got, ref, strict=True):
        assert len(g) == len(hf.tokenizer(cont, add_special_tokens=False)["input_ids"]) == len(h)
        assert g == pytest.approx(h, abs=0.6)  # Q4_1 in llama.cpp (8-bit activations) vs its fp32 dequantisation


# ------------------------------------------------------------------ failures keep finished answers


def test_failed_request_keeps_finished_answers_and_cancels_queued(tmp_path):
    batch = [[{"role": "user", "content": f"q{i}"}] for i in range(8)]
    with FaultyServer(fail_at={3}) as srv:
        lm = CachedLM(OpenAILM(srv.url, "m", concurrency=1, max_retries=0, timeout=5), Cache(tmp_path / "a.sqlite"))
        with pytest.raises(UserError, match="HTTP 500"):
            lm.chat(batch, GREEDY)
        assert srv.requests == 3  # two answers, the failure, and nothing after it
        assert len(lm.cache) == 2  # the two answers are kept
        out = lm.chat(batch, GREEDY)  # re-run: only the six missing requests are sent
        assert srv.requests == 3 + 6 and [r.text for r in out] == [f"echo: q{i}" for i in range(8)]


def test_failed_request_with_concurrency_keeps_every_answer_sent(tmp_path):
    batch = [[{"role": "user", "content": f"q{i}"}] for i in range(12)]
    with FaultyServer(fail_at={4}, latency=0.2) as srv:
        lm = CachedLM(OpenAILM(srv.url, "m", concurrency=3, max_retries=0, timeout=5), Cache(tmp_path / "b.sqlite"))
        with pytest.raises(UserError, match="HTTP 500"):
            lm.chat(batch, GREEDY)
        assert 4 <= srv.requests < 12  # the queued requests were cancelled
        assert len(lm.cache) == srv.requests - 1  # every request that was sent and answered is cached


CTRL_C_SCRIPT = textwrap.dedent("""
    import json, sys
    from paperlab.core.cache import Cache
    from paperlab.core.models import CachedLM, GenerationParams, OpenAILM

    url, cache_path = sys.argv[1], sys.argv[2]
    lm = CachedLM(OpenAILM(url, "m", concurrency=2, max_retries=0), Cache(cache_path))
    batch = [[{"role": "user", "content": f"q{i}"}] for i in range(40)]
    try:
        lm.chat(batch, GenerationParams(temperature=0.0, max_tokens=4),
                on_result=lambda i, r: print(json.dumps({"done": i}), flush=True))
    except KeyboardInterrupt:
        print(json.dumps({"interrupted": True}), flush=True)
""")


def test_ctrl_c_keeps_every_finished_answer(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    with FaultyServer(latency=0.3) as srv:
        proc = subprocess.Popen([sys.executable, str(script), srv.url, str(tmp_path / "c.sqlite")],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        done, interrupted = 0, False
        for line in proc.stdout:
            msg = json.loads(line)
            if "done" in msg:
                done += 1
                if done == 4:
                    proc.send_signal(signal.SIGINT)
            else:
                interrupted = True
        proc.wait(timeout=30)
        sent = srv.requests
    assert interrupted and 4 <= done < 40 and sent < 40
    # every answer reported finished is in the cache (at most one more, stored just as Ctrl-C arrived)
    assert done <= len(Cache(tmp_path / "c.sqlite")) <= done + 1


def test_real_server_streams_the_same_text(llama_server):
    lm = OpenAILM(llama_server, "smollm2")
    conv = [{"role": "user", "content": "Describe the sea in two sentences."}]
    p = GenerationParams(temperature=0.0, max_tokens=40)
    pieces = list(lm.stream_chat(conv, p))
    assert len(pieces) > 3 and "".join(pieces) == lm.chat([conv], p)[0].text
