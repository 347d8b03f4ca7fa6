"""CLI: the quick run end to end (tiny settings), ingest / ask on a store, one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from paperlab.cli import main
from paperlab.egorag.simulator import simulate

TINY = ["--model", "none", "--days", "2", "--clips-per-hour", "4", "--questions", "4", "--latency-days", "1,2",
        "--latency-clips-per-hour", "2"]


def _run(capsys, *args):
    code = main(["egorag", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_quick_tiny_writes_report_and_claims(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _run(capsys, "run", "--quick", *TINY, "--out", out)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert {"hierarchical_beats_flat_old_evidence", "latency_sublinear"} <= set(claims)
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in claims.values())
    assert res["results"]["check"]["ok"] and res["results"]["clips"] == 2 * 16 * 4
    report = (out / "report.md").read_text()
    assert report.startswith("# EgoRAG") and "## Latency" in report and "λ sweep" in report
    assert (out / "recall_by_age.png").stat().st_size > 1000 and (out / "latency.png").exists()
    # another configuration in the same folder: refused in one line (resuming is tested on the store itself)
    code, _, err = _run(capsys, "run", "--quick", *TINY[:-2], "--latency-clips-per-hour", "4", "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "another configuration" in err


def _captions(tmp_path, scene=True):
    p = tmp_path / "captions.jsonl"
    rows = [c.record() if scene else {k: v for k, v in c.record().items() if k != "scene"}
            for c in simulate(2, 6, seed=0).clips]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p, len(rows)


def test_ingest_then_ask(tmp_path, capsys):
    caps, n = _captions(tmp_path)
    store = tmp_path / "store"
    code, out, err = _run(capsys, "ingest", "--store", store, "--captions", caps, "--embedder", "hash:128")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["added"] == n and stats["check"]["ok"]
    code, out, _ = _run(capsys, "ingest", "--store", store, "--captions", caps)
    assert code == 0 and json.loads(out)["added"] == 0 and json.loads(out)["clips"] == n
    for method in ("hierarchical", "flat", "eq2"):
        code, out, err = _run(capsys, "ask", "Where did I leave the scissors?", "--store", store, "--model", "none",
                              "--retrieval", method, "--k", 4, "--at", 86400 + 20 * 3600)
        assert code == 0, err
        res = json.loads(out)
        assert res["answer"] is None and len(res["clips"]) == 4
        assert all(c["t_start"] < 86400 + 20 * 3600 for c in res["clips"])
    answer_file = tmp_path / "a.json"
    code, out, err = _run(capsys, "ask", "What did I do this evening?", "--store", store, "--output", answer_file)
    assert code == 0, err
    res = json.loads(answer_file.read_text())
    assert isinstance(res["answer"], str) and res["model"] == "default" and len(res["clips"]) == 3


def _bad_lines(tmp_path, text):
    p = tmp_path / "bad.jsonl"
    p.write_text(text)
    return p


@pytest.mark.parametrize("args,needle", [
    (lambda t: ["ingest", "--store", t / "s", "--captions", t / "missing.jsonl"], "does not exist"),
    (lambda t: ["ingest", "--store", t / "s", "--captions", _bad_lines(t, '{"t_start": 1}\n')], "lacks"),
    (lambda t: ["ingest", "--store", t / "s", "--captions", _bad_lines(t, "oops\n")], "not JSON"),
    (lambda t: ["ingest", "--store", t / "s", "--captions", _captions(t)[0], "--embedder", "hash:x"],
     "bad embedder spec"),
    (lambda t: ["ingest", "--store", t / "s", "--captions", _captions(t)[0], "--summarizer", "nonsense:x"],
     "--summarizer"),
    (lambda t: ["ask", "anything", "--store", t / "s", "--model", "none"], "no memory store"),
    (lambda t: ["ask", "anything", "--store", t / "s", "--retrieval", "magic"], "--retrieval"),
    (lambda t: ["ask", "anything", "--store", t / "s", "--model", "nonsense:x"], "--model"),
    (lambda t: ["run", "--quick", "--clips-per-hour", "7", "--out", t / "r"], "clips_per_hour"),
    (lambda t: ["run", "--quick", "--lambdas", "a,b", "--out", t / "r"], "--lambdas"),
    (lambda t: ["run", "--quick", "--latency-days", "7", "--out", t / "r"], "latency_days"),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, args, needle):
    code, _, err = _run(capsys, *args(tmp_path))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()


def test_eq2_needs_scenes_and_bad_time(tmp_path, capsys):
    caps, _ = _captions(tmp_path, scene=False)
    store = tmp_path / "store"
    assert _run(capsys, "ingest", "--store", store, "--captions", caps, "--embedder", "hash:64")[0] == 0
    code, _, err = _run(capsys, "ask", "x?", "--store", store, "--model", "none", "--retrieval", "eq2")
    assert code == 2 and "scene" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "ask", "x?", "--store", store, "--model", "none", "--at", "yesterday")
    assert code == 2 and "not a time" in err
