"""Hint-infer (START §2.2, Fig. 1): truncate the response at predefined terminators and at its end, inject a
hint from the Hint-Library there, and let decoding resume with the code interpreter. Repeating the hint at
the end of the response R times is START's sequential test-time scaling.

Hint-Library. The one hint quoted in the paper's abstract is :data:`VERIFIED_HINT`. The rest of the paper's
library (math hints; code hints that ask to test against the sample cases) is not in our sources, so the
other entries below are ours, written in the same voice and marked as such. Hints are chosen per
injection by a hash of (problem, injection number): the same problem gets the same hints in every run.

Terminators. The paper truncates at "predefined terminators" and at the end of the response; we use the
long-CoT words "Wait" and "Alternatively" (at a word start, outside code), the end of thinking
``</think>``, and the end of the response (unverified list, see the fact sheet).

:class:`HintPolicy` decides where hints go: ``inline`` = at most this many hints at terminators inside
the response; ``at_end`` = how many times a hint is injected when the model ends its answer (1 = Hint-infer,
R > 1 = repeated hints, sequential test-time scaling); ``at_length`` = a segment that runs out of tokens
(``max_tokens_per_segment``) counts as an end of the response too (ours: a small model often rambles until
its budget instead of ending; every condition has the same total token budget, so a hint never buys extra
tokens). ``code_opener`` appends ```` ```python ```` to each
hint (off by default: the paper's hints are words; a tiny model may need the opener to write code at all —
reported as a separate condition, never mixed with the faithful one).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from paperlab.start.tool_loop import CODE_OPEN, Trajectory

VERIFIED_HINT = "Wait, maybe using Python here is a good idea."

#: (text, source) — the math/arithmetic Hint-Library
MATH_HINTS: tuple[tuple[str, str], ...] = (
    (VERIFIED_HINT, "START abstract"),
    ("Wait, I can use Python to check if my calculation is correct.", "ours"),
    ("Wait, let me write a short Python program to compute this exactly.", "ours"),
    ("Wait, I should verify the result with Python before answering.", "ours"),
)
#: hints for code problems (the paper tests against sample cases; ours)
CODE_HINTS: tuple[tuple[str, str], ...] = (
    ("Wait, I should test my code on the sample inputs with Python.", "ours"),
    ("Wait, maybe using Python here is a good idea to check the examples.", "ours"),
)
TERMINATORS = ("Wait", "Alternatively", "</think>")


@dataclass(frozen=True)
class HintPolicy:
    """Where and how often hints are injected (see the module docstring)."""

    inline: int = 1
    at_end: int = 1
    at_length: bool = True
    code_opener: bool = False
    kind: str = "math"

    @property
    def name(self) -> str:
        base = "hint" if self.at_end <= 1 else f"hint_x{self.at_end}"
        return base + ("_opener" if self.code_opener else "")


class HintPlan:
    """The Hint-infer state of one solution: which hints were used, which come next."""

    def __init__(self, policy: HintPolicy, problem_id: str):
        self.policy = policy
        self.problem_id = problem_id
        self.library = CODE_HINTS if policy.kind == "code" else MATH_HINTS
        self.inline_used = 0
        self.end_used = 0

    def _next(self) -> str:
        k = self.inline_used + self.end_used
        h = int(hashlib.sha256(f"{self.problem_id}|{k}".encode()).hexdigest()[:8], 16)
        # the verified hint first; later injections draw from the library
        text = self.library[0][0] if k == 0 else self.library[h % len(self.library)][0]
        if self.policy.code_opener:
            text += f"\n{CODE_OPEN}\n"
        return " " + text + ("" if self.policy.code_opener else "\n")

    def terminators(self, traj: Trajectory) -> tuple[str, ...]:
        return TERMINATORS if self.inline_used < self.policy.inline else ()

    def at_terminator(self, traj: Trajectory, terminator: str) -> str:
        text = self._next()
        self.inline_used += 1
        return text

    def at_end(self, traj: Trajectory) -> str | None:
        if self.end_used >= self.policy.at_end:
            return None
        text = self._next()
        self.end_used += 1
        return text

    def at_length(self, traj: Trajectory) -> str | None:
        return self.at_end(traj) if self.policy.at_length else None
