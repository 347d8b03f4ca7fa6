"""The LLM prompts of the search (PokéChamp §3: action sampling, opponent modelling, value estimation), in
our own words, and the parsers of their JSON answers.

Each prompt asks for one small JSON object; :func:`parse_choice` / :func:`parse_score` return ``None`` when the
answer does not hold a valid one, and the caller then takes its deterministic fallback.
"""

from __future__ import annotations

import json
import re

from paperlab.pokechamp.simulator import SimMon, SimState

SYSTEM = ("You are an expert Pokémon Showdown player in a Gen 9 random battle. Answer with one JSON object "
          "and nothing else.")


def _mon_line(m: SimMon, with_moves: bool) -> str:
    c = m.mon
    boosts = ", ".join(f"{k}{v:+d}" for k, v in c.boosts.items() if v)
    parts = [f"{c.species} (L{c.level}, {'/'.join(c.types)}) HP {m.hp:.0%}"]
    if c.status:
        parts.append(f"status {c.status}")
    if boosts:
        parts.append(f"boosts {boosts}")
    if with_moves and m.moves:
        parts.append("moves: " + ", ".join(f"{mv.id} ({mv.type}, {mv.base_power or '-'})" for mv in m.moves))
    return "; ".join(parts)


def describe(state: SimState, with_log: bool = True) -> str:
    """The battle as seen by ``state.me``: both active Pokémon, the benches, recent events."""
    me, opp = state.me, state.opp
    lines = [f"Turn {state.turn}."]
    if me.active_mon is not None:
        lines.append("Your active: " + _mon_line(me.active_mon, True))
    if opp.active_mon is not None:
        lines.append("Opponent active: " + _mon_line(opp.active_mon, True))
    bench = [f"{m.species} {m.hp:.0%}" for m in me.bench()]
    lines.append("Your bench: " + (", ".join(bench) or "none"))
    seen = [f"{m.species} {m.hp:.0%}" for m in opp.bench()]
    lines.append(f"Opponent bench seen: {', '.join(seen) or 'none'}; unseen: {opp.unseen}")
    fainted = sum(m.fainted for m in me.mons), sum(m.fainted for m in opp.mons)
    lines.append(f"Fainted: you {fainted[0]}, opponent {fainted[1]}.")
    if with_log and state.log:
        lines.append("Recent: " + "; ".join(state.log[-6:]))
    return "\n".join(lines)


def _chat(user: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def move_prompt(state: SimState, moves: list[str]) -> list[dict]:
    return _chat(describe(state) + f"\nChoose the best move from: {', '.join(moves)}.\n"
                 'Answer as {"move": "<move>"}.')


def switch_prompt(state: SimState, switches: list[str]) -> list[dict]:
    return _chat(describe(state) + f"\nChoose the best Pokémon to switch in from: {', '.join(switches)}.\n"
                 'Answer as {"switch": "<pokemon>"}.')


def opponent_prompt(opp_view: SimState, moves: list[str], switches: list[str]) -> list[dict]:
    """The opponent's turn from its own point of view (the state flipped)."""
    opts = f"moves: {', '.join(moves) or 'none'}; switches: {', '.join(switches) or 'none'}"
    return _chat(describe(opp_view) + f"\nYour options are {opts}.\n"
                 'Pick one. Answer as {"move": "<move>"} or {"switch": "<pokemon>"}.')


def early_exit_prompt(state: SimState, move: str, my_turns: float, their_turns: float) -> list[dict]:
    return _chat(describe(state, with_log=False)
                 + f"\nThe damage calculator says {move} knocks out the opponent in {my_turns:g} turn(s); the "
                 f"opponent needs {their_turns:g}. Use the damage calculator's move, or search deeper?\n"
                 'Answer as {"choice": "damage calculator"} or {"choice": "minimax"}.')


def leaf_prompt(state: SimState) -> list[dict]:
    return _chat(describe(state)
                 + "\nRate how good this position is for you from 1 (lost) to 100 (won); start at 50 and "
                 "adjust for Pokémon remaining, HP, stat boosts, type matchups, speed, and needless switching.\n"
                 'Answer as {"score": <number>}.')


_OBJ = re.compile(r"\{[^{}]*\}")


def _objects(text: str) -> list[dict]:
    out = []
    for m in _OBJ.finditer(text or ""):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(s).lower())


def parse_choice(text: str, keys: tuple[str, ...], allowed: list[str]) -> tuple[str, str] | None:
    """(key, option) from the first JSON object whose ``key`` names one of ``allowed`` (compared as ids)."""
    lookup = {_norm(a): a for a in allowed}
    for obj in _objects(text):
        for k in keys:
            if k in obj and _norm(obj[k]) in lookup:
                return k, lookup[_norm(obj[k])]
    return None


def parse_score(text: str) -> float | None:
    """The ``score`` of the first JSON object holding a number in [1, 100]."""
    for obj in _objects(text):
        v = obj.get("score")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 1 <= v <= 100:
            return float(v)
    return None
