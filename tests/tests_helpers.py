"""Small shared test utilities: a free port, a local fault-injecting OpenAI-compatible server, an
OpenAI-compatible /embeddings server around any local encoder, a tiny random transformers Llama folder."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


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


def save_tiny_llama(out: Path, text: str, vocab_size: int, intermediate_size: int, max_positions: int,
                    **config) -> Path:
    """A random 2-layer transformers Llama (hidden 32, 4 heads, 2 KV heads) with a byte-level BPE tokenizer
    of ``vocab_size`` trained on ``text``, saved to ``out`` (seconds to build; its outputs are meaningless).
    ``config``: further ``LlamaConfig`` fields."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=vocab_size, min_frequency=2, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>")
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=intermediate_size, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **config)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out
