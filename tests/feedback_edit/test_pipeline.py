"""The pipeline's structure on a seeded backend: call counts C(N, M, K), nesting of settings, seeds,
selection by the judge, feedback ranking, compute accounting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.core.models import ChatResult, TokenLogprob
from paperlab.feedback_edit import pipeline as fe
from paperlab.feedback_edit import prompts as P

PROMPTS = ["What is 2 + 3?", "Name a colour."]
UIDS = ["a", "b"]
SAMPLING = fe.Sampling(max_tokens_generator=16, max_tokens_feedback=16, max_tokens_editor=16)


def _roles(lm):
    return fe.Roles(lm, lm, lm, lm)


def _count(lm, kind):
    """Requests of one role, told apart by their prompts."""
    def role(msgs, params):
        if params.logprobs:
            return "selector"
        if len(msgs) == 1:
            return "generator"
        return "feedback" if msgs[-1]["content"] == P.FEEDBACK else "editor"

    return sum(role(m, p) == kind for m, p in lm.requests)


@pytest.mark.parametrize("n, m, k, n_bon", [(1, 1, 1, 0), (2, 3, 2, 0), (2, 2, 2, 14), (3, 1, 2, 2)])
def test_requests_per_stage(seeded_lm, n, m, k, n_bon):
    trees = fe.run_pipeline(_roles(seeded_lm), PROMPTS, UIDS, n, m, k, n_bon=n_bon, sampling=SAMPLING)
    n0 = max(n, n_bon)
    p = len(PROMPTS)
    assert _count(seeded_lm, "generator") == p * n0
    assert _count(seeded_lm, "feedback") == p * n * m
    assert _count(seeded_lm, "editor") == p * n * m * k
    assert _count(seeded_lm, "selector") == p * (n * m * k + n0)
    for t in trees:
        assert len(t.initial) == len(t.initial_judged) == n0
        assert [len(row) for row in t.feedback] == [m] * n
        assert all(len(ks) == k for row in t.edits for ks in row)
        c = fe.compute_feedback_edit(t, n, m, k)
        gen_calls = sum(c[r]["calls"] for r in fe.GEN_ROLES)
        assert gen_calls == fe.generation_calls(n, m, k) == n + n * m + n * m * k
        assert c["selector"]["calls"] == n * m * k


def test_feedback_and_edits_see_their_own_response_and_feedback(seeded_lm):
    (t,) = fe.run_pipeline(_roles(seeded_lm), PROMPTS[:1], UIDS[:1], 2, 2, 1, sampling=SAMPLING)
    edit_requests = [m for m, p in seeded_lm.requests if len(m) == 3 and m[-1]["content"] != P.FEEDBACK]
    for i in range(2):
        for j in range(2):
            want = P.edit_chat(PROMPTS[0], t.initial[i].text, t.feedback[i][j].text)
            assert want in edit_requests


def test_smaller_settings_are_prefixes_of_larger_ones(seeded_lm):
    """Nested sampling: the (1, 1, 1) run's samples are the first ones of the (2, 2, 2) run's."""
    (small,) = fe.run_pipeline(_roles(seeded_lm), PROMPTS[:1], UIDS[:1], 1, 1, 1, sampling=SAMPLING)
    (big,) = fe.run_pipeline(_roles(seeded_lm), PROMPTS[:1], UIDS[:1], 2, 2, 2, n_bon=14, sampling=SAMPLING)
    assert small.initial[0] == big.initial[0]
    assert small.feedback[0][0] == big.feedback[0][0]
    assert small.edits[0][0][0] == big.edits[0][0][0]
    assert small.edit_judged[0][0][0].score == big.edit_judged[0][0][0].score
    # samples differ from one another (each request has its own seed)
    assert len({c.text for c in big.initial}) == 14


def test_seeds_depend_on_place_and_seed_only():
    s = fe.request_seed(0, "a", "editor", 1, 0, 1)
    assert s == fe.request_seed(0, "a", "editor", 1, 0, 1)
    others = {fe.request_seed(0, "a", "editor", 1, 1, 0), fe.request_seed(1, "a", "editor", 1, 0, 1),
              fe.request_seed(0, "b", "editor", 1, 0, 1), fe.request_seed(0, "a", "feedback", 1, 0, 1)}
    assert s not in others and len(others) == 4
    assert 0 <= s < 2**31


def test_selection_is_the_judge_argmax(seeded_lm):
    trees = fe.run_pipeline(_roles(seeded_lm), PROMPTS, UIDS, 2, 2, 2, n_bon=6, sampling=SAMPLING)
    for t in trees:
        for s in [(1, 1, 1), (2, 1, 2), (2, 2, 2)]:
            i, j, k = fe.select_feedback_edit(t, *s)
            pool = [seeded_lm.judge_value(P.fill(P.JUDGE, prompt=t.prompt, response=t.edits[a][b][c].text))
                    for a, b, c in fe.edit_index(t, *s)]
            assert t.edit_judged[i][j][k].score == pytest.approx(max(pool), abs=1e-9)
        b = fe.select_best_of_n(t, 6)
        assert t.initial_judged[b].score == max(x.score for x in t.initial_judged[:6])


def test_compute_sums_the_backends_token_counts(seeded_lm):
    (t,) = fe.run_pipeline(_roles(seeded_lm), PROMPTS[:1], UIDS[:1], 2, 1, 2, n_bon=8, sampling=SAMPLING)
    c = fe.compute_feedback_edit(t, 2, 1, 2)
    assert c["editor"]["completion_tokens"] == sum(e.completion_tokens for row in t.edits for ks in row for e in ks)
    assert c["feedback"]["prompt_tokens"] == sum(f.prompt_tokens for row in t.feedback for f in row)
    b = fe.compute_best_of_n(t, 8)
    assert b["generator"]["calls"] == b["selector"]["calls"] == 8
    assert b["generator"]["completion_tokens"] == sum(x.completion_tokens for x in t.initial)


def test_tree_round_trips_through_json(seeded_lm):
    import json

    (t,) = fe.run_pipeline(_roles(seeded_lm), PROMPTS[:1], UIDS[:1], 2, 1, 1, n_bon=3, sampling=SAMPLING)
    assert fe.Tree.from_dict(json.loads(json.dumps(t.to_dict()))) == t


def test_keep_edits_only_the_top_ranked_feedbacks(seeded_lm):
    fb = [[["Fine.", "This is wrong: the sum is incorrect, fix it.", "Could be clearer."]]]
    edits = fe.write_edits(seeded_lm, PROMPTS[:1], UIDS[:1], [["r"]], fb, k=2, sampling=SAMPLING, keep=1)
    assert [len(ks) for ks in edits[0][0]] == [0, 2, 0]


def test_criticism_count_and_ranking():
    assert fe.criticism_count("The response is not helpful; the answer is wrong and isn't checked.") == 3
    assert fe.criticism_count("Perfectly helpful.") == 0
    assert fe.rank_feedback(["Good.", "Wrong, should fix.", "Wrong."]) == [1, 2, 0]
    assert fe.rank_feedback(["a", "b"]) == [0, 1]  # ties keep sampling order


def _lp(tok, lp, top):
    return ChatResult(tok, "stop", 5, 1, [TokenLogprob(tok, lp, top)])


def test_judge_score_reads_yes_minus_no():
    assert fe.judge_score(_lp("Yes", -0.2, [("Yes", -0.2), ("No", -1.9)])) == pytest.approx(1.7)
    # variants of a word are pooled: log(e^-1 + e^-2) - (-0.5)
    r = _lp("No", -0.5, [("No", -0.5), (" yes", -1.0), ("YES", -2.0)])
    assert fe.judge_score(r) == pytest.approx(math.log(math.exp(-1) + math.exp(-2)) + 0.5)
    # "No" missing from the list: bounded by the smallest listed log-probability
    assert fe.judge_score(_lp("Yes", -0.1, [("Yes", -0.1), ("Sure", -3.0)])) == pytest.approx(2.9)
    assert fe.judge_score(ChatResult("No, it is wrong.")) == -1.0
    assert fe.judge_score(ChatResult("Yes.")) == 1.0 and fe.judge_score(ChatResult("Maybe")) == 0.0


@given(st.lists(st.floats(-1e6, 1e6), max_size=12))
@settings(max_examples=50)
def test_select_is_the_first_maximum(xs):
    i = fe.select(xs)
    if not xs:
        assert i == -1
    else:
        assert xs[i] == max(xs) and all(x < xs[i] for x in xs[:i])


def test_duplicate_ids_are_refused(seeded_lm):
    with pytest.raises(ValueError):
        fe.run_pipeline(_roles(seeded_lm), PROMPTS, ["a", "a"], 1, 1, 1, sampling=SAMPLING)


def test_vote_picks_the_most_common_answer_then_the_best_score():
    assert fe.vote(["3", "5", "5", None], [9.0, 0.1, 0.2, 5.0]) == 2
    assert fe.vote(["3", "5"], [0.0, 1.0]) == 1  # a tie in counts: the higher selector reward
    assert fe.vote([None, None], [0.0, 1.0]) == 1  # no answers: the selector alone


def test_a_setting_without_kept_feedbacks_is_an_error_not_a_silent_pick(seeded_lm):
    (t,) = fe.run_pipeline(_roles(seeded_lm), PROMPTS[:1], UIDS[:1], 1, 2, 1, sampling=SAMPLING, keep=1)
    assert [len(ks) for ks in t.edits[0]] == [1, 0]  # equal keyword counts: the first feedback is kept
    assert fe.select_feedback_edit(t, 1, 2, 1) == (0, 0, 0)
    t.edits[0] = [[], t.edits[0][0]]  # as if the second feedback had ranked first
    t.edit_judged[0] = [[], t.edit_judged[0][0]]
    assert fe.select_feedback_edit(t, 1, 2, 1) == (0, 1, 0)
    with pytest.raises(ValueError):
        fe.select_feedback_edit(t, 1, 1, 1)
