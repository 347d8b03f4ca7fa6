"""A tiny end-to-end run of the real experiment (seconds), resume after a lost step, and the CLI's input errors."""

import json

import pytest
from typer.testing import CliRunner

from paperlab.core.errors import UserError
from paperlab.requant.cli import app
from paperlab.requant.experiment import default_config, reproduce

TINY_LM = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, seq_len=32, steps=5, batch_size=4, warmup_steps=1,
               group_size=32, eq_group_size=16, eval_tokens=512, eval_stride=16)


def tiny_config(hf_dir):
    return dict(models=["tiny", f"hf:{hf_dir}"], bits=[3, 2], group_size=32, eq_group_size=16, calib_seqs=4,
                calib_len=32, scan_points=4, convergence_points=[2, 4], folds=2, eval_context=32, eval_stride=16,
                eval_tokens=256, n_boot=200, requant_points=2, tiny=TINY_LM, threads=1)


def test_tiny_reproduce_writes_report_with_claims_and_resumes(tmp_path, tiny_hf_dir):
    cfg = tiny_config(tiny_hf_dir)
    run_dir = reproduce(quick=True, out=tmp_path / "run", **cfg)
    res = json.loads((run_dir / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"taylor_underestimates", "pqi_converges", "pqi_concentrated", "requant_beats_alternatives"}
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in claims.values())
    assert all(c["holds"] == (c["verdict"] == "holds") for c in claims.values())
    hf_key = [k for k in res["results"]["models"] if k != "tiny"][0]
    for key in ("tiny", hf_key):
        m = res["results"]["models"][key]
        for bits in ("3", "2"):
            comp = m["compare"][bits]
            assert set(comp) == {"base", "base_eq", "magnitude", "fisher", "requant", "requant_ablation"}
            # equal bits: the dense-and-sparse models cost the fine-group base's bits (up to one entry per layer)
            eq = comp["base_eq"]["bits_per_weight"]
            for meth in ("magnitude", "fisher", "requant", "requant_ablation"):
                assert comp[meth]["bits_per_weight"] == pytest.approx(eq, abs=48 * len(m["layers"]) / m["n_weights"])
            assert comp["base"]["bits_per_weight"] < eq
        sens = m["sensitivity"]
        assert set(sens["taylor"]) == {"first", "second", "second_token_fisher"}
        assert {"right/2", "right/4", "left/4", "trapezoid/4", "midpoint/2"} <= set(sens["estimates"])
    # quick: the transformers model is quantized on its last two blocks (here: both of its 2 blocks)
    assert len(res["results"]["models"][hf_key]["layers"]) == 2 * 7
    report = (run_dir / "report.md").read_text()
    for heading in ("Taylor estimates vs. the measured loss change", "concentration of PQI",
                    "WikiText-2 perplexity at 3 bits", "## Verdict", "context 32 and stride 16",
                    "+ ReQuant (PQI), ranked by |dF_i|", "(ablation) ReQuant ranked by signed dF_i"):
        assert heading in report
    assert (run_dir / "pqi_concentration_convergence.png").stat().st_size > 0
    # a lost step (killed run) is recomputed, finished ones are reused: same numbers
    stream = run_dir / "compare_tiny_2.jsonl"
    lines = stream.read_text().splitlines()
    stream.write_text("\n".join(lines[:3]) + "\n")
    (run_dir / "results.json").unlink()
    again = json.loads((reproduce(quick=True, out=run_dir, **cfg) / "results.json").read_text())
    for meth in ("fisher", "requant"):
        assert again["results"]["models"]["tiny"]["compare"]["2"][meth]["ppl"] == pytest.approx(
            res["results"]["models"]["tiny"]["compare"]["2"][meth]["ppl"], rel=1e-6)
    assert len(stream.read_text().splitlines()) == 6


def test_config_validation():
    quick, full = default_config(True), default_config(False)
    assert quick.blocks == [-2, -1] and quick.bits == [3] and quick.convergence_points == [4, 8, 16, 32]
    assert full.blocks is None and full.bits == [3, 2] and full.convergence_points == [4, 8, 16, 32]
    assert quick.tiny.steps < full.tiny.steps and quick.tiny.n_layers < full.tiny.n_layers
    for bad in (dict(bits=[9]), dict(base="gptq"), dict(eq_group_size=192), dict(scan_points=16, convergence_points=[3]),
                dict(claim_fraction=0.02), dict(models=["openai:http://x#m"]), dict(folds=20), dict(scan_rule="simpson")):
        with pytest.raises(UserError):
            default_config(True, **bad)


def test_cli_rejects_bad_options(tmp_path, tiny_hf_dir):
    runner = CliRunner()
    not_a_model = tmp_path / "not_a_model"
    not_a_model.mkdir()
    for args in (["--models", "openai:http://x/v1#m"], ["--models", "nope:x"], ["--bits", "9"], ["--bits", "a"],
                 ["--base", "gptq"], ["--blocks", "1,1"], ["--temperature", "-1"], ["--outlier-share", "2"],
                 ["--scan-points", "0"], ["--models", f"tiny,hf:{tmp_path / 'missing'}"],
                 ["--models", f"hf:{not_a_model}"], ["--models", f"hf:{tiny_hf_dir}", "--blocks", "5"]):
        res = runner.invoke(app, ["run", "--quick", "--out", str(tmp_path / "x"), *args])
        assert res.exit_code != 0, args
        assert isinstance(res.exception, UserError) or res.exit_code == 2, args
        assert not (tmp_path / "x").exists(), args
