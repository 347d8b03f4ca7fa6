"""CLI: the quick run end to end, obfuscate / validate / score on files, one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from paperlab.cli import main
from paperlab.lingoly.released import root, template_path

PROBLEM = root() / "unobfuscated" / "88_0000.json"


def _run(capsys, *args):
    code = main(["lingoly", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_quick_writes_report_and_claims(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = _run(capsys, "run", "--quick", "--models", "none", "--obfuscations", "3", "--out", out)
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert {"obfuscation_bijective", "memorisation_gap", "case_preserved", "human_gap"} <= set(claims)
    assert all(c["verdict"] in ("holds", "contradicted", "inconclusive") for c in claims.values())
    mem = claims["memorisation_gap"]["values"]["evidence"]["memorising gap"]
    assert mem["lo"] > 0 and mem["n"] == 51
    assert (out / "report.md").read_text().startswith("# LINGOLY-TOO")
    assert (out / "m_og_vs_m_obf.png").stat().st_size > 1000
    assert len(list((out / "obfuscations").glob("*.json"))) == 6 + 3 * 5 + 2   # originals + fresh (191: 2)
    # same folder, same configuration: resumes; another configuration: refused in one line
    assert _run(capsys, "run", "--quick", "--models", "none", "--obfuscations", "3", "--out", out)[0] == 0
    code, _, err = _run(capsys, "run", "--quick", "--models", "none", "--obfuscations", "2", "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "another configuration" in err


def test_obfuscate_and_validate_on_files(tmp_path, capsys):
    code, out, _ = _run(capsys, "validate", "--template", template_path("88"), "--problem", PROBLEM)
    assert code == 0 and "unmapped" in out and "ok:" in out
    dest = tmp_path / "obf"
    code, out, _ = _run(capsys, "obfuscate", "--template", template_path("88"), "--problem", PROBLEM,
                        "--seed", 317, "--n", 3, "--out", dest)
    assert code == 0 and sorted(p.name for p in dest.iterdir()) == [f"88_000{i}.json" for i in range(4)]
    first = json.loads((dest / "88_0001.json").read_text())
    assert first["obfuscated"] == "True" and first["mapping"] and first["context"] != json.loads(
        PROBLEM.read_text())["context"]
    code, out, _ = _run(capsys, "obfuscate", "--template", template_path("88"), "--problem", PROBLEM, "--n", 3)
    again = json.loads(out)
    assert code == 0 and again[1]["mapping"] == first["mapping"]          # same seed, same output
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps(["Mala welu jen."] + [""] * 7))
    code, out, _ = _run(capsys, "score", "--problem", PROBLEM, "--answers", answers)
    assert code == 0 and json.loads(out)["mean"]["exact"] == pytest.approx(1 / 8)


def _bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("args,needle", [
    (lambda t: ["obfuscate", "--template", _bad(t, "o.json", '{"sets": [["a","e"],["e","i"]]}'), "--problem", PROBLEM],
     "listed in set 0 and in set 1"),
    (lambda t: ["obfuscate", "--template", _bad(t, "b.json", '{"sets": [["a"'), "--problem", PROBLEM],
     "not valid JSON"),
    (lambda t: ["obfuscate", "--template", template_path("88"), "--problem", _bad(t, "p.json", '{"context": 1')],
     "not valid JSON"),
    (lambda t: ["obfuscate", "--template", template_path("88"),
                "--problem", _bad(t, "q.json", '{"context": "x", "questions": "[{broken"}')],
     "'questions' string is not valid JSON"),
    (lambda t: ["validate", "--template", _bad(t, "v.json", '{"sets": [["a","e"],["e","i"]]}')], "1 error(s)"),
    (lambda t: ["validate", "--template", t / "missing.json"], "does not exist"),
    (lambda t: ["obfuscate", "--template", _bad(t, "i.json", '{"sets": [["a"]]}'), "--problem", PROBLEM],
     "identity"),
    (lambda t: ["run", "--quick", "--models", "nonsense:x", "--out", t / "r"], "--models"),
    (lambda t: ["score", "--problem", PROBLEM, "--answers", _bad(t, "s.json", '["x"]')], "1 answers"),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, args, needle):
    code, _, err = _run(capsys, *args(tmp_path))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_score_accepts_answers_keyed_by_subquestion(tmp_path, capsys):
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps({"0/0": "mala welu jen", "Q 5/8": "Caja leis welu alaga!"}))
    code, out, _ = _run(capsys, "score", "--problem", PROBLEM, "--answers", answers)
    rows = json.loads(out)["subquestions"]
    assert code == 0 and rows[0]["exact"] == 1.0 and rows[7]["exact"] == 0.0 and rows[7]["chrf"] > 0.5
    assert all(r["exact"] == 0.0 for r in rows[1:7])
