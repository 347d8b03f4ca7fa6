"""Claims decided by intervals, and run folders bound to one configuration."""

from __future__ import annotations

import json
import math

import pytest

from paperlab.core.errors import UserError
from paperlab.core.runs import (
    Claim,
    Run,
    by_construction,
    claim,
    claim_of_parts,
    combine,
    decide,
    decide_range,
    load_results,
    verdict_counts,
)
from paperlab.core.stats import Estimate, exact


def est(lo, hi, value=None):
    return Estimate((lo + hi) / 2 if value is None else value, lo, hi, 10, "test")


@pytest.mark.parametrize(("lo", "hi", "expect", "verdict"), [
    (0.1, 0.3, "greater", "holds"),
    (-0.1, 0.3, "greater", "inconclusive"),
    (-0.3, -0.1, "greater", "contradicted"),
    (-0.3, -0.1, "less", "holds"),
    (0.1, 0.3, "less", "contradicted"),
    (0.0, 0.3, "greater", "inconclusive"),          # touching no-effect is not excluding it
])
def test_decide_reads_the_interval(lo, hi, expect, verdict):
    assert decide(est(lo, hi), expect) == verdict


def test_point_estimate_alone_cannot_decide():
    # a large point difference with an interval across zero is inconclusive, not "holds"
    assert decide(Estimate(0.9, -0.2, 2.0, 3, "t"), "greater") == "inconclusive"
    assert decide(Estimate(0.9, math.nan, math.nan, 1, "t"), "greater") == "inconclusive"


def test_equivalence_within_margin():
    assert decide(est(0.95, 1.05), "within", null=1.0, margin=0.1) == "holds"
    assert decide(est(0.85, 1.05), "within", null=1.0, margin=0.1) == "inconclusive"
    assert decide(est(1.2, 1.4), "within", null=1.0, margin=0.1) == "contradicted"
    with pytest.raises(ValueError):
        decide(est(0, 1), "within")


def test_claim_records_evidence_and_holds_equals_verdict():
    c = claim("x", "a beats b", est(0.1, 0.3), expect="greater", extra=3)
    assert c.verdict == "holds" and c.holds is True
    assert c.values["evidence"]["lo"] == 0.1 and c.values["test"]["expect"] == "greater"
    assert c.values["extra"] == 3
    c2 = claim("y", "both parts", {"a": est(0.1, 0.3), "b": est(-0.1, 0.2)})
    assert c2.verdict == "inconclusive" and c2.holds is False
    assert c2.values["evidence"]["b"]["verdict"] == "inconclusive"
    assert combine(["holds", "contradicted", "inconclusive"]) == "contradicted"


def test_exact_measurement_decides_an_identity():
    assert claim("eq", "error below 1e-10", exact(1e-14), expect="less", null=1e-10).verdict == "holds"
    assert claim("eq", "error below 1e-10", exact(1e-3), expect="less", null=1e-10).verdict == "contradicted"


def test_by_construction_is_counted_apart():
    a = by_construction("flops", "SMHA halves attention FLOPs", 0.47 < 1)
    b = by_construction("flops2", "impossible", False)
    assert a.verdict == "by_construction" and a.holds is False
    assert b.verdict == "contradicted"
    counts = verdict_counts([a, b, claim("z", "s", est(0.1, 0.2))])
    assert counts == {"holds": 1, "contradicted": 1, "inconclusive": 0, "by_construction": 1}


def test_legacy_claim_dicts_still_load():
    c = Claim(**{"id": "old", "statement": "s", "holds": True, "values": {}})
    assert c.verdict == "holds"


def test_run_writes_verdicts_and_config_hash(tmp_path):
    run = Run("demo", out=tmp_path / "r", config={"a": 1}, argv=["paperlab", "demo", "run"])
    run.finish([claim("x", "s", est(0.1, 0.2)), by_construction("y", "t", True)], results={"m": 1.0})
    res = load_results(tmp_path / "r")
    assert res["claims"][0]["verdict"] == "holds" and res["claims"][0]["holds"] is True
    assert res["verdict_counts"]["by_construction"] == 1
    assert res["config_hash"] == run.config_hash and len(run.config_hash) == 64
    report = (tmp_path / "r" / "report.md").read_text()
    assert "1 hold, 0 contradicted, 0 inconclusive of 1 findings; 1 by construction" in report
    assert "[0.1, 0.2]" in report


