"""The telephone chains on real offline engines (apertium, Bergamot, the default LM)."""

from __future__ import annotations

import shutil

import pytest

from paperlab.core.cache import Cache
from paperlab.core.models import CachedLM, GenerationParams, load_lm
from paperlab.core.translate import load_translator, split_sentences
from paperlab.telephone.chains import (
    Hop,
    LMPlayer,
    MTPlayer,
    Setup,
    degenerate,
    fixed_point_iteration,
    repetition_loop,
    run_chain,
)
from paperlab.telephone.experiment import DOMAINS, lead, load_passages
from paperlab.telephone.prompts import LEVELS, build_prompt

needs_apertium = pytest.mark.skipif(shutil.which("apertium") is None, reason="apertium not installed")
SHORT = ["The old fisherman sold three boats in 1998. He moved to Lisbon with his daughter.",
         "A storm closed the harbour for two days, and the market lost most of its customers."]


def test_prompt_levels_are_distinct_and_contain_the_text():
    msgs = {lvl: build_prompt("Hello world.", lvl, "translate", "English", "French")[0]["content"] for lvl in LEVELS}
    assert len(set(msgs.values())) == 3
    assert all("Hello world." in m and "French" in m for m in msgs.values())
    assert msgs["simple"].startswith("Translate the following text from English to French")
    assert "Do not add, omit or change" in msgs["constrained"]
    assert "rephrase" in build_prompt("x", "simple", "rephrase")[0]["content"].lower()


def test_sentence_splitter_keeps_all_text():
    p = 'He said "Stop." Then he left. Dr. Who? 3 boats were sold! The end'
    parts = split_sentences(p)
    assert "".join(parts).replace(" ", "") == p.replace(" ", "")
    assert len(parts) >= 4


def test_paper_passages_load_round_robin():
    ps = load_passages(10)
    assert [d for d, _, _ in ps[:5]] == ["news2024", "booksum", "scriptbase", "wikibio", "pubmed"]
    assert all(len(t) > 100 for _, _, t in ps)


@needs_apertium
def test_self_loop_with_apertium_is_deterministic_and_drifts():
    player = MTPlayer(load_translator("mt:apertium"))
    setup = Setup("en-es-en", "self_loop", ("es",))
    texts, hops = run_chain(SHORT, setup, [player], iterations=3, seed=0)
    assert [len(t) for t in texts] == [4, 4] and texts[0][0] == SHORT[0]
    assert all([(h.src, h.tgt) for h in it] == [("en", "es"), ("es", "en")] for it in hops[0])
    assert texts[0][1] != SHORT[0]  # one round trip changes the text
    again, _ = run_chain(SHORT, setup, [player], iterations=3, seed=0)
    assert again == texts


@needs_apertium
def test_multiplayer_routes_through_both_bridges_with_pivot():
    pool = [MTPlayer(load_translator("mt:bergamot"), "bergamot"), MTPlayer(load_translator("mt:apertium"), "apertium")]
    texts, hops = run_chain(SHORT[:1], Setup("multi", "multiplayer", ("pt", "es")), pool, iterations=4, seed=1)
    routes = [[(h.src, h.tgt) for h in it] for it in hops[0]]
    for r in routes:  # EN -> L1 -> EN -> L2 -> EN (no PT<->ES engine: pivot through English)
        assert len(r) == 4 and r[0][0] == "en" and r[-1][1] == "en"
        assert {r[0][1], r[2][1]} == {"pt", "es"}
    assert len({r[0][1] for r in routes}) == 2  # the bridge order is reshuffled across iterations
    players = {h.player for it in hops[0] for h in it}
    assert players == {"bergamot", "apertium"}


@needs_apertium
def test_two_player_draws_a_random_player_every_hop():
    lm = load_lm("default")
    params = GenerationParams(temperature=0.0, max_tokens=24)
    pool = [MTPlayer(load_translator("mt:apertium"), "apertium"), LMPlayer(lm, params, "simple", name="smollm2")]
    setup = Setup("two", "two_player", ("es",))
    _, hops = run_chain(["Cats sleep."], setup, pool, iterations=4, seed=3)
    seq = [h.player for it in hops[0] for h in it]
    _, hops2 = run_chain(["Cats sleep."], setup, pool, iterations=4, seed=3)
    assert seq == [h.player for it in hops2[0] for h in it]  # reproducible with the seed
    assert set(seq) == {"apertium", "smollm2"}  # both players drawn (8 hops; P(one only) = 2/256)
    assert seq != ["apertium", "smollm2"] * 4 and seq != ["smollm2", "apertium"] * 4  # not alternation


