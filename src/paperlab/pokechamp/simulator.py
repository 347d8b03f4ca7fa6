"""The local one-step state model the lookahead runs on (PokéChamp §3, "world model"; ``local_simulation.py``).

A :class:`SimState` is what one player knows: its own team (real stats), the opponent's revealed Pokémon
(Random Battle stat estimates, seen moves filled up to four from the species' Random Battle move pool, see
:func:`fill_moves`), HP fractions, boosts, status, and how many opponent Pokémon are still unseen.
:func:`step` plays one simulated turn from a joint action, as the paper's simulator does:

1. switches happen first (a switched-in Pokémon has its boosts reset);
2. moves go in order of priority, then boosted Speed (paralysis halves it); a speed tie goes to the player;
3. a damaging move removes :func:`~paperlab.pokechamp.damage.expected_damage` / max HP of the target's HP
   fraction (no roll, no crit, accuracy and hits in expectation); a Pokémon that faints before it acts
   does not act;
4. status moves apply their self-boosts and healing; nothing else (hazards, weather, secondary effects,
   end-of-turn damage) is modelled -- like the paper's simulator, it is a one-step approximation.

:func:`hp_diff` is the paper's fallback leaf value: Σ own HP fraction - Σ opponent HP fraction - unseen
opponent Pokémon.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib.resources import files

from paperlab.pokechamp.damage import Combatant, MoveSpec, boost_multiplier, expected_damage

TEAM_SIZE = 6


@dataclass(frozen=True)
class Action:
    """``kind`` is "move" (``name`` a move id) or "switch" (``name`` a species); ``tera`` for Terastallizing."""

    kind: str
    name: str
    tera: bool = False

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (" +tera" if self.tera else "")


@dataclass(frozen=True)
class SimMon:
    mon: Combatant
    hp: float                                  # fraction of max HP in [0, 1]
    moves: tuple[MoveSpec, ...] = ()

    @property
    def fainted(self) -> bool:
        return self.hp <= 0

    @property
    def species(self) -> str:
        return self.mon.species


@dataclass(frozen=True)
class Side:
    mons: tuple[SimMon, ...]
    active: int | None                         # index into mons (None: nothing on the field)
    unseen: int = 0                            # team members never revealed (the opponent's)

    @property
    def active_mon(self) -> SimMon | None:
        return None if self.active is None else self.mons[self.active]

    def index(self, species: str) -> int | None:
        for i, m in enumerate(self.mons):
            if m.species == species:
                return i
        return None

    def bench(self) -> list[SimMon]:
        return [m for i, m in enumerate(self.mons) if i != self.active and not m.fainted]


@dataclass(frozen=True)
class SimState:
    me: Side
    opp: Side
    turn: int = 0
    log: tuple[str, ...] = field(default=())

    def side(self, who: str) -> Side:
        return self.me if who == "me" else self.opp

    def flipped(self) -> SimState:
        """The same state from the opponent's point of view (for the opponent's candidates and prompts)."""
        return replace(self, me=self.opp, opp=self.me)


def hp_diff(state: SimState) -> float:
    """Paper's fallback leaf value: Σ own HP fraction - Σ opponent HP fraction - unseen opponent Pokémon."""
    own = sum(m.hp for m in state.me.mons)
    opp = sum(m.hp for m in state.opp.mons)
    return own - opp - state.opp.unseen


@lru_cache(maxsize=1)
def randbats_sets() -> dict:
    """Species -> Random Battle move pool / abilities (most frequent across roles first), shipped from
    Showdown 0.11.11's ``data/random-battles/gen9/sets.json`` (MIT)."""
    path = files("paperlab") / "data" / "pokechamp" / "gen9_randbats_sets.json"
    return json.loads(path.read_text())["species"]


def fill_moves(species: str, seen: list[str], k: int = 4) -> list[str]:
    """Seen moves filled up to ``k`` with the species' most common Random Battle moves (the paper fills from
    Gen 9 OU usage statistics; random battles draw from these pools instead)."""
    out = list(dict.fromkeys(seen))
    pool = randbats_sets().get(species, {}).get("moves", [])
    for m in pool:
        if len(out) >= k:
            break
        if m not in out:
            out.append(m)
    return out


def speed(m: SimMon) -> float:
    s = m.mon.stats["spe"] * boost_multiplier(m.mon.boosts.get("spe", 0))
    return s * (0.5 if m.mon.status == "par" else 1.0)


def _find_move(m: SimMon, name: str) -> MoveSpec | None:
    for mv in m.moves:
        if mv.id == name:
            return mv
    return None


def _apply_switch(side: Side, action: Action) -> Side:
    i = side.index(action.name)
    if i is None or side.mons[i].fainted:
        return side
    if side.active is not None:   # boosts reset on switching out
        old = side.mons[side.active]
        side = replace(side, mons=_put(side.mons, side.active, replace(old, mon=replace(old.mon, boosts={}))))
    return replace(side, active=i)


def _put(mons: tuple[SimMon, ...], i: int, m: SimMon) -> tuple[SimMon, ...]:
    return mons[:i] + (m,) + mons[i + 1:]


def _tera(m: SimMon) -> SimMon:
    c = m.mon
    return replace(m, mon=replace(c, types=(c.types[0],) if c.types else (), terastallized=True))


