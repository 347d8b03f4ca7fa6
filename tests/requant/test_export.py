"""Apply to your model: ``quantize`` writes a dense-and-sparse folder, ``ppl`` loads and scores it."""

import json

import pytest
import torch
from typer.testing import CliRunner

from paperlab.core.errors import UserError
from paperlab.requant.cli import app
from paperlab.requant.export import load_quantized, quantize_to_dir, resume_state_path
from paperlab.requant.layers import SparseDenseLinear


def test_quantize_save_load_and_score(tmp_path, tiny_hf_dir):
    from paperlab.core.models import load_torch_model

    out = tmp_path / "q"
    meta = quantize_to_dir(f"hf:{tiny_hf_dir}", out, bits=3, method="requant", group_size=16, sparse_ratio=0.02,
                           calib_seqs=4, calib_len=32, n_points=2, log=lambda m: None)
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "requant.json", "tokenizer.json"}
    assert not resume_state_path(out).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["q"]
    acct = meta["accounting"]
    assert acct["total_bits"] == acct["code_bits"] + acct["group_bits"] + acct["sparse_bits"]
    assert acct["bits_per_weight"] == pytest.approx(3 + 32 / 16 + 48 * 0.02, abs=0.02)
    model, tok, meta2 = load_quantized(out)
    assert sum(isinstance(m, SparseDenseLinear) for m in model.modules()) == 14 == len(meta2["layers"])
    # the loaded model computes what the original model computes with its weights set to D + S
    orig, _ = load_torch_model(f"hf:{tiny_hf_dir}", device="cpu")
    w0 = {n: p.detach().clone() for n, p in orig.named_parameters()}
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, SparseDenseLinear):
                orig.get_submodule(name).weight.copy_(m.weight_matrix())
        ids = torch.randint(0, tok.vocab_size if hasattr(tok, "vocab_size") else 100, (2, 20))
        torch.testing.assert_close(model(ids).logits, orig(ids).logits, rtol=1e-4, atol=1e-4)
        for n, p in orig.named_parameters():
            p.copy_(w0[n])
    # the CLI scores it (JSON on stdout and in --output)
    runner = CliRunner()
    res = runner.invoke(app, ["ppl", "--model", str(out), "--context", "32", "--stride", "16", "--max-tokens", "200",
                              "--output", str(tmp_path / "ppl.json")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "ppl.json").read_text())
    assert rep["quantized"] and rep["ppl"] > 1 and rep["ppl_ci95"][0] <= rep["ppl"] <= rep["ppl_ci95"][1]
    assert rep["bits_per_weight"] == pytest.approx(acct["bits_per_weight"])
    # and the unquantized model by spec
    res = runner.invoke(app, ["ppl", "--model", f"hf:{tiny_hf_dir}", "--context", "32", "--stride", "32",
                              "--max-tokens", "200"])
    assert res.exit_code == 0 and json.loads(res.output)["quantized"] is False


def test_quantize_cli_writes_folder_and_refuses_to_clobber(tmp_path, tiny_hf_dir):
    runner = CliRunner()
    out = tmp_path / "rtn"
    args = ["quantize", "--model", f"hf:{tiny_hf_dir}", "--bits", "2", "--method", "rtn", "--group-size", "16",
            "--out", str(out), "--calib-seqs", "2", "--calib-len", "16"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["bits_per_weight"] == pytest.approx(2 + 32 / 16)
    res = runner.invoke(app, args)                                   # exists: needs --overwrite
    assert isinstance(res.exception, UserError)
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    res = runner.invoke(app, [*args[:-6], "--out", str(other), "--overwrite"])
    assert isinstance(res.exception, UserError) and (other / "keep.txt").exists()


def test_quantize_and_ppl_reject_bad_input(tmp_path, tiny_hf_dir):
    runner = CliRunner()
    base = ["quantize", "--model", f"hf:{tiny_hf_dir}", "--out", str(tmp_path / "q")]
    for extra in (["--method", "gptq"], ["--base", "hqq"], ["--sparse-ratio", "0.9"], ["--sparse-ratio", "0"],
                  ["--rule", "simpson"], ["--calib", str(tmp_path / "missing.txt")], ["--temperature", "-2"],
                  ["--blocks", "0,0"]):
        res = runner.invoke(app, [*base, *extra])
        assert isinstance(res.exception, UserError), extra
        assert not (tmp_path / "q").exists(), extra
    res = runner.invoke(app, ["quantize", "--model", "openai:http://x/v1#m", "--out", str(tmp_path / "q")])
    assert isinstance(res.exception, UserError)
    plain = tmp_path / "plain"
    plain.mkdir()
    for args in (["--model", str(plain)], ["--model", "nope:x"], ["--model", f"hf:{tiny_hf_dir}", "--stride", "600"],
                 ["--model", f"hf:{tiny_hf_dir}", "--data", str(tmp_path / "missing.txt")]):
        res = runner.invoke(app, ["ppl", *args])
        assert isinstance(res.exception, UserError), args
