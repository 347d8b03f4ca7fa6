"""End to end: ``reproduce`` with a tiny config writes the report and both claims; it resumes."""

import json
import math

import pytest
import torch

from paperlab.core.errors import UserError
from paperlab.hybridnorm.experiment import is_stable, make_config, reproduce, run_status, unigram_loss

TINY = dict(depths=[1, 2], seeds=[0], steps=6, batch_size=2, seq_len=16, warmup_steps=2, d_model=16, n_heads=2,
            lr=2e-3, sweep_lrs=[2e-3, 0.5], variants=["pre", "post", "hybrid"], sweep_variants=["post", "hybrid"],
            eval_every=3, eval_tokens=256, grad_norm_every=2, checkpoint_every=3)


def test_reproduce_tiny_writes_claims_and_plots(tmp_path):
    run_dir = reproduce(quick=True, out=tmp_path / "run", **TINY)
    res = json.loads((run_dir / "results.json").read_text())
    ids = {c["id"]: c for c in res["claims"]}
    assert set(ids) == {"hybridnorm_lower_loss", "hybridnorm_stable_high_lr"}      # no HybridNorm* in TINY
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in ids.values())
    assert all(c["holds"] == (c["verdict"] == "holds") for c in ids.values())
    # one seed: the loss comparison is paired over the 256 / 16 = 16 validation windows, whose per-window
    # losses average to the recorded final validation loss
    lower = ids["hybridnorm_lower_loss"]["values"]
    assert lower["evidence"]["n"] == 16 and "validation windows" in lower["note"]
    assert lower["evidence"]["value"] == pytest.approx(lower["delta_vs_prenorm"], rel=1e-4, abs=1e-6)
    seq = res["results"]["final_val_seq_losses"]["L2/pre"][0]
    assert len(seq) == 16 and sum(seq) / 16 == pytest.approx(res["results"]["final_val_loss"]["L2/pre"][0], rel=1e-5)
    # one seed cannot establish a share of stable seeds
    assert ids["hybridnorm_stable_high_lr"]["verdict"] == "inconclusive"
    for name in ("val_loss", "layer_grad_norms", "lr_sweep"):
        assert (run_dir / f"{name}.png").stat().st_size > 5000
    report = (run_dir / "report.md").read_text()
    assert "hybridnorm_stable_high_lr" in report and "Learning-rate sweep" in report
    # 3 variants x 2 depths + (2 sweep variants x 1 extra lr), each with a history and no checkpoint left
    runs = sorted(p.name for p in (run_dir / "runs").iterdir())
    assert len(runs) == 6 + 2
    assert not list((run_dir / "runs").glob("*/checkpoint.pt"))
    # a second call with the same --out reuses the finished runs
    before = (run_dir / "runs" / runs[0] / "history.json").stat().st_mtime_ns
    reproduce(quick=True, out=tmp_path / "run", **TINY)
    assert (run_dir / "runs" / runs[0] / "history.json").stat().st_mtime_ns == before


def test_stability_criterion():
    ok = {"train_loss": [4.0, 3.0], "diverged": False, "final_val_loss": 2.5}
    assert is_stable(ok, h1=3.3)
    assert not is_stable({**ok, "final_val_loss": 3.4}, h1=3.3)               # worse than unigram
    assert not is_stable({**ok, "final_val_loss": 3.25}, h1=3.3)              # on the unigram plateau
    assert not is_stable({**ok, "train_loss": [4.0, float("nan")]}, h1=3.3)
    assert not is_stable({**ok, "diverged": True}, h1=3.3)


def test_run_status_names_collapse_apart_from_divergence():
    ok = {"train_loss": [4.0, 3.0], "diverged": False, "diverged_step": None, "final_val_loss": 2.5}
    assert run_status(ok, h1=3.3) == "stable"
    assert run_status({**ok, "final_val_loss": 3.25}, h1=3.3) == "collapsed"       # on the unigram plateau
    assert run_status({**ok, "final_val_loss": 3.38}, h1=3.3) == "collapsed"
    assert run_status({**ok, "final_val_loss": 4.0}, h1=3.3) == "stalled"          # finite, above unigram
    assert run_status({**ok, "train_loss": [4.0, float("nan")]}, h1=3.3) == "diverged"
    assert run_status({**ok, "diverged": True, "diverged_step": 7}, h1=3.3) == "diverged"
    assert run_status({**ok, "final_val_loss": None}, h1=3.3) == "diverged"


def test_unigram_loss_by_hand():
    train = torch.tensor([0, 0, 0, 1])                     # add-one smoothed over 3 symbols: 4/7, 2/7, 1/7
    targets = torch.tensor([0, 1, 2, 0])
    expected = -(2 * math.log(4 / 7) + math.log(2 / 7) + math.log(1 / 7)) / 4
    assert unigram_loss(train, targets, vocab_size=3) == pytest.approx(expected)


def test_bad_options_are_user_errors():
    with pytest.raises(UserError):
        make_config(True, variants=["pre", "rezero"])
    with pytest.raises(UserError):
        make_config(True, sweep_variants=["pre", "hybrid"])                     # no Post-Norm to compare
    with pytest.raises(UserError):
        make_config(True, colour="blue")
    assert 2e-3 in make_config(True, lr=2e-3, sweep_lrs=[1e-2]).sweep_lrs


def test_quick_tier_decides_each_variant_over_three_seeds():
    cfg = make_config(True)
    assert len(cfg.seeds) == 3 and {"pre", "hybrid", "hybrid_star"} <= set(cfg.variants)
    assert cfg.sweep_seeds == [0] and "post" in cfg.sweep_variants


def test_sweep_runs_on_its_own_seeds_and_reports_statuses(tmp_path):
    run_dir = reproduce(quick=True, out=tmp_path / "run", **{**TINY, "depths": [1], "seeds": [0, 1],
                                                            "sweep_seeds": [1]})
    res = json.loads((run_dir / "results.json").read_text())
    assert {r["seed"] for r in res["results"]["sweep"]} == {1}
    assert all(r["status"] in ("stable", "collapsed", "stalled", "diverged") for r in res["results"]["sweep"])
    report = (run_dir / "report.md").read_text()
    assert "Runs by status: Post-Norm: " in report and "not a divergence" in report
    assert sum(res["results"]["sweep_status_counts"]["post/lr0.5"].values()) == 1


def test_untied_embedding_ablation_adds_an_lm_head(tmp_path):
    from paperlab.cli import main

    small = {**TINY, "depths": [1], "variants": ["pre", "hybrid"], "sweep_variants": ["post", "hybrid"],
             "sweep_lrs": [2e-3]}
    tied = json.loads((reproduce(quick=True, out=tmp_path / "tied", **small) / "results.json").read_text())
    untied_dir = reproduce(quick=True, out=tmp_path / "untied", tie_embeddings=False, **small)
    untied = json.loads((untied_dir / "results.json").read_text())
    extra = {untied["results"]["params"][k] - n for k, n in tied["results"]["params"].items()}
    assert len(extra) == 1 and (head := extra.pop()) > 0 and head % small["d_model"] == 0  # one vocab x d head
    assert "untied embeddings (ablation" in (untied_dir / "report.md").read_text()
    # the CLI flag reaches the config, validated before any work
    assert make_config(True, tie_embeddings=False).tie_embeddings is False
    assert main(["hybridnorm", "run", "--quick", "--untied-embeddings", "--lr", "-1", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
