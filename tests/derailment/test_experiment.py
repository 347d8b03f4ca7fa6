"""The experiment driver end to end with an LLM behind a real OpenAI-compatible HTTP endpoint (an echo
server: it answers every prompt with the prompt itself), and resuming from the request cache."""

from __future__ import annotations

import json

import pytest

from paperlab.derailment.experiment import default_config, run_experiment
from tests_helpers import FaultyServer


def test_driver_with_an_llm_endpoint_and_resume(tmp_path):
    with FaultyServer() as srv:
        cfg = default_config(True, model=f"openai:{srv.url}#echo", llm_threads=10, early_warning_llm_threads=4,
                             max_prefixes=2, n_boot=200)
        out = run_experiment(cfg, tmp_path / "run")
        sent = srv.requests
        assert sent > 0
        res = json.loads((out / "results.json").read_text())
        claims = {c["id"]: c for c in res["claims"]}
        assert set(claims) == {"markers_precede_toxicity", "llm_pipeline_f1_vs_features", "early_warning"}
        llm = res["results"]["llm"]
        assert len(llm["y"]) == 10 and sum(llm["y"]) == 5
        # an echo carries no log-probabilities: every yes/no answer is unreadable and raises no alarm
        assert cfg.prompt == "ltm_compact" and list(llm["prompts"]) == ["ltm_compact"]
        assert llm["prompts"]["ltm_compact"]["yes_no"]["readable"] == 0
        assert llm["prompts"]["ltm_compact"]["yes_no"]["estimates"]["recall"]["value"] == 0
        rows = [json.loads(x) for x in (out / "llm_ltm_compact_yes_no.jsonl").read_text().splitlines()]
        assert len(rows) == 10 and all(r["summary"] for r in rows)
        assert set(claims["early_warning"]["values"]["evidence"]) == {"features: warned - false alarms",
                                                                      "LLM: warned - false alarms"}
        run_experiment(cfg, out)  # same folder, same configuration: every request comes from the cache
        assert srv.requests == sent


@pytest.mark.slow
def test_quick_run_with_the_default_lm(tmp_path):
    out = run_experiment(default_config(True), tmp_path / "quick")
    res = json.loads((out / "results.json").read_text())
    assert {c["id"] for c in res["claims"]} == {"markers_precede_toxicity", "llm_pipeline_f1_vs_features",
                                                "early_warning"}
