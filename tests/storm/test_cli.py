"""CLI: a tiny run end to end (report, claims, plots, example clips, resume), `answer` on a GIF and a batch,
one-line errors (exit 2) that leave no run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from paperlab.cli import main
from paperlab.core.video import VideoConfig, generate_video, save_gif

TINY = ["--train-videos", "16", "--test-videos", "12", "--frames", "8", "--temporal-pool", "2", "--samples", "2",
        "--steps", "3", "--d-model", "16", "--threads", "1", "--mamba-layers", "1"]


def _run(capsys, *args):
    code = main(["storm", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("storm") / "run"
    code = main(["storm", "run", "--quick", *TINY, "--out", str(out)])
    assert code == 0
    return out


def test_run_writes_report_claims_and_examples(tiny_run, capsys):
    res = json.loads((tiny_run / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"mamba_keeps_accuracy_under_pooling", "spatial_pooling_hurts", "scan_exact"}
    assert claims["scan_exact"]["verdict"] == "holds"
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in claims.values())
    evals = res["results"]["evaluations"]
    assert {(r["projector"], r["budget"]) for r in evals} == {
        (p, b) for p in ("linear", "mamba") for b in ("none_s1", "temporal_s1", "temporal_s2", "spatial_s1")}
    tokens = {r["budget"]: r["tokens"] for r in evals}
    assert tokens == {"none_s1": 8 * 4, "temporal_s1": 4 * 4, "temporal_s2": 2 * 4, "spatial_s1": 8 * 1}  # 2x2 grid
    report = (tiny_run / "report.md").read_text()
    assert "## Accuracy: projector x token budget" in report and "## Example clips" in report
    assert (tiny_run / "accuracy_vs_tokens.png").stat().st_size > 1000
    assert list(tiny_run.glob("example_*.gif")) and list(tiny_run.glob("example_*.png"))
    # same settings again: everything reused (models, features, evaluations), same claims
    code, _, err = _run(capsys, "run", "--quick", *TINY, "--out", tiny_run)
    assert code == 0, err
    again = json.loads((tiny_run / "results.json").read_text())
    key = lambda c: (c["id"], c["verdict"], c["values"]["evidence"])  # noqa: E731 (timings are re-measured)
    assert [key(c) for c in again["claims"]] == [key(c) for c in res["claims"]]
    assert again["results"]["evaluations"] == res["results"]["evaluations"]
    # another configuration into the same folder: refused in one line
    code, _, err = _run(capsys, "run", "--quick", *TINY[:-2], "--mamba-layers", "2", "--out", tiny_run)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "another configuration" in err


def test_answer_on_gif_npy_and_batch(tiny_run, tmp_path, capsys):
    v = generate_video(VideoConfig(n_frames=12, size=48), seed=77)     # other length and size: resampled
    gif = save_gif(v.frames, tmp_path / "clip.gif", scale=1)
    np.save(tmp_path / "clip.npy", v.frames)
    q = v.qa[0]
    code, out, err = _run(capsys, "answer", "--checkpoint", tiny_run, "--video", gif, "--question", q.question,
                          "--choices", ",".join(q.choices), "--projector", "mamba", "--pool", "temporal",
                          "--sample", 2)
    assert code == 0, err
    res = json.loads(out)
    assert res["answer"] in q.choices and abs(sum(res["scores"].values()) - 1) < 1e-3
    assert res["visual_tokens"] == 2 * 4
    lines = [{"video": "clip.npy", "question": x.question, "choices": list(x.choices)} for x in v.qa]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    code, out, err = _run(capsys, "answer", "--checkpoint", tiny_run, "--batch", tmp_path / "items.jsonl",
                          "--projector", "linear", "--pool", "none", "--output", tmp_path / "a.json")
    assert code == 0, err
    assert [r["question"] for r in json.loads(out)] == [x.question for x in v.qa]
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads(out)


@pytest.mark.parametrize("args,needle", [
    (["run", "--quick", "--encoders", "resnet"], "--encoders"),
    (["run", "--quick", "--samples", "2,x"], "--samples"),
    (["run", "--quick", "--frames", "10"], "temporal_pool"),
    (["run", "--quick", "--scan", "fast"], "--scan"),
    (["run", "--quick", "--d-model", "12"], "d_model"),
])
def test_bad_run_input_is_one_line_and_makes_no_folder(tmp_path, capsys, args, needle):
    out = tmp_path / "never"
    code, _, err = _run(capsys, *args, "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err
    assert not out.exists()


def test_bad_answer_input(tiny_run, tmp_path, capsys):
    v = generate_video(VideoConfig(n_frames=8, size=32), seed=1)
    gif = save_gif(v.frames, tmp_path / "c.gif")
    cases = [
        (["--video", gif, "--question", "Which way?", "--choices", "left,sideways"], "sideways"),
        (["--video", tmp_path / "none.gif", "--question", "Which way?", "--choices", "left,right"], "does not exist"),
        (["--video", gif, "--question", "Which way?"], "missing"),
        (["--video", gif, "--question", "Which way?", "--choices", "left,right", "--pool", "avg"], "--pool"),
    ]
    for extra, needle in cases:
        code, _, err = _run(capsys, "answer", "--checkpoint", tiny_run, *extra)
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, (extra, err)
    code, _, err = _run(capsys, "answer", "--checkpoint", tmp_path, "--video", gif, "--question", "q",
                        "--choices", "left,right")
    assert code == 2 and "not a finished" in err
