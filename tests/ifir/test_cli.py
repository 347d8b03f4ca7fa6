"""CLI: eval on BEIR files (plain, instructed, judged), the quick run on the subset, one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from paperlab.cli import main
from paperlab.core.errors import UserError
from paperlab.ifir.data import SUBSET, scifact_root


def _run(capsys, *args):
    code = main(["ifir", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


FILES = ("--corpus", SUBSET / "corpus.jsonl", "--queries", SUBSET / "queries.jsonl", "--qrels",
         SUBSET / "qrels" / "test.tsv")


def test_eval_writes_ndcg_json_that_matches_ir_measures(tmp_path, capsys):
    out, trec = tmp_path / "res.json", tmp_path / "run.trec"
    code, _, _ = _run(capsys, "eval", *FILES, "--k", 10, "--output", out, "--run-file", trec)
    assert code == 0
    res = json.loads(out.read_text())
    assert res["retriever"] == "bm25" and len(res["queries"]) == 100
    assert res["max_abs_diff_vs_ir_measures"] < 1e-12
    assert 0 < res["mean"]["ndcg"]["lo"] < res["mean"]["ndcg"]["value"] < res["mean"]["ndcg"]["hi"] <= 1
    assert trec.read_text().count("\n") == sum(len(q["top"]) for q in res["queries"])


def test_eval_instructed_queries_without_a_judge(tmp_path, capsys):
    queries = [json.loads(x) for x in (SUBSET / "queries.jsonl").read_text().splitlines()][:5]
    queries[0]["instruction"] = "Only abstracts whose findings support the claim are relevant."
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in queries))
    code, stdout, _ = _run(capsys, "eval", "--corpus", SUBSET / "corpus.jsonl", "--queries", qfile, "--qrels",
                           SUBSET / "qrels" / "test.tsv", "--k", 5)
    res = json.loads(stdout)
    assert code == 0 and len(res["queries"]) == 5 and "judge" not in res
    first = res["queries"][0]
    assert first["instruction"] and len(first["top_instructed"]) == 5 and 0 <= first["ndcg_instructed"] <= 1
    assert all("instruction" not in q for q in res["queries"][1:])


@pytest.mark.slow
def test_eval_instructed_queries_with_the_default_judge(tmp_path, capsys):
    queries = [json.loads(x) for x in (SUBSET / "queries.jsonl").read_text().splitlines()][:2]
    for q in queries:
        q["instruction"] = "Only abstracts whose findings support the claim are relevant."
        q["level"] = 2
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in queries))
    code, stdout, _ = _run(capsys, "eval", "--corpus", SUBSET / "corpus.jsonl", "--queries", qfile, "--qrels",
                           SUBSET / "qrels" / "test.tsv", "--judge", "default-hf", "--k", 2, "--judge-max-tokens", 24,
                           "--max-passage-words", 60)
    assert code == 0
    res = json.loads(stdout)
    assert len(res["queries"]) == 2 and res["judge"] == "default-hf"
    for q in res["queries"]:
        assert q["instruction"] and len(q["plain_scores"]) == len(q["top"]) and len(q["inst_scores"]) == 2
        assert -1.0 <= q["instfol"] <= 5.0
    assert "instfol" in res["mean"] and "ndcg_instructed" in res["mean"]


def _bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("case", ["missing", "notjson", "retriever", "judge_no_inst", "bad_spec", "qrels", "orphans"])
def test_eval_bad_input_is_one_line_exit_2(tmp_path, capsys, case):
    args = dict(zip(FILES[::2], FILES[1::2], strict=True))
    extra: list = []
    if case == "missing":
        args["--corpus"] = tmp_path / "nope.jsonl"
    elif case == "notjson":
        args["--queries"] = _bad(tmp_path, "q.jsonl", "{not json\n")
    elif case == "retriever":
        extra = ["--retriever", "bm26"]
    elif case == "judge_no_inst":
        extra = ["--judge", "default"]
    elif case == "bad_spec":
        extra = ["--judge", "gpt4"]
    elif case == "qrels":
        args["--qrels"] = _bad(tmp_path, "qrels.tsv", "query-id\tcorpus-id\tscore\n1\t2\n")
    elif case == "orphans":
        args["--qrels"] = _bad(tmp_path, "qrels.tsv", "query-id\tcorpus-id\tscore\n1\t999999999\t1\n")
    code, _, err = _run(capsys, "eval", *[x for kv in args.items() for x in kv], *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1, err


def _full_data() -> bool:
    try:
        scifact_root()
        return True
    except UserError:
        return False


@pytest.mark.slow
def test_quick_run_on_the_subset_resumes_and_refuses_another_config(tmp_path, capsys):
    out = tmp_path / "run"
    args = ("run", "--quick", "--data", "subset", "--retrievers", "bm25,dense", "--instfol-claims", 1,
            "--instfol-k", 2, "--reference" if _full_data() else "--no-reference", "--out", out)
    code, _, err = _run(capsys, *args)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert {"ndcg_matches_reference", "instfol_reported", "judge_separates_gold"} <= set(claims)
    ident = claims["ndcg_matches_reference"]["values"]["evidence"]
    assert next(iter(ident.values()))["verdict"] == "holds"
    if _full_data():                                                    # BM25 over all 300 test claims
        assert claims["ndcg_matches_reference"]["values"]["bm25_claims"] == 300
    assert {k.split()[0] for k in claims["instfol_reported"]["values"]["evidence"]} == {"bm25", "dense"}
    assert (out / "report.md").read_text().startswith("# IFIR")
    assert (out / "ndcg_levels.png").stat().st_size > 1000 and (out / "instfol.png").exists()
    rows = [json.loads(x) for x in (out / "instfol.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 3 and all(len(r["plain_scores"]) == 2 for r in rows)
    assert _run(capsys, *args)[0] == 0                               # same configuration: resumed
    assert len((out / "instfol.jsonl").read_text().splitlines()) == 6  # nothing judged twice
    code, _, err = _run(capsys, *args[:-2], "--seed", 5, "--out", out)
    assert code == 2 and "another configuration" in err and len(err.strip().splitlines()) == 1


def test_run_without_scifact_is_one_line_and_makes_no_folder(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "nodata"
    empty.mkdir()
    out = tmp_path / "run"
    code, _, err = _run(capsys, "run", "--quick", "--scifact", empty, "--out", out)
    assert code == 2 and "SciFact" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    monkeypatch.setenv("PAPERLAB_SCIFACT", str(empty))
    monkeypatch.setattr("paperlab.ifir.data.SHARED_SCIFACT", empty)
    monkeypatch.setattr("paperlab.ifir.data.USER_SCIFACT", empty)
    code, _, err = _run(capsys, "run", "--quick", "--out", out)        # the reference needs the full data
    assert code == 2 and "--no-reference" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    for bad in (("--data", "half"), ("--retrievers", "bm25,bm26"), ("--judge", "gpt4"), ("--instfol-k", 0)):
        code, _, err = _run(capsys, "run", "--quick", *bad, "--out", out)
        assert code == 2 and len(err.strip().splitlines()) == 1 and not out.exists(), bad
