"""PokéChamp's minimax search as of the paper (§3; ``tree_search`` in ``llm_player.py`` at commit b614d78).

The search, written out in :func:`pokechamp_search`:

1. **Player candidates** (:func:`player_candidates`): the damage-calculator move -- the move with the most
   expected damage, kept only if it knocks the opponent out within 4 turns, turns = ceil(HP / damage);
   the LLM's switch from a switch-only prompt, asked twice (each kept if it differs from the last kept
   action); the LLM's move from a move-only prompt (kept if it differs from the first candidate).
2. **Opponent candidates** (:func:`opponent_candidates`): the opponent's best damage-calculator move over its
   seen moves filled up to four from its species' Random Battle move pool; the heuristic switch-in with the
   best matchup (Abyssal's / poke-env's ``_estimate_matchup``, taken as the ARGMAX -- b614d78 takes the argmin,
   a bug the fact sheet tells us not to copy); the LLM's prediction from the opponent's point of view.
   Duplicates are dropped.
3. **Early exit**: if the damage-calculator move exists and its turns-to-KO <= the opponent's best turns-to-KO
   against us, the LLM (temperature 0.6) answers {"choice": "damage calculator" | "minimax"}; anything but
   "minimax" (an unparseable or late answer too) plays the damage-calculator move at once.
4. **Tree**: depth K (default 2) with the root at depth 1, so K = 2 expands one simulated turn: every player
   candidate x every opponent candidate through :func:`~paperlab.pokechamp.simulator.step`; a node of depth K
   is a leaf. Deeper K re-generates candidates on the simulated states.
5. **Leaf value**: the LLM's 1-100 rubric score ({"score": n}); the fallback is
   :func:`~paperlab.pokechamp.simulator.hp_diff`, on a different scale and mixed into the same backup as in
   the paper's code.
6. **Backup**: min over the opponent's replies, argmax over our own actions. If everything fails: the
   max-base-power move.

Every LLM call goes through :class:`Advisor`: a per-turn time budget (a call is not started when the calls
so far say it cannot finish inside what is left of the turn's budget; an answer that arrives after the
deadline is "late" and dropped), and each call's outcome is counted (used / unparseable / late / skipped) so the report can say how often the LLM actually decided.

Left out: the Gen 9 Tera variants of the damage-calculator move (the paper's code tries them); the player never
Terastallizes. Chosen by us where the fact sheet leaves it open: a speed tie in the simulator goes to the
player; a forced switch (fainted active) runs the same search with switch candidates only.

Deterministic fallbacks (ours; the paper's code has none for the candidate prompts): an unparseable or
late switch answer adds the heuristic best-matchup switch (the switch the paper's text takes from Abyssal);
an unparseable move answer adds the highest-expected-damage move; an unparseable opponent prediction adds
nothing (its other two candidates remain).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from paperlab.pokechamp import prompts
from paperlab.pokechamp.damage import turns_to_ko
from paperlab.pokechamp.simulator import Action, SimMon, SimState, hp_diff, speed, step

KO_TURNS = 4                 # the damage-calc move is a candidate only if it KOs within 4 turns
SPEED_COEF, HP_COEF = 0.1, 0.4   # Abyssal's / poke-env's matchup coefficients


# ---------------------------------------------------------------------------------------------- LLM access


@dataclass
class Advisor:
    """The search's access to the LLM: a per-turn time budget and an outcome tally per call kind.

    ``lm`` is a core :class:`~paperlab.core.models.LanguageModel` or ``None`` (LLM off: every call falls back).
    """

    lm: object | None = None
    turn_budget_s: float = 5.0
    temperature: float = 0.3
    max_tokens: int = 24
    seed: int = 0
    probe_every: int = 500
    tally: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    seconds: float = 0.0
    latency: float | None = None          # running estimate of one call's seconds
    _deadline: float = math.inf
    _calls: int = 0
    _skips: int = 0

    def start_turn(self) -> None:
        self._deadline = time.monotonic() + self.turn_budget_s

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {k: dict(v) for k, v in self.tally.items()}

    def ask(self, kind: str, messages: list[dict], parse: Callable[[str], object],
            temperature: float | None = None) -> object | None:
        """The parsed answer, or None (then the caller falls back); the outcome goes into ``tally[kind]``."""
        if self.lm is None:
            self.tally[kind]["off"] += 1
            return None
        left = self._deadline - time.monotonic()
        # a call is not started when it cannot finish within the turn's budget (by the latency seen so far;
        # every probe_every skips one call is made anyway, to re-measure)
        if left <= 0 or (self.latency is not None and self.latency > left and self._skips < self.probe_every):
            self.tally[kind]["skipped"] += 1
            self._skips += 1
            return None
        self._skips = 0
        from paperlab.core.models import GenerationParams

        self._calls += 1
        params = GenerationParams(temperature=self.temperature if temperature is None else temperature,
                                  max_tokens=self.max_tokens, seed=self.seed + self._calls)
        t0 = time.monotonic()
        try:
            text = self.lm.chat([messages], params)[0].text
        except Exception:   # a failing endpoint must not stop a battle: fall back
            self.tally[kind]["error"] += 1
            return None
        finally:
            took = time.monotonic() - t0
            self.seconds += took
            self.latency = took if self.latency is None else 0.7 * self.latency + 0.3 * took
        if time.monotonic() > self._deadline:
            self.tally[kind]["late"] += 1
            return None
        value = parse(text)
        self.tally[kind]["used" if value is not None else "unparseable"] += 1
        return value


# ---------------------------------------------------------------------------------------------- helpers


def matchup(mon: SimMon, opponent: SimMon, type_chart: dict) -> float:
    """Abyssal's / poke-env's ``_estimate_matchup``: best type advantage minus disadvantage, ±0.1 on speed,
    ±0.4 x HP fraction."""
    from paperlab.pokechamp.damage import effectiveness

    score = max((effectiveness(t, opponent.mon.types, type_chart) for t in mon.mon.types), default=1.0)
    score -= max((effectiveness(t, mon.mon.types, type_chart) for t in opponent.mon.types), default=1.0)
    s_me, s_opp = speed(mon), speed(opponent)
    score += SPEED_COEF if s_me > s_opp else -SPEED_COEF if s_opp > s_me else 0.0
    return score + HP_COEF * mon.hp - HP_COEF * opponent.hp


def best_damage_move(state: SimState, type_chart: dict, allowed: list[str] | None = None
                     ) -> tuple[str | None, float]:
    """(move id, turns to KO) of our active's move with the most expected damage on the opponent's active."""
    me, opp = state.me.active_mon, state.opp.active_mon
    if me is None or opp is None or me.fainted:
        return None, math.inf
    best, best_t = None, math.inf
    best_d = -1.0
    hp = opp.hp * opp.mon.stats["hp"]
    from paperlab.pokechamp.damage import expected_damage

    for mv in me.moves:
        if allowed is not None and mv.id not in allowed:
            continue
        d = expected_damage(me.mon, opp.mon, mv, type_chart)
        if d > best_d:
            best, best_d = mv.id, d
            best_t = turns_to_ko(me.mon, opp.mon, mv, type_chart, hp)
    return best, best_t


def heuristic_switch(state: SimState, type_chart: dict, allowed: list[str] | None = None) -> str | None:
    """The bench Pokémon with the best matchup against the opponent's active (ARGMAX), fainted ones skipped."""
    opp = state.opp.active_mon
    bench = [m for m in state.me.bench() if allowed is None or m.species in allowed]
    if not bench or opp is None:
        return bench[0].species if bench else None
    return max(bench, key=lambda m: matchup(m, opp, type_chart)).species


