"""A tiny end-to-end run of the real experiment, its resume, the measure command on its snapshots and on a tiny
transformers model, and the CLI's input errors."""

import json

import pytest

from paperlab.cli import main
from paperlab.core.errors import UserError
from paperlab.priming.experiment import default_config, reproduce

TINY = dict(seeds=[0], steps=40, warmup_steps=4, l1_tokens=3000, l2_tokens=3000, n_items=6, d_model=16, d_ff=32, n_heads=2,
            batch_size=8, seq_len=32, n_boot=200, heldout_tokens=512, pre_onset=[0.5], post_onset=[0.1, 0.5, 1.0])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("priming") / "run"
    return reproduce(quick=True, out=out, **TINY)


def test_tiny_run_writes_report_claims_and_plots(tiny_run):
    res = json.loads((tiny_run / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"within_language_priming", "crosslingual_priming_emerges"}
    for c in claims.values():
        assert c["verdict"] in ("holds", "contradicted", "inconclusive")
        assert c["holds"] == (c["verdict"] == "holds")
    ev = claims["within_language_priming"]["values"]["evidence"]
    assert set(ev) == {"similar/sequential/L1>L1@20", "similar/sequential/L2>L2@40", "similar/simultaneous/L1>L1@40",
                       "similar/simultaneous/L2>L2@40"}
    assert all(e["n"] == 2 * TINY["n_items"] for e in ev.values())
    ev = claims["crosslingual_priming_emerges"]["values"]["evidence"]
    assert set(ev) == {f"similar/{r}/{d}" for r in ("sequential", "simultaneous") for d in ("L1>L2", "L2>L1")}
    assert all(e["n"] == 2 * 6 for e in ev.values())
    steps = res["results"]["steps"]
    assert steps == [10, 20, 22, 30, 40] and res["results"]["onset"] == 20
    rows = res["results"]["rows"]
    # regimes (+ the code-switching control) x checkpoints x directions x {both, dative, voice}
    assert len(rows) == 3 * len(steps) * 4 * 3
    assert {r["regime"] for r in rows} == {"sequential", "simultaneous", "codeswitch"}
    assert all(-1 <= r["lo"] <= r["mean"] <= r["hi"] <= 1 for r in rows)
    # both regimes share the pre-onset model: identical measurements up to the onset
    key = lambda r: (r["step"], r["direction"], r["alternation"])  # noqa: E731
    seq = {key(r): r["mean"] for r in rows if r["regime"] == "sequential"}
    sim = {key(r): r["mean"] for r in rows if r["regime"] == "simultaneous"}
    assert all(seq[k] == sim[k] for k in seq if k[0] <= 20)
    assert any(seq[k] != sim[k] for k in seq if k[0] > 20)
    report = (tiny_run / "report.md").read_text()
    for text in ("## Priming effects, similar pair", "Wilcoxon", "## Verdict", "`the man gives the woman the ball`",
                 "## Positive control: code-switched documents (not a claim)"):
        assert text in report, text
    for png in ("priming_effect_by_step", "crosslingual_emergence", "heldout_loss"):
        assert (tiny_run / f"{png}.png").stat().st_size > 0


def test_resume_recomputes_only_what_is_missing(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run)
    before = json.loads((run / "results.json").read_text())
    lines = (run / "measure.jsonl").read_text().splitlines()
    (run / "measure.jsonl").write_text("\n".join(lines[:4]) + "\n")
    (run / "models/similar/seed0/simultaneous/snap_40.pt").unlink()       # a killed training
    again = json.loads((reproduce(quick=True, out=run, **TINY) / "results.json").read_text())
    assert len((run / "measure.jsonl").read_text().splitlines()) == len(lines)
    for a, b in zip(before["results"]["rows"], again["results"]["rows"], strict=True):
        assert a["mean"] == pytest.approx(b["mean"], abs=1e-9)
    assert [c["verdict"] for c in before["claims"]] == [c["verdict"] for c in again["claims"]]


def test_measure_command_on_a_snapshot(tiny_run, tmp_path, capsys):
    snap = tiny_run / "models/similar/seed0/simultaneous/snap_40.pt"
    items = tiny_run / "items_similar.jsonl"
    out = tmp_path / "m.json"
    assert main(["priming", "measure", "--model", str(snap), "--items", str(items), "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    n = len(items.read_text().splitlines())
    assert res["n_items"] == n and res["effect"]["lo"] <= res["effect"]["value"] <= res["effect"]["hi"]
    per_item = [json.loads(x) for x in (tmp_path / "m.items.jsonl").read_text().splitlines()]
    assert len(per_item) == n
    # the same items score as in the run: its dative L1>L2 records at step 40 of the simultaneous regime
    rec = [json.loads(x) for x in (tiny_run / "measure.jsonl").read_text().splitlines()]
    rec = [r for r in rec if r["regime"] == "simultaneous" and r["step"] == 40][0]
    rows = [json.loads(x) for x in items.read_text().splitlines()]
    idx = [i for i, r in enumerate(rows) if r["alternation"] == "dative" and (r["prime_lang"], r["target_lang"])
           == ("en", "sim")]
    assert [round(per_item[i]["effect"], 6) for i in idx] == pytest.approx(rec["effect"]["dative/L1>L2"], abs=1e-6)


def test_measure_command_on_a_transformers_model(tmp_path, capsys):
    from paperlab.priming.grammar import Grammar
    from paperlab.priming.measure import make_items
    from tests_helpers import save_tiny_llama

    g = Grammar()
    text = "\n".join(" ".join(make_items(g, "voice", "en", "en", 200, seed=3)[i][k] for k in ("prime_x", "target_y"))
                     for i in range(200))
    folder = save_tiny_llama(tmp_path / "llama", text, vocab_size=300, intermediate_size=64, max_positions=128)
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps(it) for it in make_items(g, "dative", "en", "en", 5, seed=0)) + "\n")
    assert main(["priming", "measure", "--model", f"hf:{folder}", "--items", str(items)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_items"] == 5 and -1 <= res["effect"]["value"] <= 1


def test_item_effects_average_seeds_and_claims_use_them():
    from paperlab.priming.experiment import item_effects
    from paperlab.priming.report import make_claims

    cfg = default_config(True, regimes=["simultaneous"], control_codeswitch=0, steps=40, warmup_steps=4, n_items=3,
                         seeds=[0, 1], n_boot=200)
    keys = [f"{alt}/{d}" for alt in ("dative", "voice") for d in ("L1>L1", "L2>L2", "L1>L2", "L2>L1")]

    def rec(seed, step, cross):
        eff = {k: ([cross] * 3 if k.endswith(("L1>L2", "L2>L1")) else [0.3 + 0.1 * seed] * 3) for k in keys}
        return {"pair": "similar", "seed": seed, "regime": "simultaneous", "step": step, "effect": eff}

    records = [rec(0, 20, 0.0), rec(1, 20, 0.0), rec(0, 40, 0.1), rec(1, 40, 0.3)]
    x = item_effects(records, "similar", "simultaneous", 40, ("L1>L2", "L2>L1"))
    assert x.shape == (12,) and x == pytest.approx(0.2)                  # mean of the two seeds, per item
    claims = {c.id: c for c in make_claims(cfg, records, {})}
    ev = claims["within_language_priming"].values["evidence"]
    assert ev["similar/simultaneous/L1>L1@40"]["value"] == pytest.approx(0.35)
    cross = claims["crosslingual_priming_emerges"].values
    assert cross["evidence"]["similar/simultaneous/L1>L2"]["value"] == pytest.approx(0.2)
    assert cross["evidence"]["similar/simultaneous/L2>L1/seed 1"]["value"] == pytest.approx(0.3)
    assert cross["final_minus_onset_per_seed"]["similar/simultaneous"] == pytest.approx({"0": 0.1, "1": 0.3})


def test_config_validation():
    quick, full = default_config(True), default_config(False)
    assert quick.pairs == ["similar"] and full.pairs == ["similar", "dissimilar"]
    assert quick.steps < full.steps and len(quick.seeds) < len(full.seeds)
    assert quick.trained_regimes == ["sequential", "simultaneous", "codeswitch"]
    assert default_config(True, control_codeswitch=0).trained_regimes == ["sequential", "simultaneous"]
    for bad in (dict(steps=41), dict(pairs=["close"]), dict(regimes=[]), dict(seeds=[1, 1]), dict(persistence=2),
                dict(pre_onset=[1.0]), dict(post_onset=[0]), dict(d_model=30, n_heads=4), dict(warmup_steps=5000)):
        with pytest.raises(UserError):
            default_config(True, **bad)


@pytest.mark.parametrize("args", [
    ["run", "--quick", "--pairs", "close"], ["run", "--quick", "--steps", "41"], ["run", "--quick", "--persistence", "2"],
    ["run", "--quick", "--codeswitch", "1"], ["run", "--quick", "--seeds", "a"], ["run", "--quick", "--post-onset", "0"],
    ["run", "--quick", "--regimes", "interleaved"],
])
def test_run_rejects_bad_options(tmp_path, capsys, args):
    out = tmp_path / "x"
    assert main(["priming", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_measure_rejects_bad_input(tmp_path, capsys, tiny_run):
    snap = str(tiny_run / "models/similar/seed0/sequential/snap_10.pt")
    good = tiny_run / "items_similar.jsonl"
    missing_field = tmp_path / "a.jsonl"
    missing_field.write_text('{"prime_x": "the man sees the dog .", "prime_y": "x"}\n')
    not_json = tmp_path / "b.jsonl"
    not_json.write_text("prime_x\n")
    unknown = tmp_path / "c.jsonl"
    unknown.write_text(json.dumps({"prime_x": "the zebra sees the dog .", "prime_y": "a", "target_x": "b",
                                   "target_y": "c"}) + "\n")
    loose = tmp_path / "loose.pt"
    loose.write_text("no")
    for args in (["--model", snap, "--items", str(tmp_path / "none.jsonl")], ["--model", snap, "--items", str(missing_field)],
                 ["--model", snap, "--items", str(not_json)], ["--model", snap, "--items", str(unknown)],
                 ["--model", str(loose), "--items", str(good)], ["--model", "nope:x", "--items", str(good)],
                 ["--model", "openai:http://x/v1#m", "--items", str(good)]):
        assert main(["priming", "measure", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err and "\n" not in err and "Traceback" not in err, args
