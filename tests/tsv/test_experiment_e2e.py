"""End-to-end: ``reproduce`` on a tiny real Llama (seconds): gold answers, given answers, claims, detector."""

import json

import pytest

from paperlab.core.errors import UserError
from paperlab.tsv.data import load_truthfulqa, paper_split
from paperlab.tsv.detector import Detector
from paperlab.tsv.experiment import BASELINES

SMALL = dict(n_exemplars=8, n_val=4, n_test=6, n_wild=6, stage1_epochs=2, stage2_epochs=1, k=4, bootstrap=20,
             micro_batch=8, threads=1, layer=2, lam_rel=[0.5], lr=1e-2, seeds=2)


def test_reproduce_gold_mode(tiny_dir, tmp_path):
    from paperlab.tsv.experiment import reproduce

    run_dir = reproduce(out=tmp_path / "run", model=f"hf:{tiny_dir}", mode="gold", **SMALL)
    res = json.loads((run_dir / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"tsv_beats_baselines", "tsv_ot_stage"}
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in claims.values())
    assert set(claims["tsv_beats_baselines"]["values"]["evidence"]) == {f"tsv - {b}" for b in BASELINES}
    r = res["results"]
    # two gold answers per question; 8 labelled exemplar answers from 4 questions
    assert r["n"] == {"exemplar": 8, "val": 8, "test": 12, "wild": 12}
    assert r["questions"] == {"exemplar": 4, "val": 4, "test": 6, "wild": 6}
    assert r["truthful_rate"]["test"] == 0.5
    ev = claims["tsv_ot_stage"]["values"]["evidence"]
    assert ev["n"] == 6 and "6 clusters" in ev["method"]  # 12 answers, resampled by their 6 questions
    assert set(r["test_auroc"]) >= {*BASELINES, "tsv_stage1", "tsv"}
    # grid: paper's lambda and 0.5 x residual norm, one lr, two seeds; finals: the selected setting per seed
    assert len(r["grid"]) == 4 and {g["seed"] for g in r["grid"]} == {0, 1}
    assert len(r["finals"]) == 2 and len(r["test_auroc_per_seed"]["tsv"]) == 2
    assert r["selected"]["lambda"] in {g["lambda"] for g in r["grid"]}
    assert r["finals"][0]["stage2"]["selected"] == 4 and r["finals"][0]["stage1"]["epochs"] == [1, 2]
    assert r["detector"]["reload_max_abs_diff"] < 1e-4
    report = (run_dir / "report.md").read_text()
    assert "Does TSV beat the baselines?" in report and "lambda / residual norm" in report
    assert (run_dir / "auroc.png").exists() and (run_dir / "roc.png").exists()
    recs = [json.loads(x) for x in (run_dir / "answers.jsonl").read_text().splitlines()]
    splits = {}
    for x in recs:
        assert splits.setdefault(x["row"], x["split"]) == x["split"]  # no question in two splits
    det = Detector.load(run_dir / "detector")
    assert det.layer == 2 and det.model == f"hf:{tiny_dir}" and det.lam == r["selected"]["lambda"]


def test_reproduce_with_an_answers_file(tiny_dir, tmp_path):
    from paperlab.tsv.experiment import reproduce

    qs, sp = load_truthfulqa(), paper_split()
    rows = sp.exemplars[:8] + sp.val[:4] + sp.test[:6] + sp.wild[:6]
    ans = tmp_path / "answers.jsonl"
    ans.write_text("".join(json.dumps({"row": r, "answer": qs[r].correct[0] if i % 2 == 0 else qs[r].incorrect[0],
                                       "label": int(i % 2 == 0)}) + "\n" for i, r in enumerate(rows)))
    run_dir = reproduce(out=tmp_path / "run", model=f"hf:{tiny_dir}", answers_file=str(ans),
                        **{**SMALL, "seeds": 1, "lam": 5.0})
    r = json.loads((run_dir / "results.json").read_text())["results"]
    assert r["labelling"]["method"].startswith("given")
    assert r["n"] == {"exemplar": 8, "val": 4, "test": 6, "wild": 6} and len(r["grid"]) == 1


def test_bad_answers_file_is_refused_before_the_run_folder(tiny_dir, tmp_path, capsys):
    from paperlab.cli import main

    ans = tmp_path / "a.jsonl"
    for line, fragment in [('{"row": 0, "answer": "x", "label": 2}', "label 2"),
                           ('{"row": 9999, "answer": "x"}', "outside TruthfulQA"),
                           ('{"row": 0, "answer": "x"}', "no answer for")]:
        ans.write_text(line + "\n")
        out = tmp_path / "o"
        assert main(["tsv", "run", "--quick", "--answers-file", str(ans), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and len(err.splitlines()) == 1
        assert not out.exists()
    with pytest.raises(UserError, match="mode"):
        from paperlab.tsv.experiment import default_config

        default_config(True, mode="nope")
