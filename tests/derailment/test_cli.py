"""CLI: predict on your threads (features and LLM), the quick run without an LLM, one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from paperlab.cli import main
from paperlab.derailment.data import load_threads, thread_to_json


def _run(capsys, *args):
    code = main(["derailment", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def threads_file(tmp_path_factory):
    ts = load_threads()
    pick = [next(t for t in ts if t.source == s) for s in ("derailed", "non_derailed", "non_toxic")]
    f = tmp_path_factory.mktemp("in") / "threads.jsonl"
    f.write_text("".join(json.dumps(thread_to_json(t)) + "\n" for t in pick))
    return f, pick


def test_predict_features_writes_probabilities(capsys, threads_file, tmp_path):
    f, pick = threads_file
    code, out, _ = _run(capsys, "predict", "--threads", f, "--early-warning", "--threshold", 0.3)
    assert code == 0
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["id"] for r in rows] == [t.id for t in pick]
    for r, t in zip(rows, pick, strict=True):
        assert 0 <= r["probability"] <= 1 and r["alarm"] == (r["probability"] >= 0.3)
        assert r["comments_used"] == len(t.prefix) and len(r["prefix_probabilities"]) == len(t.prefix)
        first = next((k for k, p in enumerate(r["prefix_probabilities"], 1) if p >= 0.3), None)
        assert r["alarm_at_comment"] == first
    dest = tmp_path / "pred.jsonl"
    assert _run(capsys, "predict", "--threads", f, "--output", dest)[0] == 0
    assert [json.loads(x)["probability"] for x in dest.read_text().splitlines()] == [r["probability"] for r in rows]


def test_predict_llm_with_the_default_model(capsys, tmp_path):
    f = tmp_path / "one.jsonl"
    f.write_text(json.dumps([{"author": "a", "text": "The installer crashes, see log."},
                             {"author": "b", "text": "Cannot reproduce. Closing."}]) + "\n")
    code, out, _ = _run(capsys, "predict", "--threads", f, "--method", "llm", "--prompt", "hua", "--summary-tokens", 32)
    row = json.loads(out)
    assert code == 0 and row["method"] == "llm" and 0 <= row["probability"] <= 1 and row["summary"]


def test_run_quick_without_llm_writes_report_and_resumes(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, _ = _run(capsys, "run", "--quick", "--model", "none", "--out", out)
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"markers_precede_toxicity", "early_warning"}
    ew = claims["early_warning"]["values"]["evidence"]
    assert list(ew) == ["features: warned - false alarms"]
    assert res["results"]["features"]["association_features"] is False
    assert (out / "report.md").read_text().startswith("# Derailment")
    assert (out / "threshold_sweep.png").stat().st_size > 1000
    assert _run(capsys, "run", "--quick", "--model", "none", "--out", out)[0] == 0      # same config: resumes
    code, _, err = _run(capsys, "run", "--quick", "--model", "none", "--seed", 1, "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "another configuration" in err


def _bad(tmp_path, text):
    p = tmp_path / "bad.jsonl"
    p.write_text(text)
    return p


@pytest.mark.parametrize("args,needle", [
    (lambda t: ["predict", "--threads", t / "missing.jsonl"], "does not exist"),
    (lambda t: ["predict", "--threads", _bad(t, "{nope")], "not valid JSON"),
    (lambda t: ["predict", "--threads", _bad(t, '{"comments": []}')], "no comment before"),
    (lambda t: ["predict", "--threads", _bad(t, "[]"), "--method", "magic"], "--method"),
    (lambda t: ["predict", "--threads", _bad(t, "[]"), "--method", "llm", "--model", "nonsense"], "--model"),
    (lambda t: ["predict", "--threads", _bad(t, '[{"text": "x"}]'), "--output", t], "is a folder"),
    (lambda t: ["run", "--quick", "--probability", "vibes", "--out", t / "r"], "--probability"),
    (lambda t: ["run", "--quick", "--model", "gguf:/no/such.gguf", "--out", t / "r"], "not found"),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, args, needle):
    code, _, err = _run(capsys, *args(tmp_path))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()