@dataclass
class Options:
    """The legal actions at a node: move ids and switch-in species (from the server's request at the root)."""

    moves: list[str]
    switches: list[str]

    @staticmethod
    def of(state: SimState) -> Options:
        act = state.me.active_mon
        moves = [m.id for m in act.moves] if act is not None and not act.fainted else []
        return Options(moves, [m.species for m in state.me.bench()])


def _add(cands: list[Action], a: Action | None, source: str, sources: dict) -> None:
    if a is not None and a not in cands:
        cands.append(a)
        sources[str(a)] = source


def player_candidates(state: SimState, opts: Options, advisor: Advisor, type_chart: dict,
                      sources: dict | None = None) -> list[Action]:
    """The paper's player candidates: damage-calc move (KO within 4 turns), LLM switch (x2), LLM move."""
    sources = {} if sources is None else sources
    cands: list[Action] = []
    dc, turns = best_damage_move(state, type_chart, opts.moves) if opts.moves else (None, math.inf)
    if dc is not None and turns <= KO_TURNS:
        _add(cands, Action("move", dc), "damage_calc", sources)
    if opts.switches:
        for _ in range(2):   # sampled twice; kept if it differs from the last kept action
            got = advisor.ask("player_switch", prompts.switch_prompt(state, opts.switches),
                              lambda t: prompts.parse_choice(t, ("switch",), opts.switches))
            a = Action("switch", got[1]) if got else Action("switch", heuristic_switch(state, type_chart,
                                                                                         opts.switches))
            if not cands or cands[-1] != a:
                _add(cands, a, "llm_switch" if got else "heuristic_switch", sources)
    if opts.moves:
        got = advisor.ask("player_move", prompts.move_prompt(state, opts.moves),
                          lambda t: prompts.parse_choice(t, ("move",), opts.moves))
        a = Action("move", got[1]) if got else Action("move", best_damage_move(state, type_chart, opts.moves)[0])
        if not cands or cands[0] != a:
            _add(cands, a, "llm_move" if got else "max_damage_move", sources)
    return cands


