"""A tiny end-to-end run of the real experiment (seconds), and the CLI's input errors."""

import json

import pytest
from typer.testing import CliRunner

from paperlab.core.errors import UserError
from paperlab.uoe.cli import app
from paperlab.uoe.experiment import default_config, reproduce

TINY = dict(d_model=32, n_layers=1, n_heads=4, d_ff=64, seq_len=32, batch_size=4, steps=3, warmup_steps=1,
            eval_every=3, eval_tokens=256, seeds=[0, 1], lrs=[1e-3, 3e-3],
            variants=["moe", "uome_causal", "uoe", "uoe_causal"])


def test_tiny_reproduce_writes_report_with_claims(tmp_path):
    run_dir = reproduce(quick=True, out=tmp_path / "run", **TINY)
    res = json.loads((run_dir / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"decomposition_exact", "uoe_vs_moe_at_flops", "uome_vs_moe_matched",
                           "uome_matches_moe_budget", "smha_saves_flops"}
    assert all(c["holds"] == (c["verdict"] == "holds") for c in claims.values())
    assert claims["decomposition_exact"]["verdict"] == "holds"
    assert claims["smha_saves_flops"]["verdict"] == "by_construction"    # FLOPs counts do not depend on training
    assert claims["uome_matches_moe_budget"]["verdict"] == "by_construction"
    assert res["verdict_counts"]["by_construction"] == 2
    models = res["results"]["models"]
    assert set(models) == {"moe", "uome_causal", "uoe", "uoe_causal"}
    # the paper's routing (fillers) leaks, the causal one does not, and only the causal one decides
    assert not models["uoe"]["causal"] and models["uoe"]["future_leak"] > 1e-6
    assert models["uoe_causal"]["causal"] and models["uoe_causal"]["future_leak"] < 1e-9
    c = claims["uoe_vs_moe_at_flops"]["values"]
    assert c["deciding_variant"] == "uoe_causal" and "uoe" in c["not_deciding_leaky_variants"]
    # two seeds: the per-seed differences are the units
    ev = c["evidence"]["validation perplexity, UoE - MoE"]
    assert ev["n"] == 2 and ev["method"].startswith("paired per-seed difference")
    assert c["evidence"]["forward FLOPs per token, UoE - MoE"]["value"] < 0
    for m in models.values():      # the sweep ran every lr on seed 0, the best lr ran the other seed
        assert set(m["lr_sweep"]) == {"0.001", "0.003"} and m["best_lr"] in (1e-3, 3e-3)
        assert m["seeds"] == [0, 1] and len(m["val_ppl"]) == 2 and len(m["val_seq_losses"]) == 2
        best = m["lr_sweep"][f"{m['best_lr']:g}"]["train_end_loss"]
        assert best == min(x["train_end_loss"] for x in m["lr_sweep"].values())
    # matched budget: UoME's MLP = the MoE's, parameters and FLOPs
    assert models["uome_causal"]["params"] == models["moe"]["params"]
    assert models["uome_causal"]["mlp_flops"] == pytest.approx(models["moe"]["mlp_flops"])
    runs = [json.loads(x) for x in (run_dir / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 4 * 3                                               # 2 lrs + 1 more seed per model
    assert (run_dir / "ppl_vs_flops.png").stat().st_size > 0
    report = (run_dir / "report.md").read_text()
    assert "## Verdict" in report and "## Learning-rate sweep" in report and "not deciding" in report
    # a second run in the same directory (one folder, one configuration) reuses the finished models
    again = json.loads((reproduce(quick=True, out=run_dir, **TINY) / "results.json").read_text())
    assert again["results"]["models"]["uoe"]["val_ppl"] == models["uoe"]["val_ppl"]
    assert again["results"]["models"]["uoe"]["val_seq_losses"] == models["uoe"]["val_seq_losses"]


def test_routing_selects_the_uoe_variants():
    assert default_config(True).variants == ["moe", "uoe", "uoe_causal"]
    assert default_config(True, uoe_routing=["causal"]).variants == ["moe", "uoe_causal"]
    assert default_config(False, uoe_routing=["causal"]).variants == ["dense", "moe", "uome_causal", "smha",
                                                                        "uoe_causal"]
    assert default_config(True, uoe_routing=["paper", "capacity"]).variants == ["moe", "uoe", "uoe_capacity"]
    assert default_config(True, uome_d_ff_mult=1).routing.uome_d_ff_mult == 1
    assert default_config(False).routing.uome_d_ff_mult == 2
    with pytest.raises(UserError):      # an explicit variant whose routing was excluded
        default_config(True, variants=["uoe"], uoe_routing=["causal"])


def test_cli_rejects_bad_options(tmp_path):
    runner = CliRunner()
    for args in (["--gate", "sometimes"], ["--variant", "nope"], ["--steps", "0"], ["--precision", "fp8"],
                 ["--seeds", "0,x"], ["--seeds", "0,0"], ["--seeds", "-1"], ["--lrs", "0"], ["--lrs", "a"],
                 ["--d-ff-mult", "0"], ["--routing", "sometimes"], ["--routing", "causal", "--variant", "uoe"]):
        res = runner.invoke(app, ["run", "--quick", "--out", str(tmp_path / "x"), *args])
        assert isinstance(res.exception, UserError), args
        assert not (tmp_path / "x").exists(), args