def step(state: SimState, mine: Action, theirs: Action, type_chart: dict, tera_types: dict | None = None) -> SimState:
    """One simulated turn: switches, then moves by priority and speed, expected damage, self-boosts, heals."""
    me, opp = state.me, state.opp
    log = list(state.log)
    if mine.kind == "switch":
        me = _apply_switch(me, mine)
        log.append(f"me: switch to {mine.name}")
    if theirs.kind == "switch":
        opp = _apply_switch(opp, theirs)
        log.append(f"opponent: switch to {theirs.name}")
    if mine.tera and tera_types and me.active is not None and tera_types.get(me.active_mon.species):
        a = me.active_mon
        me = replace(me, mons=_put(me.mons, me.active, replace(
            a, mon=replace(a.mon, types=(tera_types[a.species],), terastallized=True))))
    sides = {"me": me, "opp": opp}
    acts = [(w, a) for w, a in (("me", mine), ("opp", theirs)) if a.kind == "move"]

    def order_key(item):
        who, act = item
        user = sides[who].active_mon
        mv = _find_move(user, act.name) if user is not None else None
        return (-(mv.priority if mv else 0), -(speed(user) if user else 0), 0 if who == "me" else 1)

    for who, act in sorted(acts, key=order_key):
        other = "opp" if who == "me" else "me"
        user_side, target_side = sides[who], sides[other]
        user, target = user_side.active_mon, target_side.active_mon
        if user is None or user.fainted:
            continue
        mv = _find_move(user, act.name)
        if mv is None:
            continue
        if mv.category == "status":
            boosts = dict(user.mon.boosts)
            for k, v in SELF_EFFECTS.get(mv.id, {}).get("boosts", {}).items():
                boosts[k] = max(-6, min(6, boosts.get(k, 0) + v))
            heal = SELF_EFFECTS.get(mv.id, {}).get("heal", 0.0)
            new = replace(user, mon=replace(user.mon, boosts=boosts), hp=min(1.0, user.hp + heal))
            sides[who] = replace(user_side, mons=_put(user_side.mons, user_side.active, new))
            log.append(f"{who}: {mv.id}")
            continue
        if target is None or target.fainted:
            continue
        dmg = expected_damage(user.mon, target.mon, mv, type_chart) / max(1, target.mon.stats["hp"])
        new_t = replace(target, hp=max(0.0, target.hp - dmg))
        sides[other] = replace(target_side, mons=_put(target_side.mons, target_side.active, new_t))
        log.append(f"{who}: {mv.id} -> {target.species} loses {min(dmg, target.hp):.0%}")
    return replace(state, me=sides["me"], opp=sides["opp"], turn=state.turn + 1, log=tuple(log[-16:]))


#: Self-targeting status moves the simulator applies (boost stages, healing as a fraction of max HP).
SELF_EFFECTS: dict[str, dict] = {
    "swordsdance": {"boosts": {"atk": 2}}, "nastyplot": {"boosts": {"spa": 2}},
    "dragondance": {"boosts": {"atk": 1, "spe": 1}}, "calmmind": {"boosts": {"spa": 1, "spd": 1}},
    "bulkup": {"boosts": {"atk": 1, "def": 1}}, "quiverdance": {"boosts": {"spa": 1, "spd": 1, "spe": 1}},
    "shellsmash": {"boosts": {"atk": 2, "spa": 2, "spe": 2, "def": -1, "spd": -1}},
    "agility": {"boosts": {"spe": 2}}, "irondefense": {"boosts": {"def": 2}}, "amnesia": {"boosts": {"spd": 2}},
    "curse": {"boosts": {"atk": 1, "def": 1, "spe": -1}}, "coil": {"boosts": {"atk": 1, "def": 1}},
    "shiftgear": {"boosts": {"atk": 1, "spe": 2}}, "tidyup": {"boosts": {"atk": 1, "spe": 1}},
    "victorydance": {"boosts": {"atk": 1, "def": 1, "spe": 1}}, "bellydrum": {"boosts": {"atk": 6}},
    "recover": {"heal": 0.5}, "roost": {"heal": 0.5}, "softboiled": {"heal": 0.5}, "slackoff": {"heal": 0.5},
    "milkdrink": {"heal": 0.5}, "moonlight": {"heal": 0.5}, "morningsun": {"heal": 0.5},
    "synthesis": {"heal": 0.5}, "shoreup": {"heal": 0.5}, "strengthsap": {"heal": 0.3},
    "wish": {"heal": 0.5}, "rest": {"heal": 1.0},
}


# ---------------------------------------------------------------------------------------------- from poke-env


def state_from_battle(battle) -> SimState:
    """The player's view of a poke-env ``Battle`` as a :class:`SimState`."""
    from paperlab.pokechamp.damage import combatant, move_spec

    def side(team: dict, own: bool, active) -> Side:
        mons, act = [], None
        for mon in team.values():
            if own:
                moves = [move_spec(m) for m in mon.moves.values()]
            else:
                names = fill_moves(mon.species, list(mon.moves))
                moves = [_spec_by_name(n) for n in names]
                moves = [m for m in moves if m is not None]
            hp = mon.current_hp_fraction if not mon.fainted else 0.0
            if mon is active:
                act = len(mons)
            mons.append(SimMon(combatant(mon, own), float(hp), tuple(moves)))
        unseen = 0 if own else max(0, TEAM_SIZE - len(team))
        return Side(tuple(mons), act, unseen)

    me = side(battle.team, True, battle.active_pokemon)
    opp = side(battle.opponent_team, False, battle.opponent_active_pokemon)
    return SimState(me=me, opp=opp, turn=battle.turn)


@lru_cache(maxsize=4096)
def _spec_by_name(name: str) -> MoveSpec | None:
    from poke_env.battle.move import Move

    from paperlab.pokechamp.damage import move_spec

    try:
        return move_spec(Move(name, gen=9))
    except (KeyError, ValueError, AssertionError):
        return None
