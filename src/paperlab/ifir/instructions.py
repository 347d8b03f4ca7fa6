"""Instructed queries at three levels for SciFact, which has none (the paper's Section 3, rebuilt).

IFIR's ``scifact_open`` pairs each claim with instructions of rising complexity; their G-Eval rubrics
(``GEvalPrompts.scifact_open1..3``) say what each level adds: 1 = theme relevance (research field and
topic), 2 = + the relationship (support or refute the claim), 3 = totally match the instruction. Plain
SciFact has claims, their cited abstracts (the qrels) and, in ``queries.jsonl`` metadata, each cited
abstract's evidence label (SUPPORT / CONTRADICT; none = not enough information). We build one
instruction per level per claim from that metadata, reproducibly, and define relevance under it:

=======  ===========================================================  ==================================
level    instruction (wording drawn from fixed templates)              relevant under it (judged docs only)
=======  ===========================================================  ==================================
1        find abstracts on the research topic of the claim            every cited abstract (= the qrels)
2        1 + only abstracts whose findings *support* / *refute* it     cited abstracts with that label
3        2 + the abstract must also deal with ``w1`` and ``w2``        level-2 gold containing every ``w``
=======  ===========================================================  ==================================

* The relation ``r`` of levels 2-3 is the label of an *anchor*: one cited abstract with evidence drawn
  at random; ``w1, w2`` are up to two content words of the anchor's title (4+ letters, not stop words,
  not in the claim), drawn at random and kept in title order. So each level's gold set is non-empty
  and contains the previous level's anchor, and gold(3) ⊆ gold(2) ⊆ gold(1).
* Randomness: ``random.Random(f"{seed}:{query id}")`` per claim, so a claim's instructions do not depend
  on which other claims are drawn (a quick subset sees the same instructions as the full run).
* Only claims with at least one labelled cited abstract take part (188 of SciFact's 300 test claims);
  documents nobody judged stay non-relevant, as in any pooled collection.
* A unit is a (claim, level) pair; its id is ``<query id>-v<level>`` (the suffix MTEB's IFIR tasks use
  to average by level).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from paperlab.ifir.data import BeirData

LEVELS = (1, 2, 3)

TOPIC = (
    "I am looking for scientific abstracts from the same research field and on the same topic as this claim.",
    "Find research papers that study the subject this claim is about.",
    "Retrieve abstracts whose research topic is the one addressed by this claim.",
)
RELATION = {
    "SUPPORT": (
        "Only abstracts whose findings support the claim are relevant.",
        "I need evidence that the claim is true: abstracts reporting results that support it.",
    ),
    "CONTRADICT": (
        "Only abstracts whose findings refute the claim are relevant.",
        "I need evidence that the claim is false: abstracts reporting results that contradict it.",
    ),
}
DETAIL = "The abstract must also deal with {words}."

_STOP = set("""a about above after again against all also among an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having
her here hers him his how however i if in into is it its itself just may might more most must no nor not now of off
on once only or other our out over own same she should so some such than that the their them then there these they
this those through to too under until up upon very was we were what when where which while who whom why will with
within without would you your using used use versus via study studies effect effects role patients patient human
humans cells cell analysis associated association new novel""".split())


@dataclass
class Unit:
    """One instructed query: a claim at one level, its instruction and its gold set."""

    uid: str
    qid: str
    level: int
    query: str
    instruction: str
    gold: dict[str, int]
    relation: str = ""
    anchor: str = ""
    words: list[str] = field(default_factory=list)


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z\-]+", text)


def labels(meta: dict, doc: str) -> set[str]:
    """Evidence labels of ``doc`` for a claim (``queries.jsonl`` metadata)."""
    return {e.get("label") for e in meta.get(doc, []) if e.get("label")}


def detail_words(title: str, claim: str, rng: random.Random, n: int = 2) -> list[str]:
    """Up to ``n`` content words of ``title`` absent from the claim, drawn at random, in title order."""
    seen_claim = {w.lower() for w in _words(claim)}
    cands, seen = [], set()
    for w in _words(title):
        lw = w.lower().strip("-")
        if len(lw) >= 4 and lw not in _STOP and lw not in seen_claim and lw not in seen:
            cands.append(lw)
            seen.add(lw)
    picked = set(rng.sample(cands, min(n, len(cands))))
    return [w for w in cands if w in picked]


def _contains(passage: str, word: str) -> bool:
    return re.search(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", passage, flags=re.IGNORECASE) is not None


def build_units(data: BeirData, qids: list[str] | None = None, seed: int = 0,
                levels: tuple[int, ...] = LEVELS) -> list[Unit]:
    """The instructed units of the claims ``qids`` (default: every judged claim), see the module doc."""
    out: list[Unit] = []
    for qid in qids if qids is not None else data.judged_queries():
        meta, qrel = data.metadata.get(qid) or {}, data.qrels.get(qid) or {}
        cited = sorted(d for d, g in qrel.items() if g > 0)
        labelled = [d for d in cited if labels(meta, d)]
        if not labelled:
            continue
        rng = random.Random(f"{seed}:{qid}")
        claim = data.queries[qid]
        topic = rng.choice(TOPIC)
        anchor = rng.choice(labelled)
        relation = sorted(labels(meta, anchor))[0]
        rel_text = rng.choice(RELATION[relation])
        words = detail_words(data.titles.get(anchor, "") or data.corpus[anchor][:200], claim, rng)
        gold1 = {d: 1 for d in cited}
        gold2 = {d: 1 for d in cited if relation in labels(meta, d)}
        gold3 = {d: 1 for d in gold2 if all(_contains(data.corpus[d], w) for w in words)}
        spec = {1: (topic, gold1), 2: (f"{topic} {rel_text}", gold2),
                3: (f"{topic} {rel_text} " + DETAIL.format(words=" and ".join(words)) if words
                    else f"{topic} {rel_text}", gold3)}
        for level in levels:
            text, gold = spec[level]
            out.append(Unit(f"{qid}-v{level}", qid, level, claim, text, gold, relation if level > 1 else "",
                            anchor if level > 1 else "", words if level == 3 else []))
    return out
