"""The driver end to end on a tiny config (a tiny random transformers Llama, two attacks), and the CLI."""

import json

import pytest

from paperlab.cli import main
from paperlab.start.sandbox import sandbox_status

boxed = pytest.mark.skipif(not sandbox_status()[0], reason=f"sandbox unavailable: {sandbox_status()[1]}")


def cli(args, capsys):
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def tiny_cfg(model, **kw):
    from paperlab.start.experiment import default_config

    base = dict(model=model, n_problems=3, conditions=["none", "hint", "hint_x2"], max_total_tokens=48,
                max_tokens_per_segment=24, attacks=["read_env", "huge_output"], rft=True, rft_train_problems=2,
                rft_samples=1, rft_eval_problems=2)
    return default_config(True, **(base | kw))


@boxed
def test_run_end_to_end_writes_report_claims_and_resumes(tiny_hf_dir, tmp_path):
    from paperlab.core.runs import load_results
    from paperlab.start.experiment import run_experiment

    out = tmp_path / "run"
    report = run_experiment(tiny_cfg(f"hf:{tiny_hf_dir}"), out, log=lambda m: None)
    res = load_results(out)
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"hints_raise_tool_use", "rft_uses_tools_unprompted", "sandbox_blocks_all"}
    assert claims["sandbox_blocks_all"]["verdict"] == "holds"
    assert claims["sandbox_blocks_all"]["values"]["attempts"] == 2
    # a random model never closes a code block: no tool use anywhere, so the hint claim cannot hold
    assert claims["hints_raise_tool_use"]["verdict"] != "holds"
    assert claims["rft_uses_tools_unprompted"]["verdict"] == "inconclusive"  # nothing passed the filter
    text = report.read_text()
    assert "## Sandbox red team" in text and "tool_use_accuracy.png" in text and (out / "tool_use_accuracy.png").exists()
    recs = [json.loads(x) for x in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(recs) == 9 and {r["condition"] for r in recs} == {"none", "hint", "hint_x2"}
    assert all(r["n_hints"] == 0 for r in recs if r["condition"] == "none")
    # the end hint comes only when the model ends its answer (a random model runs into the token limit instead)
    assert all(r["n_hints"] >= 1 for r in recs if r["condition"] != "none" and r["stop_reason"] == "end")
    assert all(r["tokens"] <= 48 for r in recs)
    # resuming recomputes nothing: the trajectories file is unchanged
    before = (out / "trajectories.jsonl").read_text()
    run_experiment(tiny_cfg(f"hf:{tiny_hf_dir}"), out, log=lambda m: None)
    assert (out / "trajectories.jsonl").read_text() == before


def test_claims_detect_a_breach_and_a_hint_effect():
    """make_claims on hand-made records: hints used on every problem vs never -> holds; a breach contradicts."""
    from paperlab.start.experiment import default_config
    from paperlab.start.report import make_claims

    cfg = default_config(True, conditions=["none", "hint"])
    recs = [{"id": f"p{i}", "condition": c, "tool_used": c == "hint" or i == 0, "correct": False, "n_calls": 1,
             "tokens": 10, "n_hints": 0, "steps": []} for i in range(20) for c in ("none", "hint")]
    attacks = [{"attack": "a", "contained": True}, {"attack": "b", "contained": False}]
    claims = {c.id: c for c in make_claims(cfg, attacks, recs, {"ran": False, "why": "test"})}
    assert claims["hints_raise_tool_use"].verdict == "holds"
    assert claims["sandbox_blocks_all"].verdict == "contradicted"
    assert claims["rft_uses_tools_unprompted"].verdict == "inconclusive"
    base = [dict(r, condition="none", tool_used=False) for r in recs if r["condition"] == "none"]
    tuned = [dict(r, tool_used=True) for r in base]
    rft = {"ran": True, "rounds": [{"kept": 5}], "base": base, "rft": tuned, "require_correct": False}
    c = {c.id: c for c in make_claims(cfg, attacks, recs, rft)}["rft_uses_tools_unprompted"]
    assert c.verdict == "holds" and c.values["d_seed_filter"].startswith("ABLATION")
    rft_worse = dict(rft, base=tuned, rft=base)
    assert {c.id: c for c in make_claims(cfg, attacks, recs, rft_worse)}["rft_uses_tools_unprompted"].verdict \
        == "contradicted"
    flipped = [dict(r, tool_used=not r["tool_used"]) for r in recs]
    assert {c.id: c for c in make_claims(cfg, attacks[:1], flipped, {"ran": False})}["hints_raise_tool_use"].verdict \
        == "contradicted"


@boxed
def test_solve_command_writes_trajectories(tiny_hf_dir, tmp_path, capsys):
    inp = tmp_path / "problems.jsonl"
    inp.write_text(json.dumps({"question": "What is 2 + 3?", "answer": "5"}) + "\n"
                   + json.dumps({"id": "q2", "problem": "What is 7 * 6?"}) + "\n")
    out = tmp_path / "out.jsonl"
    code, stdout, err = cli(["start", "solve", "--input", str(inp), "--output", str(out), "--model",
                             f"hf:{tiny_hf_dir}", "--max-tokens", "40", "--hints", "hint_x2"], capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in rows] == ["1", "q2"]
    for x in rows:
        assert {"steps", "tool_calls", "answer", "correct", "n_calls", "question"} <= set(x)
        assert x["stop_reason"] in ("end", "token_limit", "segment_limit")
    assert rows[1]["gold"] == "" and rows[1]["correct"] is False
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["problems"] == 2 and summary["graded"] == 1


@pytest.mark.parametrize("args,needle", [
    (["start", "run", "--quick", "--set", "bogus"], "--set"),
    (["start", "run", "--quick", "--instruction", "loud"], "--instruction"),
    (["start", "run", "--quick", "--model", "nonsense"], "--model"),
    (["start", "solve", "--input", "/nonexistent/p.jsonl"], "--input"),
    (["start", "solve", "--input", "INPUT", "--hints", "shout"], "--hints"),
])
def test_cli_errors_are_one_line_exit_2(args, needle, tmp_path, capsys):
    inp = tmp_path / "p.jsonl"
    inp.write_text('{"question": "q"}\n')
    args = [str(inp) if a == "INPUT" else a for a in args]
    code, out, err = cli([*args, "--out", str(tmp_path / "o")] if args[1] == "run" else args, capsys)
    assert code == 2, out + err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_solve_rejects_a_bad_jsonl_before_work(tmp_path, capsys):
    inp = tmp_path / "p.jsonl"
    inp.write_text('{"answer": 3}\n')
    code, out, err = cli(["start", "solve", "--input", str(inp), "--output", str(tmp_path / "o.jsonl")], capsys)
    assert code == 2 and "question" in err and not (tmp_path / "o.jsonl").exists()


@boxed
def test_hint_rft_pipeline_trains_on_kept_trajectories(tiny_hf_dir, tmp_path, scripted):
    """A scripted teacher that solves arithmetic with code after the hint: its trajectories pass the filter,
    LoRA trains the tiny model on them, and base and fine-tuned models are both evaluated without hints."""
    import re

    from paperlab.core.runs import Run
    from paperlab.start.experiment import hint_rft
    from paperlab.start.problems import load_set

    def teacher(prompt):
        outs = re.findall(r"```output\n(.*?)\n```", prompt, flags=re.S)
        if outs:
            return f"So the answer is \\boxed{{{outs[-1].strip()}}}."
        if "good idea" in prompt:
            expr = re.search(r"What is (.*?)\?", prompt).group(1)
            return f"```python\nprint({expr})\n```"
        return "I am not sure."

    cfg = tiny_cfg(f"hf:{tiny_hf_dir}", n_problems=2, rft_train_problems=3, rft_eval_problems=2, lora_epochs=1)
    run = Run("start", out=tmp_path / "rft", config=cfg)
    eval_problems = load_set("arith", 2, seed=cfg.seed)
    rec = hint_rft(run, scripted(teacher), cfg, eval_problems, log=lambda m: None)
    rnd = rec["rounds"][0]
    # arith questions of the "sum of ... multiplied by" form are not a Python expression: those fail
    assert rnd["sampled"] == 3 and rnd["kept"] >= 1 and rnd["trained"]
    assert (run.dir / rnd["model"] / "config.json").exists()
    assert len(rec["base"]) == len(rec["rft"]) == 2
    assert all(r["n_hints"] == 0 for r in rec["base"] + rec["rft"])
    kept = [json.loads(x) for x in (run.dir / "rft_dataset_r0.jsonl").read_text().splitlines()]
    assert all("```output" in k["completion"] and k["masked"] for k in kept)
