"""The one-step damage calculator (PokéChamp §3, the world model's damage step; Showdown's formula).

Two forms of the same Gen 5+ damage formula are implemented here, by hand because they are the part of the
paper's world model the search runs on (``@smogon/calc`` is a reference, not a Python library):

1. :func:`damage_rolls` -- Pokémon Showdown's ``getDamage``/``modifyDamage`` (``sim/battle-actions.ts``) exactly,
   integer by integer::

       base = floor(floor(floor(floor(2L/5 + 2) * P * A) / D) / 50) + 2            # +2 once
       d    = floor(base * r / 100),  r = 85..100                                  # the 16 random rolls
       d    = modify(d, STAB)          STAB 1.5 (2.0 Adaptability / Tera onto an original type)
       d    = d * 2 per ×2 step, floor(d / 2) per ×½ step                          # type effectiveness
       d    = modify(d, 0.5) if burned and physical;  d = modify(d, final mods);  d = max(1, d)

   where ``modify(v, m) = floor((floor(v * floor(m * 4096)) + 2047) / 4096)`` is Showdown's fixed-point
   multiply. ``A``/``D`` are the stats with boost stages (``floor(s * (2+b)/2)`` or ``floor(s * 2/(2-b))``)
   and attack items (Choice Band/Specs ×1.5). Final modifiers: Life Orb (5324/4096), Expert Belt (4915/4096 on
   super-effective hits). The claim ``damage_calc_matches_sim`` checks these rolls against the simulator.

2. :func:`expected_damage` -- the paper's world model (``local_simulation.py`` at b614d78): the same formula
   without truncation and without the random roll, then ×STAB ×effectiveness ×immunities ×burn ×accuracy,
   truncated, ×expected hits. The released code adds the +2 twice; the fact sheet says to add it once, as
   Showdown does, so we do.

Stats the player cannot see (the opponent's) are Random Battle sets: 85 EVs and 31 IVs in every stat, neutral
nature (Showdown's ``data/random-battles/gen9/teams.ts``), at the level the battle reveals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

#: Random Battle sets (Showdown gen9 teams.ts): 85 EVs, 31 IVs, neutral nature.
RANDBATS_EV, RANDBATS_IV = 85, 31
STATS = ("hp", "atk", "def", "spa", "spd", "spe")

#: Abilities that make a defender immune to a move type (the paper's "simple immunities").
ABSORB_ABILITIES = {
    "levitate": "ground", "eartheater": "ground", "voltabsorb": "electric", "lightningrod": "electric",
    "motordrive": "electric", "waterabsorb": "water", "stormdrain": "water", "dryskin": "water",
    "flashfire": "fire", "wellbakedbody": "fire", "sapsipper": "grass",
}


def stat_value(base: int, level: int, iv: int = RANDBATS_IV, ev: int = RANDBATS_EV, nature: float = 1.0) -> int:
    """A non-HP stat: floor((floor((2B + IV + floor(EV/4)) * L / 100) + 5) * nature)."""
    return int(math.floor((math.floor((2 * base + iv + ev // 4) * level / 100) + 5) * nature))


def hp_value(base: int, level: int, iv: int = RANDBATS_IV, ev: int = RANDBATS_EV) -> int:
    """Max HP: floor((2B + IV + floor(EV/4)) * L / 100) + L + 10 (Shedinja: 1)."""
    if base == 1:
        return 1
    return int(math.floor((2 * base + iv + ev // 4) * level / 100) + level + 10)


def boost_multiplier(stage: int) -> float:
    """Stat stage multiplier: (2 + b)/2 for b >= 0, 2/(2 - b) for b < 0 (stages clipped to ±6)."""
    stage = max(-6, min(6, int(stage)))
    return (2 + stage) / 2 if stage >= 0 else 2 / (2 - stage)


def boosted(stat: int, stage: int) -> int:
    """Showdown's calculateStat: floor(stat * 1.5^...) in half steps."""
    stage = max(-6, min(6, int(stage)))
    table = (1, 1.5, 2, 2.5, 3, 3.5, 4)
    return int(math.floor(stat * table[stage])) if stage >= 0 else int(math.floor(stat / table[-stage]))


