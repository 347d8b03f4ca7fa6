"""Identities of the shared internals helpers, on tiny random transformers models (real model classes).

Hooks: the captured residual at block L is ``output_hidden_states[L + 1]``; adding v at block L moves
the next block's input by exactly v; a zero edit is the identity; hooks go away on exit, also on errors.
Log-probs: equal to a manual ``log_softmax`` gather of ``model(...).logits`` and independent of batching
and padding. Hidden states: left and right padding agree and match unpadded single-sequence passes.
"""

import pytest
import torch

from paperlab.core.errors import UserError
from paperlab.core.internals import (
    base_model,
    decoder_layers,
    hidden_states,
    last_token,
    lm_logits,
    pad_batch,
    residual_hook,
    sequence_logprobs,
    token_logprobs,
)

TEXTS = ["It was the best of times, it was the worst of times.", "Call me Ishmael.",
         "The sky above the port was the colour of television, tuned to a dead channel.", "Yes."]


@pytest.fixture(scope="module")
def tok():
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    from paperlab.core.data import data_path

    text = data_path("gutenberg", "174.txt").read_text(encoding="utf-8")[:20000]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=300, min_frequency=2, special_tokens=["<s>", "<pad>"])
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="<s>",
                                   pad_token="<pad>")


def _llama(vocab, layers=4, **kw):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, **kw)
    return LlamaForCausalLM(cfg).eval()


def _gpt2(vocab):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=4, n_head=4, n_positions=256)).eval()


@pytest.fixture(scope="module")
def llama(tok):
    torch.set_num_threads(1)
    return _llama(len(tok))


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def any_model(request, tok, llama):
    return llama if request.param == "llama" else _gpt2(len(tok))


def _ids(tok, text, bos=True):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return torch.tensor([([tok.bos_token_id] if bos else []) + ids])


def _block_inputs(model, ids):
    """The input of every block after the first, then the input of the final norm (= block outputs)."""
    seen = []
    nxt = list(decoder_layers(model))[1:]
    hooks = [m.register_forward_pre_hook(lambda m, a, k: seen.append((a[0] if a else k["hidden_states"]).clone()),
                                         with_kwargs=True) for m in nxt]
    try:
        with torch.no_grad():
            base_model(model)(input_ids=ids, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# --------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------


def test_decoder_layers_finds_blocks_of_common_architectures(tok):
    from transformers import (
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        OPTConfig,
        OPTForCausalLM,
    )

    llama, gpt2 = _llama(len(tok), layers=3), _gpt2(len(tok))
    neox = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=64))
    opt = OPTForCausalLM(OPTConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
                                   num_attention_heads=4, word_embed_proj_dim=32))
    assert decoder_layers(llama) is llama.model.layers and len(decoder_layers(llama)) == 3
    assert decoder_layers(gpt2) is gpt2.transformer.h
    assert decoder_layers(neox) is neox.gpt_neox.layers
    assert decoder_layers(opt) is opt.model.decoder.layers
    for m in (llama, gpt2, neox, opt):  # the bare base models too
        assert decoder_layers(base_model(m)) is decoder_layers(m)
    with pytest.raises(UserError, match="cannot find the decoder blocks of Linear"):
        decoder_layers(torch.nn.Linear(2, 2))


def test_lm_logits_equal_model_logits_including_soft_capping(tok, llama):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    gemma = Gemma2ForCausalLM(Gemma2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                           head_dim=8, final_logit_softcapping=0.5)).eval()
    ids = _ids(tok, TEXTS[0])
    for m in (llama, gemma):
        with torch.no_grad():
            want = m(input_ids=ids).logits
            got = lm_logits(m, base_model(m)(input_ids=ids).last_hidden_state)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert want.abs().max() <= 0.5  # the soft cap was active


# --------------------------------------------------------------------------------------------
# Residual hooks
# --------------------------------------------------------------------------------------------


