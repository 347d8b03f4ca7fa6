"""Transmission chains (paper Section 3): the three setups and the rephrase ablation.

One *iteration* carries every passage around its route and back to English; generation
``t`` is the English text after ``t`` iterations (generation 0 is the original):

    x_0 = passage,   x_t = f_{hop_k} ∘ … ∘ f_{hop_1}(x_{t-1})

- **Bilingual self-loop**: route EN -> X -> EN, one player.
- **Bilingual two-player**: the same route with a pool of players; as in the paper's code, the
  player of *every* hop is drawn at random from the pool (players do not simply alternate).
- **Multilingual multiplayer**: route EN -> shuffled bridge languages -> EN, reshuffled every
  iteration, a random player per hop. When no player in the pool translates a hop directly
  (offline here: there is no PT<->ES engine), the hop pivots through English.
- **Rephrase chain**: route EN -> EN with a paraphrasing player.

Draws are per passage (each passage has its own model sequence, as in the paper's stored
outputs) from a generator seeded by ``(seed, passage index)``, so runs are reproducible.
LM players get a fresh sampling seed per (iteration, hop), so a sampled chain cannot stall just
because a text repeats.

Degenerate generations. A small LM's rephrase chain can fall into a repetition loop that runs to
``max_tokens``. Every hop records its finish reason (``"length"``: the answer was cut at
``max_tokens``), and :func:`repetition_loop` flags texts that repeat themselves; the experiment
reports both per iteration. Nothing is filtered or re-generated: degenerate texts stay in the chain,
as they would in the paper's. A repetition penalty is a decoding option
(``GenerationParams.repetition_penalty``; ``paperlab telephone run --repetition-penalty 1.1``), off
by default as in the paper.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from paperlab.core.models import GenerationParams, LanguageModel
from paperlab.core.translate import LANG_NAMES, Translator
from paperlab.telephone.prompts import build_prompt


@dataclass
class Step:
    """One output of a player: the text and, for LM players, why generation stopped."""

    text: str
    finish_reason: str | None = None  # LM: "stop" or "length" (cut at max_tokens); MT engines: None


class Player:
    """A participant in the chain: maps texts from ``src`` to ``tgt``."""

    name: str

    def supports(self, src: str, tgt: str) -> bool:
        raise NotImplementedError

    def step(self, texts: Sequence[str], src: str, tgt: str, seed: int) -> list[Step]:
        raise NotImplementedError


@dataclass
class MTPlayer(Player):
    """A machine-translation engine (deterministic: ``seed`` is ignored)."""

    translator: Translator
    name: str = ""

    def __post_init__(self):
        self.name = self.name or self.translator.id

    def supports(self, src, tgt):
        pairs = self.translator.pairs
        return src != tgt and (pairs is None or (src, tgt) in pairs)

    def step(self, texts, src, tgt, seed):
        return [Step(t) for t in self.translator.translate(list(texts), src, tgt)]


@dataclass
class LMPlayer(Player):
    """A language model prompted to translate (or, for EN->EN, to rephrase) at a constraint level."""

    lm: LanguageModel
    params: GenerationParams = field(default_factory=GenerationParams)
    level: str = "base"
    name: str = ""

    def __post_init__(self):
        self.name = self.name or self.lm.id

    def supports(self, src, tgt):
        return True

    def step(self, texts, src, tgt, seed):
        kind = "rephrase" if src == tgt else "translate"
        s, t = LANG_NAMES.get(src, src), LANG_NAMES.get(tgt, tgt)
        prompts = [build_prompt(x, self.level, kind, s, t) for x in texts]
        return [Step(r.text, r.finish_reason) for r in self.lm.chat(prompts, self.params.replace(seed=seed))]


@dataclass(frozen=True)
class Setup:
    """A route generator: the language sequence of one iteration for one passage."""

    name: str
    kind: str  # "self_loop" | "two_player" | "multiplayer" | "rephrase"
    languages: tuple[str, ...] = ()  # pivot (bilingual) or bridges (multiplayer)

    def route(self, rng: np.random.Generator) -> list[str]:
        if self.kind == "rephrase":
            return ["en", "en"]
        if self.kind in ("self_loop", "two_player"):
            return ["en", self.languages[0], "en"]
        bridges = list(self.languages)
        rng.shuffle(bridges)
        return ["en", *bridges, "en"]


@dataclass
class Hop:
    src: str
    tgt: str
    player: str
    finish_reason: str | None = None


def _expand_pivots(route: list[str], pool: Sequence[Player]) -> list[tuple[str, str]]:
    """Hops of a route; a hop no player supports goes through English."""
    hops: list[tuple[str, str]] = []
    for a, b in zip(route[:-1], route[1:], strict=True):
        if any(p.supports(a, b) for p in pool):
            hops.append((a, b))
        elif a != "en" and b != "en" and any(p.supports(a, "en") for p in pool) and any(
                p.supports("en", b) for p in pool):
            hops += [(a, "en"), ("en", b)]
        else:
            raise ValueError(f"no player in the pool translates {a}->{b}")
    return hops


def step_seed(seed: int, iteration: int, hop: int) -> int:
    return (seed * 1_000_003 + iteration * 1_009 + hop) % (2**31 - 1)


def run_chain(
    passages: Sequence[str],
    setup: Setup,
    pool: Sequence[Player],
    iterations: int,
    seed: int = 0,
    on_iteration: Callable[[int, list[str], list[list[Hop]]], None] | None = None,
) -> tuple[list[list[str]], list[list[list[Hop]]]]:
    """Run the chain; return ``texts[p][t]`` (t = 0..iterations) and ``hops[p][t-1]``.

    Passages move in lockstep; within a hop, passages that drew the same player are batched.
    ``on_iteration(t, texts_t, hops_t)`` is called after each iteration (for progress/logging).
    """
    if iterations < 0:
        raise ValueError("iterations must be >= 0")
    if not pool:
        raise ValueError("the player pool is empty")
    rngs = [np.random.default_rng([seed, i]) for i in range(len(passages))]
    texts = [[p] for p in passages]
    hop_log: list[list[list[Hop]]] = [[] for _ in passages]
    current = list(passages)
    for t in range(1, iterations + 1):
        routes = [_expand_pivots(setup.route(r), pool) for r in rngs]
        logs: list[list[Hop]] = [[] for _ in passages]
        for h in range(max(len(r) for r in routes)):
            groups: dict[tuple[int, str, str], list[int]] = defaultdict(list)
            for i, route in enumerate(routes):
                if h >= len(route):
                    continue
                src, tgt = route[h]
                able = [k for k, p in enumerate(pool) if p.supports(src, tgt)]
                k = able[int(rngs[i].integers(len(able)))]
                groups[(k, src, tgt)].append(i)
            for (k, src, tgt), idx in groups.items():
                out = pool[k].step([current[i] for i in idx], src, tgt, step_seed(seed, t, h))
                for i, y in zip(idx, out, strict=True):
                    current[i] = y.text
                    logs[i].append(Hop(src, tgt, pool[k].name, y.finish_reason))
        for i in range(len(passages)):
            texts[i].append(current[i])
            hop_log[i].append(logs[i])
        if on_iteration:
            on_iteration(t, list(current), logs)
    return texts, hop_log


def fixed_point_iteration(texts: Sequence[str]) -> int | None:
    """First generation t >= 1 whose text equals generation t-1 (the chain stopped moving)."""
    for t in range(1, len(texts)):
        if texts[t] == texts[t - 1]:
            return t
    return None


_WORDS = re.compile(r"\w+")
_TAIL_LOOP = re.compile(r"(\S.{0,79}?)(?:\s*\1){4,}\s*$", re.S)


def repetition_loop(text: str, n: int = 4, max_repeated: float = 0.25) -> bool:
    """Whether a text has fallen into a repetition loop.

    True when more than ``max_repeated`` of its word ``n``-grams are repeats of an earlier one
    (``1 - distinct/total``; natural prose stays near 0) or when it ends in one unit of up to 80
    characters repeated five or more times in a row (a loop cut by ``max_tokens``).
    """
    words = [w.lower() for w in _WORDS.findall(text)]
    grams = list(zip(*(words[i:] for i in range(n)), strict=False))
    if len(grams) >= 8 and 1 - len(set(grams)) / len(grams) > max_repeated:
        return True
    return bool(_TAIL_LOOP.search(text[-2000:]))


def degenerate(text: str, hops: Sequence[Hop]) -> bool:
    """A generation is degenerate when a hop of its iteration ran to ``max_tokens`` or its text loops."""
    return any(h.finish_reason == "length" for h in hops) or repetition_loop(text)
