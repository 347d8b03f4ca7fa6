"""The sandbox as a code interpreter: output, errors, notebook-like state, limits; and its refusal to run
unprotected."""

import ast

import pytest

from paperlab.core.errors import UserError
from paperlab.start import sandbox
from paperlab.start.sandbox import ExecResult, Limits, SandboxUnavailable, run_python, sandbox_status

boxed = pytest.mark.skipif(not sandbox_status()[0], reason=f"sandbox unavailable: {sandbox_status()[1]}")


@boxed
def test_prints_and_evaluates_last_expression():
    r = run_python("import sympy\nx = sympy.symbols('x')\nprint(sympy.solve(x**2 - 4, x))\n3 * 7")
    assert r.ok
    assert r.stdout.splitlines() == ["[-2, 2]", "21"]


@boxed
def test_error_shows_last_traceback_line():
    r = run_python("def f():\n    return 1 / 0\nf()")
    assert not r.ok and r.exit_code == 1
    assert r.observation() == "ZeroDivisionError: division by zero"
    assert '<cell>", line 2' in r.stderr


@boxed
def test_earlier_cells_rerun_silently():
    r = run_python(["a = 40\nprint('first')", "b = a + 1\nprint('second')", "print(b + 1)"])
    assert r.stdout == "42\n"


@boxed
def test_environment_is_minimal_and_secret_free(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    r = run_python("import os\nprint(sorted(os.environ))\nprint(os.getuid())")
    names = ast.literal_eval(r.stdout.splitlines()[0])
    assert "OPENAI_API_KEY" not in names and "sk-should-not-leak" not in r.stdout
    assert set(names) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONIOENCODING", "OPENBLAS_NUM_THREADS",
                          "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MPLBACKEND", "LC_CTYPE"}
    assert sandbox.is_sandbox_uid(int(r.stdout.splitlines()[1]))


def test_observation_formats_each_stop():
    assert ExecResult("5\n", "", 0, None, 0.1, 2).observation() == "5"
    assert "time limit" in ExecResult("", "", -9, "wall_time", 3.0, 0).observation()
    assert "truncated" in ExecResult("x" * 10, "", -9, "output_cap", 0.1, 10).observation()
    assert ExecResult("", "", -24, None, 1.0, 0).observation() == "Killed by signal 24 (resource limit)"
    long = ExecResult("y" * 5000, "", 0, None, 0.1, 5000).observation(max_chars=100)
    assert len(long) < 120 and "..." in long


def test_limits_are_validated():
    with pytest.raises(UserError):
        Limits(cpu_seconds=0)
    with pytest.raises(UserError):
        Limits(wall_seconds=-1)


def test_refuses_to_run_unprotected_when_not_root(monkeypatch):
    sandbox.sandbox_status.cache_clear()
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    try:
        with pytest.raises(SandboxUnavailable, match="root"):
            run_python("print('unprotected')")
    finally:
        sandbox.sandbox_status.cache_clear()


def test_refuses_when_tools_are_missing(monkeypatch, tmp_path):
    sandbox.sandbox_status.cache_clear()
    monkeypatch.setitem(sandbox.SETUP_ENV, "PATH", str(tmp_path))
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    try:
        with pytest.raises(SandboxUnavailable, match="util-linux"):
            run_python("print('unprotected')")
    finally:
        sandbox.sandbox_status.cache_clear()
