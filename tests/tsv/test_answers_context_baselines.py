"""Gold answers split by question, answers scored in their generation context, and the user baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperlab.tsv.data import (
    Item,
    check_disjoint,
    gold_answers,
    gold_items,
    is_no_comment,
    load_truthfulqa,
    paper_split,
)
from paperlab.tsv.labelling import chat_messages, scoring_context

CHAT_TEMPLATE = ("{% for m in messages %}[unused0] {{ m['role'] }} : {{ m['content'] }} [unused1] {% endfor %}"
                 "{% if add_generation_prompt %}[unused0] assistant : {% endif %}")


@pytest.fixture(scope="module")
def chat_lm(tiny_dir, tmp_path_factory):
    """The tiny Llama behind the generation backend (HFLM), its tokenizer given a chat template."""
    from transformers import AutoTokenizer

    from paperlab.core.models import load_lm

    d = tmp_path_factory.mktemp("tiny_chat")
    for f in tiny_dir.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    tok = AutoTokenizer.from_pretrained(d, model_input_names=["input_ids", "attention_mask"])  # a Llama takes no
    tok.chat_template = CHAT_TEMPLATE  # token_type_ids
    tok.save_pretrained(d)
    return load_lm(f"hf:{d}", cache=False)


def test_gold_answers_have_both_classes_and_no_refusal():
    qs = load_truthfulqa()
    for q in qs:  # every question has a correct and an incorrect reference answer
        for n in (2, 3, 4):
            got = gold_answers(q, n)
            n_refs = len([a for a in q.correct if not is_no_comment(a)] or [1]) + len(q.incorrect)
            assert len(got) == min(n, n_refs) and {y for _, y in got} == {0, 1}
            first_true = next((a for a in q.correct if not is_no_comment(a)), q.correct[0])
            assert got[0] == (first_true, 1) and got[1] == (q.incorrect[0], 0)  # best answer first
            only_refusal = all(is_no_comment(a) for a in q.correct)
            assert only_refusal or not any(is_no_comment(a) for a, _ in got)
            assert all(a in q.correct for a, y in got if y == 1) and all(a in q.incorrect for a, y in got if y == 0)


def test_gold_items_are_split_by_question():
    qs, sp = load_truthfulqa(), paper_split()
    parts = {"exemplar": sp.exemplars, "val": sp.val, "test": sp.test, "wild": sp.wild}
    items = gold_items(qs, parts, 2)
    assert len(items) == 2 * 817
    check_disjoint(items)  # no question in two splits
    by_split = {s: {it.row for it in items if it.split == s} for s in parts}
    assert sum(len(v) for v in by_split.values()) == 817
    with pytest.raises(ValueError, match="is in splits"):
        check_disjoint([Item(5, "test", "a", 1), Item(5, "wild", "b", 0)])


def test_scoring_input_is_the_generation_context_plus_the_answer(chat_lm):
    """The ids the detector embeds start with exactly the ids the LM generated from (chat template)."""
    from paperlab.tsv.labelling import generate_answers
    from paperlab.tsv.steering import encode_answers

    model, tok = chat_lm.model, chat_lm.tokenizer
    seen = []
    h = model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_ids"].clone()), with_kwargs=True)
    try:
        q = "Where is the Eiffel tower?"
        generate_answers(chat_lm, [q], max_tokens=2)
    finally:
        h.remove()
    gen_ids = seen[0][0].tolist()  # the prompt the first generation step saw
    ctx, sep = scoring_context(tok, q)
    assert sep == "" and ctx == tok.apply_chat_template(chat_messages(q), tokenize=False, add_generation_prompt=True)
    answer = "it is in paris."
    e = encode_answers(tok, [q], [answer])[0]
    assert e.ids[: e.answer_start].tolist() == gen_ids
    assert e.ids[e.answer_start: e.answer_end].tolist() == tok(answer, add_special_tokens=False)["input_ids"]
    assert e.ids.tolist() == gen_ids + tok(answer, add_special_tokens=False)["input_ids"]


def test_without_a_chat_template_the_raw_prompt_is_used(tiny):
    _, tok = tiny
    assert scoring_context(tok, " Who? ") == ("Answer the question concisely. Q: Who? A:", " ")


def test_qa_cosine_prefers_the_on_topic_answer():
    from paperlab.tsv.baselines import qa_cosine_scores

    s = qa_cosine_scores(["What is the capital of France?"] * 2, ["Paris is the capital of France.", "Bananas are yellow."])
    assert s[0] > s[1] and np.all(np.abs(s) <= 1 + 1e-6)


def test_pmi_is_logp_given_question_minus_logp_alone(tiny):
    """PMI from the cache's log p(a|q) and answer_logprob_sums' log p(a), checked by hand on full logits."""
    from paperlab.tsv.baselines import orient, pmi_scores
    from paperlab.tsv.steering import answer_logprob_sums, encode_answers, encode_dataset

    model, tok = tiny
    qs, ans = ["Who wrote Hamlet?", "Where is Paris?"], ["Shakespeare wrote it.", "In France."]
    enc = encode_answers(tok, qs, ans)
    alone = encode_answers(tok, ["", ""], ans)
    cache = encode_dataset(model, enc, 2)
    lp_alone = answer_logprob_sums(model, alone)

    def manual(e):
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=e.ids[None]).logits[0], -1)
        a, b = e.answer_start, e.answer_end
        return float(lp[a - 1: b - 1].gather(1, e.ids[a:b, None]).sum())

    want = [manual(enc[i]) - manual(alone[i]) for i in range(2)]
    np.testing.assert_allclose(pmi_scores(cache.answer_logprob_sum.numpy(), lp_alone.numpy()), want, atol=1e-4)
    assert orient([1, 0, 1, 0], np.array([0.1, 0.9, 0.2, 0.8])) == -1
    assert orient([1, 0, 1, 0], np.array([0.9, 0.1, 0.8, 0.2])) == 1


def test_grid_selection_by_mean_validation_auroc():
    from paperlab.tsv.training import GridRun, StageLog, TSVResult, select_setting

    def run(lam, lr, seed, auc):
        log = StageLog(best_val_auroc=auc)
        return GridRun(lam, lam / 100, lr, seed, TSVResult(None, None, log, StageLog(), [0.5, 0.5], [], [], {}))

    # (5, 1e-3) has the best single seed, (20, 1e-2) the best mean over seeds: the mean decides
    runs = [run(5, 1e-3, 0, 0.9), run(5, 1e-3, 1, 0.5), run(5, 1e-3, 2, 0.5),
            run(20, 1e-2, 0, 0.7), run(20, 1e-2, 1, 0.7), run(20, 1e-2, 2, 0.7)]
    assert select_setting(runs) == (20, 1e-2)
    assert select_setting([run(5, 1e-3, 0, 0.6), run(20, 1e-2, 0, 0.6)]) == (5, 1e-3)  # tie: first


def test_relative_lambda_grid(tiny):
    from paperlab.tsv.experiment import TSVConfig

    cfg = TSVConfig(lam_rel=[0.1, 0.5], lr_grid=[1e-3, 1e-2])
    assert cfg.lambdas(200.0) == [5.0, 20.0, 100.0] and cfg.lrs() == [1e-3, 1e-2]
    assert TSVConfig(lam=3.0, lr=1e-2).lambdas(200.0) == [3.0] and TSVConfig(lr=1e-2).lrs() == [1e-2]
    assert TSVConfig(seeds=3, seed=4).seed_list() == [4, 5, 6]
