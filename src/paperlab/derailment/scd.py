"""Section 5 of the paper: summarise the conversation's trajectory, then predict derailment from the summary.

A *conversation trajectory summary* (SCD, Hua et al. 2024) describes how a conversation's dynamics evolve
(who pushes, who concedes, where the tone turns) rather than its technical content. The paper's pipeline
(``scripts/scd-script.py`` of the replication package) has two LLM calls per conversation, both greedy
(temperature 0):

1. **Summary.** The transcript of the comments before the first toxic one, one line per comment
   ``speaker: <<< text >>>`` joined by newlines, inside a 7-step *least-to-most* (LtM) guideline:
   main elements -> tension triggers (failed tool use / error messages, communication breakdown,
   rejection, violated conventions, past interactions, politics/ideology, technical disagreement,
   unprovoked) -> social orientation of the participants (circumplex) -> sentiments and tones (bitter
   frustration, impatience, irony, insults, mocking, threats, vulgarity, entitlement, identity attacks)
   -> conversational strategies -> combine -> refine; "write only the summary in double quotes".
2. **Prediction.** From the summary alone, the probability ``p`` in [0, 1] that the conversation derails
   and becomes toxic; an alarm is ``p >= threshold`` (0.5 in the stored results).

Our prompts (:data:`PROMPTS`) follow these steps in our own words: ``"ltm"`` with a definition of every
category (about 600 tokens, like the official prompt), ``"ltm_compact"`` the same seven steps and category
names without the definitions (about 300 tokens: on the default tier's machine the 135M model reads
prompts at roughly 40 tokens/s, so the quick tier uses it), and ``"hua"``, the plain SCD summary (no
GitHub-specific steps), the paper's weaker baseline prompt.

**How ``p`` is read** (``probability``):

- ``"stated"`` (the paper's way): the model is asked for one number; the first number in [0, 1] of its
  answer (a percentage is divided by 100). An answer without one is *unreadable*: it raises no alarm
  (``p = 0``) and is counted in the results.
- ``"yes_no"`` (default for small models, which rarely write a usable number): the model is asked
  whether the conversation will turn toxic, answering Yes or No; ``p = P(yes) / (P(yes) + P(no))`` over
  the first answer token's top-20 log-probabilities (every case/spacing variant of "yes" / "no" summed).
  Neither in the top 20: unreadable, as above.

Long transcripts are cut to fit a small model's context: each comment to ``max_comment_chars``, and the
transcript to its last ``max_chars`` characters (the oldest comments are dropped, with a note); the
official script passes the whole transcript to a 70B model with an 8k context.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from paperlab.core.models import ChatResult, GenerationParams, LanguageModel
from paperlab.derailment.data import Comment

# ---------------------------------------------------------------------------------------------- prompts

LTM_SUMMARY = """You will write a trajectory summary of a GitHub issue conversation: a short account of how the \
interaction between the participants develops, not of the technical problem. Work through these steps.

