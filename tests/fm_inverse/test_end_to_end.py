"""A tiny `reproduce` run (seconds) writes every claim; its checkpoint serves `paperlab fm_inverse sample`."""

import json

import numpy as np
import pytest

from paperlab.cli import main
from paperlab.core.runs import load_results
from paperlab.fm_inverse.experiment import reproduce
from paperlab.fm_inverse.peers import sbi_available as peers_available

TINY = dict(train_per_n=64, val_per_n=16, train={"steps": 30, "batch_size": 64, "val_every": 15},
            velocity={"n_layer": 2}, test_truths=1, eval_N=[2, 4], traj_samples=16, posterior_samples=200,
            ref_cases=[[0, 4]], ref_walkers=16, ref_max_steps=40, ref_check_every=20, c2st_permutations=2,
            ode_sweep=[2, 4], mh_prefixes=[0.5, 1.0], mh_steps=[150], sbc_cases=12, sbc_N=[3, 5],
            sbc_samples=20, timing_samples=100, timing_repeats=1, ode_steps=4, threads=1, peer_max_epochs=3)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return reproduce(quick=True, out=tmp_path_factory.mktemp("fm") / "run", **TINY)


def test_reproduce_writes_all_claims(tiny_run):
    res = load_results(tiny_run)
    ids = {c["id"]: c for c in res["claims"]}
    assert set(ids) == {"cfm_matches_mcmc", "error_falls_with_n", "coverage_calibrated", "cfm_faster_than_mcmc",
                        "cfm_closer_than_sbi", "cfm_samples_faster_than_sbi"}
    assert all(c["holds"] == (c["verdict"] == "holds") for c in ids.values())
    # a 30-step model against a 40-step emcee run: the reference hit its cap, the C2ST tells them apart
    match = ids["cfm_matches_mcmc"]
    assert match["verdict"] != "holds"
    assert match["values"]["evidence"]["m0/N=4: reference converged (autocorrelation rule)"]["verdict"] == "inconclusive"
    case = res["results"]["reference_cases"][0]
    assert case["ref_converged"] is False and case["ref_steps"] == 40 and case["ref_trace"]
    assert case["cfm_in_prior"] == 1.0                  # logit-space flow: every sample inside [0, 1]^6
    assert len(case["c2st_permutation_null"]) == 2 and case["c2st_null_95"][0] < 0.5 < case["c2st_null_95"][1]
    assert [x["steps"] for x in case["ode_sweep"]] == [2, 4] and len(case["mh_prefixes"]) == 2
    assert ids["cfm_faster_than_mcmc"]["values"]["evidence"]["n"] == 1
    assert ids["error_falls_with_n"]["values"]["evidence"]["Spearman rho(N, error)"]["n"] == 2 * 2   # truths x N
    assert ids["coverage_calibrated"]["values"]["nominal"] == [0.5, 0.8, 0.9, 0.95]
    assert ids["coverage_calibrated"]["verdict"] != "holds"
    assert "log-likelihood: mean normalised SBC rank" in ids["coverage_calibrated"]["values"]["evidence"]
    assert (tiny_run / "report.md").read_text().count("![") >= 4
    peers = case["peers"]
    if peers_available():   # sbi's NPE and FMPE trained on 64 x 7 simulations of the case's design
        assert set(peers) == {"NPE", "FMPE"} and all(p["status"] == "ok" for p in peers.values())
        assert all(p["simulations"] == 64 * 7 and 0.5 <= p["c2st"] <= 1 for p in peers.values())
        assert "Against sbi's NPE and FMPE" in (tiny_run / "report.md").read_text()
    else:                   # without sbi the peer claims say why they are inconclusive
        assert ids["cfm_closer_than_sbi"]["verdict"] == "inconclusive" and "sbi" in peers["NPE"]["status"]
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
    assert s.shape == (300, 6) and np.isfinite(s).all() and np.all((s >= 0) & (s <= 1))
    warned = capsys.readouterr().err
    assert "warning:" in warned and "11 observations, outside the trained range" in warned
    bad = tmp_path / "bad.json"
    bad.write_text('{"t": [1.0], "I": [2.0]}')
    rc = main(["fm_inverse", "sample", "--checkpoint", str(tiny_run), "--obs", str(bad), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and "\n" not in err and "missing key" in err


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--steps", "0"], "--steps must be in 1..10000"),
    (["--steps", "100000"], "--steps must be in 1..10000"),
    (["--steps", "8", "--method", "dopri5"], "fixed-step methods"),
])
def test_sample_rejects_bad_steps_in_one_line(tiny_run, tmp_path, capsys, extra, fragment):
    obs = tmp_path / "obs.json"
    obs.write_text(json.dumps({"t": [1.2, 1.9, 2.4, 2.9], "I": [5, 9, 12, 10], "R": [1, 3, 6, 9]}))
    rc = main(["fm_inverse", "sample", "--checkpoint", str(tiny_run), "--obs", str(obs), "--out",
               str(tmp_path / "s.npy"), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and "\n" not in err and fragment in err
    assert not (tmp_path / "s.npy").exists()


def test_sample_warns_when_times_leave_the_training_range(tiny_run, tmp_path, capsys):
    obs = tmp_path / "obs.json"
    obs.write_text(json.dumps({"t": [0.2, 1.5, 2.4, 3.8], "I": [1, 9, 12, 10], "R": [0, 3, 6, 9]}))
    rc = main(["fm_inverse", "sample", "--checkpoint", str(tiny_run), "--obs", str(obs), "--n", "50", "--out",
               str(tmp_path / "s.npy")])
    assert rc == 0 and "observation times 0.2..3.8 leave the training range [1, 3]" in capsys.readouterr().err


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("problem", "heat", "'problem'"),
    ("param_names", ["a", "b"], "'param_names'"),
    ("ode_steps", 0, "'ode_steps'"),
    ("ode_method", "leapfrog", "'ode_method'"),
    ("source", None, "'source'"),
    ("train_n", ["4"], "'train_n'"),
])
def test_damaged_checkpoint_fields_are_one_line_errors(tiny_run, tmp_path, capsys, field, value, fragment):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(tiny_run / "checkpoint", ck)
    meta = json.loads((ck / "model.json").read_text())
    meta[field] = value
    (ck / "model.json").write_text(json.dumps(meta))
    obs = tmp_path / "obs.json"
    obs.write_text(json.dumps({"t": [1.2, 1.9, 2.4, 2.9], "I": [5, 9, 12, 10], "R": [1, 3, 6, 9]}))
    rc = main(["fm_inverse", "sample", "--checkpoint", str(ck), "--obs", str(obs), "--out", str(tmp_path / "s.npy")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and "\n" not in err and fragment in err


def test_run_rejects_bad_training_steps_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["fm_inverse", "run", "--quick", "--steps", "0", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--steps must be in 1.." in err and "\n" not in err and not out.exists()


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