def test_captured_residual_is_output_hidden_states_l_plus_1(any_model, tok):
    model = any_model
    ids = _ids(tok, TEXTS[0])
    n = len(decoder_layers(model))
    with torch.no_grad():
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states
    assert len(hs) == n + 1
    for layer in range(n):
        with residual_hook(model, layer) as res, torch.no_grad():
            model(input_ids=ids)
        assert res.layer == layer and len(res.states) == 1
        if layer < n - 1:
            torch.testing.assert_close(res.hidden, hs[layer + 1], atol=0, rtol=0)
        else:  # the last entry of hidden_states is taken after the final norm
            final_norm = model.model.norm if hasattr(model, "model") else model.transformer.ln_f
            torch.testing.assert_close(final_norm(res.hidden), hs[-1], atol=1e-6, rtol=1e-6)
    with residual_hook(model, -1) as res, torch.no_grad():  # negative layers count from the end
        model(input_ids=ids)
    assert res.layer == n - 1


def test_adding_v_moves_the_next_block_input_by_exactly_v(any_model, tok):
    model = any_model
    ids = _ids(tok, TEXTS[2])
    d, layer = model.config.hidden_size, 1
    before = _block_inputs(model, ids)
    v = torch.randn(d, generator=torch.Generator().manual_seed(3))
    n_hooks = _hook_count(model)
    with residual_hook(model, layer, add=v, capture=False) as res:
        after = _block_inputs(model, ids)
        assert _hook_count(model) == n_hooks + 1
    assert res.states == [] and _hook_count(model) == n_hooks
    for i in range(layer):  # earlier blocks untouched
        torch.testing.assert_close(after[i], before[i], atol=0, rtol=0)
    torch.testing.assert_close(after[layer] - before[layer], v.expand_as(before[layer]), atol=1e-5, rtol=0)
    assert (after[layer + 1] - before[layer + 1]).abs().max() > 1e-3  # later blocks react


def test_zero_add_and_identity_edit_leave_logits_unchanged(any_model, tok):
    model = any_model
    ids = _ids(tok, TEXTS[1])
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with residual_hook(model, 1, add=torch.zeros(model.config.hidden_size)):
            zero = model(input_ids=ids).logits
        with residual_hook(model, 0, edit=lambda h: h):
            same = model(input_ids=ids).logits
        with residual_hook(model, 0, edit=lambda h: 2 * h) as res:
            doubled = model(input_ids=ids).logits
    torch.testing.assert_close(zero, plain, atol=0, rtol=0)
    torch.testing.assert_close(same, plain, atol=0, rtol=0)
    assert (doubled - plain).abs().max() > 1e-3
    with residual_hook(model, 0) as ref, torch.no_grad():
        model(input_ids=ids)
    torch.testing.assert_close(res.hidden, 2 * ref.hidden)  # captured after the edit


def test_positions_restrict_the_edit(llama, tok):
    model = llama
    ids, mask = pad_batch([_ids(tok, TEXTS[0])[0], _ids(tok, TEXTS[1])[0]])
    d, T = model.config.hidden_size, ids.shape[1]
    v = torch.ones(d)
    with torch.no_grad():
        with residual_hook(model, 2) as base:
            model(input_ids=ids, attention_mask=mask)
        with residual_hook(model, 2, add=v, positions=[1, -1]) as idx:
            model(input_ids=ids, attention_mask=mask)
        last = torch.zeros_like(mask, dtype=torch.bool)
        last[torch.arange(2), mask.sum(1) - 1] = True  # each row's last real token
        with residual_hook(model, 2, add=v, positions=last) as per_row:
            model(input_ids=ids, attention_mask=mask)
    delta = idx.hidden - base.hidden
    changed = (delta.abs().sum(-1) > 0)
    assert changed[:, [1, T - 1]].all() and changed.sum() == 4
    torch.testing.assert_close(delta[:, 1], v.expand(2, d))
    delta = per_row.hidden - base.hidden
    assert ((delta.abs().sum(-1) > 0) == last).all()
    torch.testing.assert_close(last_token(per_row.hidden, mask) - last_token(base.hidden, mask), v.expand(2, d))


def test_hook_is_removed_on_exception_and_gradients_reach_the_vector(llama, tok):
    model = llama
    ids = _ids(tok, TEXTS[3])
    n_hooks = _hook_count(model)
    with pytest.raises(RuntimeError, match="boom"), residual_hook(model, 1, add=torch.ones(model.config.hidden_size)):
        raise RuntimeError("boom")
    assert _hook_count(model) == n_hooks
    v = torch.zeros(model.config.hidden_size, requires_grad=True)
    with residual_hook(model, 1, add=v, detach=False) as res:
        loss = model(input_ids=ids).logits.square().mean()
    loss.backward()
    assert v.grad is not None and v.grad.abs().sum() > 0
    assert res.hidden.requires_grad
    with pytest.raises(UserError, match="out of range"), residual_hook(model, 99):
        pass