class _Interrupting(CachedLM):
    """The real cached backend, interrupted (as by Ctrl-C) after ``limit`` backend calls."""

    def __init__(self, inner, cache, limit):
        super().__init__(inner, cache)
        self.limit, self.calls = limit, 0
        real = inner._chat_one

        def counted(messages, params):
            if self.calls >= self.limit:
                raise KeyboardInterrupt
            self.calls += 1
            return real(messages, params)

        self._counted = counted

    def chat(self, batch, params, on_result=None):
        original = self.inner._chat_one
        self.inner._chat_one = self._counted
        try:
            return super().chat(batch, params, on_result)
        finally:
            self.inner._chat_one = original


def test_killed_chain_resumes_without_repeating_generations(tmp_path):
    inner = load_lm("default", cache=False)
    cache = Cache(tmp_path / "cache.sqlite")
    params = GenerationParams(temperature=0.7, max_tokens=20, seed=0)
    passages = ["The river flooded the village in May.", "Anna won the chess final in Oslo."]
    setup = Setup("rephrase", "rephrase")
    killed = _Interrupting(inner, cache, limit=3)
    with pytest.raises(KeyboardInterrupt):
        run_chain(passages, setup, [LMPlayer(killed, params, "simple")], iterations=3)
    assert killed.calls == 3 and len(cache) == 3  # finished generations were committed
    resumed = _Interrupting(inner, Cache(tmp_path / "cache.sqlite"), limit=100)
    texts, _ = run_chain(passages, setup, [LMPlayer(resumed, params, "simple")], iterations=3)
    assert resumed.calls == 6 - 3  # only the unfinished generations reach the model
    again = _Interrupting(inner, Cache(tmp_path / "cache.sqlite"), limit=0)
    texts2, _ = run_chain(passages, setup, [LMPlayer(again, params, "simple")], iterations=3)
    assert texts2 == texts and again.calls == 0


def test_fixed_point_detection():
    assert fixed_point_iteration(["a", "b", "c", "c", "c"]) == 3
    assert fixed_point_iteration(["a", "b", "c"]) is None


def test_lm_hops_record_finish_reasons():
    lm = load_lm("default")
    setup = Setup("rephrase", "rephrase")
    short = GenerationParams(temperature=0.0, max_tokens=3)
    texts, hops = run_chain(SHORT[:1], setup, [LMPlayer(lm, short, "simple")], iterations=2)
    assert [h.finish_reason for it in hops[0] for h in it] == ["length", "length"]  # cut at 3 tokens
    assert degenerate(texts[0][1], hops[0][0])
    roomy = GenerationParams(temperature=0.0, max_tokens=200)
    _, hops = run_chain(["Cats sleep."], setup, [LMPlayer(lm, roomy, "simple")], iterations=1)
    assert hops[0][0][0].finish_reason == "stop"


def test_repetition_loops_are_flagged_and_prose_is_not():
    passages = load_passages(150 * len(DOMAINS))
    assert not any(repetition_loop(t) for _, _, t in passages)   # none of the paper's 750 originals
    assert not any(repetition_loop(t) for t in SHORT)
    looping = "The storm closed the harbour for two days. " + "The market lost its customers. " * 6
    assert repetition_loop(looping)
    assert repetition_loop("Here is the rephrased text: the boats were sold" + " and sold" * 8)
    assert not degenerate(SHORT[0], [Hop("en", "en", "lm", "stop")])
    assert degenerate(SHORT[0], [Hop("en", "en", "lm", "length")])


def test_lead_keeps_whole_sentences_up_to_the_word_budget():
    text = "One two three four. Five six seven. Eight nine ten eleven twelve.\n\nThirteen fourteen."
    assert lead(text, 7) == "One two three four. Five six seven."
    assert lead(text, 2) == "One two three four."          # at least one sentence
    assert lead(text, None) == text
