"""``damage_calc_matches_sim`` on a logged sample: hits our players' Pokémon took in real battles on the local
Showdown 0.11.11 server (``src/paperlab/data/pokechamp/damage_sample.jsonl``: attacker and defender with exact
stats, items, abilities, boosts, Tera; exact HP before and after). Stated tolerance: the observed HP loss must
lie in our predicted [min roll, max roll] ± 1 HP; the claim is that more than 90 % of in-scope hits do (Wilson
lower bound). A calculator without STAB, or without the random roll (the top roll only), fails it."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.resources import files

from paperlab.core.stats import wilson
from paperlab.pokechamp.damage import Combatant, MoveSpec, check_event, damage_range, in_scope
from paperlab.pokechamp.players import type_chart

TOLERANCE, BOUND = 1, 0.9


def _sample() -> list[dict]:
    text = (files("paperlab") / "data" / "pokechamp" / "damage_sample.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _covered(events, predict) -> tuple[int, int]:
    k = n = 0
    for ev in events:
        lo, hi = predict(ev)
        observed = ev["hp_before"] - ev["hp_after"]
        k += lo - TOLERANCE <= observed <= hi + TOLERANCE
        n += 1
    return k, n


def _parts(ev):
    a = Combatant(**{**ev["attacker"], "types": tuple(ev["attacker"]["types"]),
                     "original_types": tuple(ev["attacker"]["original_types"])})
    d = Combatant(**{**ev["defender"], "types": tuple(ev["defender"]["types"]),
                     "original_types": tuple(ev["defender"]["original_types"])})
    return a, d, MoveSpec(**ev["move"])


def test_sample_is_real_and_in_scope():
    events = _sample()
    assert len(events) >= 150
    assert all(in_scope(e)[0] and e["attacker_exact"] for e in events)
    assert len({e["move"]["id"] for e in events}) > 40 and len({e["battle"] for e in events}) > 20


def test_calculator_covers_observed_damage():
    chart = type_chart()
    events = _sample()
    k, n = _covered(events, lambda e: (check_event(e, chart, TOLERANCE)["min"], check_event(e, chart)["max"]))
    est = wilson(k, n)
    assert est.lo > BOUND, f"{k}/{n} covered: {est}"


def test_wrong_calculators_fail_the_same_check():
    chart = type_chart()
    events = _sample()

    def no_stab(e):
        a, d, m = _parts(e)
        a = replace(a, types=("???",), original_types=("???",), terastallized=False)
        return damage_range(a, d, m, chart)

    def no_roll(e):   # the world model's single value: the top roll only
        a, d, m = _parts(e)
        hi = damage_range(a, d, m, chart)[1]
        return hi, hi

    for wrong in (no_stab, no_roll):
        k, n = _covered(events, wrong)
        assert wilson(k, n).hi < BOUND
