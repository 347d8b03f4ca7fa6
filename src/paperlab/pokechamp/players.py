"""The players: poke-env's baselines, a true max-damage baseline, and the PokéChamp minimax player.

=================  ==========================================================================================
``random``         poke-env ``RandomPlayer``: a uniformly random legal action
``max_base_power`` poke-env ``MaxBasePowerPlayer``: the move with the highest base power (not max damage)
``max_damage``     ours: the move with the most expected damage by :func:`~paperlab.pokechamp.damage.expected_damage`
                   (stats, boosts, STAB, type effectiveness, immunities, accuracy); a random switch when forced
``heuristic``      poke-env ``SimpleHeuristicsPlayer`` (hazards, setup, switching on bad matchups)
``pokechamp``      the paper-time minimax search (:func:`~paperlab.pokechamp.minimax.pokechamp_search`)
=================  ==========================================================================================

Every player is wrapped by :class:`Robust`: a server message that fails to parse is logged and counted and
the battle goes on (it never crashes the runner); an exception inside a decision falls back to a random legal
action; each decision's wall time is recorded per battle; and each hit our own Pokémon takes is logged as a
damage event (attacker, defender, move, exact HP before and after) for the damage-calculator check
(``damage_calc_matches_sim``). The attacker's hidden stats, item and ability are read from the opponent
player's own view (the runner pairs the two players as ``peer``), so the check compares against exact inputs.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict

from poke_env.player import MaxBasePowerPlayer, Player, RandomPlayer, SimpleHeuristicsPlayer

from paperlab.pokechamp.damage import combatant, expected_damage, move_spec
from paperlab.pokechamp.minimax import Advisor, Options, pokechamp_search
from paperlab.pokechamp.simulator import Action, state_from_battle

PLAYER_NAMES = ("random", "max_base_power", "max_damage", "heuristic", "pokechamp")

_log = logging.getLogger("paperlab.pokechamp")


def type_chart() -> dict:
    from poke_env.data import GenData

    return GenData.from_gen(9).type_chart


def _team_key(ident: str) -> str:
    """'p1a: Name' -> 'p1: Name' (poke-env's team keys)."""
    role, _, name = ident.partition(": ")
    return f"{role[:2]}: {name}"


class Robust:
    """Mixin over a poke-env Player: tolerant message handling, decision timing, damage-event logging."""

    def __init__(self, *args, **kwargs):
        self.peer: Player | None = None
        self.decision_times: dict[str, list[float]] = defaultdict(list)
        self.decision_errors = 0
        self.malformed_messages = 0
        self.damage_events: list[dict] = []
        self._pending: dict[str, dict] = {}
        # from the battle log itself (requests can run ahead of the log): last HP line and Tera type per Pokémon
        self._hp: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
        self._tera: dict[str, dict[str, str]] = defaultdict(dict)
        super().__init__(*args, **kwargs)

    async def _handle_battle_message(self, split_messages):
        """Line by line (so a hit is logged with the state just before it); a line that fails is skipped."""
        if not split_messages or not split_messages[0] or not split_messages[0][0].startswith(">battle"):
            try:
                return await super()._handle_battle_message(split_messages)
            except Exception as e:   # malformed: log, count, go on
                self.malformed_messages += 1
                _log.warning("malformed server message skipped (%s): %.200s", type(e).__name__, split_messages)
                return None
        header = split_messages[0]
        for line in split_messages[1:]:
            try:
                self._observe(header[0][1:], line)
                await super()._handle_battle_message([header, line])
            except Exception as e:
                self.malformed_messages += 1
                _log.warning("malformed battle line skipped (%s: %s): %.200s", type(e).__name__, e, line)

    def choose_move(self, battle):
        t0 = time.perf_counter()
        try:
            order = self.decide(battle)
        except Exception as e:   # a decision must never hang a battle
            self.decision_errors += 1
            _log.warning("decision failed (%s: %s); random action", type(e).__name__, e)
            order = Player.choose_random_move(battle)
        self.decision_times[battle.battle_tag].append(time.perf_counter() - t0)
        return order

    def decide(self, battle):
        return super().choose_move(battle)

    # ---- damage events: a hit on one of our own Pokémon (exact HP), non-indirect ----------------------------
    def _observe(self, tag: str, line: list[str]) -> None:
        if len(line) < 2:
            return
        kind = line[1]
        battle = self._battles.get(tag)
        if battle is None:
            return
        if kind == "move" and len(line) >= 4:
            self._pending[tag] = {"attacker": line[2], "move": line[3], "target": line[4] if len(line) > 4 else "",
                                  "crit": False, "hits": 0, "event": None}
        elif kind in ("-crit",) and tag in self._pending:
            self._pending[tag]["crit"] = True
        elif kind == "-hitcount" and tag in self._pending:
            ev = self._pending[tag].get("event")
            if ev is not None:
                ev["multi_hit"] = True
        elif kind in ("turn", "switch", "drag", "upkeep", "faint", "cant"):
            self._pending.pop(tag, None)
        elif kind == "-damage" and len(line) == 4 and tag in self._pending:
            p = self._pending[tag]
            p["hits"] += 1
            if p["hits"] > 1 and p["event"] is not None:
                p["event"]["multi_hit"] = True
            elif battle.player_role is not None and line[2].startswith(battle.player_role):
                self._log_hit(battle, tag, p, line)
        elif kind == "-terastallize" and len(line) >= 4:
            self._tera[tag][_team_key(line[2])] = line[3].lower()
        if kind in ("switch", "drag", "replace") and len(line) >= 5:
            self._track_hp(tag, line[2], line[4])
        elif kind in ("-damage", "-heal", "-sethp") and len(line) >= 4:
            self._track_hp(tag, line[2], line[3])

    def _track_hp(self, tag: str, ident: str, text: str) -> None:
        hp = text.split()[0] if text else ""
        if hp == "0":
            self._hp[tag][_team_key(ident)] = (0, self._hp[tag].get(_team_key(ident), (0, 0))[1])
        elif "/" in hp:
            cur, _, mx = hp.partition("/")
            if cur.isdigit() and mx.isdigit():
                self._hp[tag][_team_key(ident)] = (int(cur), int(mx))

    def _with_tera(self, tag: str, ident: str, c):
        """Types as the log has them: the Tera type once the log showed Terastallization, else the originals."""
        t = self._tera[tag].get(_team_key(ident))
        types = (t,) if t else tuple(c.original_types or c.types)
        return c.__class__(**{**asdict(c), "types": types, "terastallized": bool(t)})

    def _log_hit(self, battle, tag: str, p: dict, line: list[str]) -> None:
        from poke_env.battle.move import Move
        from poke_env.data.normalize import to_id_str

        defender = battle.team.get(_team_key(line[2]))
        attacker_view = battle.opponent_team.get(_team_key(p["attacker"]))
        if defender is None or attacker_view is None or not defender.max_hp:
            return
        hp_text = line[3].split()[0]
        after = 0 if hp_text == "0" else int(hp_text.split("/")[0])
        before = self._hp[tag].get(_team_key(line[2]), (defender.current_hp, 0))[0]
        peer_battle = getattr(self.peer, "_battles", {}).get(tag) if self.peer is not None else None
        attacker_true = peer_battle.team.get(_team_key(p["attacker"])) if peer_battle is not None else None
        att = combatant(attacker_true if attacker_true is not None else attacker_view,
                        own=attacker_true is not None)
        public = combatant(attacker_view, own=False)   # what everyone sees: boosts, status
        att = self._with_tera(tag, p["attacker"], att.__class__(**{**asdict(att), "boosts": public.boosts,
                                                                   "status": public.status}))
        dfd = self._with_tera(tag, line[2], combatant(defender, own=True))
        # Illusion (Zoroark) hides the real attacker; Transform (Ditto) changes stats: flag both
        disguise = peer_battle is not None and any(
            m.species.startswith("zoroark") or m.species == "ditto" for m in peer_battle.team.values())
        disguise = disguise or defender.species == "ditto"
        try:
            mv = move_spec(Move(to_id_str(p["move"]), gen=9))
        except Exception:
            return
        side = {str(c).split(".")[-1].lower() for c in battle.side_conditions}
        ev = {"battle": tag, "turn": battle.turn, "move": asdict(mv), "attacker": asdict(att),
              "defender": asdict(dfd), "hp_before": int(before), "hp_after": after, "disguise": disguise,
              "max_hp": int(defender.max_hp), "crit": p["crit"], "multi_hit": False,
              "weather": [str(w).split(".")[-1].lower() for w in battle.weather],
              "fields": [str(f).split(".")[-1].lower() for f in battle.fields],
              "defender_side": sorted(side), "attacker_exact": attacker_true is not None}
        p["event"] = ev
        self.damage_events.append(ev)


# ---------------------------------------------------------------------------------------------- players


class RandomBot(Robust, RandomPlayer):
    pass


class MaxBasePowerBot(Robust, MaxBasePowerPlayer):
    pass


class HeuristicBot(Robust, SimpleHeuristicsPlayer):
    pass


class MaxDamageBot(Robust, Player):
    """The move with the most expected damage (our calculator) on the opponent's active Pokémon."""

    def decide(self, battle):
        me, opp = battle.active_pokemon, battle.opponent_active_pokemon
        if battle.available_moves and me is not None and opp is not None:
            att, dfd, chart = combatant(me, own=True), combatant(opp, own=False), type_chart()
            best = max(battle.available_moves, key=lambda m: expected_damage(att, dfd, move_spec(m), chart))
            return self.create_order(best)
        return self.choose_random_move(battle)


class PokeChampBot(Robust, Player):
    """The paper-time PokéChamp search; LLM parts through an :class:`~paperlab.pokechamp.minimax.Advisor`."""

    def __init__(self, *args, advisor: Advisor | None = None, depth: int = 2, **kwargs):
        self.advisor = advisor or Advisor(None)
        self.depth = depth
        self.reasons: dict[str, Counter] = defaultdict(Counter)    # per battle: how each decision was made
        self.sources: dict[str, Counter] = defaultdict(Counter)    # per battle: which candidate was played
        super().__init__(*args, **kwargs)

    def decide(self, battle):
        state = state_from_battle(battle)
        opts = Options([m.id for m in battle.available_moves], [m.species for m in battle.available_switches])
        res = pokechamp_search(state, opts, self.advisor, type_chart(), depth=self.depth)
        self.reasons[battle.battle_tag][res.reason] += 1
        if res.action is not None:
            self.sources[battle.battle_tag][res.sources.get(str(res.action), "?")] += 1
        order = self._order(battle, res.action)
        if order is None:   # the whole search failed: the max-base-power move
            self.reasons[battle.battle_tag]["fallback_max_base_power"] += 1
            return MaxBasePowerPlayer.choose_singles_move(battle)
        return order

    def _order(self, battle, action: Action | None):
        if action is None:
            return None
        if action.kind == "move":
            for m in battle.available_moves:
                if m.id == action.name:
                    return self.create_order(m)
        else:
            for m in battle.available_switches:
                if m.species == action.name:
                    return self.create_order(m)
        return None


def player_class(name: str) -> type:
    return {"random": RandomBot, "max_base_power": MaxBasePowerBot, "max_damage": MaxDamageBot,
            "heuristic": HeuristicBot, "pokechamp": PokeChampBot}[name]


_counter = [0]


def make_player(name: str, server_configuration, concurrency: int = 1, advisor: Advisor | None = None,
                depth: int = 2, replays: str | bool = False):
    """A logged-in-on-start poke-env player of kind ``name`` on the given server (unique guest name)."""
    from poke_env import AccountConfiguration

    _counter[0] += 1
    short = {"random": "rnd", "max_base_power": "mbp", "max_damage": "mxd", "heuristic": "heu",
             "pokechamp": "chmp"}[name]
    username = f"{short}{_counter[0]}x{random.randrange(10 ** 6)}"[:18]
    kw = dict(account_configuration=AccountConfiguration(username, None), battle_format="gen9randombattle",
              server_configuration=server_configuration, max_concurrent_battles=concurrency,
              save_replays=replays, log_level=logging.ERROR, open_timeout=60.0)
    if name == "pokechamp":
        return PokeChampBot(advisor=advisor, depth=depth, **kw)
    return player_class(name)(**kw)
