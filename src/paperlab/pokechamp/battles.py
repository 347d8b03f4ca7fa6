"""The battle runner: N random battles per matchup on the local server, concurrent, logged, with Wilson CIs.

:func:`play_matchup` plays battles in chunks of ``chunk`` (each chunk a fresh pair of players, ``concurrency``
battles at a time) and hands every finished battle to ``on_battle`` as one JSON-able record (winner, turns,
the decision times of both sides, the PokéChamp player's search statistics, the battle's protocol log) --
the experiment appends these to ``battles.jsonl``, so a killed run resumes at the next chunk. A chunk that
runs past ``chunk_timeout_s`` is abandoned (its unfinished battles are recorded as such and left out of the
win rates) -- a stuck or malformed battle never hangs the runner. HTML replays go to ``replay_dir``.

:func:`win_rate` is the core Wilson interval over finished battles (ties count as not won).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from paperlab.core.stats import Estimate, wilson
from paperlab.pokechamp.minimax import Advisor
from paperlab.pokechamp.players import make_player


def _battle_record(tag: str, battle, player, opponent, p_name: str, o_name: str) -> dict:
    won = battle.won if battle.finished else None
    rec = {"battle": tag, "player": p_name, "opponent": o_name, "finished": bool(battle.finished),
           "won": won, "tie": bool(battle.finished and battle.won is None and battle.lost is None),
           "turns": int(battle.turn),
           "decision_s": [round(x, 5) for x in player.decision_times.get(tag, [])],
           "opponent_decision_s": [round(x, 5) for x in opponent.decision_times.get(tag, [])],
           "log": ["|".join(m) for m in getattr(battle, "_replay_data", [])]}
    return rec


async def _play_chunk(player, opponent, n: int, timeout: float) -> bool:
    try:
        await asyncio.wait_for(player.battle_against(opponent, n_battles=n), timeout)
        return True
    except TimeoutError:
        return False
    finally:
        for p in (player, opponent):
            try:
                await asyncio.wait_for(p.ps_client.stop_listening(), 10)
            except Exception:   # noqa: BLE001 - a closed socket is what we want anyway
                pass


def _logged_in_pair(server_configuration, p_name, o_name, concurrency, advisor, depth, replays,
                    login_timeout: float = 90.0, tries: int = 3):
    """Two players logged in to the server (a busy server can drop a handshake: retry with fresh players)."""
    for _ in range(tries):
        pair = [make_player(n, server_configuration, concurrency, advisor, depth, replays) for n in (p_name, o_name)]
        deadline = time.monotonic() + login_timeout
        while time.monotonic() < deadline and not all(p.ps_client.logged_in.is_set() for p in pair):
            time.sleep(0.1)
        if all(p.ps_client.logged_in.is_set() for p in pair):
            return pair
        for p in pair:
            _stop(p)
    raise RuntimeError(f"players could not log in to the Showdown server after {tries} tries")


def _stop(p) -> None:
    from poke_env.concurrency import POKE_LOOP

    try:
        asyncio.run_coroutine_threadsafe(p.ps_client._stop_listening(), POKE_LOOP).result(10)
    except Exception:   # noqa: BLE001 - never connected, or already closed
        pass


def play_matchup(server_configuration, p_name: str, o_name: str, n: int, *, concurrency: int = 2,
                 chunk: int = 4, chunk_timeout_s: float = 600.0, advisor: Advisor | None = None, depth: int = 2,
                 replay_dir: Path | None = None, on_battle: Callable[[dict], None] | None = None,
                 on_chunk: Callable[[dict], None] | None = None) -> list[dict]:
    """Play ``n`` battles of ``p_name`` against ``o_name``; returns the battle records (also fed to
    ``on_battle``). ``on_chunk`` gets per-chunk extras: damage events, malformed-message and error counts, the
    LLM tally."""
    records: list[dict] = []
    done = 0
    while done < n:
        k = min(chunk, n - done)
        replays = str(replay_dir) if replay_dir is not None else False
        player, opponent = _logged_in_pair(server_configuration, p_name, o_name, concurrency, advisor, depth,
                                           replays)
        player.peer, opponent.peer = opponent, player
        complete = asyncio.run(_play_chunk(player, opponent, k, chunk_timeout_s))
        tags = sorted(player.battles)
        for tag in tags:
            rec = _battle_record(tag, player.battles[tag], player, opponent, p_name, o_name)
            pc = player if p_name == "pokechamp" else opponent if o_name == "pokechamp" else None
            if pc is not None:
                rec["pokechamp_reasons"] = dict(pc.reasons.get(tag, {}))
                rec["pokechamp_sources"] = dict(pc.sources.get(tag, {}))
            records.append(rec)
            if on_battle:
                on_battle(rec)
        missing = k - len(tags)
        for _ in range(max(0, missing)):   # never started (the chunk timed out first)
            rec = {"battle": None, "player": p_name, "opponent": o_name, "finished": False, "won": None,
                   "tie": False, "turns": 0, "decision_s": [], "opponent_decision_s": [], "log": []}
            records.append(rec)
            if on_battle:
                on_battle(rec)
        if on_chunk:
            on_chunk({"player": p_name, "opponent": o_name, "complete": complete,
                      "damage_events": player.damage_events + opponent.damage_events,
                      "malformed_messages": player.malformed_messages + opponent.malformed_messages,
                      "decision_errors": player.decision_errors + opponent.decision_errors})
        done += k
    return records


def win_rate(records: list[dict]) -> Estimate:
    fin = [r for r in records if r["finished"]]
    return wilson(sum(bool(r["won"]) for r in fin), len(fin))


def decision_stats(times: list[float]) -> dict:
    """Mean, median, p95 and max seconds per decision."""
    if not times:
        return {"n": 0, "mean": math.nan, "median": math.nan, "p95": math.nan, "max": math.nan}
    a = np.asarray(times, float)
    return {"n": int(a.size), "mean": float(a.mean()), "median": float(np.median(a)),
            "p95": float(np.quantile(a, 0.95)), "max": float(a.max())}
