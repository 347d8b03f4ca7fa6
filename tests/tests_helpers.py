"""Small shared test utilities (a free port, a local fault-injecting OpenAI-compatible server)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultyServer:
    """An OpenAI-compatible /v1/chat/completions endpoint on 127.0.0.1 that fails on purpose.

    ``fail_first`` requests answer HTTP 500 (or sleep ``delay`` seconds when ``mode='slow'``);
    later requests answer a normal completion that echoes the last user message. ``latency``
    seconds are added to every request (a stand-in for a remote server's latency).
    """

    def __init__(self, fail_first: int = 0, mode: str = "500", delay: float = 0.0, latency: float = 0.0):
        self.fail_first, self.mode, self.delay, self.latency = fail_first, mode, delay, latency
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
                if n <= outer.fail_first:
                    if outer.mode == "slow":
                        time.sleep(outer.delay)
                    else:
                        self.send_response(500)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()
                        self.wfile.write(b'{"error": {"message": "boom"}}')
                        return
                text = "echo: " + body["messages"][-1]["content"]
                payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
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
