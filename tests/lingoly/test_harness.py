"""LLM harness: one prompt per question, robust JSON answer parsing, a real OpenAI-compatible round trip."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.lingoly.harness import answers_by_subquestion, ask, build_prompts, parse_answers, part_id
from paperlab.lingoly.problems import parse_questions
from paperlab.lingoly.released import load_released

IDS = st.lists(st.from_regex(r"[a-z0-9]{1,3}", fullmatch=True), min_size=1, max_size=8, unique=True)
ANSWER = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
NOISE = st.text(st.characters(blacklist_characters="{}`", blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=200, deadline=None)
@given(IDS, st.data(), NOISE, NOISE, st.booleans())
def test_parse_recovers_json_answers_inside_any_text(ids, data, before, after, fenced):
    answers = {i: data.draw(ANSWER) for i in ids}
    blob = json.dumps(answers, ensure_ascii=data.draw(st.booleans()))
    reply = f"{before}\n```json\n{blob}\n```\n{after}" if fenced else f"{before} {blob} {after}"
    assert parse_answers(reply, ids) == answers


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), IDS)
def test_parse_never_raises_and_returns_every_id(reply, ids):
    out = parse_answers(reply, ids)
    assert list(out) == ids and all(isinstance(v, str) for v in out.values())


def test_parse_lenient_forms():
    ids = ["1", "2", "a"]
    assert parse_answers('Sure! {"(1)": "Mala welu jen.", "2.": ["x", "y"], "A": 3}', ids) == \
        {"1": "Mala welu jen.", "2": "x, y", "a": "3"}
    assert parse_answers("1: Mala\n2. Welu\n(a) jen", ids) == {"1": "Mala", "2": "Welu", "a": "jen"}
    assert parse_answers('{"zzz": 1} then {"a": "ok"}', ids) == {"1": "", "2": "", "a": "ok"}


def test_one_prompt_per_question_with_the_whole_sheet():
    prob = load_released()["210"].original
    prompts = build_prompts(prob)
    qs = parse_questions(prob)
    assert len(prompts) == len(qs) == 3
    for p, q in zip(prompts, qs, strict=True):
        assert prob["context"].strip()[:200] in p.text and q["prompt"].strip() in p.text
        assert len(p.ids) == len(set(p.ids)) == len(q["subprompts"])
        assert json.dumps(dict.fromkeys(p.ids, "")) in p.text
    assert part_id("1. ", 0) == "1" and part_id("(a)", 0) == "a" and part_id("", 4) == "5"
    short = build_prompts(prob, max_context_chars=200)
    assert all(len(s.text) < len(p.text) for s, p in zip(short, prompts, strict=True))


def test_ask_through_an_openai_compatible_server(tmp_path, monkeypatch):
    """A real HTTP round trip (a local server that echoes the prompt): the echoed JSON template has
    every id with an empty answer, so every sub-question gets an empty (zero-scoring) answer."""
    from paperlab.core.cache import Cache
    from paperlab.core.models import GenerationParams, load_lm
    from tests_helpers import FaultyServer

    prob = load_released()["88"].original
    with FaultyServer() as srv:
        lm = load_lm(f"openai:{srv.url}#echo", cache=Cache(str(tmp_path / "c.sqlite")))
        replies = ask(lm, prob, GenerationParams(temperature=0.0, max_tokens=32))
        assert srv.requests == 1 and replies[0][1].startswith("echo: ")
        again = ask(lm, prob, GenerationParams(temperature=0.0, max_tokens=32))
        assert srv.requests == 1 and again == replies                   # served from the cache
    answers = answers_by_subquestion(prob, "88", replies)
    assert list(answers) == [f"88/0/{i}" for i in range(8)] and set(answers.values()) == {""}