def test_capture_keeps_the_latest_call_or_every_call(llama, tok):
    with residual_hook(llama, 0) as latest, torch.no_grad():
        llama(input_ids=_ids(tok, TEXTS[0]))
        llama(input_ids=_ids(tok, TEXTS[3]))
    assert len(latest.states) == 1 and latest.hidden.shape[1] == _ids(tok, TEXTS[3]).shape[1]
    ids = _ids(tok, TEXTS[1])
    with residual_hook(llama, 0, capture="all") as res, torch.no_grad():
        llama.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert [s.shape[1] for s in res.states] == [ids.shape[1], 1, 1]  # prompt, then one token per step


# --------------------------------------------------------------------------------------------
# Log-probs
# --------------------------------------------------------------------------------------------


def _manual_logprobs(model, ids):
    """log p(ids[t+1] | ids[:t+1]) from the full model's logits (a [T] sequence)."""
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids[None]).logits[0].float(), -1)
    return logp[:-1].gather(1, ids[1:, None])[:, 0]


def test_token_logprobs_equal_a_manual_log_softmax_gather(llama, tok):
    got = token_logprobs(llama, tok, TEXTS, batch_size=3)
    for text, lp in zip(TEXTS, got, strict=True):
        ids = _ids(tok, text)[0]
        assert lp.shape == (len(ids) - 1,) and lp.dtype == torch.float32
        torch.testing.assert_close(lp, _manual_logprobs(llama, ids), atol=1e-5, rtol=1e-5)
        assert (lp < 0).all()


def test_token_logprobs_do_not_depend_on_batching_chunking_or_input_form(llama, tok):
    one = token_logprobs(llama, tok, TEXTS, batch_size=1)
    batched = token_logprobs(llama, tok, TEXTS, batch_size=4, chunk=3)
    as_ids = token_logprobs(llama, tok, [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS],
                            batch_size=2, chunk=None)
    for a, b, c in zip(one, batched, as_ids, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)


def test_continuation_logprobs_and_explicit_start(llama, tok):
    ctx, cont = "Call me", " Ishmael. Some years ago"
    got = token_logprobs(llama, tok, [cont, cont], contexts=[ctx, ""])
    c_ids = tok(ctx, add_special_tokens=False)["input_ids"]
    x_ids = tok(cont, add_special_tokens=False)["input_ids"]
    full = torch.tensor([tok.bos_token_id] + c_ids + x_ids)
    torch.testing.assert_close(got[0], _manual_logprobs(llama, full)[len(c_ids):], atol=1e-5, rtol=1e-5)
    alone = torch.tensor([tok.bos_token_id] + x_ids)
    torch.testing.assert_close(got[1], _manual_logprobs(llama, alone), atol=1e-5, rtol=1e-5)
    assert len(got[0]) == len(got[1]) == len(x_ids)
    # no start token: nothing predicts the first token, which is left out
    bare = token_logprobs(llama, tok, [cont], start=None)[0]
    torch.testing.assert_close(bare, _manual_logprobs(llama, torch.tensor(x_ids)), atol=1e-5, rtol=1e-5)
    assert len(bare) == len(x_ids) - 1
    other = token_logprobs(llama, tok, [cont], start=7)[0]  # an explicit start token id
    torch.testing.assert_close(other, _manual_logprobs(llama, torch.tensor([7] + x_ids)), atol=1e-5, rtol=1e-5)
    assert token_logprobs(llama, tok, [""])[0].numel() == 0


def test_missing_bos_is_a_one_line_user_error(llama, tok):
    from transformers import PreTrainedTokenizerFast

    no_bos = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer)
    with pytest.raises(UserError, match="no BOS token"):
        token_logprobs(llama, no_bos, ["hello"])


