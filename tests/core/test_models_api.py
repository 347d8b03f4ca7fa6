"""The LanguageModel API on the real default model (llama.cpp and transformers): result objects,
per-request seeds, kill-and-resume, finish reasons, log-probabilities, raw completion, GGUF cache keys."""

from __future__ import annotations

import copy
import json
import random
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from paperlab.core.cache import Cache
from paperlab.core.errors import UserError
from paperlab.core.models import (
    HFLM,
    CachedLM,
    ChatResult,
    GenerationParams,
    TokenLogprob,
    default_gguf_path,
    dequantised_folder,
    file_sha256,
    load_lm,
    parse_spec,
    per_request,
)

pytest.importorskip("llama_cpp")

BATCH = [[{"role": "user", "content": c}] for c in
         ("Name a fruit.", "Write a few words about the sea.", "Say something about cats.", "Give a colour.")]
LONG = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def sampled(i: int, max_tokens: int = 10) -> GenerationParams:
    return GenerationParams(temperature=1.0, top_p=0.95, max_tokens=max_tokens, seed=1000 + i)


@pytest.fixture(scope="module")
def llama():
    return load_lm("default", cache=False)


@pytest.fixture(scope="module")
def hf():
    return HFLM(parse_spec("default"))  # the default GGUF dequantised into a transformers model


# ------------------------------------------------------------------ params and results


def test_params_validation_is_one_line_user_error():
    with pytest.raises(UserError, match="top_logprobs 21"):
        GenerationParams(logprobs=True, top_logprobs=21)
    with pytest.raises(UserError, match="top_logprobs -1"):
        GenerationParams(logprobs=True, top_logprobs=-1)
    with pytest.raises(UserError, match="without logprobs"):
        GenerationParams(top_logprobs=3)
    with pytest.raises(UserError, match="stop"):
        GenerationParams(stop="\n")
    assert GenerationParams(stop=["a", "b"]).stop == ("a", "b")
    with pytest.raises(UserError, match="2 GenerationParams for 3 requests"):
        per_request([GenerationParams()] * 2, 3)
    with pytest.raises(UserError, match="unknown model spec"):
        load_lm("nonsense")
    with pytest.raises(UserError, match="unknown option.*n_gpu") as e:
        load_lm("default", n_gpu=3)
    assert "\n" not in str(e.value)


def test_chat_result_round_trips_through_json():
    r = ChatResult("hi", "length", 7, 3, [TokenLogprob("h", -0.5, [("h", -0.5), ("H", -1.5)]),
                                          TokenLogprob("i", -0.1, [])])
    back = ChatResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r and str(back) == "hi"
    assert ChatResult.from_dict(ChatResult("x").to_dict()).logprobs is None


# ------------------------------------------------------------------ per-request seeds


def _shuffled_texts(lm, n: int, max_tokens: int) -> tuple[list[str], list[str]]:
    batch, plist = BATCH[:n], [sampled(i, max_tokens) for i in range(n)]
    texts = [r.text for r in lm.chat(batch, plist)]
    perm = list(range(n))
    random.Random(1).shuffle(perm)
    shuffled = lm.chat([batch[j] for j in perm], [plist[j] for j in perm])
    back = [""] * n
    for k, j in enumerate(perm):
        back[j] = shuffled[k].text
    return texts, back


def test_llama_per_request_seed_independent_of_batch(llama):
    texts, shuffled = _shuffled_texts(llama, 4, 8)
    assert texts == shuffled and all(texts)
    alone = llama.chat([BATCH[2]], sampled(2, 8))[0].text  # the same request without batch-mates
    assert alone == texts[2]
    seeds = {llama.chat([BATCH[0]], sampled(i, 8))[0].text for i in range(3)}
    assert len(seeds) > 1  # the seed matters


def test_hf_per_request_seed_independent_of_batch(hf):
    texts, shuffled = _shuffled_texts(hf, 3, 5)  # sampled requests run one by one: no batch effect
    assert texts == shuffled and all(texts)


RESUME_SCRIPT = textwrap.dedent("""
    import json, sys
    from paperlab.core.cache import Cache
    from paperlab.core.models import CachedLM, GenerationParams, load_lm

    cache_path, n = sys.argv[1], int(sys.argv[2])
    inner = load_lm("default", cache=False)
    calls = 0
    real = inner._chat_one

    def counted(messages, params):
        global calls
        calls += 1
        return real(messages, params)

    inner._chat_one = counted
    lm = CachedLM(inner, Cache(cache_path))
    batch = [[{"role": "user", "content": f"Write one sentence about the number {i}."}] for i in range(n)]
    params = [GenerationParams(temperature=0.9, top_p=0.95, max_tokens=12, seed=100 + i) for i in range(n)]
    out = lm.chat(batch, params, on_result=lambda i, r: print(json.dumps({"done": i}), flush=True))
    print(json.dumps({"texts": [r.text for r in out], "calls": calls}), flush=True)
""")


