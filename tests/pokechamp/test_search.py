"""The one-step simulator and the paper-time search: turn order, KOs, switches, hp_diff; candidates (KO-in-4 rule,
ARGMAX matchup switch), early exit, min/argmax backup, the LLM budget and parse fallbacks."""

from __future__ import annotations

import time
from dataclasses import dataclass

from paperlab.core.models import load_lm
from paperlab.pokechamp import prompts
from paperlab.pokechamp.damage import Combatant, MoveSpec
from paperlab.pokechamp.minimax import (
    Advisor,
    Options,
    heuristic_switch,
    opponent_candidates,
    player_candidates,
    pokechamp_search,
)
from paperlab.pokechamp.players import type_chart
from paperlab.pokechamp.simulator import Action, Side, SimMon, SimState, fill_moves, hp_diff, step
from tests_helpers import FaultyServer

CHART = type_chart()
EQ = MoveSpec("earthquake", "ground", "physical", 100)
ICE = MoveSpec("icebeam", "ice", "special", 90)
TACKLE = MoveSpec("tackle", "normal", "physical", 40)
QUICK = MoveSpec("quickattack", "normal", "physical", 40, priority=1)
SD = MoveSpec("swordsdance", "normal", "status", 0)


def mon(species, types, spe=100, hp=1.0, moves=(EQ,), atk=200, df=150, spa=150, spd=150, hp_stat=300):
    c = Combatant(species, 100, tuple(types), {"hp": hp_stat, "atk": atk, "def": df, "spa": spa, "spd": spd,
                                                "spe": spe}, original_types=tuple(types))
    return SimMon(c, hp, tuple(moves))


def state(me, opp, me_bench=(), opp_bench=(), unseen=0):
    return SimState(Side((me, *me_bench), 0), Side((opp, *opp_bench), 0, unseen))


@dataclass
class Scripted:
    """A stand-in LM that answers every request with fixed text after ``delay`` seconds (the real default LM
    needs tens of seconds per call on this shared machine)."""

    text: str
    delay: float = 0.0
    calls: int = 0

    def chat(self, batch, params):
        self.calls += 1
        time.sleep(self.delay)

        class R:
            text = self.text

        return [R()]


def test_step_order_damage_and_faint():
    fast = mon("fast", ("ground",), spe=300, moves=(EQ,), atk=400)
    slow = mon("slow", ("electric",), spe=50, hp=0.2, moves=(TACKLE,))
    s = step(state(fast, slow), Action("move", "earthquake"), Action("move", "tackle"), CHART)
    assert s.opp.active_mon.fainted and s.me.active_mon.hp == 1.0       # the faster KO means no reply
    # priority beats speed: the slow side's +1 move lands first
    slow2 = mon("slow", ("normal",), spe=50, moves=(QUICK,), atk=900)
    weak = mon("weak", ("normal",), spe=300, hp=0.05, moves=(TACKLE,))
    s2 = step(state(weak, slow2), Action("move", "tackle"), Action("move", "quickattack"), CHART)
    assert s2.me.active_mon.fainted and s2.opp.active_mon.hp == 1.0


def test_switch_first_resets_boosts_and_takes_the_hit():
    me = mon("a", ("electric",), moves=(SD, TACKLE))
    bench = mon("b", ("flying",))
    opp = mon("o", ("ground",), moves=(EQ,), spe=1)
    s = step(state(me, opp, (bench,)), Action("move", "swordsdance"), Action("move", "earthquake"), CHART)
    assert s.me.active_mon.mon.boosts["atk"] == 2 and s.me.active_mon.hp < 1.0
    s2 = step(s, Action("switch", "b"), Action("move", "earthquake"), CHART)
    assert s2.me.active_mon.species == "b" and s2.me.active_mon.hp == 1.0      # Flying: immune to Ground
    assert s2.me.mons[0].mon.boosts == {}


def test_hp_diff_counts_unseen():
    s = state(mon("a", ("fire",), hp=0.5), mon("o", ("water",), hp=0.25), unseen=3)
    assert hp_diff(s) == 0.5 - 0.25 - 3


def test_fill_moves_uses_random_battle_pools():
    moves = fill_moves("garchomp", ["earthquake"])
    assert moves[0] == "earthquake" and len(moves) == 4 and len(set(moves)) == 4
    assert fill_moves("notapokemon", ["tackle"]) == ["tackle"]


def test_player_candidates_ko_rule_and_argmax_switch():
    strong = mon("me", ("ground",), atk=500, moves=(EQ, TACKLE))
    target = mon("o", ("electric",), moves=(MoveSpec("thunderbolt", "electric", "special", 90),))
    good = mon("goodswitch", ("ground",), spe=500)       # immune to Electric, hits it super-effectively
    bad = mon("badswitch", ("water",), spe=1)
    s = state(strong, target, (bad, good))
    adv = Advisor(None)
    cands = player_candidates(s, Options(["earthquake", "tackle"], ["badswitch", "goodswitch"]), adv, CHART)
    assert cands[0] == Action("move", "earthquake")                       # KOs within 4 turns
    assert Action("switch", "goodswitch") in cands and Action("switch", "badswitch") not in cands
    assert heuristic_switch(s, CHART) == "goodswitch"
    feeble = mon("me", ("normal",), atk=5, moves=(TACKLE,))
    c2 = player_candidates(state(feeble, target), Options(["tackle"], []), adv, CHART)
    sources = {}
    player_candidates(state(feeble, target), Options(["tackle"], []), adv, CHART, sources)
    assert c2 == [Action("move", "tackle")] and sources["move tackle"] == "max_damage_move"   # not "damage_calc"
    assert adv.tally["player_move"]["off"] == 3


