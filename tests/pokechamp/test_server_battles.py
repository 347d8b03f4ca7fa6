"""The local Showdown server (always stopped: after an exception, Ctrl-C, SIGTERM), malformed server messages,
real battles through the runner, and the CLI (one-line errors, a tiny end-to-end run)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from paperlab.cli import main
from paperlab.core.errors import UserError

needs_node = pytest.mark.skipif(not (os.environ.get("PATH") and __import__("shutil").which("node")),
                                reason="Node.js not installed")


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _run(capsys, *args):
    code = main(["pokechamp", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_missing_node_is_a_one_line_error(monkeypatch, capsys):
    from paperlab.pokechamp.server import check_node

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UserError, match="not found on PATH"):
        check_node()
    code, _, err = _run(capsys, "serve")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Node.js" in err


def test_malformed_server_lines_are_skipped_not_fatal():
    from poke_env import AccountConfiguration
    from poke_env.concurrency import POKE_LOOP

    from paperlab.pokechamp.players import RandomBot

    bot = RandomBot(account_configuration=AccountConfiguration("malformedtest", None), start_listening=False,
                    log_level=logging.CRITICAL)
    tag = ">battle-gen9randombattle-7"

    async def feed():
        await bot._handle_battle_message([[tag], ["", "init", "battle"], ["", "player", "p1", "malformedtest", "1", ""]])
        await bot._handle_battle_message([[tag], ["", "-damage"], ["", "switch", "p2a: Pikachu"], ["", "turn", "x"],
                                          ["", "request", "{not json"], ["", "turn", "2"]])

    asyncio.run_coroutine_threadsafe(feed(), POKE_LOOP).result(20)
    assert bot.malformed_messages == 4
    assert bot.battles["battle-gen9randombattle-7"].turn == 2        # the good line after them was applied


@needs_node
def test_server_runs_real_battles_then_stops_after_an_exception():
    from paperlab.pokechamp.battles import play_matchup, win_rate
    from paperlab.pokechamp.damage import check_event, in_scope
    from paperlab.pokechamp.players import type_chart
    from paperlab.pokechamp.server import ShowdownServer

    chunks = []
    with pytest.raises(RuntimeError, match="boom"), ShowdownServer() as server:
        pgid = server.proc.pid
        assert server.is_ready()
        recs = play_matchup(server.server_configuration(), "max_damage", "random", 2, concurrency=2, chunk=2,
                            chunk_timeout_s=240, on_chunk=chunks.append)
        raise RuntimeError("boom")
    assert _gone(pgid) and not server.is_ready()
    assert len(recs) == 2 and all(r["finished"] and r["turns"] > 0 and r["log"] for r in recs)
    assert all(r["decision_s"] for r in recs) and 0 <= win_rate(recs).value <= 1
    events = chunks[0]["damage_events"]
    assert events and all(e["hp_before"] >= e["hp_after"] for e in events)
    for e in events:
        if in_scope(e)[0]:
            c = check_event(e, type_chart())
            assert c["min"] <= c["max"]


SCRIPT = textwrap.dedent("""
    import signal, time
    signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal (a background job ignores it)
    from paperlab.pokechamp.server import ShowdownServer
    with ShowdownServer() as s:
        print(s.proc.pid, s.port, flush=True)
        while True:
            time.sleep(0.2)
""")


@pytest.mark.slow
@needs_node
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_the_server(sig):
    p = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    pgid = None
    try:
        pgid, port = map(int, p.stdout.readline().split())
        assert not _gone(pgid)
        p.send_signal(sig)
        p.wait(60)
        time.sleep(0.5)
        assert _gone(pgid)
    finally:
        if p.poll() is None:
            p.kill()
        if pgid is not None and not _gone(pgid):   # never leave a server behind, even when the test fails
            os.killpg(pgid, signal.SIGKILL)


@pytest.mark.parametrize("args,needle", [
    (["run", "--matchups", "pokechamp:nobody"], "--matchups"),
    (["run", "--model", "bogus:thing"], "--model"),
    (["battle", "--player", "nobody"], "unknown --player"),
    (["battle", "--opponent", "pokechamp", "--model", "gguf:/no/such/file.gguf"], "--model"),
])
def test_cli_bad_input_is_one_line_exit_2(capsys, args, needle):
    code, _, err = _run(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err


@needs_node
def test_run_tiny_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--quick", "--battles", "2", "--matchups", "pokechamp:max_damage,max_damage:random",
            "--model", "none", "--concurrency", "2", "--out", out]
    code, _, err = _run(capsys, *args)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    claims = {c["id"]: c for c in res["claims"]}
    assert set(claims) == {"minimax_beats_max_damage", "max_damage_beats_random", "damage_calc_matches_sim"}
    s = res["results"]["summary"]
    assert all(v["finished"] == 2 for v in s["matchups"].values())
    assert s["decisions"]["pokechamp"]["n"] > 0 and s["llm_total"]["off"] > 0 and "used" not in s["llm_total"]
    assert sum(s["matchups"]["pokechamp:max_damage"]["pokechamp_reasons"].values()) == \
        s["matchups"]["pokechamp:max_damage"]["decision_s"]["n"]
    report = (out / "report.md").read_text()
    assert "## Win rates" in report and (out / "win_rates.png").exists()
    lines = (out / "battles.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["log"]
    # the same settings resume without playing again; other settings are refused in one line
    t0 = time.monotonic()
    code, _, err = _run(capsys, *args)
    assert code == 0 and time.monotonic() - t0 < 30 and len((out / "battles.jsonl").read_text().splitlines()) == 4
    code, _, err = _run(capsys, *args[:-2], "--depth", "3", "--out", out)
    assert code == 2 and "another configuration" in err