def test_run_folder_refuses_another_configuration(tmp_path):
    out = tmp_path / "r"
    Run("demo", out=out, config={"steps": 10}, argv=["x"])
    (out / "model.pt").write_text("trained with steps=10")
    Run("demo", out=out, config={"steps": 10}, argv=["x"])          # same config: resume, files kept
    assert (out / "model.pt").exists()
    with pytest.raises(UserError, match="another configuration"):
        Run("demo", out=out, config={"steps": 20}, argv=["x"])
    assert (out / "model.pt").exists()                               # refused: nothing touched
    run = Run("demo", out=out, config={"steps": 20}, argv=["x"], overwrite=True)
    assert not (out / "model.pt").exists()                           # afresh
    assert json.loads((out / "run.json").read_text())["config_hash"] == run.config_hash


def test_run_folder_never_takes_a_foreign_folder(tmp_path):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    for ow in (False, True):
        with pytest.raises(UserError, match="not a paperlab run folder"):
            Run("demo", out=foreign, config={}, argv=["x"], overwrite=ow)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_same_config_other_system_is_another_configuration(tmp_path):
    Run("demo", out=tmp_path / "r", config={"a": 1}, argv=["x"])
    with pytest.raises(UserError):
        Run("other", out=tmp_path / "r", config={"a": 1}, argv=["x"])


def test_overwrite_discards_only_run_folders(tmp_path):
    from paperlab.core.runs import discard_run_folder

    out = tmp_path / "r"
    Run("demo", out=out, config={"a": 1}, argv=["x"])
    discard_run_folder(out)
    assert not out.exists()
    foreign = tmp_path / "f"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="not a paperlab run folder"):
        discard_run_folder(foreign)
    assert (foreign / "notes.txt").exists()


def test_cli_refuses_to_resume_another_configuration_in_one_line(tmp_path, capsys):
    from paperlab.cli import main

    out = tmp_path / "r"
    Run("uoe", out=out, config={"steps": 3}, argv=["x"])           # a uoe run of some other configuration
    (out / "dense").mkdir()
    assert main(["uoe", "run", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "another configuration" in err and "\n" not in err
    assert (out / "dense").exists()                                 # nothing was touched


def test_claims_table_survives_pipes_and_newlines():
    from paperlab.core.runs import claims_table

    table = claims_table([claim("a", "x | y\nz", exact(1.0), part="p|q")])
    row = table.splitlines()[2]
    assert row.count(" | ") == 4 and "x \\| y z" in row   # five cells: none split by a pipe in the text


def _est(lo, hi):
    return Estimate((lo + hi) / 2, lo, hi, 10, "test")


@pytest.mark.parametrize("lo,hi,verdict", [(0.45, 0.55, "holds"), (0.61, 0.7, "contradicted"),
                                           (0.55, 0.65, "inconclusive"), (math.nan, math.nan, "inconclusive")])
def test_decide_range_equals_equivalence_test(lo, hi, verdict):
    est = _est(lo, hi)
    assert decide_range(est, 0.4, 0.6) == verdict
    if math.isfinite(lo):
        assert decide(est, "within", null=0.5, margin=0.1) == verdict


def test_claim_of_parts_decides_each_part_by_its_own_test():
    parts = {"gain": (_est(0.1, 0.3), {"expect": "greater"}),
             "ratio": (_est(0.9, 1.1), (0.8, 1.25)),
             "converged": (_est(1, 1), "holds")}
    c = claim_of_parts("x", "s", parts, note="n")
    assert c.verdict == "holds" and c.values["parts_not_holding"] == [] and c.values["note"] == "n"
    assert c.values["evidence"]["ratio"]["accept"] == [0.8, 1.25]
    assert c.values["evidence"]["gain"]["test"] == {"expect": "greater", "null": 0.0}
    # one part failing its own test decides the claim, though the same interval passes the other tests
    parts["ratio"] = (_est(0.1, 0.3), (0.8, 1.25))
    c = claim_of_parts("x", "s", parts)
    assert c.verdict == "contradicted" and c.values["parts_not_holding"] == ["ratio"]
    parts["ratio"] = (_est(0.9, 1.1), "inconclusive")
    assert claim_of_parts("x", "s", parts).verdict == "inconclusive"
    with pytest.raises(ValueError):
        claim_of_parts("x", "s", {"a": (_est(0, 1), "maybe")})
    with pytest.raises(ValueError):
        claim_of_parts("x", "s", {})
