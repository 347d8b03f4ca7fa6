"""The packaged threads, prefixes, the held-out split and users' JSONL threads."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from paperlab.core.errors import UserError
from paperlab.derailment.data import load_threads, read_user_threads, split_threads, subsample, thread_to_json


@pytest.fixture(scope="module")
def threads():
    return load_threads()


def test_packaged_threads_match_the_release(threads):
    kinds = Counter(t.source for t in threads)
    assert kinds == {"derailed": 120, "non_derailed": 64, "non_toxic": 731}
    assert all(t.label == (t.source != "non_toxic") for t in threads)
    for t in threads:
        assert t.prefix and not any(c.toxic for c in t.prefix)     # the input never holds a toxic comment
        if t.label:
            assert len(t.prefix) == t.first_toxic and t.comments[t.first_toxic].toxic
        else:
            assert t.prefix == t.comments
    derailed = [t for t in threads if t.source == "derailed"]
    assert all(t.first_toxic == len(t.comments) - 1 for t in derailed)  # the file stops at the toxic comment
    assert not any(t.has_association for t in derailed)                  # no author_association column there
    assert all(t.has_association for t in threads if t.source == "non_toxic")
    assert sum(c.tone != "" for t in derailed for c in t.comments) == 415  # SOURCE.md's count of tbdf labels


def test_split_is_seeded_disjoint_and_stratified(threads):
    a, b = split_threads(threads, 0.3, seed=0), split_threads(threads, 0.3, seed=0)
    assert [t.id for t in a.test] == [t.id for t in b.test]
    assert {t.id for t in a.train}.isdisjoint(t.id for t in a.test)
    assert len(a.train) + len(a.test) == len(threads)
    kinds = Counter(t.source for t in a.test)
    assert kinds == {"derailed": 36, "non_derailed": 19, "non_toxic": 219}
    c = split_threads(threads, 0.3, seed=1)
    assert {t.id for t in c.test} != {t.id for t in a.test}


def test_subsample_keeps_the_requested_toxic_share(threads):
    pick = subsample(threads, 50, 0.4, seed=3)
    assert len(pick) == 50 and sum(t.label for t in pick) == 20 and len({t.id for t in pick}) == 50
    assert [t.id for t in subsample(threads, 50, 0.4, seed=3)] == [t.id for t in pick]
    assert len(subsample(threads[:10], 50, 0.4, seed=3)) == 10


def test_user_threads_round_trip_and_toxic_flag_cuts_the_prefix(tmp_path, threads):
    t = next(t for t in threads if t.source == "derailed")
    f = tmp_path / "t.jsonl"
    bare = [{"speaker": "a", "body": "hello"}, {"user": {"login": "b"}, "text": "you never read", "toxic": True}]
    f.write_text(json.dumps(thread_to_json(t)) + "\n\n" + json.dumps(bare) + "\n")
    got = read_user_threads(f)
    assert got[0].id == t.id and len(got[0].prefix) == len(t.prefix)
    assert [(c.author, c.text, c.association) for c in got[0].comments] == [(c.author, c.text, c.association)
                                                                             for c in t.comments]
    assert got[1].id == "1" and [c.author for c in got[1].comments] == ["a", "b"] and len(got[1].prefix) == 1


@pytest.mark.parametrize("text,needle", [
    ('{"id": 1, "comments": [{"author": "a"}]}', "no string 'text'"),
    ('{"id": 1}', "no list of comments"),
    ('[{"author": "a", "text": "x"}]\n{broken', ":2 is not valid JSON"),
    ('[{"author": "a", "text": "x", "toxic": true}]', "no comment before its first toxic one"),
    ('[{"author": "a", "text": "x", "author_association": 3}]', "author_association"),
    ("\n\n", "holds no threads"),
])
def test_malformed_user_threads_are_one_line_errors(tmp_path, text, needle):
    f = tmp_path / "bad.jsonl"
    f.write_text(text)
    with pytest.raises(UserError, match=needle):
        read_user_threads(f)
