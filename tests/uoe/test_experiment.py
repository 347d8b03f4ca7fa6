"""A tiny end-to-end run of the real experiment (seconds), and the CLI's input errors."""

import json

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
    assert all(isinstance(c["holds"], bool) for c in claims.values())
    assert claims["decomposition_exact"]["holds"]
    assert claims["smha_saves_flops"]["holds"]            # FLOPs counts do not depend on training
    models = res["results"]["models"]
    assert set(models) == {"dense", "moe", "smha", "uoe", "uoe_nodrop"}
    assert models["uoe"]["flops_per_token"] < models["dense"]["flops_per_token"]
    assert models["dense"]["future_leak"] < 1e-4 and models["uoe_nodrop"]["future_leak"] < 1e-4
    assert (run_dir / "ppl_vs_flops.png").stat().st_size > 0
    assert "## Verdict" in (run_dir / "report.md").read_text()
    # a second run in the same directory reuses the finished models (resumable)
    first = models["uoe"]["val_loss"]
    again = json.loads((reproduce(quick=True, out=run_dir, **{**TINY, "variants": ["uoe"]}) / "results.json").read_text())
    assert again["results"]["models"]["uoe"]["val_loss"] == first


def test_cli_rejects_bad_options(tmp_path):
    runner = CliRunner()
    for args in (["--gate", "sometimes"], ["--variant", "nope"], ["--steps", "0"], ["--precision", "fp8"]):
        res = runner.invoke(app, ["run", "--quick", "--out", str(tmp_path / "x"), *args])
        assert isinstance(res.exception, UserError), args
    assert not (tmp_path / "x" / "results.json").exists()
