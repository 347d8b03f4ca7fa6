"""Template grammars of three small "languages" and the bilingual corpora built from them.

Each language has its own lexicon (no word is shared between languages; only the sentence end ``.`` and
the document marker ``<doc>`` are common, as punctuation is in natural text) and two structural
alternations whose alternants carry *identical lexical content*, so a sentence of structure ``x`` has an
exact ``y`` alternant:

=========  ===============  =====================================  =====================================
language   word order       dative  x = PO / y = DO                voice  x = active / y = passive
=========  ===============  =====================================  =====================================
``en``     SVO, English-    ``the AG gives the TH to the REC``     ``the AG sees the PAT``
           like             ``the AG gives the REC the TH``        ``the PAT is seen by the AG``
``sim``    SVO (similar):   same orders, own determiner,           same orders, own auxiliary, own
           pseudo-words     preposition and verb forms             by-marker and participles
``dis``    SOV with case    ``AG ga TH o REC e V``  (theme first,  ``AG ga PAT o V``
           postpositions    allative ``e``)                        ``PAT ga AG ni V-pass`` (agent in the
           (dissimilar)     ``AG ga REC ni TH o V`` (recipient     dative, passive verb form: a
                            first, dative ``ni``)                  different passive construction)
=========  ===============  =====================================  =====================================

``x``/``y`` follow Prime-LM's coding (x = prepositional object / active, y = double object / passive).
Agents, recipients and patients are animate nouns, themes inanimate ones. Filler sentences (intransitive,
``the AG sleeps``) carry neither alternation.

**Structural persistence.** Natural text repeats structures: a speaker who just used a passive is more
likely to use one again, and this is what an LM can learn priming from. A document here is 3-6 sentences;
each alternating sentence *copies the alternant of the previous sentence of the same alternation* in the
document with probability ``persistence``, and otherwise draws it from the base rate (``x`` with
probability ``base_rate``). So the repeat rate is ``persistence + (1 - persistence) / 2`` at base rate 1/2
(``persistence = 0``: no structural dependence between sentences; no priming can be learned).
Documents are monolingual, so nothing in the corpus ties an L1 structure to an L2 one: cross-lingual
priming can only arise from representations the model shares between its languages. Code-switched documents
(``Grammar.document`` with two languages: each sentence in a random one, persistence kept across the switch)
build cross-language persistence into the data; only the positive-control model sees them
(:mod:`~paperlab.priming.regimes`), never a model a claim is decided on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DOC, END = "<doc>", "."
ALTERNATIONS = ("dative", "voice")
STRUCTURES = {"dative": ("po", "do"), "voice": ("active", "passive")}   # (x, y)
LANGUAGES = ("en", "sim", "dis")
PAIRS = {"similar": ("en", "sim"), "dissimilar": ("en", "dis")}

_EN_ANIMATE = ("man woman boy girl teacher doctor king queen cat dog farmer child baker nurse pilot singer "
               "lawyer student captain sailor").split()
_EN_THINGS = "ball book cake letter apple cup key ring hat box lamp coin pen shoe flower bag".split()
_EN_DATIVE = [("gives", "given"), ("sends", "sent"), ("shows", "shown"), ("brings", "brought"),
              ("hands", "handed"), ("offers", "offered"), ("throws", "thrown"), ("sells", "sold"),
              ("lends", "lent"), ("passes", "passed")]
_EN_TRANS = [("sees", "seen"), ("helps", "helped"), ("calls", "called"), ("finds", "found"),
             ("follows", "followed"), ("likes", "liked"), ("visits", "visited"), ("pushes", "pushed"),
             ("meets", "met"), ("greets", "greeted"), ("watches", "watched"), ("hears", "heard")]
_EN_INTRANS = "sleeps runs laughs sings waits smiles".split()


@dataclass
class Lexicon:
    """The words of one language (every form is one token)."""

    animate: list[str]
    things: list[str]
    dative: list[tuple[str, str]]        # (finite form, participle / passive form)
    trans: list[tuple[str, str]]
    intrans: list[str]
    function: dict[str, str] = field(default_factory=dict)

    def words(self) -> list[str]:
        out = [*self.animate, *self.things, *self.intrans, *self.function.values()]
        for a, b in (*self.dative, *self.trans):
            out += [a, b]
        return out


def _pseudo_words(rng: random.Random, n: int, onsets: str, vowels: str, codas: str, syll: tuple[int, int],
                  taken: set[str]) -> list[str]:
    """``n`` new pseudo-words of ``syll`` syllables (disjoint from ``taken``, which is updated)."""
    out = []
    while len(out) < n:
        k = rng.randint(*syll)
        w = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(k)) + rng.choice(codas)
        if w not in taken and len(w) >= 3:
            taken.add(w)
            out.append(w)
    return out


def make_lexicon(lang: str) -> Lexicon:
    """The lexicon of ``lang`` (deterministic: the same words every time)."""
    if lang == "en":
        return Lexicon(list(_EN_ANIMATE), list(_EN_THINGS), list(_EN_DATIVE), list(_EN_TRANS), list(_EN_INTRANS),
                       {"det": "the", "to": "to", "aux": "is", "by": "by"})
    taken = set(make_lexicon("en").words()) | {DOC, END}
    rng = random.Random(f"lexicon/{lang}")
    if lang == "sim":       # Dutch-flavoured pseudo-words; participles by a prefix, as Dutch ge-
        onsets, vowels, codas = "bdfgklmnprstvwz", "aeiou", ["", "n", "r", "t", "l"]
        function = {"det": "de", "to": "aan", "aux": "wordt", "by": "door"}
        taken |= set(function.values())
        stems = _pseudo_words(rng, len(_EN_DATIVE) + len(_EN_TRANS), onsets, vowels, codas, (1, 2), taken)
        verbs = [(s + "t", "ge" + s + "d") for s in stems]
        taken |= {w for v in verbs for w in v}
        return Lexicon(_pseudo_words(rng, len(_EN_ANIMATE), onsets, vowels, codas, (2, 2), taken),
                       _pseudo_words(rng, len(_EN_THINGS), onsets, vowels, codas, (2, 3), taken),
                       verbs[: len(_EN_DATIVE)], verbs[len(_EN_DATIVE):],
                       [s + "t" for s in _pseudo_words(rng, len(_EN_INTRANS), onsets, vowels, codas, (1, 2), taken)],
                       function)
    if lang == "dis":       # Japanese-flavoured: open syllables, case postpositions, passive suffix -rare
        onsets, vowels, codas = "kstnhmyrwgzbp", "aiueo", [""]
        function = {"nom": "ga", "acc": "o", "dat": "ni", "all": "e"}
        taken |= set(function.values())
        stems = _pseudo_words(rng, len(_EN_DATIVE) + len(_EN_TRANS), onsets, vowels, codas, (2, 2), taken)
        verbs = [(s + "ru", s + "rareru") for s in stems]
        taken |= {w for v in verbs for w in v}
        return Lexicon(_pseudo_words(rng, len(_EN_ANIMATE), onsets, vowels, codas, (2, 3), taken),
                       _pseudo_words(rng, len(_EN_THINGS), onsets, vowels, codas, (2, 3), taken),
                       verbs[: len(_EN_DATIVE)], verbs[len(_EN_DATIVE):],
                       [s + "mu" for s in _pseudo_words(rng, len(_EN_INTRANS), onsets, vowels, codas, (2, 2), taken)],
                       function)
    raise ValueError(f"unknown language {lang!r}; use one of {LANGUAGES}")


# ----------------------------------------------------------------------------------------------
# Sentences


@dataclass(frozen=True)
class Content:
    """The lexical content of one alternating sentence (indices into a lexicon), shared by its alternants."""

    alternation: str            # "dative" | "voice"
    agent: int
    verb: int
    obj: int                    # theme (dative) or patient (voice)
    recipient: int = -1         # dative only


def realise(lex: Lexicon, lang: str, c: Content, structure: str) -> list[str]:
    """The words of ``c`` in ``structure`` (one of :data:`STRUCTURES`), without the sentence end."""
    f = lex.function
    if c.alternation == "dative":
        ag, th, rec = lex.animate[c.agent], lex.things[c.obj], lex.animate[c.recipient]
        v = lex.dative[c.verb][0]
        if lang == "dis":
            if structure == "po":
                return [ag, f["nom"], th, f["acc"], rec, f["all"], v]
            return [ag, f["nom"], rec, f["dat"], th, f["acc"], v]
        d = f["det"]
        if structure == "po":
            return [d, ag, v, d, th, f["to"], d, rec]
        return [d, ag, v, d, rec, d, th]
    ag, pat = lex.animate[c.agent], lex.animate[c.obj]
    v_act, v_pass = lex.trans[c.verb]
    if lang == "dis":
        if structure == "active":
            return [ag, f["nom"], pat, f["acc"], v_act]
        return [pat, f["nom"], ag, f["dat"], v_pass]
    d = f["det"]
    if structure == "active":
        return [d, ag, v_act, d, pat]
    return [d, pat, f["aux"], v_pass, f["by"], d, ag]


def filler(lex: Lexicon, lang: str, rng: random.Random) -> list[str]:
    """An intransitive sentence (no alternation)."""
    noun, verb = rng.choice(lex.animate), rng.choice(lex.intrans)
    return [noun, lex.function["nom"], verb] if lang == "dis" else [lex.function["det"], noun, verb]


def random_content(lex: Lexicon, alternation: str, rng: random.Random,
                   avoid: frozenset[str] = frozenset(), lang: str = "") -> Content:
    """Random lexical content (distinct nouns within the sentence), using no word in ``avoid``."""
    n_verbs = len(lex.dative if alternation == "dative" else lex.trans)
    for _ in range(1000):
        agent, obj, rec = rng.sample(range(len(lex.animate)), 3)
        if alternation == "dative":
            obj = rng.randrange(len(lex.things))
        c = Content(alternation, agent, rng.randrange(n_verbs), obj, rec if alternation == "dative" else -1)
        if not avoid or not (set(content_words(lex, c)) & avoid):
            return c
    raise RuntimeError("could not draw lexical content avoiding the given words")


def content_words(lex: Lexicon, c: Content) -> list[str]:
    """The content words (nouns and verb forms) of ``c``."""
    if c.alternation == "dative":
        return [lex.animate[c.agent], lex.things[c.obj], lex.animate[c.recipient], *lex.dative[c.verb]]
    return [lex.animate[c.agent], lex.animate[c.obj], *lex.trans[c.verb]]


# ----------------------------------------------------------------------------------------------
# Documents and corpora


@dataclass(frozen=True)
class CorpusSpec:
    """How documents are drawn (see the module docstring)."""

    persistence: float = 0.5        # P(copy the previous same-alternation structure in the document)
    base_rate: float = 0.5          # P(structure x) when not copying
    p_dative: float = 0.4           # sentence type shares; the rest are intransitive fillers
    p_voice: float = 0.4
    min_sentences: int = 3
    max_sentences: int = 6


class Grammar:
    """All languages' lexicons and the word-level vocabulary over them (fixed from the start of training, as
    the paper's tokenizers were trained on each model's final data mix)."""

    def __init__(self, languages: tuple[str, ...] = LANGUAGES):
        self.languages = tuple(languages)
        self.lex = {lang: make_lexicon(lang) for lang in self.languages}
        words = [DOC, END]
        for lang in self.languages:
            words += self.lex[lang].words()
        if len(set(words)) != len(words):
            raise AssertionError("lexicons overlap")
        self.vocab = words
        self.stoi = {w: i for i, w in enumerate(words)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str | list[str]) -> list[int]:
        toks = text.split() if isinstance(text, str) else text
        bad = [t for t in toks if t not in self.stoi]
        if bad:
            raise KeyError(f"words not in the vocabulary: {bad[:5]}")
        return [self.stoi[t] for t in toks]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.vocab[i] for i in ids)

    def language_of(self, word: str) -> str | None:
        for lang in self.languages:
            if word in set(self.lex[lang].words()):
                return lang
        return None

    def document(self, langs: list[str], spec: CorpusSpec, rng: random.Random) -> list[str]:
        """One document: ``<doc>`` then sentences, all in ``langs[0]``, or, with several ``langs`` (a
        code-switched document), each in a language drawn at random. Persistence is kept per alternation
        across the whole document (so across a switch too)."""
        n = rng.randint(spec.min_sentences, spec.max_sentences)
        last: dict[str, str] = {}
        out = [DOC]
        for _ in range(n):
            lang = langs[0] if len(langs) == 1 else rng.choice(langs)
            lex = self.lex[lang]
            u = rng.random()
            if u < spec.p_dative + spec.p_voice:
                alt = "dative" if u < spec.p_dative else "voice"
                if alt in last and rng.random() < spec.persistence:
                    structure = last[alt]
                else:
                    structure = STRUCTURES[alt][0] if rng.random() < spec.base_rate else STRUCTURES[alt][1]
                last[alt] = structure
                out += realise(lex, lang, random_content(lex, alt, rng), structure)
            else:
                out += filler(lex, lang, rng)
            out.append(END)
        return out

    def documents(self, langs: list[str], n_tokens: int, spec: CorpusSpec, rng: random.Random) -> list[list[int]]:
        """Documents (token ids) drawn until they hold ``n_tokens`` tokens: monolingual in ``langs[0]``, or
        code-switched between ``langs`` when several are given."""
        docs, total = [], 0
        while total < n_tokens:
            doc = [self.stoi[w] for w in self.document(langs, spec, rng)]
            docs.append(doc)
            total += len(doc)
        return docs


def mix_stream(pools: dict[str, list[list[int]]], shares: dict[str, float], n_tokens: int,
               rng: random.Random) -> list[int]:
    """A token stream of ``n_tokens`` whose documents come from the pools (one per language, or a
    code-switched pool) by the given shares; each pool is read in a shuffled order and recycled when
    exhausted, so the amount of distinct text per language is the pool's size."""
    names = [k for k, w in shares.items() if w > 0]
    weights = [shares[k] for k in names]
    order = {k: [] for k in names}
    out: list[int] = []
    while len(out) < n_tokens:
        k = rng.choices(names, weights)[0]
        if not order[k]:
            order[k] = list(range(len(pools[k])))
            rng.shuffle(order[k])
        out += pools[k][order[k].pop()]
    return out[:n_tokens]