def test_opponent_candidates_damage_move_and_best_switch():
    me = mon("me", ("electric",))
    opp = mon("o", ("water",), moves=(TACKLE, MoveSpec("surf", "water", "special", 90)))
    opp_good = mon("ogood", ("ground",))
    s = state(me, opp, opp_bench=(opp_good,))
    cands = opponent_candidates(s, Advisor(None), CHART)
    assert cands[0] == Action("move", "surf") and Action("switch", "ogood") in cands


def test_search_backs_up_min_over_replies_then_argmax():
    # our earthquake KOs unless the opponent switches to a Flying type; staying in loses to its ice beam
    me = mon("me", ("ground",), spe=100, moves=(EQ,), atk=400)
    me_bench = mon("tank", ("steel",), df=400, spd=400)
    opp = mon("o", ("electric",), spe=50, moves=(ICE,), spa=600)
    flyer = mon("flyer", ("flying",), moves=(ICE,), spa=600)
    s = state(me, opp, (me_bench,), (flyer,))
    res = pokechamp_search(s, Options(["earthquake"], ["tank"]), Advisor(None), CHART)
    assert res.reason in ("minimax", "early_exit")
    if res.reason == "minimax":
        assert set(res.values) == {str(Action("move", "earthquake")), str(Action("switch", "tank"))}
        assert res.action == max((Action("move", "earthquake"), Action("switch", "tank")),
                                 key=lambda a: res.values[str(a)])
        assert res.leaves == len(res.values) * len(res.opponent)        # one simulated turn: K = 2


def test_early_exit_takes_damage_calc_move_unless_llm_says_minimax():
    me = mon("me", ("ground",), spe=300, atk=600, moves=(EQ, TACKLE))
    opp = mon("o", ("electric",), spe=50, moves=(TACKLE,), atk=10)
    s = state(me, opp, (mon("b", ("water",)),))
    opts = Options(["earthquake", "tackle"], ["b"])
    assert pokechamp_search(s, opts, Advisor(None), CHART).reason == "early_exit"
    lm = Scripted('{"choice": "minimax"}')
    res = pokechamp_search(s, opts, Advisor(lm, turn_budget_s=60), CHART)
    assert res.reason == "minimax" and lm.calls > 1


def test_advisor_budget_late_and_skip():
    slow = Scripted('{"score": 70}', delay=0.3)
    adv = Advisor(slow, turn_budget_s=0.1)
    adv.start_turn()
    assert adv.ask("leaf", [], prompts.parse_score) is None          # arrived after the deadline: dropped
    adv.start_turn()
    assert adv.ask("leaf", [], prompts.parse_score) is None and slow.calls == 1   # not started: too slow
    assert adv.tally["leaf"] == {"late": 1, "skipped": 1}
    fast = Advisor(Scripted('{"score": 70}'), turn_budget_s=5)
    fast.start_turn()
    assert fast.ask("leaf", [], prompts.parse_score) == 70.0
    bad = Advisor(Scripted("I think fifty"), turn_budget_s=5)
    bad.start_turn()
    assert bad.ask("leaf", [], prompts.parse_score) is None and bad.tally["leaf"]["unparseable"] == 1


def test_parsers():
    assert prompts.parse_choice('ok {"move": "Ice Beam"} done', ("move",), ["icebeam", "tackle"]) == ("move", "icebeam")
    assert prompts.parse_choice('{"move": "surf"}', ("move",), ["icebeam"]) is None
    assert prompts.parse_choice('{"choice": "minimax"}', ("choice",), ["damage calculator", "minimax"])[1] == "minimax"
    assert prompts.parse_score('{"score": 42}') == 42.0
    assert prompts.parse_score('{"score": 420}') is None and prompts.parse_score("{score: 4") is None


def test_deeper_search_expands_two_turns():
    me = mon("me", ("ground",), spe=100, moves=(EQ, TACKLE), atk=150)
    opp = mon("o", ("water",), spe=50, moves=(ICE, TACKLE), spa=200)
    s = state(me, opp, (mon("b", ("grass",)),), (mon("ob", ("fire",)),))
    opts = Options(["earthquake", "tackle"], ["b"])
    k2 = pokechamp_search(s, opts, Advisor(None), CHART, depth=2)
    k3 = pokechamp_search(s, opts, Advisor(None), CHART, depth=3)
    assert k2.reason == k3.reason == "minimax"
    assert k3.leaves > k2.leaves and k3.action is not None


def test_llm_calls_go_through_a_core_backend_endpoint():
    """A real OpenAI-compatible endpoint (it echoes the prompt back): the answers do not parse, so each call is
    counted unparseable and the search still decides by its fallbacks."""
    with FaultyServer() as srv:
        adv = Advisor(load_lm(f"openai:{srv.url}#echo", cache=False), turn_budget_s=30)
        me = mon("me", ("ground",), moves=(EQ, TACKLE), atk=150)
        opp = mon("o", ("water",), moves=(ICE,), spa=200)
        s = state(me, opp, (mon("b", ("grass",)),))
        res = pokechamp_search(s, Options(["earthquake", "tackle"], ["b"]), adv, CHART)
        assert res.action is not None and srv.requests >= 3
        outcomes = {k: dict(v) for k, v in adv.tally.items()}
        assert all(set(v) == {"unparseable"} for v in outcomes.values()), outcomes
