"""A tiny end-to-end run of the real experiment (tiny random Llama: scoring, polishing, LoRA, generation), its
resume, and the CLI: tsr/ppl on real inputs, one-line errors (exit 2) on bad ones."""

import gzip
import json

import pytest

from paperlab.core.data import data_path
from paperlab.core.errors import UserError
from paperlab.translationese.experiment import default_config, reproduce


def tiny_config(model_dir):
    spec = f"hf:{model_dir}"
    return dict(ppl_model=spec, sft_model=spec, polish_model=spec, max_items=8, n_train=8, steps=2, batch_size=2,
                n_eval=4, max_new_tokens=6, polish_max_tokens=12, n_boot=200, max_len=96,
                arms=["base", "raw", "filtered", "polished"], lora_layers=1)


def test_tiny_run_writes_report_claims_and_resumes(tmp_path, tiny_chat_dir):
    cfg = tiny_config(tiny_chat_dir)
    run_dir = reproduce(quick=True, out=tmp_path / "run", **cfg)
    res = json.loads((run_dir / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"tsr_table_matches_paper", "ppl_correlates_tsr", "paper_filter_keeps_less_translationese",
                           "polish_lowers_reference_ppl", "sft_polished_lowers_output_ppl",
                           "sft_filtered_lowers_output_ppl"}
    assert claims["tsr_table_matches_paper"]["verdict"] == "holds"  # the released data, recomputed
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in claims.values())
    assert claims["ppl_correlates_tsr"]["values"]["evidence"]["n"] == 8
    sft = res["results"]["sft"]
    assert set(sft["arms"]) == {"base", "raw", "filtered", "polished"}
    assert sft["arms"]["filtered"]["n_train"] == 6 and sft["arms"]["raw"]["n_train"] == 8  # 20% of 8 dropped
    assert all(len(a["hyps"]) == 4 and len(a["ppl"]) == 4 for a in sft["arms"].values())
    for arm in ("raw", "filtered", "polished"):
        assert (run_dir / "adapters" / arm / "adapter_config.json").exists()
    report = (run_dir / "report.md").read_text()
    for heading in ("## Claims", "TSR from the released annotations", "Perplexity of the annotated texts",
                    "Heuristics of the annotated de-en outputs", "SFT experiment", "tsr_shares.png"):
        assert heading in report
    # a lost arm is redone from its saved adapter (no retraining), the others are reused
    adapter = run_dir / "adapters" / "polished" / "adapter_model.safetensors"
    stamp = adapter.stat().st_mtime_ns
    (run_dir / "translations_polished.jsonl").unlink()
    (run_dir / "results.json").unlink()
    again = json.loads((reproduce(quick=True, out=run_dir, **cfg) / "results.json").read_text())
    assert adapter.stat().st_mtime_ns == stamp  # loaded, not retrained
    assert again["results"]["sft"]["arms"]["raw"]["hyps"] == sft["arms"]["raw"]["hyps"]
    assert again["results"]["sft"]["arms"]["polished"]["hyps"] == sft["arms"]["polished"]["hyps"]
    assert again["results"]["ppl"]["deen_sft"]["ppl"] == res["results"]["ppl"]["deen_sft"]["ppl"]


def test_quick_config_fits_and_bad_settings_are_one_line_errors(tmp_path, capsys):
    q = default_config(True)
    assert q.ppl_sets == ["deen_sft"] and q.max_items is None and q.n_train <= 500  # all 500 references scored
    for bad in ({"ppl_sets": ["xx"]}, {"n_train": 500, "max_items": 100}, {"ppl_model": "openai:http://x/v1#m"},
                {"ppl_sets": ["enzh_sft"]}, {"arms": ["raw", "raw"]}):
        with pytest.raises(UserError, match="bad setting"):
            default_config(True, **bad)
    for args, message in ((["--ppl-sets", "deen_sft,xx"], "unknown"), (["--n-train", "500", "--max-items", "100"], "n_train"),
                          (["--ppl-model", "openai:http://x/v1#m"], "log-probabilities"),
                          (["--filter-drop", "1.5"], "--filter-drop")):
        out = tmp_path / "never"
        r = _cli(["run", "--quick", "--out", str(out), *args], capsys)
        assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
        assert not out.exists()


