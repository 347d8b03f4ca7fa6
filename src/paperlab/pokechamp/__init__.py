"""PokéChamp: an Expert-level Minimax Language Agent (Karten et al., arXiv:2503.04094).

**The paper.** PokéChamp plays Pokémon battles by minimax search in which a language model supplies three
pieces: *action sampling* (which of our moves/switches to consider), *opponent modelling* (which replies the
opponent will make), and *value estimation* (how good a searched-to position is). A one-step world model --
Showdown's damage formula on estimated stats -- advances the state. With GPT-4o it wins 76 % against the
best LLM bot (PokéLLMon) and 84 % against the strongest rule-based bot in Gen 9 OU; with Llama-3.1-8B, 64 %.

**What is implemented here** (the paper-time search, ``tree_search`` at commit b614d78, per the fact sheet):

- :mod:`~paperlab.pokechamp.damage` -- Showdown's ``getDamage``/``modifyDamage`` with its 16 rolls (the +2 added
  once), and the paper's expected one-step damage (level, power, boosted attack/defense, STAB, type
  effectiveness, immunities, burn, accuracy, hits);
- :mod:`~paperlab.pokechamp.simulator` -- the local one-turn state model and the hp-difference leaf value;
- :mod:`~paperlab.pokechamp.minimax` -- player candidates (damage-calc move if it KOs within 4 turns, LLM switch
  x2, LLM move), opponent candidates (best damage move over seen + filled moves, the best-matchup switch as the
  ARGMAX, LLM prediction), early exit, depth K = 2 with the root at depth 1, LLM leaf scores with the
  hp-difference fallback, min over replies / argmax over actions; all LLM calls through the core backends with
  a per-decision time budget and deterministic fallbacks;
- :mod:`~paperlab.pokechamp.players` -- random, max base power, heuristic (poke-env), max damage and PokéChamp
  players, robust to malformed server messages, logging decision times and damage events;
- :mod:`~paperlab.pokechamp.server` -- a private local Pokémon Showdown (npm ``pokemon-showdown@0.11.11``),
  always stopped; :mod:`~paperlab.pokechamp.battles` -- the concurrent battle runner with Wilson intervals;
- :mod:`~paperlab.pokechamp.experiment` -- ``paperlab pokechamp run`` (claims ``minimax_beats_max_damage``,
  ``max_damage_beats_random``, ``damage_calc_matches_sim``).

Public API::

    from paperlab.pokechamp import ShowdownServer, play_matchup, pokechamp_search, damage_rolls, reproduce
"""

from paperlab.pokechamp.damage import damage_range, damage_rolls, expected_damage

__all__ = ["ShowdownServer", "damage_range", "damage_rolls", "expected_damage", "play_matchup",
           "pokechamp_search", "reproduce"]


def __getattr__(name):   # the heavier parts (poke-env, the server) load on first use
    if name == "ShowdownServer":
        from paperlab.pokechamp.server import ShowdownServer

        return ShowdownServer
    if name == "play_matchup":
        from paperlab.pokechamp.battles import play_matchup

        return play_matchup
    if name == "pokechamp_search":
        from paperlab.pokechamp.minimax import pokechamp_search

        return pokechamp_search
    if name == "reproduce":
        from paperlab.pokechamp.experiment import reproduce

        return reproduce
    raise AttributeError(name)
