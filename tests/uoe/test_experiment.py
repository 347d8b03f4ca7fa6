"""A tiny end-to-end run of the real experiment (seconds), and the CLI's input errors."""

import json

import pytest
from typer.testing import CliRunner

from paperlab.core.errors import UserError
from paperlab.uoe.cli import app
from paperlab.uoe.experiment import reproduce

TINY = dict(d_model=32, n_layers=1, n_heads=4, d_ff=64, seq_len=32, batch_size=4, steps=3, warmup_steps=1,
            eval_every=3, eval_tokens=256, variants=["dense", "moe", "smha", "uoe", "uoe_nodrop"])


def test_tiny_reproduce_writes_report_with_claims(tmp_path):
    run_dir = reproduce(quick=True, out=tmp_path / "run", **TINY)
    res = json.loads((run_dir / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert {"decomposition_exact", "uoe_vs_moe_at_flops", "smha_saves_flops"} <= set(claims)
    assert all(c["holds"] == (c["verdict"] == "holds") for c in claims.values())
    assert claims["decomposition_exact"]["verdict"] == "holds"
    assert claims["smha_saves_flops"]["verdict"] == "by_construction"   # FLOPs counts do not depend on training
    assert res["verdict_counts"]["by_construction"] == 1
    # the perplexity comparison is paired over the 256 / 32 = 8 validation windows, whose losses
    # average to the recorded validation loss
    ev = claims["uoe_vs_moe_at_flops"]["values"]["evidence"]
    assert ev["validation perplexity, UoE - MoE"]["n"] == 8
    assert ev["forward FLOPs per token, UoE - MoE"]["value"] < 0
    models = res["results"]["models"]
    assert set(models) == {"dense", "moe", "smha", "uoe", "uoe_nodrop"}
    seq = models["moe"]["val_seq_losses"]
    assert len(seq) == 8 and sum(seq) / 8 == pytest.approx(models["moe"]["val_loss"], rel=1e-5)
    assert models["uoe"]["flops_per_token"] < models["dense"]["flops_per_token"]
    assert models["dense"]["future_leak"] < 1e-4 and models["uoe_nodrop"]["future_leak"] < 1e-4
    assert (run_dir / "ppl_vs_flops.png").stat().st_size > 0
    assert "## Verdict" in (run_dir / "report.md").read_text()
    # a second run in the same directory (one folder, one configuration) reuses the finished models
    first = models["uoe"]
    again = json.loads((reproduce(quick=True, out=run_dir, **TINY) / "results.json").read_text())
    assert again["results"]["models"]["uoe"]["val_loss"] == first["val_loss"]
    assert again["results"]["models"]["uoe"]["val_seq_losses"] == first["val_seq_losses"]


def test_cli_rejects_bad_options(tmp_path):
    runner = CliRunner()
    for args in (["--gate", "sometimes"], ["--variant", "nope"], ["--steps", "0"], ["--precision", "fp8"]):
        res = runner.invoke(app, ["run", "--quick", "--out", str(tmp_path / "x"), *args])
        assert isinstance(res.exception, UserError), args
    assert not (tmp_path / "x" / "results.json").exists()
