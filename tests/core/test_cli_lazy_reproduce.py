"""The CLI: lazy system subcommands, `paperlab reproduce` (failures, --only, --skip-done), and bad values.

Reproduce is exercised with fake systems injected into the registry (no experiment runs); bad CLI
values are checked to be one-line errors with exit status 2 that leave no run folder behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import paperlab
import paperlab.cli as cli
from paperlab.cli import main
from paperlab.core.errors import UserError
from paperlab.core.runs import Claim, Run, config_hash, paperlab_version
from paperlab.registry import SYSTEMS, System

SYSTEM_NAMES = [s.name for s in SYSTEMS]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


# -- lazy subcommands ------------------------------------------------------------------------------

_PROBE = """
import json, sys
from paperlab.cli import main
from paperlab.registry import SYSTEMS
names = {s.name for s in SYSTEMS}
rcs = [main(["--help"]), main(["list"]), main([])]
loaded = sorted(m for m in sys.modules if m.startswith("paperlab.") and m.split(".")[1] in names)
print("PROBE " + json.dumps({"rcs": rcs, "loaded": loaded}))
"""


def test_help_and_list_import_no_system_package():
    r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    probe = json.loads(r.stdout.rsplit("PROBE ", 1)[1])
    assert probe["loaded"] == []
    assert probe["rcs"][:2] == [0, 0]
    assert "telephone" in r.stdout and "Broken Telephone" in r.stdout  # listed, with the registry's title


def test_implemented_is_found_without_importing():
    before = {m for m in sys.modules if m.startswith("paperlab.")}
    implemented = [s.name for s in SYSTEMS if s.implemented]
    assert {"telephone", "uoe", "hybridnorm"} <= set(implemented)
    pkg = Path(paperlab.__file__).parent
    assert implemented == [s.name for s in SYSTEMS if (pkg / s.name / "cli.py").is_file()]
    new = {m for m in sys.modules if m.startswith("paperlab.")} - before
    assert not [m for m in new if m.split(".")[1] in SYSTEM_NAMES]


def test_system_help_loads_only_that_system(capsys):
    assert main(["telephone", "--help"]) == 0
    out = capsys.readouterr().out
    assert "run" in out and "score" in out
    assert "paperlab.telephone.cli" in sys.modules
    assert main(["hybridnorm", "run", "--help"]) == 0  # a one-command app is still a group: `run` stays
    assert "--depths" in capsys.readouterr().out
    assert main(["uoe", "run", "--help"]) == 0


def test_unknown_command_is_one_line(capsys):
    assert main(["telephon"]) == 2
    assert "Did you mean 'telephone'" in _one_line_error(capsys)


# -- reproduce with fake systems ---------------------------------------------------------------------

CALLS: list[str] = []


@dataclass(frozen=True)
class FakeSystem(System):
    fail: str = ""          # "" | "user" | "crash"
    size: int = 1           # part of the configuration

    @property
    def implemented(self) -> bool:
        return True

    def default_config(self, quick: bool):
        return {"quick": quick, "size": self.size}

    def reproduce(self, quick, out):
        CALLS.append(self.name)
        if self.fail == "user":
            raise UserError(f"{self.name}: bad input", "fix it")
        if self.fail == "crash":
            raise RuntimeError("kaput [/bold]\nsecond line")  # not rich markup
        run = Run(self.name, out=out, config=self.default_config(quick), argv=["paperlab", "reproduce"])
        run.finish([Claim(id="c1", statement="it works", holds=True)], results={"x": 1})
        return run.dir


@pytest.fixture
def fake_registry(monkeypatch):
    def install(*systems: FakeSystem):
        monkeypatch.setattr(cli, "SYSTEMS", tuple(systems))
        monkeypatch.setattr(cli, "BY_NAME", {s.name: s for s in systems})
        CALLS.clear()
    return install


def test_reproduce_goes_on_past_failures_and_exits_nonzero(fake_registry, tmp_path, capsys):
    fake_registry(FakeSystem("a", "A", "0"), FakeSystem("b", "B", "0", fail="user"),
                  FakeSystem("c", "C", "0", fail="crash"), FakeSystem("d", "D", "0"))
    root = tmp_path / "r"
    assert main(["reproduce", "--quick", "--out", str(root)]) == 1
    assert CALLS == ["a", "b", "c", "d"]
    index = (root / "index.md").read_text()
    assert "- [a](a/report.md): 1 hold" in index and "- [d](d/report.md)" in index
    assert "- **b: failed** — b: bad input — fix it" in index
    assert "- **c: failed** — RuntimeError: kaput [/bold] second line" in index
    assert (root / "c.traceback.txt").read_text().count("RuntimeError") >= 1
    assert "2 ran, 0 skipped (results exist), 2 failed" in index
    status = json.loads((root / "reproduce.json").read_text())
    assert {n: s["status"] for n, s in status["systems"].items()} == {"a": "ran", "b": "failed", "c": "failed", "d": "ran"}
    assert "| a | `c1` |" in index  # the claims table of the systems that ran


def test_skip_done_reruns_only_what_is_not_done(fake_registry, tmp_path, capsys):
    a, b = FakeSystem("a", "A", "0"), FakeSystem("b", "B", "0", fail="user")
    fake_registry(a, b)
    root = tmp_path / "r"
    assert main(["reproduce", "--quick", "--out", str(root)]) == 1
    assert main(["reproduce", "--quick", "--skip-done", "--out", str(root)]) == 1
    assert CALLS == ["a", "b", "b"]                                   # a was done: skipped; b failed: rerun
    assert "(skipped: finished earlier" in (root / "index.md").read_text()
    fake_registry(a, FakeSystem("b", "B", "0"))                         # b fixed
    assert main(["reproduce", "--quick", "--skip-done", "--out", str(root)]) == 0
    assert CALLS == ["b"]
    assert main(["reproduce", "--quick", "--skip-done", "--out", str(root)]) == 0
    assert CALLS == ["b"]                                              # everything done
    assert "0 ran, 2 skipped (results exist), 0 failed" in (root / "index.md").read_text()
    assert main(["reproduce", "--skip-done", "--out", str(root)]) == 1   # full mode: another configuration
    assert CALLS == ["b", "a", "b"]


def test_is_done_compares_version_and_config_hash(tmp_path):
    s = FakeSystem("a", "A", "0")
    cfg = s.default_config(True)
    res = {"system": "a", "claims": [], "config_hash": config_hash(cfg, "a"), "paperlab_version": paperlab_version()}
    (tmp_path / "results.json").write_text(json.dumps(res))
    assert s.is_done(tmp_path, quick=True)
    assert not s.is_done(tmp_path, quick=False)                        # another configuration
    assert not FakeSystem("a", "A", "0", size=2).is_done(tmp_path, quick=True)
    (tmp_path / "results.json").write_text(json.dumps({**res, "paperlab_version": "0.0.0-old"}))
    assert not s.is_done(tmp_path, quick=True)
    (tmp_path / "results.json").write_text(json.dumps({k: v for k, v in res.items() if k != "config_hash"}))
    assert not s.is_done(tmp_path, quick=True)
    (tmp_path / "results.json").write_text("[1, 2")
    assert not s.is_done(tmp_path, quick=True)
    assert not s.is_done(tmp_path / "missing", quick=True)


def test_real_systems_expose_default_config():
    from paperlab.registry import BY_NAME

    for name in ("telephone", "hybridnorm", "uoe", "tsv", "l2m", "fm_inverse"):
        quick, full = BY_NAME[name].default_config(True), BY_NAME[name].default_config(False)
        assert config_hash(quick, name) != config_hash(full, name), name


def test_only_is_validated_before_any_work(fake_registry, tmp_path, monkeypatch, capsys):
    fake_registry(FakeSystem("a", "A", "0"), FakeSystem("d", "D", "0"))
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--only", "a", "--only", "nosuch"]) == 2
    assert "unknown system 'nosuch'" in _one_line_error(capsys)
    assert CALLS == [] and not (tmp_path / "runs").exists()
    assert main(["reproduce", "--quick", "--only", "d,a", "--only", "a", "--out", str(tmp_path / "o")]) == 0
    assert CALLS == ["d", "a"]


def test_only_rejects_unimplemented_systems(capsys):
    todo = [s.name for s in SYSTEMS if not s.implemented]
    if not todo:
        pytest.skip("every system is implemented")
    assert main(["reproduce", "--only", todo[0]]) == 2
    assert "not implemented" in _one_line_error(capsys)


def test_reproduce_out_must_be_writable(fake_registry, tmp_path, capsys):
    fake_registry(FakeSystem("a", "A", "0"))
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["reproduce", "--out", str(f / "sub")]) == 2
    assert "is a file" in _one_line_error(capsys) and CALLS == []


# -- bad CLI values: one line, exit 2, no run folder ---------------------------------------------------

BAD = [
    (["telephone", "run", "--temperatures", "abc"], "--temperatures"),
    (["telephone", "run", "--temperatures", "0.5,-1"], "--temperatures"),
    (["telephone", "run", "--iterations", "-3"], "--iterations"),
    (["telephone", "run", "--compat", "bogus"], "--compat"),
    (["telephone", "run", "--model", "nonsense"], "unknown model spec"),
    (["telephone", "run", "--pool", "openai:localhost#m"], "--pool"),
    (["telephone", "run", "--domains", "news2024,nope"], "--domains"),
    (["telephone", "run", "--judge", "nonsense"], "--judge"),
    (["hybridnorm", "run", "--depths", "8,x"], "--depths"),
    (["hybridnorm", "run", "--steps", "-5"], "--steps"),
    (["hybridnorm", "run", "--corpus", "nope"], "--corpus"),
    (["hybridnorm", "run", "--sweep-lrs", "1e-3,0"], "--sweep-lrs"),
    (["hybridnorm", "run", "--variants", "pre,nope"], "--variants"),
    (["hybridnorm", "run", "--lr", "nan"], "--lr"),
    (["uoe", "run", "--steps", "-1"], "--steps"),
    (["uoe", "run", "--gate", "bad"], "--gate"),
    (["uoe", "run", "--precision", "fp16"], "--precision"),
    (["uoe", "run", "--variant", "nope"], "unknown variant"),
    (["tsv", "run", "--model", "nonsense"], "--model"),
    (["tsv", "run", "--tau", "-1"], "tau"),
    (["tsv", "run", "--labeller", "nope"], "labeller"),
    (["l2m", "run", "--ratios", "2,a"], "--ratios"),
    (["l2m", "run", "--corpus", "/no/such/corpus"], "--corpus"),
    (["l2m", "run", "--max-split", "100"], "max_split"),
    (["l2m", "run", "--scorer", "nope"], "--scorer"),
    (["fm_inverse", "run", "--device", "gpu"], "--device"),
    (["fm_inverse", "run", "--problem", "x"], "--problem"),
    (["fm_inverse", "run", "--steps", "0"], "--steps"),
    (["fm_inverse", "run", "--strategy", "nope"], "--strategy"),
]


@pytest.fixture
def no_experiments(monkeypatch):
    """Any bad value that slips past validation fails fast here instead of starting an experiment."""
    import importlib

    def refuse(*a, **k):
        raise AssertionError("validation missed a bad value: the experiment started")

    for name in ("telephone", "hybridnorm", "uoe", "tsv", "l2m", "fm_inverse"):
        monkeypatch.setattr(importlib.import_module(f"paperlab.{name}.experiment"), "reproduce", refuse)


@pytest.mark.parametrize("argv, fragment", BAD, ids=[" ".join(a[:1] + a[2:]) for a, _ in BAD])
def test_bad_value_is_one_line_exit_2_no_folder(argv, fragment, tmp_path, capsys, no_experiments):
    out = tmp_path / "o"
    assert main([*argv, "--out", str(out)]) == 2
    assert fragment in _one_line_error(capsys)
    assert not out.exists()


def test_unwritable_out_is_refused_before_work(tmp_path, capsys, no_experiments):
    f = tmp_path / "file"
    f.write_text("x")
    for argv in (["telephone", "run"], ["uoe", "run"], ["hybridnorm", "run"]):
        assert main([*argv, "--out", str(f / "run")]) == 2
        assert "cannot be created" in _one_line_error(capsys)
    assert main(["telephone", "run", "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err  # typer's own check of --out (file_okay=False)


@pytest.mark.parametrize("content, fragment", [
    ("[1, 2]\n", ":1 is a JSON array, not an object"),
    ('{"text": "a"}\n"just text"\n', ":2 is a JSON string"),
    ('{"text": "a"}\nnot json\n', ":2 is not valid JSON"),
])
def test_malformed_passage_file_leaves_no_folder(content, fragment, tmp_path, capsys):
    pf = tmp_path / "p.jsonl"
    pf.write_text(content)
    out = tmp_path / "o"
    assert main(["telephone", "run", "--no-rephrase", "--passage-file", str(pf), "--out", str(out)]) == 2
    assert fragment in _one_line_error(capsys)
    assert not out.exists()


def test_telephone_score_bad_inputs(tmp_path, capsys):
    orig = tmp_path / "o.jsonl"
    orig.write_text('{"id": "a", "text": "The cat sat on the mat."}\n')
    gen = tmp_path / "g.jsonl"
    for line, fragment in [('{"id": "a", "iteration": "two", "text": "x"}', "'iteration' is 'two'"),
                           ('{"id": "a", "iteration": -1, "text": "x"}', "not a whole number"),
                           ('[{"id": "a"}]', "is a JSON array")]:
        gen.write_text(line + "\n")
        assert main(["telephone", "score", "--original", str(orig), "--generations", str(gen)]) == 2
        assert fragment in _one_line_error(capsys)
    gen.write_text('{"id": "a", "iteration": 1, "text": "The cat sat."}\n')
    assert main(["telephone", "score", "--original", str(orig), "--generations", str(gen),
                 "--output", str(orig / "x.json")]) == 2
    assert "--output" in _one_line_error(capsys)
    assert main(["telephone", "score", "--original", str(orig), "--generations", str(gen), "--compat", "x"]) == 2
    assert "--compat" in _one_line_error(capsys)


def test_other_commands_check_their_inputs(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?", "answer": "A"}\n[1]\n')
    (tmp_path / "det").mkdir()
    assert main(["tsv", "score", "--detector", str(tmp_path / "det"), "--input", str(bad)]) == 2
    assert ":2 is a JSON array" in _one_line_error(capsys)
    assert main(["tsv", "score", "--detector", str(tmp_path / "nodet"), "--input", str(bad)]) == 2
    assert "--detector" in _one_line_error(capsys)
    assert main(["fm_inverse", "sample", "--checkpoint", str(tmp_path), "--obs", str(bad), "--n", "0"]) == 2
    assert "--n" in _one_line_error(capsys)
    assert main(["l2m", "gaussian", "--gamma", "0"]) == 2
    assert "--gamma" in _one_line_error(capsys)
