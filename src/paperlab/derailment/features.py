"""Section 4 of the paper (the markers of derailment) as features, and the feature classifier baseline.

The paper's analysis of derailed conversations finds, before the first toxic comment, more
**second-person pronouns** (talk turns personal: "you said", "your PR"), more **negation**, the tones
**Bitter frustration** and **Impatience**, and a **contributor-vs-outsider** dynamic (GitHub's
``author_association``: outsiders = NONE, insiders = OWNER/MEMBER/COLLABORATOR/CONTRIBUTOR). Each becomes a
number computed from the thread's prefix only (the comments before the first toxic one):

================================  ==================================================================
linguistic rates                  per 100 word tokens over the prefix: second-person pronouns,
                                  negations, bitter-frustration and impatience lexicon hits, first-
                                  person singular, questions, exclamations, all-caps words, politeness
last comment                      the same four markers (2nd person, negation, frustration,
                                  impatience) in the latest comment: where the conversation stands now
escalation                        each marker's rate in the later half of the prefix minus the earlier
dynamics                          log(1 + comments), distinct authors per comment, the issue author's
                                  (OP's) share of comments, turn alternation, OP has the last word,
                                  mean log comment length
association (when known)          outsiders' share of turns, OP is an outsider, the latest comment is
                                  an outsider's, outsider/insider switches per turn
================================  ==================================================================

Text inside code blocks (`` ``` ``), inline code and quoted lines (``> ...``: someone else's words) is
removed before counting. The tone lexicons are ours (the paper annotates tones by hand and publishes no
lexicon; vaderSentiment/empath are not in the venv and do not name these tones); the experiment checks
them against the annotated ``tbdf`` tones.

:class:`FeatureClassifier` is the baseline: standardised features, L2 logistic regression with balanced
class weights (scikit-learn), so a probability >= 0.5 is the natural alarm, as for the LLM pipeline. It is
trained on each training thread's whole prefix (one example per conversation, as the paper's setup) for
the thread-level comparison, and on every prefix of each thread (each thread weighted once) for early
warning (:meth:`FeatureClassifier.training_rows` says why).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from paperlab.derailment.data import INSIDER, Comment, Thread

# ---------------------------------------------------------------------------------------------- lexicons

SECOND_PERSON = frozenset("you your yours yourself yourselves you're youre you've youve you'll youll you'd youd "
                          "ya u ur".split())
FIRST_PERSON_SINGULAR = frozenset("i me my mine myself i'm im i've ive i'll i'd".split())
NEGATION = frozenset("not no never nothing nobody none nowhere neither nor cannot cant can't don't dont doesn't "
                     "doesnt didn't didnt isn't isnt aren't arent wasn't wasnt weren't werent won't wont wouldn't "
                     "wouldnt shouldn't shouldnt couldn't couldnt haven't havent hasn't hasnt hadn't hadnt "
                     "mustn't without".split())
# Bitter frustration: strong frustration, exasperation, blame (our lexicon; stems match word starts).
FRUSTRATION_WORDS = ("frustrat", "annoy", "ridiculous", "absurd", "useless", "pointless", "terrible", "horrible",
                     "awful", "garbage", "crap", "wtf", "damn", "hell", "sick", "tired", "insane",
                     "unacceptable", "disappoint", "nonsense", "stupid", "baffl", "seriously",
                     "unbelievable", "pathetic", "joke", "hostile", "rude", "worst", "hate", "shame", "mess",
                     "waste", "wasted", "wasting", "ugh", "sigh", "argh", "jeez", "geez", "irritat", "infuriat",
                     "angry", "outrage", "toxic", "ignored", "ignoring", "arrogant")
FRUSTRATION_PHRASES = ("fed up", "sick of", "tired of", "waste of time", "makes no sense", "doesn't make sense",
                       "for god's sake", "what the", "are you kidding", "give up", "gave up", "no idea why",
                       "beyond me", "how hard", "not my problem", "off topic")
# Impatience: it takes too long; nudging for progress (our lexicon).
IMPATIENCE_WORDS = ("still", "yet", "already", "again", "waiting", "waited", "eta", "asap", "urgent", "bump", "ping",
                    "ages", "forever", "months", "years", "weeks", "finally", "hurry", "delay")
IMPATIENCE_PHRASES = ("any update", "any news", "any progress", "when will", "how long", "how much longer",
                      "still waiting", "still not", "still no", "still broken", "over a year", "so long",
                      "long time", "still open", "+1", "any plans", "is this dead", "what's the status",
                      "what is the status", "still happening", "still an issue")
POLITE = ("please", "thanks", "thank", "thx", "appreciate", "appreciated", "sorry", "kindly", "cheers")

_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_URL = re.compile(r"https?://\S+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*|\+1")


def clean_text(text: str) -> str:
    """Drop code blocks, inline code, URLs and quoted lines (``> ...``): what remains is the author's prose."""
    text = _CODE_BLOCK.sub(" ", text)
    text = _INLINE_CODE.sub(" ", text)
    text = _URL.sub(" ", text)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def tokens(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


@functools.cache
def _matcher(stems: tuple[str, ...]) -> re.Pattern:
    """One regex per lexicon: entries of 5+ letters match as word starts (stems), shorter ones whole."""
    alts = [re.escape(s) + (r"[a-z']*" if len(s) >= 5 else "") for s in stems]
    return re.compile("(?:" + "|".join(alts) + ")")


def _stem_hits(toks: Sequence[str], stems: tuple[str, ...]) -> int:
    m = _matcher(stems)
    return sum(m.fullmatch(t) is not None for t in toks)


def _phrase_hits(text: str, phrases: Sequence[str]) -> int:
    low = text.lower().replace("’", "'")
    return sum(low.count(p) for p in phrases)


@dataclass(frozen=True)
class CommentMarkers:
    """Counts in one comment's prose."""

    n_tokens: int
    second_person: int
    first_person: int
    negation: int
    frustration: int
    impatience: int
    questions: int
    exclamations: int
    caps: int
    polite: int


@functools.lru_cache(maxsize=1 << 16)  # prefix-wise scoring revisits every comment once per longer prefix
def comment_markers(text: str) -> CommentMarkers:
    prose = clean_text(text)
    toks = tokens(prose)
    raw = _WORD.findall(prose)
    return CommentMarkers(
        n_tokens=len(toks),
        second_person=sum(t in SECOND_PERSON for t in toks),
        first_person=sum(t in FIRST_PERSON_SINGULAR for t in toks),
        negation=sum(t in NEGATION or t.endswith("n't") for t in toks),
        frustration=_stem_hits(toks, FRUSTRATION_WORDS) + _phrase_hits(prose, FRUSTRATION_PHRASES),
        impatience=_stem_hits(toks, IMPATIENCE_WORDS) + _phrase_hits(prose, IMPATIENCE_PHRASES),
        questions=prose.count("?"),
        exclamations=prose.count("!"),
        caps=sum(len(w) >= 3 and w.isupper() for w in raw),
        polite=_stem_hits(toks, POLITE),
    )


KEY_MARKERS = ("second_person", "negation", "frustration", "impatience")
RATE_MARKERS = KEY_MARKERS + ("first_person", "questions", "exclamations", "caps", "polite")


def _rates(ms: Sequence[CommentMarkers]) -> dict[str, float]:
    """Per 100 tokens over a run of comments (0 when it has no prose)."""
    n = sum(m.n_tokens for m in ms)
    return {k: 100.0 * sum(getattr(m, k) for m in ms) / n if n else 0.0 for k in RATE_MARKERS}


# ---------------------------------------------------------------------------------------------- thread features

BASE_FEATURES = (
    [f"rate_{k}" for k in RATE_MARKERS]
    + [f"last_{k}" for k in KEY_MARKERS]
    + [f"escalation_{k}" for k in KEY_MARKERS]
    + ["log_comments", "authors_per_comment", "op_share", "alternation", "op_last", "mean_log_length"]
)
ASSOCIATION_FEATURES = ["outsider_share", "op_outsider", "last_outsider", "association_switches"]


def prefix_features(comments: Sequence[Comment], association: bool = False) -> dict[str, float]:
    """The feature vector of a run of comments (a thread's prefix), as a name -> value dict."""
    if not comments:
        raise ValueError("a thread prefix needs at least one comment")
    ms = [comment_markers(c.text) for c in comments]
    f = {f"rate_{k}": v for k, v in _rates(ms).items()}
    last = _rates(ms[-1:])
    f |= {f"last_{k}": last[k] for k in KEY_MARKERS}
    half = len(ms) // 2
    early, late = _rates(ms[:half]), _rates(ms[half:])
    f |= {f"escalation_{k}": (late[k] - early[k]) if half else 0.0 for k in KEY_MARKERS}
    authors = [c.author for c in comments]
    op = authors[0]
    n = len(comments)
    f |= {
        "log_comments": math.log1p(n),
        "authors_per_comment": len(set(authors)) / n,
        "op_share": sum(a == op for a in authors) / n,
        "alternation": sum(a != b for a, b in zip(authors, authors[1:], strict=False)) / (n - 1) if n > 1 else 0.0,
        "op_last": float(n > 1 and authors[-1] == op),
        "mean_log_length": float(np.mean([math.log1p(m.n_tokens) for m in ms])),
    }
    if association:
        out = [c.association not in INSIDER for c in comments]  # unknown counts as outsider (none in use)
        f |= {
            "outsider_share": sum(out) / n,
            "op_outsider": float(out[0]),
            "last_outsider": float(out[-1]),
            "association_switches": sum(a != b for a, b in zip(out, out[1:], strict=False)) / n,
        }
    return f


def feature_names(association: bool) -> list[str]:
    return BASE_FEATURES + (ASSOCIATION_FEATURES if association else [])


def feature_matrix(prefixes: Sequence[Sequence[Comment]], association: bool = False) -> np.ndarray:
    names = feature_names(association)
    rows = (prefix_features(p, association) for p in prefixes)
    return np.array([[f[k] for k in names] for f in rows], dtype=float).reshape(-1, len(names))


# ---------------------------------------------------------------------------------------------- classifier


class FeatureClassifier:
    """The markers baseline: standardised features -> L2 logistic regression, balanced class weights,
    trained on whole prefixes (``train_prefixes="full"``, default) or on every prefix (``"all"``).

    ``association`` adds the contributor-vs-outsider features; ``"auto"`` uses them only when every
    training thread's prefix has ``author_association`` (in the packaged data the derailed file lacks it,
    so they would encode which file a thread came from, i.e. the label).
    """

    def __init__(self, association: bool | str = "auto", C: float = 1.0, train_prefixes: str = "full",
                 max_train_prefixes: int = 30, seed: int = 0):
        if train_prefixes not in ("all", "full"):
            raise ValueError("train_prefixes must be 'all' or 'full'")
        self.association_setting = association
        self.C, self.seed = C, seed
        self.train_prefixes, self.max_train_prefixes = train_prefixes, max_train_prefixes
        self.association = False
        self.model = None

    def training_rows(self, threads: Sequence[Thread]) -> tuple[list[Sequence[Comment]], np.ndarray, np.ndarray]:
        """(prefixes, labels, weights). ``full``: each thread's whole prefix. ``all``: every prefix
        ``c_1..c_k`` (the last ``max_train_prefixes`` of them), labelled with the thread's label and weighted
        1/(number used) so each thread counts once. Weights also balance the two classes (by threads).

        ``full`` is the paper's setup (one example per conversation) and the thread-level baseline. ``all``
        is for scoring after every comment (early warning): the whole prefix of a toxic thread stops before
        its toxic comment while a non-toxic thread runs to its end, and non-derailed toxic threads have 1-2
        comments before toxicity, so a ``full`` classifier learns "short and few comments per author means
        toxic" and fires on the first comment of nearly every thread."""
        rows, labels, weights = [], [], []
        n_pos = sum(t.label for t in threads)
        class_w = {1: len(threads) / (2 * max(n_pos, 1)), 0: len(threads) / (2 * max(len(threads) - n_pos, 1))}
        for t in threads:
            n = len(t.prefix)
            ks = [n] if self.train_prefixes == "full" else list(range(max(1, n - self.max_train_prefixes + 1), n + 1))
            rows += [t.prefix[:k] for k in ks]
            labels += [t.label] * len(ks)
            weights += [class_w[t.label] / len(ks)] * len(ks)
        return rows, np.array(labels), np.array(weights)

    def fit(self, threads: Sequence[Thread]) -> FeatureClassifier:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.association_setting == "auto":
            self.association = all(t.has_association for t in threads)
        else:
            self.association = bool(self.association_setting)
        rows, y, w = self.training_rows(threads)
        X = feature_matrix(rows, self.association)
        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000,
                                                                        random_state=self.seed))
        self.model.fit(X, y, logisticregression__sample_weight=w)
        return self

    def predict_proba(self, prefixes: Sequence[Sequence[Comment]]) -> np.ndarray:
        """P(the conversation turns toxic) for each prefix (a run of comments)."""
        if self.model is None:
            raise RuntimeError("fit the classifier first")
        return self.model.predict_proba(feature_matrix(prefixes, self.association))[:, 1]

    def coefficients(self) -> dict[str, float]:
        """Standardised logistic-regression weights (log-odds per standard deviation of a feature)."""
        lr = self.model[-1]
        return dict(zip(feature_names(self.association), map(float, lr.coef_[0]), strict=True))