def modify(value: int, multiplier: float) -> int:
    """Showdown's fixed-point multiply: floor((floor(v * floor(m*4096)) + 2047) / 4096)."""
    m = int(multiplier * 4096)
    return (value * m + 2047) // 4096


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Combatant:
    """What the calculator needs of one Pokémon (built from a poke-env Pokémon by :func:`combatant`)."""

    species: str
    level: int
    types: tuple[str, ...]                    # current types (after Terastallization)
    stats: dict[str, int]                     # unboosted; hp = max HP in HP points
    boosts: dict[str, int] = field(default_factory=dict)
    status: str | None = None                 # "brn", "par", ...
    ability: str | None = None
    item: str | None = None
    original_types: tuple[str, ...] = ()      # before Terastallization (STAB keeps them)
    terastallized: bool = False
    exact_stats: bool = False                 # stats from the player's own request (not estimated)


@dataclass(frozen=True)
class MoveSpec:
    """What the calculator needs of one move (built from a poke-env Move by :func:`move_spec`)."""

    id: str
    type: str
    category: str            # physical | special | status
    base_power: int
    accuracy: float = 1.0
    expected_hits: float = 1.0
    priority: int = 0
    fixed_damage: int | str | None = None   # an int, or "level" (Seismic Toss, Night Shade)


def effectiveness(move_type: str, defender_types: tuple[str, ...], type_chart: dict) -> float:
    """Product of the type chart entries (the defender's types); ``type_chart[defending][attacking]``."""
    mult = 1.0
    for t in defender_types:
        row = type_chart.get(t.upper())
        if row is not None:
            mult *= row.get(move_type.upper(), 1.0)
    return mult


def stab_multiplier(att: Combatant, move: MoveSpec) -> float:
    """1.5 on a move of one of the user's types; 2.0 with Adaptability, or for a Tera type that is also an
    original type; a Terastallized Pokémon keeps STAB on its original types."""
    t = move.type.lower()
    own = {x.lower() for x in att.original_types or att.types}
    cur = {x.lower() for x in att.types}
    if att.terastallized and t in cur and t in own:
        return 2.0
    if t in own or t in cur:
        return 2.0 if att.ability == "adaptability" else 1.5
    return 1.0


def _attack_defense(att: Combatant, dfd: Combatant, move: MoveSpec) -> tuple[int, int]:
    physical = move.category == "physical"
    a_key, d_key = ("atk", "def") if physical else ("spa", "spd")
    if move.id == "bodypress":
        a_key = "def"
    attack = boosted(att.stats[a_key], att.boosts.get(a_key, 0))
    if move.id == "foulplay":
        attack = boosted(dfd.stats["atk"], dfd.boosts.get("atk", 0))
    defense = boosted(dfd.stats[d_key], dfd.boosts.get(d_key, 0))
    if att.item == ("choiceband" if physical else "choicespecs"):
        attack = modify(attack, 1.5)
    if att.ability in ("hugepower", "purepower") and physical:
        attack = attack * 2
    return max(1, attack), max(1, defense)


def immune(dfd: Combatant, move: MoveSpec) -> bool:
    """The paper's simple immunities: Levitate / Air Balloon vs. Ground, absorbing abilities."""
    t = move.type.lower()
    if t == "ground" and dfd.item == "airballoon":
        return True
    return ABSORB_ABILITIES.get(dfd.ability or "") == t


