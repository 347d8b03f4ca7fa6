"""Obfuscation: templates, the greedy scanner, permutations, round trips, validation, metadata."""

from __future__ import annotations

import json
import random
import unicodedata as ud

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.core.errors import UserError
from paperlab.lingoly.obfuscation import (
    Template,
    apply_mapping,
    count_mappings,
    invert,
    load_template,
    mapping_at,
    normalise,
    remove_metadata,
    sample_mappings,
    scan,
    template_from_json,
    validate_template,
)
from paperlab.lingoly.problems import (
    deobfuscate_problem,
    generate_obfuscations,
    iter_fields,
    obfuscate_problem,
    original_version,
    parse_questions,
)
from paperlab.lingoly.released import load_released, load_templates, template_path
from paperlab.lingoly.templates import derive_template

# ------------------------------------------------------------------ random prefix-free templates

LETTERS = "abcdefghijklmnopqrstuvwxyzæøçé"


@st.composite
def templates_and_texts(draw):
    """A template whose graphemes form a prefix code (so greedy segmentation is unique) and a text made
    of its graphemes, capitalised words and separators."""
    singles = draw(st.lists(st.sampled_from(LETTERS), min_size=3, max_size=12, unique=True))
    # digraphs start with a letter that is not itself a grapheme: the inventory stays prefix-free
    starts = [c for c in LETTERS if c not in singles]
    digraphs = draw(st.lists(st.tuples(st.sampled_from(starts), st.sampled_from(LETTERS)).map("".join),
                             max_size=4, unique=True)) if starts else []
    digraphs = [d for d in digraphs if not any(d[0] == e[0] for e in digraphs if e != d)]  # one per start letter
    inventory = [normalise(g) for g in singles + digraphs]
    inventory = list(dict.fromkeys(inventory))
    if len(inventory) >= 4:
        cut = draw(st.integers(2, len(inventory) - 2))
        tpl = Template(sets=[inventory[:cut], inventory[cut:]])
    else:
        tpl = Template(sets=[inventory])
    word = st.lists(st.sampled_from(inventory), min_size=1, max_size=6).map("".join)
    words = draw(st.lists(st.tuples(word, st.booleans(), st.sampled_from([" ", ", ", ". ", "\n", " 12 "])),
                          min_size=1, max_size=12))
    text = "".join((w[0].upper() + w[1:] if cap else w) + sep for w, cap, sep in words)
    return tpl, text


@settings(max_examples=150, deadline=None)
@given(templates_and_texts(), st.integers(0, 10**9))
def test_obfuscation_is_a_bijection_on_graphemes(tt, pick):
    tpl, text = tt
    total = count_mappings(tpl)
    m = mapping_at(tpl, pick % total)
    assert sorted(m) == sorted(m.values())                      # a permutation of the inventory
    obf = apply_mapping(text, m)
    assert apply_mapping(obf, invert(m)) == normalise(text)     # de-obfuscation restores the text exactly
    assert obf != normalise(text)                               # something moved


@settings(max_examples=100, deadline=None)
@given(templates_and_texts(), st.integers(0, 2**31))
def test_no_permutation_is_the_identity_and_every_row_moves(tt, seed):
    tpl, _ = tt
    for m in sample_mappings(tpl, 6, random.Random(seed)):
        for row in tpl.sets:
            if len(row) >= 2:
                assert all(m[g] != g for g in row)               # force_change: no fixed point in a row
                assert sorted(m[g] for g in row) == sorted(row)  # and it stays within its class


@settings(max_examples=60, deadline=None)
@given(templates_and_texts(), st.integers(0, 2**31))
def test_same_seed_same_output(tt, seed):
    tpl, text = tt
    a = sample_mappings(tpl, 6, random.Random(seed))
    b = sample_mappings(tpl, 6, random.Random(seed))
    assert a == b and [apply_mapping(text, m) for m in a] == [apply_mapping(text, m) for m in b]
    assert len({json.dumps(m, sort_keys=True) for m in a}) == len(a)   # drawn without replacement


