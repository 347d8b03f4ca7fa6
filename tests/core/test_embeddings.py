"""Embedder specs on the real offline MiniLM: default, hf: folders, and an OpenAI-compatible endpoint."""

from __future__ import annotations

import numpy as np
import pytest

from paperlab.core.cache import Cache
from paperlab.core.embeddings import load_embedder
from paperlab.core.errors import UserError
from paperlab.core.metrics import embed, embedding_similarity, minilm_path, sentence_encoder
from tests_helpers import EmbeddingServer

pytest.importorskip("sentence_transformers")

TEXTS = ["The cat sleeps on the sofa.", "A cat is napping on the couch.", "Interest rates rose in March."]


@pytest.fixture(scope="module")
def minilm():
    return load_embedder()


def test_default_embedder_is_normalised_minilm(minilm):
    x = minilm.embed(TEXTS)
    assert minilm.id == "embed:minilm" and x.shape == (3, 384) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.3  # paraphrases are closer than unrelated sentences
    assert minilm.embed([]).shape == (0, 384)
    assert load_embedder("embed:minilm") is minilm


def test_metrics_use_the_embedder(minilm):
    assert np.allclose(embed(TEXTS), minilm.embed(TEXTS))
    sims = embedding_similarity(TEXTS[:2], TEXTS[1:], embedder=minilm)
    assert sims == pytest.approx(embedding_similarity(TEXTS[:2], TEXTS[1:]))
    assert sims == pytest.approx(embedding_similarity(TEXTS[:2], TEXTS[1:], embedder="embed:minilm"))
    assert sims[0] > sims[1]


def test_hf_folders(minilm, tmp_path):
    ref = minilm.embed(TEXTS)
    assert np.allclose(load_embedder(f"hf:{minilm_path()}").embed(TEXTS), ref, atol=1e-5)
    # a plain transformers folder (no sentence-transformers config): mean pooling, then normalised
    from transformers import AutoModel, AutoTokenizer

    AutoModel.from_pretrained(minilm_path()).save_pretrained(tmp_path / "plain")
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(tmp_path / "plain")
    plain = load_embedder(f"hf:{tmp_path / 'plain'}").embed(TEXTS)
    assert np.allclose(plain, ref, atol=1e-4)


def test_openai_endpoint_matches_local_and_is_cached(minilm, tmp_path):
    # a real MiniLM behind /v1/embeddings, unnormalised: the client normalises
    encode = lambda texts: sentence_encoder().encode(texts, normalize_embeddings=False)  # noqa: E731
    with EmbeddingServer(encode) as srv:
        cache = Cache(tmp_path / "e.sqlite")
        emb = load_embedder(f"openai:{srv.url}#minilm", cache=cache, batch_size=2)
        x = emb.embed(TEXTS)
        assert np.allclose(x, minilm.embed(TEXTS), atol=1e-5)
        assert srv.requests == 2 and len(cache) == 3  # batches of two, one entry per text
        assert np.allclose(emb.embed(TEXTS[::-1]), x[::-1]) and srv.requests == 2  # all from the cache
        emb.embed([TEXTS[0], "Something new."])
        assert srv.requests == 3 and srv.texts[-1:] == ["Something new."]  # only the missing text is sent
        assert np.allclose(embed(TEXTS, embedder=emb), x)


def test_bad_specs_are_one_line_errors(tmp_path):
    for spec, msg in [("nonsense", "unknown embedding spec"), ("openai:localhost#m", "bad OpenAI"),
                      (f"hf:{tmp_path / 'missing'}", "not found"), ("openai:http://x/v1", "bad OpenAI"),
                      ("openai:http://127.0.0.1:1/v1#m", "unknown option")]:
        with pytest.raises(UserError, match=msg) as e:
            load_embedder(spec, **({"bogus": 1} if msg == "unknown option" else {}))
        assert "\n" not in str(e.value)
