"""The steering hook, the prefix cache and the detector artefact on a tiny real Llama."""

import json

import pytest
import torch

from paperlab.core.errors import UserError
from paperlab.tsv.detector import Detector, score_file
from paperlab.tsv.steering import (
    Encoded,
    SteeringVector,
    decoder_layers,
    encode_dataset,
    encode_texts,
    full_embeddings,
    suffix_embeddings,
)

LAYER = 2


def _inputs(tok):
    qs = ["Why is the sky blue?", "Who wrote Hamlet?", "What is 2 + 2?", "Where is Paris?", "Is water wet?"]
    ans = [" Because of Rayleigh scattering of sunlight.", " Shakespeare.", " Four, of course it is four.",
           " In France.", " It depends on the definition of wet."]
    return encode_texts(tok, [f"Q: {q} A:" for q in qs], ans)


def _steer(dim, seed=1):
    s = SteeringVector(dim, lam=5.0)
    with torch.no_grad():
        s.v.copy_(torch.randn(dim, generator=torch.Generator().manual_seed(seed)) * 0.1)
    return s


def _layer_outputs(model, ids):
    """Output of every decoder block, read as the input of the next block (and the final norm)."""
    outs = []
    hooks = [m.register_forward_pre_hook(lambda m, a: outs.append(a[0].detach().clone()))
             for m in list(decoder_layers(model))[1:] + [model.model.norm]]
    try:
        with torch.no_grad():
            model.model(input_ids=ids, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return outs


def test_hook_changes_only_the_chosen_layer_and_is_removable(tiny):
    model, tok = tiny
    ids = _inputs(tok)[0].ids[None]
    base = _layer_outputs(model, ids)
    steer = _steer(model.config.hidden_size)
    with steer.attached(model, LAYER):
        steered = _layer_outputs(model, ids)
    for i in range(LAYER):  # blocks before the steering layer: unchanged
        torch.testing.assert_close(steered[i], base[i], atol=0, rtol=0)
    # block l's output is shifted by exactly lambda * v at every position
    torch.testing.assert_close(steered[LAYER] - base[LAYER], (5.0 * steer.v).expand_as(base[LAYER]),
                               atol=1e-5, rtol=0)
    for i in range(LAYER + 1, len(base)):  # later blocks: changed
        assert (steered[i] - base[i]).abs().max() > 1e-4
    after = _layer_outputs(model, ids)  # hook removed: the model is the original again
    for a, b in zip(after, base, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_zero_vector_is_the_identity(tiny):
    model, tok = tiny
    enc = _inputs(tok)
    plain = full_embeddings(model, enc, None, LAYER)
    zero = full_embeddings(model, enc, SteeringVector(model.config.hidden_size), LAYER)
    torch.testing.assert_close(plain, zero, atol=0, rtol=0)


def test_prefix_cached_forward_and_gradient_equal_the_full_forward(tiny):
    model, tok = tiny
    enc = _inputs(tok)
    cache = encode_dataset(model, enc, LAYER, batch_size=2)
    layers_before = list(decoder_layers(model))
    steer = _steer(model.config.hidden_size)
    idx = [4, 0, 2, 1]
    target = torch.randn(len(idx), model.config.hidden_size, generator=torch.Generator().manual_seed(5))

    r_cached = suffix_embeddings(model, cache, idx, steer)
    (r_cached * target).sum().backward()
    g_cached = steer.v.grad.clone()
    steer.v.grad = None
    assert list(decoder_layers(model)) == layers_before  # real blocks restored

    from paperlab.tsv.steering import forward_embeddings

    with steer.attached(model, LAYER):
        r_full = forward_embeddings(model, [enc[i] for i in idx])
    (r_full * target).sum().backward()
    torch.testing.assert_close(r_cached, r_full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_cached, steer.v.grad, atol=1e-5, rtol=1e-4)
    # the cache's unsteered embeddings are the plain full-forward embeddings
    torch.testing.assert_close(cache.embeddings, full_embeddings(model, enc, None, LAYER), atol=1e-5, rtol=1e-5)


def test_answer_logprob_matches_manual_computation(tiny):
    model, tok = tiny
    enc = _inputs(tok)[:2]
    cache = encode_dataset(model, enc, LAYER)
    e = enc[1]
    with torch.no_grad():
        logits = model(input_ids=e.ids[None]).logits[0]
    lp = torch.log_softmax(logits, -1)
    a, b = e.answer_start, e.answer_end
    manual = lp[a - 1: b - 1].gather(1, e.ids[a:b, None])[:, 0].mean()
    torch.testing.assert_close(cache.answer_logprob[1], manual, atol=1e-5, rtol=1e-5)


def _detector(model, tiny_dir):
    g = torch.Generator().manual_seed(7)
    d = model.config.hidden_size
    return Detector(model=f"hf:{tiny_dir}", layer=LAYER, lam=5.0, tau=0.1, v=0.1 * torch.randn(d, generator=g),
                    mu=torch.nn.functional.normalize(torch.randn(2, d, generator=g), dim=1))


def test_detector_save_load_round_trip_gives_identical_scores(tiny, tiny_dir, tmp_path):
    model, tok = tiny
    det = _detector(model, tiny_dir)
    qs, ans = ["Who wrote Hamlet?", "Where is Paris?"], ["Shakespeare.", "In Spain."]
    before = det.score(qs, ans, model=model, tokenizer=tok)
    det.save(tmp_path / "det")
    again = Detector.load(tmp_path / "det")
    assert (again.layer, again.lam, again.tau, again.model) == (det.layer, det.lam, det.tau, det.model)
    assert again.score(qs, ans, model=model, tokenizer=tok) == before
    assert all(0 < s < 1 for s in before)
    inp = tmp_path / "pairs.jsonl"
    inp.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in zip(qs, ans, strict=True)))
    recs = score_file(tmp_path / "det", inp, tmp_path / "out.jsonl", model=model, tokenizer=tok)
    assert [r["p_truthful"] for r in recs] == before
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("content, fragment", [
    ('{"question": "Q?", "answer": "A."}\nnot json\n', "not valid JSON"),
    ('{"question": "Q?"}\n', "lacks string fields"),
    ("", "no records"),
])
def test_bad_input_file_is_a_one_line_user_error(tiny, tiny_dir, tmp_path, capsys, content, fragment):
    model, _ = tiny
    _detector(model, tiny_dir).save(tmp_path / "det")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    with pytest.raises(UserError, match=fragment):
        score_file(tmp_path / "det", bad)
    from paperlab.cli import main

    assert main(["tsv", "score", "--detector", str(tmp_path / "det"), "--input", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1


def test_missing_detector_and_missing_input_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not a TSV detector"):
        Detector.load(tmp_path)
    from paperlab.tsv.detector import read_pairs

    with pytest.raises(UserError, match="file not found"):
        read_pairs(tmp_path / "nope.jsonl")


def test_encoded_answer_start_points_at_the_answer(tiny):
    _, tok = tiny
    e = encode_texts(tok, ["Q: Who wrote Hamlet? A:"], [" Shakespeare"])[0]
    assert isinstance(e, Encoded)
    assert tok.decode(e.ids[e.answer_start: e.answer_end]).lower() == "shakespeare"


def test_score_keeps_extra_fields_and_rejects_empty_answers(tiny, tiny_dir, tmp_path, capsys):
    model, tok = tiny
    _detector(model, tiny_dir).save(tmp_path / "det")
    inp = tmp_path / "pairs.jsonl"
    rows = [{"id": "a1", "question": "Who wrote Hamlet?", "answer": "Shakespeare.", "meta": {"src": "x"}},
            {"question": "Where is Paris?", "answer": "In Spain.", "p_truthful": "old", "gold": 0}]
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs = score_file(tmp_path / "det", inp, model=model, tokenizer=tok)
    assert recs[0]["id"] == "a1" and recs[0]["meta"] == {"src": "x"} and recs[1]["gold"] == 0
    assert list(recs[0]) == ["id", "question", "answer", "meta", "p_truthful"]
    assert all(isinstance(r["p_truthful"], float) for r in recs)  # an input field of that name is replaced
    for empty in ("", "   "):
        inp.write_text(json.dumps({"question": "Q?", "answer": empty}) + "\n")
        with pytest.raises(UserError, match="record 1 has an empty answer"):
            score_file(tmp_path / "det", inp, model=model, tokenizer=tok)
    from paperlab.cli import main

    assert main(["tsv", "score", "--detector", str(tmp_path / "det"), "--input", str(inp)]) == 2
    err = capsys.readouterr().err.strip()
    assert "empty answer" in err and len(err.splitlines()) == 1


def _damage(folder, how):
    meta_p, tens_p = folder / "detector.json", folder / "tensors.pt"
    meta = json.loads(meta_p.read_text())
    t = torch.load(tens_p, weights_only=True)
    if how == "truncated tensors":
        tens_p.write_bytes(tens_p.read_bytes()[:100])
    elif how == "garbage tensors":
        tens_p.write_bytes(b"not a torch file at all")
    elif how == "missing mu":
        torch.save({"v": t["v"]}, tens_p)
    elif how == "wrong shape":
        torch.save({"v": t["v"], "mu": t["mu"][:1]}, tens_p)
    elif how == "nan":
        torch.save({"v": t["v"] * float("nan"), "mu": t["mu"]}, tens_p)
    elif how == "not a dict":
        torch.save([t["v"], t["mu"]], tens_p)
    elif how == "missing key":
        del meta["layer"]
    elif how == "bad type":
        meta["tau"] = "0.1"
    elif how == "negative tau":
        meta["tau"] = -1
    elif how == "json list":
        meta = [meta]
    elif how == "bad json":
        meta_p.write_text('{"format": ')
        return
    meta_p.write_text(json.dumps(meta))


DAMAGES = ["truncated tensors", "garbage tensors", "missing mu", "wrong shape", "nan", "not a dict", "missing key",
           "bad type", "negative tau", "json list", "bad json"]


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_detector_is_a_one_line_error(tiny, tiny_dir, tmp_path, capsys, how):
    model, _ = tiny
    det = _detector(model, tiny_dir).save(tmp_path / "det")
    _damage(det, how)
    with pytest.raises(UserError):
        Detector.load(det)
    inp = tmp_path / "pairs.jsonl"
    inp.write_text(json.dumps({"question": "Q?", "answer": "A."}) + "\n")
    from paperlab.cli import main

    assert main(["tsv", "score", "--detector", str(det), "--input", str(inp)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err


def test_chat_detector_embeds_answers_in_the_chat_template(tiny, tiny_dir):
    """A detector trained on chat-templated answers refuses a model without a template (it would embed
    the answers in another context than the one they were generated and trained in)."""
    model, tok = tiny
    det = _detector(model, tiny_dir)
    det.chat = True
    with pytest.raises(UserError, match="chat template"):
        det.score(["Q?"], ["A."], model=model, tokenizer=tok)