def _run_generation(script, cache_path, n: int, kill_after: int | None = None) -> dict | None:
    proc = subprocess.Popen([sys.executable, str(script), str(cache_path), str(n)], stdout=subprocess.PIPE, text=True)
    done, final = 0, None
    assert proc.stdout is not None
    for line in proc.stdout:
        msg = json.loads(line)
        if "done" in msg:
            done += 1
            if kill_after is not None and done >= kill_after:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return None
        else:
            final = msg
    assert proc.wait() == 0
    return final


def test_killed_generation_resumes_with_the_same_texts(tmp_path):
    script = tmp_path / "gen.py"
    script.write_text(RESUME_SCRIPT)
    n = 6
    full = _run_generation(script, tmp_path / "full.sqlite", n)
    assert full is not None and full["calls"] == n
    killed_cache = tmp_path / "killed.sqlite"
    assert _run_generation(script, killed_cache, n, kill_after=2) is None  # SIGKILL after 2 answers
    finished = len(Cache(killed_cache))
    assert 2 <= finished < n
    resumed = _run_generation(script, killed_cache, n)
    assert resumed is not None
    assert resumed["calls"] == n - finished  # only the missing answers are computed
    assert resumed["texts"] == full["texts"]  # and they equal the uninterrupted run's


# ------------------------------------------------------------------ finish reasons, logprobs, complete


def test_finish_reason_length_and_stop_llama(llama):
    r = llama.chat([LONG], GenerationParams(temperature=0.0, max_tokens=4))[0]
    assert r.finish_reason == "length" and r.completion_tokens == 4 and r.prompt_tokens > 5
    r = llama.chat([[{"role": "user", "content": "Say hi."}]], GenerationParams(temperature=0.0, max_tokens=64))[0]
    assert r.finish_reason == "stop" and r.completion_tokens < 64


def test_finish_reason_length_and_stop_hf(hf):
    r = hf.chat([LONG], GenerationParams(temperature=0.0, max_tokens=4))[0]
    assert r.finish_reason == "length" and r.completion_tokens == 4 and r.prompt_tokens > 5
    r = hf.chat([[{"role": "user", "content": "Say hi."}]], GenerationParams(temperature=0.0, max_tokens=64))[0]
    assert r.finish_reason == "stop" and r.completion_tokens < 64


@pytest.mark.parametrize("backend", ["llama", "hf"])
def test_stop_string_ends_the_answer(backend, request):
    lm = request.getfixturevalue(backend)
    r = lm.complete(["1, 2, 3, 4,"], GenerationParams(temperature=0.0, max_tokens=12, stop=(" 7",)))[0]
    assert r.text.startswith(" 5, 6,") and " 7" not in r.text and r.finish_reason == "stop"


def test_hf_logprobs_are_the_models_own_log_softmax(hf):
    import torch

    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    p = GenerationParams(temperature=0.7, top_p=1.0, max_tokens=6, seed=3, logprobs=True, top_logprobs=4)
    r = hf.chat([msgs], p)[0]
    assert r.logprobs is not None and len(r.logprobs) == r.completion_tokens > 0
    tok, model = hf.tokenizer, hf.model
    prompt_ids = tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
    gen_ids = [tok.encode(t.token, add_special_tokens=False) for t in r.logprobs]
    assert all(len(g) == 1 for g in gen_ids)
    ids = torch.tensor([prompt_ids + [g[0] for g in gen_ids]], device=model.device)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    for t, (lp, g) in enumerate(zip(r.logprobs, gen_ids, strict=True)):
        row = logp[len(prompt_ids) - 1 + t]
        assert lp.logprob == pytest.approx(float(row[g[0]]), abs=1e-3)  # raw model, not the T=0.7 sampler
        top = torch.topk(row, 4)
        assert [a for a, _ in lp.top] == [tok.decode([int(j)]) for j in top.indices]
        assert [b for _, b in lp.top] == pytest.approx([float(v) for v in top.values], abs=1e-3)


def test_llama_top_logprobs_sorted(llama):
    p = GenerationParams(temperature=0.0, max_tokens=5, logprobs=True, top_logprobs=3)
    for r in (llama.chat([BATCH[0]], p)[0], llama.complete(["The capital of France is"], p)[0]):
        assert r.logprobs and len(r.logprobs) == r.completion_tokens
        for t in r.logprobs:
            assert 1 <= len(t.top) <= 3
            assert all(t.top[0][1] >= x for _, x in t.top)
            assert t.top[0][1] == pytest.approx(t.logprob, abs=1e-4)  # greedy: the chosen token is the top one
    assert llama.chat([BATCH[0]], GenerationParams(temperature=0.0, max_tokens=3))[0].logprobs is None


def test_complete_on_llama_and_through_the_cache(llama, tmp_path):
    lm = CachedLM(llama, Cache(tmp_path / "c.sqlite"))
    p = GenerationParams(temperature=0.0, max_tokens=6)
    r = lm.complete(["The capital of France is"], p)[0]
    assert r.text.strip() and r.finish_reason in ("stop", "length") and r.prompt_tokens >= 5
    assert lm.complete(["The capital of France is"], p)[0] == r and lm.cache.hits == 1


