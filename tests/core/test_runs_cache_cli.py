"""Runs/claims/reports, the request cache, spec parsing and the CLI's one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from paperlab.cli import main
from paperlab.core.cache import Cache, make_key
from paperlab.core.errors import UserError
from paperlab.core.models import GenerationParams, parse_spec
from paperlab.core.runs import Run, claim
from paperlab.core.stats import paired_bootstrap_diff
from paperlab.registry import SYSTEMS


def test_claim_verdict_is_computed_and_json_safe(tmp_path):
    a, b = np.float32(0.7), np.float64(0.9)
    rng = np.random.default_rng(0)
    before, after = rng.normal(0.9, 0.05, 20), rng.normal(0.7, 0.05, 20)
    c = claim("x_decays", "a is below b", paired_bootstrap_diff(before, after), a=a, b=b, arr=np.arange(3))
    assert c.holds is True and isinstance(c.holds, bool) and c.verdict == "holds"
    flat = paired_bootstrap_diff(before, before + rng.normal(0, 0.05, 20))
    run = Run("demo", out=tmp_path / "r", config={"k": 1}, argv=["paperlab", "demo", "run"])
    run.append("raw", {"v": np.int64(3)})
    run.append("raw", {"v": 4})
    report = run.finish([c, claim("y", "no difference", flat, v=float("nan"))], results={"m": np.ones(2)},
                        sections=["## Extra\ntext"], scale_note="small")
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [c["id"] for c in res["claims"]] == ["x_decays", "y"]
    assert res["claims"][0]["values"]["arr"] == [0, 1, 2]
    assert res["claims"][1]["values"]["v"] is None
    assert res["command"] == "paperlab demo run"
    assert "torch" in res["versions"] or "numpy" in res["versions"]
    text = report.read_text()
    assert text.index("## Claims") < text.index("## Extra")  # claims table first
    assert "*inconclusive*" in text and res["claims"][1]["verdict"] == "inconclusive"
    assert run.read("raw") == [{"v": 3}, {"v": 4}]


def test_cache_persists_across_connections(tmp_path):
    p = tmp_path / "c.sqlite"
    c1 = Cache(p)
    k = make_key("chat", "m", [{"role": "user", "content": "x"}], {"t": 0.5})
    assert c1.get(k) is None
    c1.put(k, "answer")
    c1.close()
    c2 = Cache(p)
    assert c2.get(k) == "answer" and len(c2) == 1
    assert make_key("a", {"x": 1, "y": 2}) == make_key("a", {"y": 2, "x": 1})
    assert make_key("a", 1) != make_key("a", 2)


def test_cache_is_thread_safe(tmp_path):
    c = Cache(tmp_path / "c.sqlite")

    def work(j):
        for i in range(50):
            c.put(f"{j}-{i}", i)

    threads = [threading.Thread(target=work, args=(j,)) for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(c) == 200


@pytest.mark.parametrize("spec", ["nonsense", "hf:", "openai:localhost#m", "openai:http://x/v1", "gguf:/no/file.gguf"])
def test_bad_specs_raise_user_error(spec):
    with pytest.raises(UserError):
        parse_spec(spec)


def test_good_specs_parse():
    assert parse_spec("openai:http://127.0.0.1:8000/v1#meta/llama").model == "meta/llama"
    assert parse_spec("hf:/models/x").kind == "hf"
    assert parse_spec("default").default


def test_default_hf_is_the_default_weights_through_transformers():
    from paperlab.core.models import default_gguf_path, dequantised_folder

    ms = parse_spec("default-hf")
    assert (ms.kind, ms.default, str(ms)) == ("hf", True, "default-hf")
    assert ms.target == str(dequantised_folder(default_gguf_path())) and str(parse_spec("default")) == "default"


def test_generation_params_validate():
    with pytest.raises(UserError):
        GenerationParams(temperature=-1)
    with pytest.raises(UserError):
        GenerationParams(top_p=0)
    assert GenerationParams(temperature=0).greedy


def test_registry_lists_21_systems():
    assert len(SYSTEMS) == 21 and len({s.name for s in SYSTEMS}) == 21
    assert any(s.implemented for s in SYSTEMS)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "paperlab", *args], capture_output=True, text=True, timeout=120)


def test_cli_bad_model_is_one_line_error(tmp_path):
    r = _cli("telephone", "run", "--quick", "--no-mt", "--model", "nonsense", "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model spec 'nonsense'" in lines[0] and "use default" in lines[0]


def test_cli_negative_iterations_rejected(tmp_path):
    r = _cli("telephone", "run", "--iterations", "-3", "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "--iterations" in r.stderr and ">= 1" in r.stderr.replace("greater than or equal to", ">=")
    assert "Traceback" not in r.stderr


def test_cli_list_and_unknown_system(capsys):
    assert main(["list"]) == 0
    assert "telephone" in capsys.readouterr().out
    assert main(["reproduce", "--only", "nosuch"]) == 2
    assert "unknown system 'nosuch'" in capsys.readouterr().err