def test_sequence_logprobs_left_and_right_padding_agree(llama, tok):
    seqs = [_ids(tok, t)[0] for t in TEXTS]
    right, rmask = pad_batch(seqs, side="right")
    left, lmask = pad_batch(seqs, side="left")
    with torch.no_grad():
        r = sequence_logprobs(llama, right, rmask, chunk=5)
        lp = sequence_logprobs(llama, left, lmask)
    T = right.shape[1]
    for i, s in enumerate(seqs):
        n = len(s) - 1
        manual = _manual_logprobs(llama, s)
        torch.testing.assert_close(r[i, :n], manual, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lp[i, T - 1 - n:], manual, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Hidden states
# --------------------------------------------------------------------------------------------


def _single_pass_states(model, tok, text):
    ids = tok(text, add_special_tokens=True)["input_ids"]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states


def test_hidden_states_left_and_right_padding_agree_with_unpadded_passes(any_model, tok):
    model = any_model
    layers = ["embed", 0, 1, "final"]
    right = hidden_states(model, tok, TEXTS, layers, "last", batch_size=4, padding_side="right")
    left = hidden_states(model, tok, TEXTS, layers, "last", batch_size=4, padding_side="left")
    single = hidden_states(model, tok, TEXTS, layers, "last", batch_size=1)
    assert right.shape == (len(TEXTS), len(layers), model.config.hidden_size)
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(single, right, atol=1e-5, rtol=1e-5)
    for i, text in enumerate(TEXTS):
        hs = _single_pass_states(model, tok, text)
        for j, want in enumerate([hs[0], hs[1], hs[2], hs[-1]]):
            torch.testing.assert_close(right[i, j], want[0, -1], atol=1e-5, rtol=1e-5)
    for pos in ("mean", [0, -2], 1, "all"):
        a = hidden_states(model, tok, TEXTS, [1, "final"], pos, batch_size=4, padding_side="left")
        b = hidden_states(model, tok, TEXTS, [1, "final"], pos, batch_size=4, padding_side="right")
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_hidden_states_positions_and_shapes(llama, tok):
    d = llama.config.hidden_size
    hs = _single_pass_states(llama, tok, TEXTS[0])
    n = hs[0].shape[1]
    mean = hidden_states(llama, tok, TEXTS[:2], 2, "mean")
    assert mean.shape == (2, d)
    torch.testing.assert_close(mean[0], hs[3][0].mean(0), atol=1e-5, rtol=1e-5)
    picked = hidden_states(llama, tok, TEXTS[:2], [0, 2], [0, -2])
    assert picked.shape == (2, 2, 2, d)
    torch.testing.assert_close(picked[0, 1], hs[3][0, [0, n - 2]], atol=1e-5, rtol=1e-5)
    assert hidden_states(llama, tok, TEXTS[:2], 0, 1).shape == (2, d)
    every = hidden_states(llama, tok, TEXTS[:2], [0, 1], "all")
    assert isinstance(every, list) and every[0].shape == (n, 2, d)
    torch.testing.assert_close(every[0][:, 1], hs[2][0], atol=1e-5, rtol=1e-5)
    with pytest.raises(UserError, match="outside a sequence"):
        hidden_states(llama, tok, ["Yes."], 0, [50])
    with pytest.raises(UserError, match="out of range"):
        hidden_states(llama, tok, ["Yes."], 9)


# --------------------------------------------------------------------------------------------
# The real default model (SmolLM2-135M, dequantised from the packaged GGUF)
# --------------------------------------------------------------------------------------------


def test_default_model_identities():
    from paperlab.core.models import default_gguf_path, load_torch_model

    try:
        default_gguf_path()
    except UserError as e:
        pytest.skip(str(e))

    model, tok = load_torch_model("default", device="cpu")
    assert len(decoder_layers(model)) == 30
    text = "The capital of France is Paris."
    ids = torch.tensor([[tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
        with residual_hook(model, 10) as res:
            model(input_ids=ids)
    torch.testing.assert_close(res.hidden, out.hidden_states[11], atol=0, rtol=0)
    lp = token_logprobs(model, tok, [text, "Hello"], batch_size=2)[0]
    manual = torch.log_softmax(out.logits[0].float(), -1)[:-1].gather(1, ids[0, 1:, None])[:, 0]
    torch.testing.assert_close(lp, manual, atol=1e-4, rtol=1e-4)
    last = hidden_states(model, tok, [ids[0].tolist(), [tok.bos_token_id]], [10, "final"], "last",
                         padding_side="left")
    torch.testing.assert_close(last[0, 1], out.hidden_states[-1][0, -1], atol=1e-4, rtol=1e-4)
