"""CLI: one-line errors (exit 2) for bad input, and a tiny end-to-end run followed by `speak`."""

from __future__ import annotations

import json
import shutil

import pytest
import soundfile as sf

from paperlab.cli import main

TINY = ["--sentences", "24", "--test-sentences", "4", "--codec-steps", "20", "--decoder-steps", "20", "--n-embd",
        "96", "--prompts", "2", "--max-tokens", "12", "--max-audio-tokens", "50",
        "--policies", "10/160x3,40/160x2"]


def _run(capsys, *args):
    code = main(["llmvox", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("args,needle", [
    (["run", "--quick", "--policies", "10x3"], "--policies"),
    (["run", "--quick", "--policies", "0/160x2"], "--policies"),
    (["run", "--quick", "--model", "nonsense:x"], "model"),
    (["run", "--quick", "--n-embd", "48"], "code_dim"),
    (["speak", "--prompt", "  ", "--out", "x.wav"], "--prompt is empty"),
    (["speak", "--prompt", "Hi", "--out", "x.wav", "--checkpoint", "/nonexistent/run"], "no trained LLMVoX"),
    (["speak", "--prompt", "Hi", "--out", "x.wav", "--policy", "10/160x2,5/5x2"], "one policy"),
])
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_speak_without_any_run_says_how_to_make_one(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/llmvox here
    code, _, err = _run(capsys, "speak", "--prompt", "Hi", "--out", "x.wav")
    assert code == 2 and "paperlab llmvox run" in err and len(err.strip().splitlines()) == 1


def test_tiny_run_then_speak(capsys, tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    out = tmp_path / "run"
    code, _, err = _run(capsys, "run", "--quick", *TINY, "--out", out)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"llmvox_intelligible", "first_audio_latency"}
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in claims.values())
    assert [p["policy"] for p in res["results"]["policies"]] == ["non-streaming", "10/160 x3", "40/160 x2"]
    assert all(p["order_ok"] for p in res["results"]["policies"])
    assert 0 <= res["results"]["wer"]["espeak"]["value"] <= 0.5  # raw espeak audio is intelligible to Whisper
    report = (out / "report.md").read_text()
    assert "## Intelligibility" in report and "## Streaming" in report and (out / "llmvox.png").exists()
    assert (out / "model.pt").exists() and (out / "sample0_llmvox.wav").exists()
    # the same folder under another configuration is refused
    code, _, err = _run(capsys, "run", "--quick", *TINY[:-2], "--out", out)
    assert code == 2 and "another configuration" in err
    wav = tmp_path / "speech.wav"
    code, stdout, err = _run(capsys, "speak", "--prompt", "Say hello.", "--out", wav, "--checkpoint", out,
                             "--max-tokens", "12", "--policy", "10/160x2", "--max-audio-tokens", "50")
    assert code == 0, err
    summary = json.loads(stdout)
    data, sr = sf.read(str(wav))
    assert sr == 16000 and abs(len(data) / sr - summary["audio_s"]) < 1e-3 and summary["text"]
