"""A tiny `reproduce` run (seconds) writes every claim; its checkpoint serves `paperlab fm_inverse sample`."""

import json

import numpy as np
import pytest

from paperlab.cli import main
from paperlab.core.runs import load_results
from paperlab.fm_inverse.experiment import reproduce

TINY = dict(train_per_n=64, val_per_n=16, train={"steps": 30, "batch_size": 64, "val_every": 15},
            velocity={"n_layer": 2}, test_truths=1, eval_N=[2, 4], traj_samples=16, posterior_samples=200,
            ref_cases=[[0, 4]], ref_walkers=16, ref_steps=40, mh_steps=[150], sbc_cases=12, sbc_N=[3, 5],
            sbc_samples=20, timing_samples=100, timing_repeats=1, ode_steps=4, threads=1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return reproduce(quick=True, out=tmp_path_factory.mktemp("fm") / "run", **TINY)


def test_reproduce_writes_all_claims(tiny_run):
    res = load_results(tiny_run)
    ids = {c["id"]: c for c in res["claims"]}
    assert set(ids) == {"cfm_matches_mcmc", "error_falls_with_n", "coverage_calibrated", "cfm_faster_than_mcmc"}
    assert all(c["holds"] == (c["verdict"] == "holds") for c in ids.values())
    # one reference case: no interval for the error ratio, so no verdict from the point ratio
    assert ids["cfm_matches_mcmc"]["verdict"] == "inconclusive"
    assert ids["cfm_matches_mcmc"]["values"]["evidence"]["n"] == 1
    # one timed MH chain: an exact ratio, labelled as a single timing
    assert "single timing" in ids["cfm_faster_than_mcmc"]["values"]["note"]
    assert len(res["results"]["timing"]["cfm_seconds_repeats"]) == TINY["timing_repeats"]
    assert ids["error_falls_with_n"]["values"]["evidence"]["Spearman rho(N, error)"]["n"] == 2 * 2   # truths x N
    assert ids["coverage_calibrated"]["values"]["nominal"] == [0.5, 0.8, 0.9, 0.95]
    assert (tiny_run / "report.md").read_text().count("![") >= 4
    assert (tiny_run / "checkpoint" / "model.pt").exists()


def test_sample_command_uses_the_checkpoint(tiny_run, tmp_path, capsys):
    obs = tmp_path / "obs.json"
    obs.write_text(json.dumps({"t": [1.2, 1.9, 2.4, 2.9, 3.0, 1.5, 2.2, 2.7, 1.0, 1.1, 2.0],
                               "I": [5, 9, 12, 10, 9, 7, 11, 11, 4, 4, 10], "R": [1, 3, 6, 9, 10, 2, 5, 8, 1, 1, 4]}))
    out = tmp_path / "s.npy"
    rc = main(["fm_inverse", "sample", "--checkpoint", str(tiny_run), "--obs", str(obs), "--n", "300",
               "--out", str(out)])
    assert rc == 0
    s = np.load(out)
    assert s.shape == (300, 6) and np.isfinite(s).all()
    bad = tmp_path / "bad.json"
    bad.write_text('{"t": [1.0], "I": [2.0]}')
    rc = main(["fm_inverse", "sample", "--checkpoint", str(tiny_run), "--obs", str(bad), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and "\n" not in err and "missing key" in err


def test_resume_reuses_training_and_chains(tiny_run):
    before = (tiny_run / "checkpoint" / "model.pt").stat().st_mtime
    reproduce(quick=True, out=tiny_run, **TINY)
    assert (tiny_run / "checkpoint" / "model.pt").stat().st_mtime == before
    assert load_results(tiny_run)["results"]["training"]["resumed"] is True


@pytest.mark.slow
def test_darcy_pipeline_runs(tmp_path):
    run = reproduce(quick=True, out=tmp_path / "darcy", problem="darcy", train_per_n=12, val_per_n=4,
                    train={"steps": 10, "batch_size": 12, "val_every": 5}, velocity={"n_layer": 2},
                    test_truths=0, eval_N=[3, 5], traj_samples=6, posterior_samples=50, ref_cases=[[0, 4]],
                    mh_steps=[40], sbc_cases=6, sbc_N=[3, 4], sbc_samples=10, timing_samples=50, timing_repeats=1,
                    ode_steps=2, threads=1)
    res = load_results(run)
    assert {c["id"] for c in res["claims"]} == {"cfm_matches_mcmc", "error_falls_with_n", "coverage_calibrated",
                                                 "cfm_faster_than_mcmc"}
    assert (run / "darcy_fields.png").exists()
