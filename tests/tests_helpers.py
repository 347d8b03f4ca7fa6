"""Small shared test utilities: a free port, a local fault-injecting OpenAI-compatible server, an
OpenAI-compatible /embeddings server around any local encoder."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultyServer:
    """An OpenAI-compatible /v1/chat/completions and /v1/completions endpoint on 127.0.0.1 that
    fails on purpose.

    The first ``fail_first`` requests, and the requests numbered in ``fail_at`` (1-based, in order
    of arrival), answer HTTP 500 (or sleep ``delay`` seconds when ``mode='slow'``); the others
    answer a normal completion that echoes the last user message (or the prompt). ``latency``
    seconds are added to every request (a stand-in for a remote server's latency). ``requests``
    counts the requests received.
    """

    def __init__(self, fail_first: int = 0, mode: str = "500", delay: float = 0.0, latency: float = 0.0,
                 fail_at: Collection[int] = ()):
        self.fail_first, self.mode, self.delay, self.latency = fail_first, mode, delay, latency
        self.fail_at = set(fail_at)
        self.requests = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with outer._lock:
                    outer.requests += 1
                    n = outer.requests
                time.sleep(outer.latency)
                if n <= outer.fail_first or n in outer.fail_at:
                    if outer.mode == "slow":
                        time.sleep(outer.delay)
                    else:
                        self.send_response(500)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()
                        self.wfile.write(b'{"error": {"message": "boom"}}')
                        return
                usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                if "messages" in body:
                    text = "echo: " + body["messages"][-1]["content"]
                    payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": text}}], "usage": usage}
                else:
                    payload = {"id": "x", "object": "text_completion", "created": 0, "model": body.get("model", "m"),
                               "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                            "text": "echo: " + body["prompt"]}], "usage": usage}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class EmbeddingServer:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint on 127.0.0.1 around a local ``encode``
    function (``list[str] -> array [n, dim]``). ``requests`` counts requests, ``texts`` every text
    received."""

    def __init__(self, encode: Callable):
        self.requests, self.texts = 0, []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                with outer._lock:
                    outer.requests += 1
                    outer.texts.extend(inputs)
                    vecs = outer.encode(inputs)
                data = json.dumps({"object": "list", "model": body.get("model", "m"),
                                   "data": [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                                            for i, v in enumerate(vecs)],
                                   "usage": {"prompt_tokens": 0, "total_tokens": 0}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.encode = encode
        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
