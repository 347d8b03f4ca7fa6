"""End-to-end: ``reproduce`` on a tiny real Llama with given answers (seconds), claims and detector written."""

import json

from paperlab.tsv.data import load_truthfulqa, paper_split
from paperlab.tsv.detector import Detector


def test_reproduce_tiny_writes_claims_report_and_detector(tiny_dir, tmp_path):
    from paperlab.tsv.experiment import reproduce

    qs, sp = load_truthfulqa(), paper_split()
    rows = sp.exemplars[:8] + sp.val[:6] + sp.test[:10] + sp.wild[:12]
    # real answers: the best answer for even positions, the first incorrect reference for odd ones
    ans = tmp_path / "answers.jsonl"
    ans.write_text("".join(json.dumps({"row": r, "answer": qs[r].correct[0] if i % 2 == 0 else qs[r].incorrect[0]})
                           + "\n" for i, r in enumerate(rows)))
    run_dir = reproduce(out=tmp_path / "run", model=f"hf:{tiny_dir}", answers_file=str(ans), n_exemplars=8,
                        n_val=6, n_test=10, n_wild=12, stage1_epochs=2, stage2_epochs=1, k=4, bootstrap=20,
                        micro_batch=8, threads=1, layer=2)
    res = json.loads((run_dir / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"tsv_beats_baselines", "tsv_ot_stage"}
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in claims.values())
    assert set(claims["tsv_beats_baselines"]["values"]["evidence"]) == {
        "tsv - perplexity", "tsv - raw_prototypes", "tsv - probe"}
    assert claims["tsv_ot_stage"]["values"]["evidence"]["n"] == 10  # paired over the 10 test questions
    r = res["results"]
    assert set(r["test_auroc"]) >= {"perplexity", "raw_prototypes", "probe", "tsv_stage1", "tsv"}
    assert r["n"] == {"exemplar": 8, "val": 6, "test": 10, "wild": 12}
    assert r["stage2"]["selected"] == 4 and r["stage1"]["epochs"] == [1, 2]
    assert r["detector"]["reload_max_abs_diff"] < 1e-4
    assert (run_dir / "report.md").read_text().count("tsv_beats_baselines") >= 1
    assert (run_dir / "auroc.png").exists() and (run_dir / "roc.png").exists()
    det = Detector.load(run_dir / "detector")
    assert det.layer == 2 and det.model == f"hf:{tiny_dir}"
