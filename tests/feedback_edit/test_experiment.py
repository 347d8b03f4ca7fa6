"""The experiment end to end: the driver on a tiny config with the real default LM, the report's
bookkeeping on seeded trees, and `solve` on a user's file."""

from __future__ import annotations

import json

import numpy as np

from paperlab.cli import main
from paperlab.core.runs import VERDICTS, Run
from paperlab.feedback_edit import pipeline as fe
from paperlab.feedback_edit.experiment import default_config, evaluate, reproduce
from paperlab.feedback_edit.report import write_report
from paperlab.feedback_edit.tasks import Problem, reward

TINY = dict(problems=2, n_grid=[1], m_grid=[1], k_grid=[1, 2], max_tokens_generator=8, max_tokens_feedback=8,
            max_tokens_editor=8, chunk=1)


def test_reproduce_tiny_run_with_the_default_lm(tmp_path):
    out = reproduce(quick=True, out=tmp_path / "run", **TINY)
    res = json.loads((out / "results.json").read_text())
    assert {c["id"] for c in res["claims"]} == {"feedback_edit_scales", "beats_best_of_n_equal_calls"}
    for c in res["claims"]:
        assert c["verdict"] in VERDICTS and c["verdict"] != "by_construction"
        assert c["values"]["evidence"]["n"] == 2  # paired over the two problems
    assert (out / "report.md").read_text().count("feedback_edit_scales") >= 1
    assert (out / "rewards_vs_calls.png").stat().st_size > 1000
    trees = [json.loads(x) for x in (out / "trees.jsonl").read_text().splitlines()]
    assert len(trees) == 2 and all(len(t["initial"]) == fe.generation_calls(1, 1, 2) for t in trees)
    assert res["results"]["feedback_edit"]["N=1 M=1 K=2"]["compute"]["editor"]["calls"] == 2
    assert res["results"]["feedback_edit"]["N=1 M=1 K=2"]["compute"]["editor"]["completion_tokens"] > 0
    # resuming the finished run re-reads every prompt and recomputes the same numbers
    again = json.loads((reproduce(quick=True, out=out, **TINY) / "results.json").read_text())
    assert again["results"]["feedback_edit"] == res["results"]["feedback_edit"] and again["claims"] == res["claims"]
    assert len((out / "trees.jsonl").read_text().splitlines()) == 2


def test_evaluate_and_report_on_seeded_trees(tmp_path, seeded_lm):
    cfg = default_config(True, problems=6, n_grid=[1, 2], m_grid=[1, 2], k_grid=[1, 2])
    problems = [Problem(f"p{i}", f"Question {i}?", str(i % 7)) for i in range(6)]
    trees = fe.run_pipeline(fe.Roles(seeded_lm, seeded_lm, seeded_lm, seeded_lm), [p.prompt for p in problems],
                            [p.uid for p in problems], 2, 2, 2, n_bon=cfg.n_bon(), sampling=cfg.sampling())
    ev = evaluate(trees, problems, cfg)
    assert sorted(ev["best_of_n"]) == sorted({1} | {fe.generation_calls(*s) for s in cfg.settings()})
    for s in cfg.settings():
        d = ev["feedback_edit"][s]
        for t, p, r, o in zip(trees, problems, d["reward"], d["oracle"], strict=True):
            i, j, k = fe.select_feedback_edit(t, *s)
            assert r == reward(t.edits[i][j][k].text, p.answer) and o >= r
        assert d["compute"]["editor"]["calls"] == s[0] * s[1] * s[2]
    # the largest setting's oracle is at least the smallest's: its candidates include them
    assert np.all(np.array(ev["feedback_edit"][(2, 2, 2)]["oracle"]) >= ev["feedback_edit"][(1, 1, 1)]["oracle"])
    run = Run("feedback_edit", out=tmp_path / "r", config=cfg)
    write_report(run, cfg, ev, {r: seeded_lm.id for r in fe.ROLES})
    res = json.loads((run.dir / "results.json").read_text())
    diff = res["claims"][0]["values"]["evidence"]["value"]
    assert diff == np.mean(ev["feedback_edit"][(2, 2, 2)]["reward"]) - np.mean(ev["feedback_edit"][(1, 1, 1)]["reward"])
    assert "Selector AUROC" in (run.dir / "report.md").read_text()


def test_solve_on_a_prompts_file(tmp_path, capsys):
    src = tmp_path / "prompts.jsonl"
    src.write_text(json.dumps({"id": "q1", "prompt": "What is 2 + 2? Finish with: The answer is <number>.",
                               "answer": 4}) + "\n")
    dst = tmp_path / "answers.jsonl"
    code = main(["feedback_edit", "solve", "--input", str(src), "--n", "1", "--m", "1", "--k", "1",
                 "--max-tokens", "8", "--best-of-n", "--output", str(dst)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    (row,) = [json.loads(x) for x in dst.read_text().splitlines()]
    assert row["id"] == "q1" and row["reward"] in (0.0, 1.0) and isinstance(row["answer_text"], str)
    assert row["best_of_n"]["n"] == 3 == summary["generation_calls_per_prompt"]
    assert summary["compute"]["editor"]["calls"] == 1 and summary["compute"]["selector"]["calls"] == 1
    assert summary["best_of_n"]["compute"]["generator"]["calls"] == 3
