"""Fixtures of the feedback_edit tests: a seeded text backend for the pipeline's bookkeeping.

``SeededLM`` is a real :class:`~paperlab.core.models.LanguageModel` whose answer is a hash of (its
input, its seed): the pipeline's structure (which request goes where, nesting, seeds, selection,
token accounting) is tested on it exactly and in milliseconds; the real small LM runs in the
end-to-end tests.
"""

from __future__ import annotations

import hashlib

import pytest

from paperlab.core.models import ChatResult, LanguageModel, TokenLogprob


def _h(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


class SeededLM(LanguageModel):
    """Answer = a hash of (last message, seed); as a judge, log P(Yes) - log P(No) = a hash of the
    judged text mapped to [-2, 2] (``judge_value``)."""

    id = "seeded-test-lm"

    def __init__(self):
        self.requests = []

    @staticmethod
    def judge_value(text: str) -> float:
        return (_h("judge", text) % 4001) / 1000 - 2.0

    def _chat_one(self, messages, params):
        self.requests.append((list(messages), params))
        last = messages[-1]["content"]
        n_prompt = sum(len(m["content"].split()) for m in messages)
        if params.logprobs:
            v = self.judge_value(last)
            yes, no = (-0.1, -0.1 - v) if v >= 0 else (-0.1 + v, -0.1)
            return ChatResult("Yes" if v >= 0 else "No", "stop", n_prompt, 1,
                              [TokenLogprob("Yes" if v >= 0 else "No", max(yes, no),
                                            [("Yes", yes), ("No", no), ("Maybe", -9.0)])])
        text = f"reply-{_h(last, params.seed) % 100000} The answer is {_h(last, params.seed) % 7}."
        return ChatResult(text, "stop", n_prompt, len(text.split()))


@pytest.fixture
def seeded_lm():
    return SeededLM()