1. Note who takes part and what the exchange is broadly about.
2. Look for sources of tension. Typical ones on GitHub: a tool, build or piece of code that fails or throws \
errors; people misunderstanding each other or talking past each other; a request turned down quickly or without \
reasons; disagreement with the project's rules or workflow; references to earlier run-ins with the project; \
political or ideological differences; disagreement about a technical choice; hostility with no visible cause.
3. If there is tension, place each participant on the interpersonal circumplex: assured-dominant, \
gregarious-extraverted, warm-agreeable, unassuming-ingenuous, unassured-submissive, aloof-introverted, cold, \
or arrogant-calculating (for example, dominant people insist and take the floor; warm people reassure and \
thank; cold people dismiss others' problems; arrogant people boast or manipulate).
4. Describe each participant's sentiment and tone. Watch for: bitter frustration (strong exasperation); \
impatience (it is taking too long); irony; insults; mocking someone's mistake; threats about someone's work \
or standing; vulgar language; entitlement (demanding special attention or resources); attacks on identity \
or name-calling.
5. Note the conversational moves that signal a change of tone: rhetorical questions, backing claims with \
evidence, appeals to personal experience, hedging, comparisons, attacking the logic of another's argument, \
demanding clarification or justification.
6. Put steps 1-5 together into a short summary of the conversation's trajectory.
7. Revise it: leave out technical details and the content of the arguments, keep it brief and coherent, and \
focus on the moments where the tone turns personal and where the dynamics change.

Example of a finished trajectory summary:
"A user reports a crash and asks for help. A maintainer replies briefly and asks for more details. The user \
supplies them but sounds annoyed at having to repeat himself. A second maintainer suggests the problem is in \
the user's setup; the user rejects this sharply and questions the maintainers' competence, and the exchange \
ends tense and unresolved."

Now write the trajectory summary of this GitHub conversation.

Conversation:
{transcript}

Write only the trajectory summary, in double quotes."""

LTM_COMPACT = """Write a trajectory summary of the GitHub conversation below: how the interaction develops, \
not the technical content. Steps:
1. Who takes part, and what is it broadly about?
2. Sources of tension: failing tool/code or errors, misunderstanding, rejection, broken community conventions, \
past run-ins, politics/ideology, technical disagreement, or none visible.
3. Each participant's social orientation: dominant, extraverted, warm, unassuming, submissive, aloof, cold, \
or arrogant.
4. Tones: bitter frustration, impatience, irony, insults, mocking, threats, vulgarity, entitlement, identity \
attacks.
5. Moves that shift the tone: rhetorical questions, evidence, personal experience, hedging, comparisons, \
attacking someone's logic, demanding justification.
6. Combine steps 1-5 into a short summary.
7. Revise it: no technical details, brief, focused on where the tone turns personal and the dynamics change.

Example: "A user reports a crash; a maintainer asks for details; the user, annoyed at repeating himself, \
rejects the maintainer's explanation and the exchange ends tense."

Conversation:
{transcript}

Write only the trajectory summary, in double quotes."""

HUA_SUMMARY = """Read the conversation below and write a short summary of its dynamics: how the participants \
relate to each other, their intentions and strategies, and how their tone changes over time. Do not describe \
the technical content.

Conversation:
{transcript}

Write only the summary, in double quotes."""

_TOXIC = ("Toxic means a rude, disrespectful or unreasonable comment that would make someone likely to leave "
          "the discussion.")

PREDICT_STATED = """Below is a trajectory summary of a GitHub conversation: it describes how the discussion \
evolved (tension, strategies, tone) without technical details.

How likely is it that this conversation derails and turns toxic? """ + _TOXIC + """

Trajectory summary: {summary}

Answer with one number between 0 and 1, rounded to two decimals, and nothing else."""

PREDICT_YES_NO = """Below is a trajectory summary of a GitHub conversation: it describes how the discussion \
evolved (tension, strategies, tone) without technical details.

Will this conversation derail and turn toxic? """ + _TOXIC + """

Trajectory summary: {summary}

Answer with one word: Yes or No."""

PROMPTS = {"ltm": LTM_SUMMARY, "ltm_compact": LTM_COMPACT, "hua": HUA_SUMMARY}
PREDICT = {"stated": PREDICT_STATED, "yes_no": PREDICT_YES_NO}


# ---------------------------------------------------------------------------------------------- transcript


def transcript(comments: Sequence[Comment], max_comment_chars: int = 600, max_chars: int = 6000) -> str:
    """``speaker: <<< text >>>`` per comment, joined by newlines (the official format), cut to fit.

    Each comment's whitespace is collapsed and its text cut to ``max_comment_chars`` (with "…"); when
    the whole is longer than ``max_chars``, the oldest comments are dropped and a note says how many."""
    lines = []
    for c in comments:
        text = " ".join(c.text.split())
        if len(text) > max_comment_chars:
            text = text[:max_comment_chars].rstrip() + " …"
        lines.append(f"{c.author}: <<< {text} >>>")
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if kept and size + len(line) + 1 > max_chars:
            break
        kept.append(line)
        size += len(line) + 1
    kept.reverse()
    dropped = len(lines) - len(kept)
    head = [f"[{dropped} earlier comment{'s' if dropped > 1 else ''} omitted]"] if dropped else []
    return "\n".join(head + kept)


# ---------------------------------------------------------------------------------------------- parsing


def parse_summary(text: str) -> str:
    """The summary inside the first pair of double quotes (straight or curly), else the whole answer."""
    m = re.search(r"[\"“](.+?)[\"”]", text, re.S)
    inner = m.group(1).strip() if m else ""
    return inner if len(inner) >= 20 else text.strip().strip("\"“”").strip()


_NUMBER = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(%?)")


def parse_probability(text: str) -> float | None:
    """The first number of an answer that is a probability: ``0.73`` -> 0.73, ``73%`` -> 0.73; None if none."""
    for m in _NUMBER.finditer(text):
        v = float(m.group(1))
        if m.group(2) == "%":
            v /= 100
        if 0.0 <= v <= 1.0:
            return v
    return None


def yes_no_probability(result: ChatResult) -> float | None:
    """``P(yes) / (P(yes) + P(no))`` from the first generated token's top log-probabilities; None when
    neither word is among them (or no log-probabilities came back)."""
    if not result.logprobs:
        return None
    first = result.logprobs[0]
    pairs = list(first.top) or [(first.token, first.logprob)]
    mass = {"yes": 0.0, "no": 0.0}
    seen = set()
    for tok, lp in pairs:
        word = tok.strip().lower()
        if word in mass and tok not in seen:
            seen.add(tok)
            mass[word] += math.exp(lp)
    total = mass["yes"] + mass["no"]
    return mass["yes"] / total if total > 0 else None


# ---------------------------------------------------------------------------------------------- predictor


@dataclass
class Prediction:
    """One conversation through the pipeline. ``probability`` is 0 when the answer was unreadable."""

    probability: float
    readable: bool
    summary: str
    answer: str
    summary_finish: str = "stop"


@dataclass
class SCDPredictor:
    """Summarise-then-predict with any :class:`~paperlab.core.models.LanguageModel` (``load_lm``)."""

    lm: LanguageModel
    prompt: str = "ltm"
    probability: str = "yes_no"
    summary_tokens: int = 200
    max_comment_chars: int = 600
    max_chars: int = 6000
    seed: int = 0

    def __post_init__(self):
        if self.prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {sorted(PROMPTS)}")
        if self.probability not in PREDICT:
            raise ValueError(f"probability must be one of {sorted(PREDICT)}")

    def summary_messages(self, comments: Sequence[Comment]) -> list[dict[str, str]]:
        text = transcript(comments, self.max_comment_chars, self.max_chars)
        return [{"role": "user", "content": PROMPTS[self.prompt].format(transcript=text)}]

    def predict_messages(self, summary: str, probability: str | None = None) -> list[dict[str, str]]:
        return [{"role": "user", "content": PREDICT[probability or self.probability].format(summary=summary)}]

    def _summary_params(self) -> GenerationParams:
        return GenerationParams(temperature=0.0, max_tokens=self.summary_tokens, seed=self.seed)

    def _predict_params(self, probability: str) -> GenerationParams:
        if probability == "yes_no":
            return GenerationParams(temperature=0.0, max_tokens=2, seed=self.seed, logprobs=True, top_logprobs=20)
        return GenerationParams(temperature=0.0, max_tokens=12, seed=self.seed)

    def summarise(self, prefixes: Sequence[Sequence[Comment]]) -> list[ChatResult]:
        """Step 1 for each prefix (greedy, cached by the backend wrapper)."""
        return self.lm.chat([self.summary_messages(p) for p in prefixes], self._summary_params())

    def predict_from_summaries(self, summaries: Sequence[ChatResult], probability: str | None = None
                               ) -> list[Prediction]:
        """Step 2 for each summary: the probability read as ``probability`` (default: the predictor's)."""
        how = probability or self.probability
        texts = [parse_summary(s.text) for s in summaries]
        answers = self.lm.chat([self.predict_messages(t, how) for t in texts], self._predict_params(how))
        out = []
        for s, text, a in zip(summaries, texts, answers, strict=True):
            p = yes_no_probability(a) if how == "yes_no" else parse_probability(a.text)
            out.append(Prediction(probability=0.0 if p is None else float(p), readable=p is not None,
                                  summary=text, answer=a.text, summary_finish=s.finish_reason))
        return out

    def predict(self, prefixes: Sequence[Sequence[Comment]], probability: str | None = None) -> list[Prediction]:
        return self.predict_from_summaries(self.summarise(prefixes), probability)
