"""CLI: a tiny end-to-end run, clap-score on its checkpoint, one-line errors (exit 2)."""

import json

import numpy as np
import pytest

from paperlab.cli import main
from paperlab.core.audio import save_wav
from paperlab.core.audio_scenes import SYNTH_KINDS, make_scene

TINY = ["--clap-train", 16, "--clap-test", 8, "--clap-steps", 4, "--lm-steps", 4, "--stage-steps", "3,3,3",
        "--short-scenes", 4, "--long-scenes", 4, "--long-test", 3, "--long-s", 40, "--kinds", "tone,chirp,clicks"]


def _run(capsys, *args):
    code = main(["af2", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_tiny_run_then_clap_score(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    code, _, err = _run(capsys, "run", "--quick", *TINY, "--out", out)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"afclap_beats_infonce_on_order", "gates_open", "long_audio_uses_all_windows"}
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in claims.values())
    assert len(res["results"]["gates"]) == 3 and res["results"]["qa_questions"] > 0  # one XATTN per LM layer
    report = (out / "report.md").read_text()
    assert "## AF-CLAP vs. InfoNCE" in report and "## Long-scene QA" in report
    assert (out / "gates.png").stat().st_size > 1000 and (out / "clap_afclap.pt").exists()
    # resuming the finished run reuses every stage (same results)
    code, _, err = _run(capsys, "run", "--quick", *TINY, "--out", out)
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["results"]["qa"] == res["results"]["qa"]

    scene = make_scene(3, kinds=SYNTH_KINDS)
    wav = save_wav(tmp_path / "clip.wav", scene.render())
    caps = tmp_path / "caps.txt"
    neg = scene.negatives(n_order=1, n_attribute=0)[0].text
    caps.write_text(f"{scene.caption.text}\n{neg}\nzebras singing opera\n")
    code, text, err = _run(capsys, "clap-score", "--audio", wav, "--captions", caps, "--checkpoint", out)
    assert code == 0, err
    ranking = json.loads(text)["ranking"]
    assert sorted(r["caption"] for r in ranking) == sorted([scene.caption.text, neg, "zebras singing opera"])
    assert [r["rank"] for r in ranking] == [1, 2, 3]
    assert [r for r in ranking if r["caption"].startswith("zebras")][0]["unknown_word_share"] > 0
    # the default checkpoint is the latest run under ./runs/af2
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "clap-score", "--audio", wav, "--captions", caps)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no trained AF-CLAP" in err
    (tmp_path / "runs" / "af2").mkdir(parents=True)
    out.rename(tmp_path / "runs" / "af2" / "r1")
    code, text, err = _run(capsys, "clap-score", "--audio", wav, "--captions", caps)
    assert code == 0, err
    assert json.loads(text)["checkpoint"].endswith("r1")


@pytest.mark.parametrize("args,needle", [
    (lambda t: ["run", "--quick", "--stage-steps", "1,2"], "three numbers"),
    (lambda t: ["run", "--quick", "--kinds", "tone,banjo"], "unknown"),
    (lambda t: ["clap-score", "--audio", t / "missing.wav", "--captions", t / "c.txt"], "does not exist"),
    (lambda t: ["clap-score", "--audio", t / "bad.wav", "--captions", t / "c.txt", "--checkpoint", t],
     "cannot read audio"),
    (lambda t: ["clap-score", "--audio", t / "good.wav", "--captions", t / "empty.txt", "--checkpoint", t],
     "no caption"),
    (lambda t: ["clap-score", "--audio", t / "good.wav", "--captions", t / "c.txt", "--checkpoint", t],
     "no clap_afclap.pt"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, args, needle):
    (tmp_path / "c.txt").write_text("a high beep\n")
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    save_wav(tmp_path / "good.wav", np.zeros(1600, np.float32))
    (tmp_path / "clap_afclap.pt").write_bytes(b"") if "cannot read audio" in needle else None
    code, _, err = _run(capsys, *args(tmp_path))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err
