"""The experiment driver end to end with an LLM behind a real OpenAI-compatible HTTP endpoint."""

from __future__ import annotations

import json

import pytest

from paperlab.core.errors import UserError
from paperlab.lingoly.experiment import default_config, run_experiment
from tests_helpers import FaultyServer


def test_experiment_with_an_llm_endpoint_resumes_and_isolates_failures(tmp_path):
    with FaultyServer() as srv:
        spec = f"openai:{srv.url}#echo"
        cfg = default_config(True, models=[spec], n_obfuscations=1, llm_obfuscations=1, llm_released=True,
                             human=False, n_boot=200)
        out = run_experiment(cfg, tmp_path / "run")
        sent = srv.requests
        # 12 questions x (original, 1 fresh, 2 released), less 191's two questions: it has only two possible
        # obfuscations, so its fresh one equals a released one and those prompts come from the cache
        assert sent == 12 * 4 - 2
        res = json.loads((out / "results.json").read_text())
        llm = next(c for c in res["claims"] if c["id"].startswith("llm_gap"))
        assert llm["values"]["replies_scored"] == 51 * 4 and llm["verdict"] == "inconclusive"   # echo scores 0
        rows = [json.loads(x) for x in next(out.glob("llm_*.jsonl")).read_text().splitlines()]
        assert {r["kind"] for r in rows} == {"original", "fresh", "released"}
        assert "## LLM" in (out / "report.md").read_text()
        run_experiment(cfg, out)         # same folder, same configuration: every reply is reused
        assert srv.requests == sent
    # an unreachable endpoint: the worker fails, the run still finishes and says why in the report
    dead = default_config(True, models=["openai:http://127.0.0.1:9/v1#none"], n_obfuscations=1, human=False,
                          n_boot=200)
    out2 = run_experiment(dead, tmp_path / "dead")
    assert "The LLM evaluation stopped" in (out2 / "report.md").read_text()


def test_bad_settings_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="n_obfuscations"):
        default_config(True, n_obfuscations=0)
    with pytest.raises(UserError, match="models"):
        default_config(False, models=["default", "default"])
