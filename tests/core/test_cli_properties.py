"""Property tests: every parser of user input gives a result or a one-line UserError, never another exception.

Covered: the model spec parser, the shared JSONL reader, the CLI list/path validators, and the
systems' own input readers (telephone score, TSV score, fm_inverse observations).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from paperlab.cli import error_line
from paperlab.core.cli import check_writable_dir, check_writable_file, parse_floats, parse_ints, parse_names
from paperlab.core.data import read_jsonl
from paperlab.core.errors import UserError
from paperlab.core.models import ModelSpec, parse_spec

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: JSON values, nested a little (with the numbers JSON allows, and those Python's json also reads: NaN, inf).
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
#: Lines of a JSONL file: JSON values (objects mostly), raw text, or blanks.
LINE = st.one_of(
    st.dictionaries(st.sampled_from(["id", "text", "iteration", "question", "answer", "0_en", "2_en", "x"]),
                    JSON, max_size=5).map(json.dumps),
    JSON.map(json.dumps),
    st.text(max_size=30),
    st.just(""),
)
FILE_TEXT = st.lists(LINE, max_size=6).map("\n".join)


def _assert_one_line(e: UserError) -> None:
    assert e.problem and isinstance(e.problem, str)
    line = error_line(e)
    assert line.startswith("error: ") and len(line.splitlines()) == 1


def _outcome(fn, *args):
    """``fn(*args)``; a UserError is returned (after checking it prints on one line), anything else raises."""
    try:
        return fn(*args)
    except UserError as e:
        _assert_one_line(e)
        return e


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def _write(folder: Path, name: str, content: str | bytes) -> Path:
    p = folder / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8", errors="surrogatepass")
    return p


# -- model specs ------------------------------------------------------------------------------

SPEC = st.one_of(
    st.text(max_size=40),
    st.tuples(st.sampled_from(["hf:", "gguf:", "openai:", "openai:http://", "openai:https://h:1/v1#", "mt:", ":"]),
              st.text(max_size=300)).map("".join),
    st.just("default"),
)


@SETTINGS
@given(SPEC)
@example("gguf:" + "a" * 300)           # a file name too long for the OS
@example("gguf:\x00")
@example("openai:http://h#")
def test_parse_spec_gives_a_spec_or_a_one_line_error(spec):
    r = _outcome(parse_spec, spec)
    assert isinstance(r, ModelSpec | UserError)
    if isinstance(r, ModelSpec):
        assert r.kind in ("gguf", "hf", "openai")


# -- the JSONL reader ---------------------------------------------------------------------------

@SETTINGS
@given(FILE_TEXT)
@example('[1, 2]\n{"a": 1}')
@example('{"a": "\u2028"}')              # a line separator inside a string is not a line break
@example("[" * 5000)                    # deeper than the JSON parser recurses
def test_read_jsonl_gives_objects_or_a_one_line_error(workdir, text):
    p = _write(workdir, "in.jsonl", text)
    r = _outcome(read_jsonl, p)
    if isinstance(r, UserError):
        return
    assert r and all(isinstance(row, dict) for row in r)
    assert len(r) == sum(1 for line in text.split("\n") if line.strip())


@SETTINGS
@given(st.binary(max_size=200))
def test_read_jsonl_on_arbitrary_bytes(workdir, data):
    r = _outcome(read_jsonl, _write(workdir, "bytes.jsonl", data))
    assert isinstance(r, list | UserError)


@SETTINGS
@given(st.lists(JSON, min_size=1, max_size=5))
def test_read_jsonl_names_the_first_non_object_line(workdir, values):
    text = "\n".join(json.dumps(v) for v in values)
    r = _outcome(read_jsonl, _write(workdir, "vals.jsonl", text))
    bad = [i for i, v in enumerate(values, 1) if not isinstance(v, dict)]
    if bad:
        assert isinstance(r, UserError) and f":{bad[0]} " in r.problem
    else:
        assert r == json.loads("[" + ",".join(json.dumps(v) for v in values) + "]")


# -- the systems' own readers ---------------------------------------------------------------------

@SETTINGS
@given(FILE_TEXT, FILE_TEXT)
@example('{"id": "a", "text": "t"}', '{"id": "a", "iteration": "x", "text": "t"}')
@example('{"id": "a", "text": "t"}', '{"id": "a", "iteration": 1e400, "text": "t"}')
@example('{"id": "a", "text": "t"}', '{"id": "a", "iteration": null, "text": "t"}')
def test_telephone_score_inputs(workdir, originals, generations):
    from paperlab.telephone.scoring import _generations, _originals

    o = _outcome(_originals, _write(workdir, "orig.jsonl", originals))
    g = _outcome(_generations, _write(workdir, "gen.jsonl", generations))
    assert isinstance(o, dict | UserError)
    if isinstance(g, list):
        assert all(isinstance(t, int) and t >= 0 and isinstance(text, str) for _, t, text in g)


@SETTINGS
@given(FILE_TEXT)
def test_tsv_score_input(workdir, text):
    from paperlab.tsv.detector import read_pairs

    r = _outcome(read_pairs, _write(workdir, "pairs.jsonl", text))
    if not isinstance(r, UserError):
        qs, ans = r
        assert len(qs) == len(ans) > 0 and all(isinstance(q, str) and q.strip() for q in qs)


OBS = st.one_of(
    JSON,
    st.fixed_dictionaries({k: st.lists(JSON | st.floats(0, 4), max_size=4) for k in ("t", "I", "R")}),
    st.fixed_dictionaries({"e": st.lists(JSON, max_size=3),
                           **{k: st.lists(st.floats(0, 1) | JSON, max_size=3) for k in ("u", "row", "col")}}),
)


@SETTINGS
@given(OBS, st.sampled_from(["seir", "darcy"]))
@example({"t": [10**400], "I": [1], "R": [1]}, "seir")
@example({"e": ["a", 1], "u": [0.5], "row": [0.5], "col": [0.5]}, "darcy")
def test_fm_inverse_observations(workdir, raw, problem):
    from paperlab.fm_inverse.cli import read_observations

    p = workdir / "obs.json"
    p.write_text(json.dumps(raw) if not isinstance(raw, int) or abs(raw) < 10**300 else str(raw))
    r = _outcome(read_observations, p, problem)
    if not isinstance(r, UserError):
        assert r["tokens"].ndim == 2 and r["tokens"].shape[1] == 3


# -- CLI values ------------------------------------------------------------------------------------

@SETTINGS
@given(st.text(max_size=40))
@example("1,,2")
@example("nan")
@example("1e999")
@example(" , ")
def test_comma_lists(text):
    for fn in (parse_floats, parse_ints):
        r = _outcome(fn, text, "--opt")
        if isinstance(r, list):
            assert r and all(isinstance(x, int | float) for x in r)
    r = _outcome(lambda t: parse_floats(t, "--t", min=0), text)
    if isinstance(r, list):
        assert all(x >= 0 for x in r)
    r = _outcome(lambda t: parse_names(t, "--n", choices=("a", "b")), text)
    if isinstance(r, list):
        assert set(r) <= {"a", "b"}


@SETTINGS
@given(st.text(min_size=1, max_size=300))
@example("x\x00y")
@example("a" * 300)
def test_path_checks_create_nothing(workdir, text):
    before = sorted(p.name for p in workdir.iterdir())
    for fn in (check_writable_dir, check_writable_file):
        r = _outcome(fn, workdir / "sub" / text)
        assert isinstance(r, Path | UserError)
    assert sorted(p.name for p in workdir.iterdir()) == before
