"""The OpenAI-compatible backend against real local servers: llama.cpp's server and a faulty one."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest

from paperlab.core.errors import UserError
from paperlab.core.models import GenerationParams, OpenAILM, default_gguf_path, load_lm
from tests_helpers import FaultyServer, free_port

GREEDY = GenerationParams(temperature=0.0, max_tokens=12, seed=0)


@pytest.fixture(scope="module")
def llama_server():
    """`python -m llama_cpp.server` serving the default GGUF on a free loopback port."""
    pytest.importorskip("llama_cpp.server")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_gguf_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--model_alias", "smollm2"],
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


def test_real_server_concurrent_matches_sequential(llama_server):
    lm = OpenAILM(llama_server, "smollm2", concurrency=4)
    batch = [[{"role": "user", "content": f"Name a colour. ({i})"}] for i in range(4)]
    concurrent = lm.chat(batch, GREEDY)
    lm.concurrency = 1
    sequential = lm.chat(batch, GREEDY)
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
        assert out == ["echo: hi"]
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
