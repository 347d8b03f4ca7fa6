"""`paperlab feedback_edit`: bad input is one line on stderr, exit 2, checked before any work."""

from __future__ import annotations

import json

import pytest

from paperlab.cli import main


def _err(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("args, word", [
    (["--task", "mmlu"], "--task"),
    (["--n", "0,1"], "--n"),
    (["--m", "1,1"], "repeats"),
    (["--k", "two"], "--k"),
    (["--selector", "bogus"], "--selector"),
    (["--generator", "gguf:/nope.gguf"], "--generator"),
    (["--temperature", "-1"], "--temperature"),
    (["--top-p", "1.5"], "--top-p"),
    (["--problems", "1"], "problems"),
])
def test_run_bad_input_is_one_line_and_no_folder(capsys, tmp_path, args, word):
    out = tmp_path / "run"
    code, err = _err(capsys, ["feedback_edit", "run", "--quick", "--out", str(out), *args])
    assert code == 2 and len(err.splitlines()) == 1 and word in err, err
    assert not out.exists()


def test_run_too_many_gsm8k_problems(capsys, tmp_path):
    out = tmp_path / "run"
    code, err = _err(capsys, ["feedback_edit", "run", "--task", "gsm8k", "--problems", "5000", "--out", str(out)])
    assert code == 2 and "gsm8k" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_solve_bad_input(capsys, tmp_path):
    good = tmp_path / "p.jsonl"
    good.write_text(json.dumps({"prompt": "hi"}) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "answer": "x"}\n')
    cases = [
        (["--input", str(tmp_path / "missing.jsonl")], "does not exist"),
        (["--input", str(bad)], "not a number"),
        (["--input", str(good), "--editor", "openai:nourl"], "--editor"),
        (["--input", str(good), "--m", "1", "--keep", "2"], "--keep"),
        (["--input", str(good), "--output", str(tmp_path)], "--output"),
    ]
    for args, word in cases:
        code, err = _err(capsys, ["feedback_edit", "solve", *args])
        assert code == 2 and len(err.splitlines()) == 1 and word in err, (args, err)
    code, err = _err(capsys, ["feedback_edit", "solve", "--input", str(good), "--n", "0"])
    assert code == 2 and len(err.splitlines()) == 1


def test_keep_needs_a_single_m():
    from paperlab.core.errors import UserError
    from paperlab.feedback_edit.experiment import default_config

    with pytest.raises(UserError, match="keep"):
        default_config(True, keep=1)  # quick grid has M in {1, 2}
    assert default_config(True, keep=2, m_grid=[2]).keep == 2
