"""The SCD pipeline: transcript format, parsing, probability readers, and the default LM end to end."""

from __future__ import annotations

import math

import pytest

from paperlab.core.models import ChatResult, TokenLogprob, load_lm
from paperlab.derailment.data import Comment
from paperlab.derailment.scd import (
    LTM_SUMMARY,
    SCDPredictor,
    parse_probability,
    parse_summary,
    transcript,
    yes_no_probability,
)

THREAD = (Comment("alice", "The build fails with error 42 on Linux."),
          Comment("bob", "Works for me. Did you read the README?"),
          Comment("alice", "Of course I did. This is the third time I report it and nobody cares."))


def test_transcript_is_the_official_format_and_keeps_the_latest_comments():
    assert transcript(THREAD[:2]).splitlines() == ["alice: <<< The build fails with error 42 on Linux. >>>",
                                                   "bob: <<< Works for me. Did you read the README? >>>"]
    long = [Comment(f"u{i}", "word " * 50) for i in range(10)]
    cut = transcript(long, max_comment_chars=60, max_chars=300)
    lines = cut.splitlines()
    assert lines[0].startswith("[") and "earlier comments omitted" in lines[0]
    assert lines[-1].startswith("u9: <<< ") and lines[-1].endswith(" … >>>") and len(cut) <= 300 + len(lines[0])
    assert "{transcript}" in LTM_SUMMARY and "double quotes" in LTM_SUMMARY


@pytest.mark.parametrize("text,want", [("0.73", 0.73), ("Probability: 73%", 0.73), ("1.5, no: 0.2", 0.2),
                                       (".4", 0.4), ("1", 1.0), ("I cannot tell", None)])
def test_parse_probability(text, want):
    assert parse_probability(text) == (None if want is None else pytest.approx(want))


def test_parse_summary_prefers_the_quoted_text():
    assert parse_summary('Here it is: "Alice reports a bug; Bob dismisses it and she gets angry."') == \
        "Alice reports a bug; Bob dismisses it and she gets angry."
    assert parse_summary("No quotes at all, just a summary of events.") == "No quotes at all, just a summary of events."


def test_yes_no_probability_sums_variants_over_the_top_alternatives():
    top = [("Yes", math.log(0.5)), (" yes", math.log(0.1)), ("No", math.log(0.2)), ("Maybe", math.log(0.2))]
    r = ChatResult("Yes", logprobs=[TokenLogprob("Yes", math.log(0.5), top)])
    assert yes_no_probability(r) == pytest.approx(0.6 / 0.8)
    assert yes_no_probability(ChatResult("Maybe", logprobs=[TokenLogprob("Maybe", 0.0, [("Maybe", 0.0)])])) is None
    assert yes_no_probability(ChatResult("Yes")) is None


def test_default_lm_pipeline_gives_probabilities():
    pred = SCDPredictor(load_lm("default", n_ctx=4096), prompt="hua", summary_tokens=32)
    a = pred.predict([THREAD])[0]
    assert 0.0 <= a.probability <= 1.0 and a.readable and a.summary and a.answer.strip()
    assert a.answer.strip().lower().startswith(("yes", "no"))
    stated = pred.predict([THREAD], probability="stated")[0]
    assert stated.summary == a.summary                       # step 2 reads the same summary
    assert stated.readable == (parse_probability(stated.answer) is not None)
