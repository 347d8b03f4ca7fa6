"""The telephone experiment end to end at a tiny size, and its one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from paperlab.core.errors import UserError
from paperlab.core.runs import VERDICTS
from paperlab.core.stats import mean_ci
from paperlab.telephone.experiment import eval_points, metric_ci, reproduce

CLAIMS = {"mt_metrics_decay", "multiplayer_decays_faster", "temperature_orders_decay",
          "prompt_constraint_helps", "factuality_decays"}


def test_tiny_run_writes_report_with_all_claims(tmp_path):
    run_dir = reproduce(quick=True, out=tmp_path / "run", passages=2, lm_passages=1, mt_iterations=2,
                        lm_iterations=2, temperatures=[0.0, 1.0], max_tokens=32)
    res = json.loads((run_dir / "results.json").read_text())
    assert {c["id"] for c in res["claims"]} == CLAIMS
    assert all(c["verdict"] in VERDICTS and c["holds"] == (c["verdict"] == "holds") for c in res["claims"])
    assert all("evidence" in c["values"] and c["values"]["test"]["expect"] in ("greater", "less")
               for c in res["claims"])
    # one LM passage: no interval over passages can be formed, so the rephrase claims are inconclusive
    by_id = {c["id"]: c for c in res["claims"]}
    assert by_id["temperature_orders_decay"]["verdict"] == "inconclusive"
    assert by_id["prompt_constraint_helps"]["verdict"] == "inconclusive"
    assert sum(res["verdict_counts"].values()) == len(CLAIMS)
    settings = res["results"]["settings"]
    assert settings["EN-PT-EN bergamot"]["points"] == [0, 1, 2]
    assert settings["EN-PT-EN bergamot"]["mean"]["chrf"][0] == pytest.approx(1.0)  # generation 0 is the original
    report = (run_dir / "report.md").read_text()
    assert report.index("## Claims") < report.index("## Metrics")
    assert {p.name for p in run_dir.glob("*.png")} >= {"metrics_mt.png", "metrics_temperature.png",
                                                       "metrics_prompt.png", "fixed_points.png"}
    gens = [json.loads(x) for x in (run_dir / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 3 * 2 + 5 * 1  # MT settings x passages + (2 temperatures + 3 prompts) x passages
    assert set(gens[0]["texts"]) == {"0_en", "1_en", "2_en"}
    lm = [g for g in gens if g["setting"].startswith("rephrase")]
    assert all(r in ("stop", "length") for g in lm for it in g["finish_reasons"] for r in it)
    assert all(r is None for g in gens[:6] for it in g["finish_reasons"] for r in it)   # MT: no finish reason
    for name, s in settings.items():
        for m in ("chrf", "bleu", "factscore", "fact_recall"):
            assert all(lo is None or -1e-9 <= lo <= hi <= 1 + 1e-9 for lo, hi in s["ci"][m]), (name, m)
        assert len(s["facts_per_response"]["mean"]) == len(s["points"])
        assert s["facts_per_response"]["mean"][0] > 0
        if s["group"] == "mt":
            assert s["degeneracy"] is None
        else:
            assert len(s["degeneracy"]["degenerate"]) == s["iterations"]
            assert all(0 <= x <= 1 for x in s["degeneracy"]["degenerate"])
    assert "## Degenerate LM generations per iteration" in report and "facts per response" in report
    assert "degenerate.png" in {p.name for p in run_dir.glob("*.png")}


def test_metric_intervals_stay_inside_the_metric_range():
    vals = [1.0, 1.0, 1.0, 0.2]
    assert mean_ci(vals).hi > 1          # the t-interval the bands used to show leaves [0, 1]
    e = metric_ci(vals)
    assert 0 <= e.lo <= e.value <= e.hi <= 1 and "bootstrap" in e.method


def test_eval_points_follow_the_paper_schedule_for_long_chains():
    assert eval_points(5) == [0, 1, 2, 3, 4, 5]
    pts = eval_points(100)
    assert pts[:4] == [0, 1, 2, 4] and pts[-1] == 100 and 13 in pts and 65 in pts


def test_bad_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="mt_iterations"):
        reproduce(quick=True, out=tmp_path / "x", mt_iterations=-1)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(UserError, match="no records"):
        reproduce(quick=True, out=tmp_path / "y", passage_file=str(empty), rephrase=False)


def test_missing_apertium_is_a_one_line_error(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no apertium on PATH
    r = subprocess.run([sys.executable, "-m", "paperlab", "telephone", "run", "--quick", "--no-rephrase",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "apertium is not installed" in lines[0] and "apt-get install apertium-eng-spa" in lines[0]


def test_empty_passage_file_via_cli(tmp_path):
    empty = tmp_path / "p.jsonl"
    empty.write_text("\n")
    r = subprocess.run([sys.executable, "-m", "paperlab", "telephone", "run", "--passage-file", str(empty),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "has no records" in r.stderr
