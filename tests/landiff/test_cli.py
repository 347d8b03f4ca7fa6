"""CLI: a tiny run end to end (report, claims, GIFs), resume, generate from it; one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from paperlab.cli import main

TINY = {"n_train": 48, "n_test": 12, "n_judge": 48, "tok_steps": 6, "lm_steps": 6, "det_base_steps": 3,
        "det_control_steps": 3, "judge_steps": 3, "n_gen": 8, "n_motion": 4, "n_long": 3, "long_chunks": 2,
        "sample_steps": 2, "tok_batch": 8, "lm_batch": 8, "det_batch": 4, "judge_batch": 8, "n_boot": 200,
        "tok_width": 16, "lm_width": 32, "det_width": 32, "det_layers": 2, "det_control_layers": 1,
        "clip_frames": 8, "min_frames": 8, "prefix_frames": 2}


def _sets(d):
    out = []
    for k, v in d.items():
        out += ["--set", f"{k}={json.dumps(v)}"]
    return out


def _run(capsys, *args):
    code = main(["landiff", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("landiff") / "run"
    code = main(["landiff", "run", "--quick", *_sets(TINY), "--out", str(out)])
    assert code == 0
    return out


def test_tiny_run_writes_report_claims_and_gifs(tiny_run):
    res = json.loads((tiny_run / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"landiff_compresses", "landiff_follows_captions", "motion_score_controls_motion"}
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in claims.values())
    r = res["results"]
    assert r["tokenizer"]["tokens_per_clip"] == 8 + 3 * 2
    assert len(r["judge_generated"]["colour"]) == 8 and len(r["long"]["per_chunk"]) == 2
    assert r["long"]["frames"] == 8 + 6
    report = (tiny_run / "report.md").read_text()
    assert report.startswith("# LanDiff") and "## Long video" in report and ".gif" in report
    assert (tiny_run / "media" / "generated_0.gif").stat().st_size > 100
    assert (tiny_run / "examples.png").exists() and (tiny_run / "motion_sweep.png").exists()


def test_rerun_resumes_and_other_config_is_refused(tiny_run, capsys):
    code, _, err = _run(capsys, "run", "--quick", *_sets(TINY), "--out", tiny_run)
    assert code == 0, err
    res = json.loads((tiny_run / "results.json").read_text())
    assert all(v["reused"] for v in res["results"]["training"].values())
    code, _, err = _run(capsys, "run", "--quick", *_sets(TINY | {"lm_steps": 7}), "--out", tiny_run)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "another configuration" in err


def test_generate_writes_gif_and_metadata(tiny_run, tmp_path, capsys):
    gif = tmp_path / "clip.gif"
    code, out, err = _run(capsys, "generate", "--checkpoint", tiny_run, "--caption", "a blue square moves up slowly",
                          "--frames", 8, "--motion", 0.03, "--out", gif)
    assert code == 0, err
    meta = json.loads(gif.with_suffix(".json").read_text())
    assert meta["frames"] == 8 and meta["requested_motion"] == 0.03 and gif.stat().st_size > 100
    assert meta["tokens_per_chunk"] == 8 + 3 * 2 and set(meta["judge"]) == {"colour", "shape", "direction"}
    long_gif = tmp_path / "long.gif"
    code, _, err = _run(capsys, "generate", "--checkpoint", tiny_run, "--caption", "a red circle moves left quickly",
                        "--frames", 20, "--out", long_gif)
    assert code == 0, err
    meta = json.loads(long_gif.with_suffix(".json").read_text())
    assert meta["frames"] == 20 and meta["chunks"] == 3


@pytest.mark.parametrize("args,needle", [
    (lambda t: ["run", "--quick", "--set", "nonsense=1", "--out", t / "r"], "unknown setting"),
    (lambda t: ["run", "--quick", "--set", "clip_frames=15", "--out", t / "r"], "stride"),
    (lambda t: ["run", "--quick", "--encoder", "vit", "--out", t / "r"], "encoder"),
    (lambda t: ["run", "--quick", "--text-encoder", "hf:/no/such/dir", "--out", t / "r"], "folder not found"),
    (lambda t: ["run", "--quick", "--set", "oops", "--out", t / "r"], "KEY=VALUE"),
    (lambda t: ["generate", "--checkpoint", t / "missing", "--caption", "x", "--out", t / "c.gif"], "not a folder"),
    (lambda t: ["generate", "--checkpoint", t, "--caption", "x", "--out", t / "c.gif"], "not a finished landiff run"),
    (lambda t: ["generate", "--checkpoint", t, "--caption", "x", "--motion", "2", "--out", t / "c.gif"], "--motion"),
    (lambda t: ["generate", "--checkpoint", t, "--caption", "x", "--out", t / "c.png"], ".gif"),
    (lambda t: ["generate", "--checkpoint", t, "--caption", " ", "--out", t / "c.gif"], "caption is empty"),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, args, needle):
    code, _, err = _run(capsys, *args(tmp_path))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "c.gif").exists()