def test_complete_on_hf_needs_no_chat_template(hf):
    base = copy.copy(hf)
    base.tokenizer = copy.deepcopy(hf.tokenizer)
    base.tokenizer.chat_template = None  # a base model's tokenizer
    p = GenerationParams(temperature=0.0, max_tokens=5)
    r = base.complete(["The capital of France is"], p)[0]
    assert r.text.strip() and r.finish_reason == "length" and r.completion_tokens == 5
    with pytest.raises(UserError, match="no chat template"):
        base.chat([BATCH[0]], p)


# ------------------------------------------------------------------ GGUF cache keys, load_lm memo


def test_gguf_cache_key_is_the_file_content(tmp_path):
    src = default_gguf_path()
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    shutil.copyfile(src, a)
    shutil.copyfile(src, b)
    cache = Cache(tmp_path / "c.sqlite")
    la, lb = load_lm(f"gguf:{a}", cache=cache), load_lm(f"gguf:{b}", cache=cache)
    p = GenerationParams(temperature=0.0, max_tokens=4)
    assert la.key(BATCH[0], p) == lb.key(BATCH[0], p)
    first = la.chat([BATCH[0]], p)
    assert lb.chat([BATCH[0]], p) == first and cache.hits == 1 and len(cache) == 1  # the copy shares the entry
    with open(b, "ab") as f:  # a different file under the same name
        f.write(b"\0")
    assert file_sha256(b) != file_sha256(a)
    assert dequantised_folder(b) != dequantised_folder(a) and dequantised_folder(a) == dequantised_folder(src)


def test_file_hash_is_memoised(tmp_path, monkeypatch):
    import paperlab.core.models as models

    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    calls = []
    real = models.hashlib.sha256
    monkeypatch.setattr(models.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    h = file_sha256(f)
    assert file_sha256(f) == h and len(calls) == 1  # computed once
    f.write_bytes(b"abcd")  # new size/mtime: hashed again
    assert file_sha256(f) != h and len(calls) == 2


def test_load_lm_honours_keyword_arguments(llama):
    small = load_lm("default", cache=False, n_ctx=512)
    assert small is not llama and small._llm.n_ctx() == 512
    assert load_lm("default", cache=False, n_ctx=512) is small and load_lm("default", cache=False) is llama


@pytest.mark.parametrize("backend", ["llama", "hf"])
def test_repetition_penalty_breaks_a_greedy_loop(backend, request):
    # greedy continuation of a repeating pattern repeats it; a strong penalty on tokens already in the
    # context must change the continuation, and 1.0 must be exactly the default decoding
    lm = request.getfixturevalue(backend)
    prompt = ["a b a b a b a b a b a b"]
    plain = lm.complete(prompt, GenerationParams(temperature=0.0, max_tokens=8))[0].text
    same = lm.complete(prompt, GenerationParams(temperature=0.0, max_tokens=8, repetition_penalty=1.0))[0].text
    penalised = lm.complete(prompt, GenerationParams(temperature=0.0, max_tokens=8, repetition_penalty=2.0))[0].text
    assert same == plain
    assert plain.split()[:2] == ["a", "b"]
    assert penalised != plain


def test_repetition_penalty_validated_and_cache_keys_stable():
    from paperlab.core.models import _key_params

    with pytest.raises(UserError, match="repetition_penalty"):
        GenerationParams(repetition_penalty=0.0)
    # requests without a penalty keep the cache keys they had before the field existed
    assert "repetition_penalty" not in _key_params(GenerationParams())
    assert _key_params(GenerationParams(repetition_penalty=1.2))["repetition_penalty"] == 1.2


# ------------------------------------------------------------------ streaming


@pytest.mark.parametrize("backend", ["llama", "hf"])
@pytest.mark.parametrize("stop", [(), (".",)])
def test_stream_pieces_join_to_the_chat_text(backend, stop, request):
    lm = request.getfixturevalue(backend)
    conv = [{"role": "user", "content": "Describe the sea in two sentences."}]
    p = GenerationParams(temperature=0.0, max_tokens=40, stop=stop)
    pieces = list(lm.stream_chat(conv, p))
    assert len(pieces) > 3  # it really streams: many pieces, not the whole answer at the end
    assert "".join(pieces) == lm.chat([conv], p)[0].text


def test_cached_backend_streams_from_the_model_and_caches_nothing(llama, tmp_path):
    from paperlab.core.cache import Cache
    from paperlab.core.models import CachedLM

    cache = Cache(tmp_path / "c.sqlite")
    lm = CachedLM(llama, cache)
    conv = [{"role": "user", "content": "Name a fruit."}]
    text = "".join(lm.stream_chat(conv, GenerationParams(temperature=0.0, max_tokens=12)))
    assert text and len(cache) == 0