class Result:
    def __init__(self, code, out, err):
        self.exit_code, self.stdout, self.output = code, out, err if code else out


def _cli(args, capsys):
    """``paperlab translationese ...`` through the real entry point (one-line error + exit 2 on bad input)."""
    from paperlab.cli import main

    capsys.readouterr()
    code = main(["translationese", *args])
    out, err = capsys.readouterr()
    return Result(code, out, err)


def test_cli_tsr_on_released_files(tmp_path, capsys):
    files = sorted((data_path("translationese", "training_instances_translationese_error_span", "enzh")).glob("*.gz"))
    args = ["tsr", "--items"] + [x for f in files for x in ("--annotations", str(f))]
    out = tmp_path / "tsr.json"
    r = _cli(args + ["--output", str(out)], capsys)
    assert r.exit_code == 0, r.output
    payload = json.loads(out.read_text())
    assert payload["n_items"] == 500 and len(payload["items"]) == 500
    assert payload["systems"][0]["k"] == 203  # 40.6% of the 500 en-zh SFT references (paper: 41%)


@pytest.mark.parametrize("content, message", [
    ("[{", "not valid JSON"), ('{"a": 1}', "not a list"), ('[{"data": {"text": "x"}}]', "translation"),
    ('[{"data": {"translation": "abc"}, "annotations": []}]', "no annotation"),
])
def test_cli_tsr_errors_are_one_line(tmp_path, capsys, content, message):
    p = tmp_path / "export.json"
    p.write_text(content)
    r = _cli(["tsr", "--annotations", str(p)], capsys)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cli_tsr_missing_file_and_bad_threshold(tmp_path, capsys):
    r = _cli(["tsr", "--annotations", str(tmp_path / "nope.json")], capsys)
    assert r.exit_code == 2 and "does not exist" in r.output
    f = next(data_path("translationese", "training_instances_translationese_error_span", "deen").glob("*.gz"))
    r = _cli(["tsr", "--annotations", str(f), "--threshold", "1.5"], capsys)
    assert r.exit_code == 2 and "--threshold" in r.output


def test_cli_ppl(tmp_path, capsys, tiny_chat_dir):
    p = tmp_path / "in.jsonl"
    p.write_text('{"text": "The goods cost less than twenty euros."}\n{"text": "I had to wear a fat suit."}\n')
    r = _cli(["ppl", "--model", f"hf:{tiny_chat_dir}", "--input", str(p)], capsys)
    assert r.exit_code == 0, r.output
    payload = json.loads(r.stdout)
    assert payload["n"] == 2 and len(payload["items"]) == 2 and payload["mean"] > 1
    assert payload["median"] == pytest.approx(sorted(i["ppl"] for i in payload["items"])[0] / 2 +
                                              sorted(i["ppl"] for i in payload["items"])[1] / 2)


@pytest.mark.parametrize("content, args, message", [
    ('{"text": "ok"}\nnot json\n', [], ":2 is not valid JSON"),
    ('{"other": "ok"}\n', [], "no non-empty string field 'text'"),
    ('{"text": "ok"}\n', ["--model", "openai:http://localhost:1/v1#m"], "log-probabilities"),
    ('{"text": "ok"}\n', ["--model", "nonsense"], "--model"),
])
def test_cli_ppl_errors_are_one_line(tmp_path, capsys, content, args, message):
    p = tmp_path / "in.jsonl"
    p.write_text(content)
    r = _cli(["ppl", "--input", str(p), *args], capsys)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_packaged_filter_file_is_the_de_en_part():
    with gzip.open(data_path("translationese", "merge_raw.ppl_0.8.deen.jsonl.gz"), "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 3043 and max(r["ppl"] for r in rows) == pytest.approx(11.519, abs=1e-3)