def test_all_mappings_are_enumerated_once():
    tpl = Template(tables=[[[["p", "t", "k"], ["m", "n"]], [["b", "d", "g"], ["w", "y"]]]], sets=[["a", "i", "u"]])
    n = count_mappings(tpl)
    # column shift (1 option) x rows (2,1 per column, two columns) x vowel set (2)
    assert n == 1 * (2 * 1) * (2 * 1) * 2
    maps = [mapping_at(tpl, i) for i in range(n)]
    assert len({json.dumps(m, sort_keys=True) for m in maps}) == n
    for m in maps:
        assert m["p"] in ("d", "g") and m["b"] in ("t", "k")      # columns swapped, rows rotated by s != 0
        assert m["m"] == "y" and m["w"] == "n"


def test_greedy_longest_match_case_and_nfd():
    m = {"n": "t", "ng": "k", "g": "d", "a": "e", "c\u0327": "s", "s": "c\u0327"}
    assert [k for k, _ in scan("nganga", m)] == ["ng", "a", "ng", "a"]
    assert apply_mapping("Nganga ngn", m) == "Keke kt"    # ng->k (case kept), a->e; a lone n -> t
    assert apply_mapping("Ça", m) == "Se"                                    # precomposed input, NFD key
    assert apply_mapping("Sa", m) == ud.normalize("NFD", "Çe")               # first char upper-cased
    assert apply_mapping("x-y", m) == "x-y"                                   # unmapped characters copied
    assert normalise("\u0294a\u0241") == "\u0242a\u0242"                      # glottal stops standardised


def test_validator_reports_ambiguities():
    bad = Template(sets=[["a", "e"], ["e", "i"], ["O", "u"]], fixed=["A"])  # fixed terms are lower-cased
    kinds = {(i.severity, i.kind) for i in validate_template(bad)}
    assert ("error", "overlap") in kinds and ("error", "case") in kinds
    warn = validate_template(Template(sets=[["n", "ng", "m"]]), ["nanga", "pum"])
    kinds = {(i.kind, i.message.split("'")[1]) for i in warn}
    assert ("prefix", "n") in kinds and ("unmapped", "p") in kinds and ("unmapped", "u") in kinds
    straddle = [i.message for i in validate_template(Template(sets=[["r", "rn", "ny", "y", "n"]])) if i.kind == "straddle"]
    assert straddle == ["'rny' reads as 'rn'+'y' or 'r'+'ny' (the scan takes 'rn' first)"]
    ident = validate_template(Template(sets=[["a"]], fixed=["b"]))
    assert any(i.kind == "identity" and i.severity == "error" for i in ident)
    assert not [i for i in validate_template(Template(sets=[["a", "e", "i"]]), ["aei"]) if i.severity == "error"]


def test_template_format_errors_are_one_line(tmp_path):
    p = tmp_path / "t.json"
    p.write_text('{"sets": [["a", "e"]')
    with pytest.raises(UserError, match="not valid JSON"):
        load_template(p)
    p.write_text('{"sets": [["a", "e"], ["e", "o"]]}')
    with pytest.raises(UserError, match="listed in set 0 and in set 1"):
        load_template(p)
    with pytest.raises(UserError, match="unknown key"):
        template_from_json({"set": []})
    with pytest.raises(UserError, match="list of strings"):
        template_from_json({"sets": [["a", 1]]})


def test_remove_metadata_whole_words_longest_first():
    text = "Amele is spoken in Madang. Old Norse and Norse; Ameles stays; amele too."
    out = remove_metadata(text, ["Amele", "Norse", "Old Norse", "Madang"], "X")
    assert out == "X is spoken in X. X and X; Ameles stays; X too."
    assert remove_metadata("nothing here", [""], "X") == "nothing here"


# ------------------------------------------------------------------ the released problems


@pytest.fixture(scope="module")
def released():
    return load_released()


@pytest.fixture(scope="module")
def templates():
    return load_templates()


def test_shipped_templates_are_derived_reproducibly(released, templates):
    for pid, r in released.items():
        t = templates[pid]
        again = derive_template(pid, r.original, r.obfuscations, t.metadata)
        assert again.to_json() == json.loads(template_path(pid).read_text(encoding="utf-8"))


def test_released_mappings_reproduce_the_released_text(released, templates):
    for pid, r in released.items():
        for o in r.obfuscations:
            mine = obfuscate_problem(r.original, o["mapping"], templates[pid], int(o["obf_num"]))
            for (name, a), (_, b) in zip(iter_fields(mine), iter_fields(o), strict=True):
                assert normalise(a) == normalise(b), (pid, o["obf_num"], name)