def damage_rolls(att: Combatant, dfd: Combatant, move: MoveSpec, type_chart: dict,
                 crit: bool = False) -> list[int]:
    """Showdown's 16 damage rolls (HP points) of one non-critical hit (``crit=True``: ×1.5, boosts ignored as
    Showdown does only in part -- use non-crits). Empty for status moves; [0] when immune."""
    if move.category == "status":
        return []
    eff = effectiveness(move.type, dfd.types, type_chart)
    if eff == 0 or immune(dfd, move):
        return [0]
    if move.fixed_damage is not None:
        return [att.level if move.fixed_damage == "level" else int(move.fixed_damage)]
    attack, defense = _attack_defense(att, dfd, move)
    level, power = att.level, tera_power(att, move)
    # base = floor(floor(floor(floor(2L/5 + 2) * P * A) / D) / 50) + 2
    base = ((2 * level // 5 + 2) * power * attack // defense) // 50 + 2
    if crit:
        base = modify(base, 1.5)
    stab = stab_multiplier(att, move)
    steps = round(math.log2(eff))
    out = []
    for r in range(85, 101):
        d = base * r // 100                                   # random roll
        if stab != 1:
            d = modify(d, stab)
        d = d * 2 ** steps if steps > 0 else d                # ×2 per super-effective step
        for _ in range(-steps if steps < 0 else 0):
            d //= 2                                           # floor(/2) per resisted step
        if att.status == "brn" and move.category == "physical" and att.ability != "guts" and move.id != "facade":
            d = modify(d, 0.5)
        if att.item == "lifeorb":
            d = modify(d, 5324 / 4096)
        if att.item == "expertbelt" and eff > 1:
            d = modify(d, 4915 / 4096)
        out.append(max(1, d))
    return out


def tera_power(att: Combatant, move: MoveSpec) -> int:
    """A Terastallized Pokémon's moves of its Tera type below 60 power hit with 60 (not multi-hit or
    priority moves)."""
    if (att.terastallized and move.type.lower() in {t.lower() for t in att.types} and move.base_power < 60
            and move.expected_hits == 1 and move.priority <= 0):
        return 60
    return move.base_power


def damage_range(att: Combatant, dfd: Combatant, move: MoveSpec, type_chart: dict) -> tuple[int, int]:
    rolls = damage_rolls(att, dfd, move, type_chart)
    return (min(rolls), max(rolls)) if rolls else (0, 0)


def expected_damage(att: Combatant, dfd: Combatant, move: MoveSpec, type_chart: dict) -> float:
    """The paper's one-step world-model damage (HP points): no roll, no crit, accuracy and hits in expectation.

    d = int(((2L/5 + 2) * P * A/D) / 50 + 2) x STAB x effectiveness x immunity x burn x accuracy) x hits
    """
    if move.category == "status":
        return 0.0
    eff = effectiveness(move.type, dfd.types, type_chart)
    if eff == 0 or immune(dfd, move):
        return 0.0
    if move.fixed_damage is not None:
        fixed = att.level if move.fixed_damage == "level" else int(move.fixed_damage)
        return float(fixed) * move.accuracy
    a_key, d_key = ("atk", "def") if move.category == "physical" else ("spa", "spd")
    attack = att.stats[a_key] * boost_multiplier(att.boosts.get(a_key, 0))
    defense = max(1.0, dfd.stats[d_key] * boost_multiplier(dfd.boosts.get(d_key, 0)))
    base = ((2 * att.level / 5 + 2) * tera_power(att, move) * attack / defense) / 50 + 2
    burn = 0.5 if att.status == "brn" and move.category == "physical" else 1.0
    d = int(base * stab_multiplier(att, move) * eff * burn * move.accuracy)
    return float(d) * move.expected_hits


def turns_to_ko(att: Combatant, dfd: Combatant, move: MoveSpec, type_chart: dict, hp: float) -> float:
    """ceil(target HP / expected damage); inf when the move does no damage (the paper's KO-in-n-turns test)."""
    d = expected_damage(att, dfd, move, type_chart)
    return math.ceil(hp / d) if d > 0 else math.inf


# ---------------------------------------------------------------------------------------------- poke-env


def _type_name(t) -> str:
    return t.name.lower() if hasattr(t, "name") else str(t).lower()


def estimated_stats(base_stats: dict, level: int) -> dict[str, int]:
    """Random Battle stats from base stats at ``level`` (85 EVs, 31 IVs, neutral nature)."""
    out = {k: stat_value(base_stats[k], level) for k in STATS if k != "hp"}
    out["hp"] = hp_value(base_stats["hp"], level)
    return out


def combatant(mon, own: bool) -> Combatant:
    """A :class:`Combatant` from a poke-env ``Pokemon``: the player's own Pokémon carry their real stats (from
    the server's request); the opponent's are Random Battle estimates at the revealed level."""
    level = mon.level or 100
    exact = own and mon.stats and all(mon.stats.get(k) for k in ("atk", "def", "spa", "spd", "spe"))
    if exact:
        stats = {k: int(mon.stats[k]) for k in ("atk", "def", "spa", "spd", "spe")}
        stats["hp"] = int(mon.max_hp or hp_value(mon.base_stats["hp"], level))
    else:
        stats = estimated_stats(mon.base_stats, level)
    types = tuple(_type_name(t) for t in mon.types if t is not None)
    original = tuple(_type_name(t) for t in (mon._type_1, mon._type_2) if t is not None)
    terastallized = bool(mon.is_terastallized)
    ability = mon.ability
    if ability is None and len(mon.possible_abilities or []) == 1:
        ability = mon.possible_abilities[0]
    from poke_env.data.normalize import to_id_str

    status = mon.status.name.lower() if mon.status is not None else None
    return Combatant(species=mon.species, level=level, types=types, stats=stats, boosts=dict(mon.boosts),
                     status=status, ability=to_id_str(ability) if ability else None,
                     item=mon.item if mon.item not in ("unknown_item", "") else None,
                     original_types=original, terastallized=terastallized, exact_stats=bool(exact))


#: Moves whose power depends on state the one-step model does not track (weight, HP, items, history).
VARIABLE_POWER = frozenset({
    "grassknot", "lowkick", "heavyslam", "heatcrash", "eruption", "waterspout", "dragonenergy", "flail",
    "reversal", "hex", "venoshock", "facade", "knockoff", "acrobatics", "storedpower", "powertrip",
    "gyroball", "electroball", "payback", "avalanche", "revenge", "boltbeak", "fishiousrend", "ragefist",
    "lastrespects", "terablast", "weatherball", "terrainpulse", "risingvoltage", "expandingforce",
    "collisioncourse", "electrodrift", "brine", "wringout", "crushgrip", "hardpress", "punishment",
    "smellingsalts", "wakeupslap", "assurance", "retaliate", "temperflare", "stompingtantrum", "lashout",
    "pursuit", "boltstrike", "fusionbolt", "fusionflare", "round", "echoedvoice", "furycutter", "rollout",
    "iceball", "triplekick", "tripleaxel", "beatup", "present", "magnitude", "naturalgift", "fling",
    "psyblade", "solarbeam", "solarblade", "bodypress", "foulplay", "photongeyser", "shellsidearm",
    "ivycudgel", "ragingbull", "barbbarrage", "infernalparade", "bittermalice", "poltergeist",
    "doubleshock", "burnup", "suckerpunch", "thunderclap", "superpower", "futuresight", "doomdesire",
    "psyshock", "psystrike", "secretsword", "struggle", "counter", "mirrorcoat", "metalburst",
    "finalgambit", "endeavor", "superfang", "ruination", "naturesmadness", "guardianofalola", "judgment",
    "multiattack", "ragingfury",
})


def move_spec(move) -> MoveSpec:
    """A :class:`MoveSpec` from a poke-env ``Move``."""
    cat = move.category.name.lower()
    dmg = move.damage
    fixed = dmg if dmg == "level" or (isinstance(dmg, int) and dmg > 0) else None
    try:
        hits = float(move.expected_hits)
    except (AssertionError, ValueError):
        hits = 1.0
    return MoveSpec(id=move.id, type=_type_name(move.type), category=cat, base_power=int(move.base_power or 0),
                    accuracy=float(move.accuracy), expected_hits=hits, priority=int(move.priority),
                    fixed_damage=fixed)


def with_boosts(c: Combatant, boosts: dict[str, int]) -> Combatant:
    return replace(c, boosts=dict(boosts))


# ---------------------------------------------------------------------------------------------- vs. the simulator

#: Items that change damage in ways :func:`damage_rolls` does not model (a hit involving one is out of scope).
UNMODELLED_ITEMS = frozenset({
    "assaultvest", "eviolite", "muscleband", "wiseglasses", "metronome", "punchingglove", "loadeddice",
    "lightball", "thickclub", "souldew", "adamantorb", "lustrousorb", "griseousorb", "boosterenergy",
    "charcoal", "mysticwater", "miracleseed", "magnet", "nevermeltice", "blackbelt", "poisonbarb", "softsand",
    "sharpbeak", "twistedspoon", "silverpowder", "hardstone", "spelltag", "dragonfang", "blackglasses",
    "metalcoat", "silkscarf", "fairyfeather", "cornerstonemask", "wellspringmask", "hearthflamemask",
    "occaberry", "passhoberry", "wacanberry", "rindoberry", "yacheberry", "chopleberry", "kebiaberry",
    "shucaberry", "cobaberry", "payapaberry", "tangaberry", "chartiberry", "kasibberry", "habanberry",
    "colburberry", "babiriberry", "chilanberry", "roseliberry", "focussash",
    "adamantcrystal", "lustrousglobe", "griseouscore", "rustedsword", "rustedshield",
})


def unmodelled_item(item: str | None) -> bool:
    """Plates and Memories (Arceus/Silvally) change type and power too."""
    return bool(item) and (item in UNMODELLED_ITEMS or item.endswith("plate") or item.endswith("memory"))

#: Abilities that change damage (other than Adaptability, Huge/Pure Power and absorb immunities, modelled).
UNMODELLED_ABILITIES = frozenset({
    "technician", "sheerforce", "toughclaws", "ironfist", "strongjaw", "megalauncher", "sharpness", "reckless",
    "punkrock", "steelworker", "steelyspirit", "transistor", "dragonsmaw", "rockypayload", "waterbubble",
    "hustle", "guts", "gorillatactics", "solarpower", "flareboost", "toxicboost", "analytic", "tintedlens",
    "sniper", "neuroforce", "aerilate", "pixilate", "refrigerate", "galvanize", "normalize", "liquidvoice",
    "stakeout", "supremeoverlord", "protosynthesis", "quarkdrive", "orichalcumpulse", "hadronengine",
    "sandforce", "blaze", "overgrow", "torrent", "swarm", "defeatist", "slowstart", "thickfat", "heatproof",
    "fluffy", "furcoat", "icescales", "multiscale", "shadowshield", "filter", "solidrock", "prismarmor",
    "marvelscale", "grasspelt", "purifyingsalt", "dryskin", "wonderguard", "parentalbond", "vesselofruin",
    "swordofruin", "tabletsofruin", "beadsofruin", "fairyaura", "darkaura", "aurabreak", "libero", "protean",
    "disguise", "iceface", "mimicry", "teraformzero", "terashell", "stamina", "sturdy", "unaware",
    "flowergift", "plus", "minus", "battery", "powerspot", "friendguard", "mountaineer", "zerotohero", "illusion",
})


def in_scope(ev: dict) -> tuple[bool, str]:
    """Whether a logged hit is inside the calculator's scope, and why not: a single non-critical direct hit of
    a fixed-power damaging move, exact stats on both sides, no weather/terrain/screens, no unmodelled
    item or ability, the defender not knocked out (a KO caps the observed damage)."""
    mv, a, d = ev["move"], ev["attacker"], ev["defender"]
    checks = [
        (ev["crit"], "critical hit"), (ev["multi_hit"], "multi-hit"), (mv["category"] == "status", "status move"),
        (mv["id"] in VARIABLE_POWER or mv["base_power"] <= 0, "variable/zero power"),
        (mv["fixed_damage"] is not None, "fixed damage"),
        (not ev.get("attacker_exact"), "attacker stats unknown"),
        (bool(ev["weather"]) or bool(ev["fields"]), "weather/terrain"),
        (any(s in ev["defender_side"] for s in ("reflect", "light_screen", "aurora_veil")), "screens"),
        (unmodelled_item(a.get("item")) or unmodelled_item(d.get("item")), "unmodelled item"),
        (ev.get("disguise", False), "Illusion/Transform possible"),
        (ev["hp_after"] == 1, "survived at 1 HP (Sash/Sturdy cap)"),
        (a.get("ability") in UNMODELLED_ABILITIES or d.get("ability") in UNMODELLED_ABILITIES, "unmodelled ability"),
        (ev["hp_after"] <= 0, "knocked out"),
        (a.get("status") == "fnt", "attacker shown fainted (stale view)"),
    ]
    for bad, why in checks:
        if bad:
            return False, why
    return True, ""


def check_event(ev: dict, type_chart: dict, tolerance: int = 1) -> dict:
    """Predicted [min, max] rolls of a logged hit vs. the HP it actually took; covered within ``tolerance``
    HP (rounding)."""
    att = Combatant(**{**ev["attacker"], "types": tuple(ev["attacker"]["types"]),
                       "original_types": tuple(ev["attacker"]["original_types"])})
    dfd = Combatant(**{**ev["defender"], "types": tuple(ev["defender"]["types"]),
                       "original_types": tuple(ev["defender"]["original_types"])})
    mv = MoveSpec(**ev["move"])
    lo, hi = damage_range(att, dfd, mv, type_chart)
    observed = ev["hp_before"] - ev["hp_after"]
    return {"min": lo, "max": hi, "observed": observed,
            "covered": lo - tolerance <= observed <= hi + tolerance,
            "expected": expected_damage(att, dfd, mv, type_chart)}
