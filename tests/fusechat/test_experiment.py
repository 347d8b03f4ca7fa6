"""A tiny end-to-end run of the real experiment (tiny transformers model as sources, judge and student), its resume,
``build`` on a prompts file, and the CLI's one-line input errors."""

import json

import pytest
from typer.testing import CliRunner

from paperlab.core.errors import UserError
from paperlab.fusechat.cli import app
from paperlab.fusechat.experiment import default_config, reproduce


def tiny_config(model_dir):
    spec = f"hf:{model_dir}"
    sources = [dict(name="plain", spec=spec, max_tokens=8),
               dict(name="demo", spec=spec, system="Answer with one equation.", examples=[["What is 12 plus 13?",
                                                                                          "12 + 13 = 25"]],
                    temperature=0.7, top_p=0.8, repetition_penalty=1.05, max_tokens=8)]
    train = dict(steps=2, batch_size=2, lr=1e-3, lora_r=2, lora_alpha=4, max_length=96)
    return dict(sources=sources, judge=spec, student=spec, train_prompts=10, eval_prompts=6, samples=2, window=None,
                sft=train, dpo=train, eval_max_tokens=6, n_boot=200, threads=1)


def test_tiny_reproduce_writes_report_with_claims_and_resumes(tmp_path, tiny_chat_dir):
    cfg = tiny_config(tiny_chat_dir)
    run_dir = reproduce(quick=True, out=tmp_path / "run", **cfg)
    res = json.loads((run_dir / "results.json").read_text())
    # the random tiny model answers almost nothing correctly: without an SFT set there is no DPO and no claim,
    # which must be reported, not crash
    counts = res["results"]["counts"]
    assert counts["sft_prompts"] == 4 and counts["dpo_prompts"] == 6
    responses = [json.loads(x) for x in (run_dir / "scored.jsonl").read_text().splitlines()]
    assert len(responses) == 10 * 2 * 2 and all(0 <= r["reward"] <= 1 for r in responses if r["reward"] is not None)
    assert {r["source"] for r in responses} == {"plain", "demo"}
    for c in res["claims"]:
        assert c["verdict"] in ("holds", "contradicted", "inconclusive") and c["holds"] == (c["verdict"] == "holds")
    report = (run_dir / "report.md").read_text()
    for heading in ("## Claims", "## IMF data", "## Held-out evaluation", "RM gap"):
        assert heading in report
    assert (run_dir / "gap_distribution.png").stat().st_size > 0
    # resume: a second call with the same configuration reuses every record and gives the same results
    again = json.loads((reproduce(quick=True, out=run_dir, **cfg) / "results.json").read_text())
    assert again["results"]["held_out"] == res["results"]["held_out"]


def test_training_arms_with_forced_correct_data(tmp_path, tiny_chat_dir):
    """With the SFT set and pairs present (scored responses planted in the run folder), all four models are trained,
    evaluated and both claims are decided from intervals."""
    from paperlab.core.runs import Run
    from paperlab.fusechat import experiment as ex
    from paperlab.fusechat.imf import Response, response_to_dict

    cfg = default_config(True, **tiny_config(tiny_chat_dir))
    train_p, _ = ex.make_problems(cfg)
    run = Run("fusechat", tmp_path / "run", cfg)
    for p in train_p:
        for s_i, src in enumerate(("plain", "demo")):
            for k in range(2):
                good = k == 0
                text = f"{p.prompt[8:-1]} = {int(p.answer) + (0 if good else 1)}" + " (so)" * s_i
                reward = 0.5 - 0.1 * s_i + (0.05 if good else 0.0)
                run.append("responses", response_to_dict(Response(p.id, src, k, text)))
                run.append("scored", response_to_dict(Response(p.id, src, k, text, reward, good)))
    run_dir = ex.run_experiment(cfg, tmp_path / "run")
    res = json.loads((run_dir / "results.json").read_text())
    assert res["results"]["counts"]["sft_kept"] == 4 and res["results"]["counts"]["same_kept"] == 6
    assert set(res["results"]["held_out"]) == {"base", "sft", "dpo_same", "dpo_cross"}
    assert {c["id"] for c in res["claims"]} == {"dpo_improves_over_sft", "same_source_pairs_better"}
    for c in res["claims"]:
        ev = c["values"]["evidence"]
        assert ev["n"] == 6 and c["verdict"] in ("holds", "contradicted", "inconclusive")
    for arm in ("sft", "dpo_same", "dpo_cross"):
        assert (run_dir / f"adapter_{arm}" / "adapter_config.json").exists()
    dpo = [json.loads(x) for x in (run_dir / "dpo.jsonl").read_text().splitlines()]
    assert all(r["chosen_source"] == r["rejected_source"] for r in dpo)
    cross = [json.loads(x) for x in (run_dir / "dpo_cross.jsonl").read_text().splitlines()]
    assert all(r["chosen_source"] != r["rejected_source"] for r in cross)
    logs = res["results"]["training"]
    assert logs["dpo_same"] != logs["dpo_cross"]  # the arms saw different pairs


def test_config_errors():
    with pytest.raises(UserError):
        default_config(True, task="mmlu")
    with pytest.raises(UserError):
        default_config(True, sources=[dict(name="a"), dict(name="a")])
    with pytest.raises(UserError):
        default_config(True, window=(0.2, 0.1))


def test_build_writes_trl_files(tmp_path, tiny_chat_dir):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {i} plus 1?", "answer": str(i + 1)}) + "\n"
                               for i in range(5)) + json.dumps({"prompt": "Say hello."}) + "\n")
    spec = f"hf:{tiny_chat_dir}"
    out = tmp_path / "data"
    r = CliRunner().invoke(app, ["build", "--sources", f"{spec},{spec}", "--systems", "||Be brief.", "--prompts",
                                 str(prompts), "--out", str(out), "--samples", "2", "--judge", spec, "--window", "none",
                                 "--max-tokens", "6", "--cross"])
    assert r.exit_code == 0, r.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["counts"]["sft_prompts"] == 2 and stats["counts"]["dpo_prompts"] == 4
    rows = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 6 * 2 * 2
    assert {r["correct"] for r in rows if r["prompt_id"] == "p6"} == {None}  # the general prompt: reward only
    for f in ("sft.jsonl", "dpo.jsonl", "dpo_cross.jsonl"):
        assert (out / f).exists()
    # a second build into the same folder needs --overwrite
    r2 = CliRunner().invoke(app, ["build", "--sources", spec, "--prompts", str(prompts), "--out", str(out)])
    assert isinstance(r2.exception, UserError) and "--overwrite" in str(r2.exception)


@pytest.mark.parametrize("args,needle", [
    (["run", "--quick", "--task", "mmlu"], "--task"),
    (["run", "--quick", "--window", "0.2,0.1"], "--window"),
    (["run", "--quick", "--student", "openai:http://x/v1#m"], "--student"),
    (["run", "--quick", "--beta", "-1"], "--beta"),
    (["run", "--quick", "--judge", "nonsense"], "--judge"),
    (["build", "--sources", "nonsense", "--prompts", "x.jsonl"], "--sources"),
    (["build", "--sources", "default,default", "--prompts", "x.jsonl"], "repeats"),
    (["build", "--sources", "default", "--prompts", "/nonexistent.jsonl"], "--prompts"),
    (["build", "--sources", "default", "--prompts", "x.jsonl", "--sft-share", "1.5"], "--sft-share"),
])
def test_cli_errors_are_one_line(args, needle, tmp_path, monkeypatch, capsys):
    from paperlab.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.jsonl").write_text('{"prompt": "hi"}\n')
    assert main(["fusechat", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()
