"""The template grammars: disjoint lexicons, exact alternants, word orders, structural persistence, corpora."""

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.priming.grammar import (
    ALTERNATIONS,
    DOC,
    END,
    LANGUAGES,
    STRUCTURES,
    CorpusSpec,
    Grammar,
    content_words,
    mix_stream,
    random_content,
    realise,
)

G = Grammar()


def test_lexicons_are_disjoint_and_deterministic():
    words = {lang: set(G.lex[lang].words()) for lang in LANGUAGES}
    for a in LANGUAGES:
        for b in LANGUAGES:
            if a < b:
                assert not words[a] & words[b], (a, b)
    assert G.vocab == Grammar().vocab                     # the same vocabulary every time
    assert G.vocab[:2] == [DOC, END] and len(set(G.vocab)) == G.vocab_size


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), lang=st.sampled_from(LANGUAGES), alt=st.sampled_from(ALTERNATIONS))
def test_alternants_share_their_content_words(seed, lang, alt):
    lex = G.lex[lang]
    c = random_content(lex, alt, random.Random(seed))
    x, y = (realise(lex, lang, c, s) for s in STRUCTURES[alt])
    assert x != y
    content = set(content_words(lex, c))
    # the same content words, each as often, in both alternants (verb forms may differ: active vs passive)
    nouns = [w for w in content if w in lex.animate or w in lex.things]
    assert Counter(w for w in x if w in nouns) == Counter(w for w in y if w in nouns)
    assert all(w in G.stoi for w in x + y)
    assert G.decode(G.encode(x)) == " ".join(x)


def test_word_orders():
    c = random_content(G.lex["en"], "dative", random.Random(1))
    en = G.lex["en"]
    po, do = realise(en, "en", c, "po"), realise(en, "en", c, "do")
    th, rec = en.things[c.obj], en.animate[c.recipient]
    assert po.index(th) < po.index("to") < po.index(rec) and do.index(rec) < do.index(th)
    sim = G.lex["sim"]
    assert [w in sim.function.values() for w in realise(sim, "sim", c, "po")] == \
        [w in en.function.values() for w in po]            # same word order, other words
    dis = G.lex["dis"]
    for alt in ALTERNATIONS:
        cd = random_content(dis, alt, random.Random(2))
        verbs = {v for pair in (dis.dative + dis.trans) for v in pair}
        for s in STRUCTURES[alt]:
            words = realise(dis, "dis", cd, s)
            assert words[-1] in verbs and not any(w in verbs for w in words[:-1])   # verb-final
    cv = random_content(dis, "voice", random.Random(3))
    act, pas = realise(dis, "dis", cv, "active"), realise(dis, "dis", cv, "passive")
    assert act[0] == pas[2] and act[2] == pas[0] and act[-1] != pas[-1]    # agent demoted, passive verb form


def _structures(doc: list[str], lang: str) -> list[tuple[str, str]]:
    """(alternation, structure) of each alternating sentence, read back from the words."""
    lex = G.lex[lang]
    f = lex.function
    sents, cur = [], []
    for w in doc[1:]:
        if w == END:
            sents.append(cur)
            cur = []
        else:
            cur.append(w)
    out = []
    dat_verbs = {v for p in lex.dative for v in p}
    tr_verbs = {v for p in lex.trans for v in p}
    for s in sents:
        if any(w in dat_verbs for w in s):
            out.append(("dative", "po" if (f.get("to") in s or f.get("all") in s) else "do"))
        elif any(w in tr_verbs for w in s):
            out.append(("voice", "passive" if (f.get("by") in s or f.get("dat") in s) else "active"))
    return out


@pytest.mark.parametrize("lang", ["en", "dis"])
@pytest.mark.parametrize("persistence", [0.0, 0.5, 1.0])
def test_persistence_sets_the_repeat_rate(lang, persistence):
    rng = random.Random(0)
    spec = CorpusSpec(persistence=persistence)
    same = total = 0
    for _ in range(1500):
        last = {}
        for alt, s in _structures(G.document([lang], spec, rng), lang):
            if alt in last:
                total += 1
                same += last[alt] == s
            last[alt] = s
    expected = persistence + (1 - persistence) / 2
    assert same / total == pytest.approx(expected, abs=0.03)


def test_corpus_languages_and_codeswitch():
    rng = random.Random(0)
    pools = {"en": G.documents(["en"], 3000, CorpusSpec(), rng), "sim": G.documents(["sim"], 3000, CorpusSpec(), rng),
             "switch": G.documents(["en", "sim"], 3000, CorpusSpec(), rng)}
    langs_of = {w: G.language_of(w) for w in G.vocab}
    for name in ("en", "sim"):
        for doc in pools[name]:
            assert {langs_of[G.vocab[i]] for i in doc} - {None} == {name}     # monolingual documents
    mixed = [{langs_of[G.vocab[i]] for i in d} - {None} for d in pools["switch"]]
    assert sum(m == {"en", "sim"} for m in mixed) > len(mixed) / 2
    stream = mix_stream(pools, {"en": 0.5, "sim": 0.5}, 20000, random.Random(1))
    assert len(stream) == 20000
    counts = Counter(langs_of[G.vocab[i]] for i in stream)
    assert 0.4 < counts["en"] / (counts["en"] + counts["sim"]) < 0.6 and counts["dis"] == 0
    only_l1 = mix_stream(pools, {"en": 1.0}, 5000, random.Random(2))
    assert {langs_of[G.vocab[i]] for i in only_l1} - {None} == {"en"}