def test_fresh_obfuscations_answers_consistent_and_invertible(released, templates):
    versions = generate_obfuscations({p: r.original for p, r in released.items()}, templates)
    assert [len(v) - 1 for v in versions.values()] == [6, 6, 6, 2, 6, 6]   # 191 has only two permutations
    assert versions == generate_obfuscations({p: r.original for p, r in released.items()}, templates)
    for pid, vs in versions.items():
        tpl = templates[pid]
        for v in vs[1:]:
            m = v["mapping"]
            # every answer word that also occurs in the context is obfuscated the same way in both
            orig_ctx, obf_ctx = normalise(released[pid].original["context"]), normalise(v["context"])
            for q0, q1 in zip(parse_questions(released[pid].original), parse_questions(v), strict=True):
                for s0, s1 in zip(q0["subprompts"], q1["subprompts"], strict=True):
                    for w0, w1 in zip(normalise(s0["answer"]).split(), normalise(s1["answer"]).split(), strict=True):
                        w0, w1 = w0.strip(".,!?\"[]"), w1.strip(".,!?\"[]")
                        if w0 in tpl.problemese and f" {w0} " in f" {orig_ctx} ":
                            assert w1 == apply_mapping(w0, m) and w1 in obf_ctx
            # exact de-obfuscation of the marked version
            marked = obfuscate_problem(released[pid].original, m, tpl, 1, keep_marks=True)
            back = deobfuscate_problem(marked)
            want = original_version(released[pid].original, tpl)
            for (name, a), (_, b) in zip(iter_fields(back), iter_fields(want), strict=True):
                assert normalise(a).lower() == normalise(b).lower(), (pid, name)


def test_original_kept_as_obfuscation_zero(released, templates):
    versions = generate_obfuscations({"88": released["88"].original}, {"88": templates["88"]}, k=2)
    v0 = versions["88"][0]
    assert v0["obf_num"] == "0" and v0["mapping"] is None and v0["context"] == released["88"].original["context"]
    assert [v["obf_num"] for v in versions["88"]] == ["0", "1", "2"]


def test_two_column_table_follows_the_official_two_passes():
    """Columns A = p t k, B = b d g; the official generator's passes leave A[p1(k)] -> B[k] and
    B[k] -> A[p0(k)], with (p0, p1) the row's shifts in product order (p1 fastest)."""
    tpl = Template(tables=[[[["p", "t", "k"]], [["b", "d", "g"]]]])
    assert count_mappings(tpl) == 4
    # index 1: p0 = +1, p1 = +2 -> A[(k+2)%3] -> B[k]: k->b, p->d, t->g ; B[k] -> A[(k+1)%3]: b->t, d->k, g->p
    assert mapping_at(tpl, 1) == {"p": "d", "t": "g", "k": "b", "b": "t", "d": "k", "g": "p"}
    # index 2: p0 = +2, p1 = +1 -> p->g, t->b, k->d ; b->k, d->p, g->t
    assert mapping_at(tpl, 2) == {"p": "g", "t": "b", "k": "d", "b": "k", "d": "p", "g": "t"}


def test_annotated_problem_obfuscates_marked_spans_and_answers_alike():
    prob = {"preamble": "Problem 1. $$$Amele$$$ (5 marks)",
            "context": "@@@Ele mala@@@ Qilol.   We two the chicken Qilol. Amele is spoken in &&&Madang&&&.",
            "questions": json.dumps([{"question_n": "Q1", "prompt": "Translate into $$$Amele$$$.",
                                      "subprompts": [{"questionpart_n": "a", "question": "The chicken.",
                                                      "answer": "@@@Mala@@@ Qilol"}]}])}
    tpl = Template(sets=[["a", "e"], ["l", "m"]], metadata=["Amele", "Madang"])
    m = mapping_at(tpl, 0)
    assert m == {"a": "e", "e": "a", "l": "m", "m": "l"}
    out = obfuscate_problem(prob, m, tpl, 1)
    assert out["preamble"] == "Problem 1. Language X (5 marks)"
    assert out["context"] == "Ama leme Qilol.   We two the chicken Qilol. Language X is spoken in Language X."
    q = parse_questions(out)[0]
    assert q["prompt"] == "Translate into Language X." and q["subprompts"][0]["answer"] == "Leme Qilol"
    assert out["mapping"] == m and out["obf_num"] == "1"
    with pytest.raises(UserError, match="unpaired"):
        obfuscate_problem({**prob, "context": "@@@Ele"}, m, tpl, 1)