def opponent_candidates(state: SimState, advisor: Advisor, type_chart: dict,
                        sources: dict | None = None) -> list[Action]:
    """The paper's opponent candidates: best damage move, heuristic (argmax) switch, LLM prediction."""
    sources = {} if sources is None else sources
    view = state.flipped()
    opts = Options.of(view)
    cands: list[Action] = []
    dc, _ = best_damage_move(view, type_chart)
    if dc is not None:
        _add(cands, Action("move", dc), "opp_damage_calc", sources)
    sw = heuristic_switch(view, type_chart)
    if sw is not None:
        _add(cands, Action("switch", sw), "opp_heuristic_switch", sources)
    if opts.moves or opts.switches:
        got = advisor.ask("opponent", prompts.opponent_prompt(view, opts.moves, opts.switches),
                          lambda t: prompts.parse_choice(t, ("move",), opts.moves)
                          or prompts.parse_choice(t, ("switch",), opts.switches))
        if got:
            _add(cands, Action(got[0], got[1]), "opp_llm", sources)
    if not cands:   # nothing on the field and no bench known: the opponent does nothing we can model
        cands.append(Action("move", "none"))
    return cands


def leaf_value(state: SimState, advisor: Advisor) -> tuple[float, str]:
    """LLM rubric score (1-100), else the hp-difference fallback."""
    got = advisor.ask("leaf", prompts.leaf_prompt(state), prompts.parse_score)
    if got is not None:
        return float(got), "llm"
    return hp_diff(state), "hp_diff"


# ---------------------------------------------------------------------------------------------- the search


@dataclass
class SearchResult:
    action: Action | None
    reason: str                                # early_exit | minimax | only_option | fallback
    candidates: list[str] = field(default_factory=list)
    opponent: list[str] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)
    leaves: int = 0
    leaf_sources: Counter = field(default_factory=Counter)
    sources: dict[str, str] = field(default_factory=dict)


def pokechamp_search(root: SimState, opts: Options, advisor: Advisor, type_chart: dict, depth: int = 2,
                     tera_types: dict | None = None) -> SearchResult:
    """The paper-time search from the root state; ``depth`` = K counted with the root as depth 1."""
    advisor.start_turn()
    sources: dict[str, str] = {}
    cands = player_candidates(root, opts, advisor, type_chart, sources)
    if not cands:
        return SearchResult(None, "fallback")
    if len(cands) == 1 and not opts.switches and len(opts.moves) <= 1:
        return SearchResult(cands[0], "only_option", [str(cands[0])], sources=sources)
    # early exit: our KO is at least as fast as theirs -> ask whether to just take the damage-calc move
    dc, my_turns = best_damage_move(root, type_chart, opts.moves) if opts.moves else (None, math.inf)
    if dc is not None and my_turns <= KO_TURNS:
        _, their_turns = best_damage_move(root.flipped(), type_chart)
        if my_turns <= their_turns:
            got = advisor.ask("early_exit", prompts.early_exit_prompt(root, dc, my_turns, their_turns),
                              lambda t: prompts.parse_choice(t, ("choice",), ["damage calculator", "minimax"]),
                              temperature=0.6)
            if not got or got[1] != "minimax":
                return SearchResult(Action("move", dc), "early_exit", [str(c) for c in cands], sources=sources)
    leaf_sources: Counter = Counter()
    opp_first: list[str] = []

    def value(state: SimState, d: int, moves: list[Action]) -> float:
        # a node at depth K is a leaf (the root is depth 1)
        if d >= depth or _over(state):
            v, src = leaf_value(state, advisor)
            leaf_sources[src] += 1
            return v
        opp = opponent_candidates(state, advisor, type_chart, sources)
        if d == 1:
            opp_first[:] = [str(o) for o in opp]
        best = -math.inf
        for a in moves:
            worst = math.inf
            for o in opp:
                child = step(state, a, o, type_chart, tera_types)
                sub = Options.of(child) if d + 1 < depth else Options([], [])
                child_moves = player_candidates(child, sub, advisor, type_chart) if d + 1 < depth else []
                worst = min(worst, value(child, d + 1, child_moves or [Action("move", "none")]))
            if d == 1:
                values[str(a)] = worst
            best = max(best, worst)   # max over own actions of the min over opponent replies
        return best

    values: dict[str, float] = {}
    value(root, 1, cands)
    action = max(cands, key=lambda a: values.get(str(a), -math.inf))
    return SearchResult(action, "minimax", [str(c) for c in cands], opp_first, values,
                        sum(leaf_sources.values()), leaf_sources, sources)


def _over(state: SimState) -> bool:
    return all(m.fainted for m in state.me.mons) or (state.opp.unseen == 0 and all(m.fainted for m in state.opp.mons))
