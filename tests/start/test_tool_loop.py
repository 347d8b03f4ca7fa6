"""The tool loop and Hint-infer on a scripted model: real sandbox runs, real hint plans."""

import re

import pytest

from paperlab.start.hint_infer import VERIFIED_HINT, HintPlan, HintPolicy
from paperlab.start.sandbox import Limits, sandbox_status
from paperlab.start.tool_loop import FINAL_CALL_NOTICE, LoopConfig, open_code, render_prompt, solve

pytestmark = pytest.mark.skipif(not sandbox_status()[0], reason=f"sandbox unavailable: {sandbox_status()[1]}")

CFG = LoopConfig(max_calls=3, sandbox=Limits(wall_seconds=20))
PROMPT = render_prompt("What is 4821 * 377?")


def answer_from_output(prompt: str) -> str:
    """Write code once; after the output, box the number the code printed."""
    outs = re.findall(r"```output\n(.*?)\n```", prompt, flags=re.S)
    if outs:
        return f"So the product is \\boxed{{{outs[-1].strip()}}}."
    return "Let me compute it.\n```python\nprint(4821 * 377)\n```\nDone."


def test_code_runs_in_sandbox_and_output_feeds_back(scripted):
    lm = scripted(answer_from_output)
    t = solve(lm, PROMPT, CFG)
    assert t.n_calls == 1 and t.calls[0].meta["ok"]
    assert "```output\n1817517\n```" in t.text
    assert t.answer == "1817517" and t.stop_reason == "end"
    # the first request stopped at the closing fence: the text after it was never part of the turn
    assert "Done." not in t.text


def test_state_persists_across_cells_and_errors_are_shown(scripted):
    def script(prompt):
        n = prompt.count("```output")
        return ["```python\nx = 6\nprint(x)\n```", "```python\nprint(x * 7)\n```", "```python\n1/0\n```",
                "\\boxed{42}"][min(n, 3)]

    t = solve(scripted(script), PROMPT, CFG)
    outs = re.findall(r"```output\n(.*?)\n```", t.text, flags=re.S)
    assert outs[:2] == ["6", "42"]
    assert outs[2].startswith("ZeroDivisionError")
    assert [c.meta["ok"] for c in t.calls] == [True, True, False]


def test_call_limit_and_final_call_notice(scripted):
    lm = scripted(lambda prompt: "```python\nprint('again')\n```\nthe end")
    t = solve(lm, PROMPT, LoopConfig(max_calls=2))
    assert t.n_calls == 2
    outputs = [s.text for s in t.steps if s.kind == "output"]
    assert FINAL_CALL_NOTICE not in outputs[0] and FINAL_CALL_NOTICE in outputs[1]
    # after the last call the model generates without code stops, and its code is not run
    assert "```\n" not in lm.requests[-1][1].stop
    assert t.stop_reason == "end"


def test_hint_at_end_brings_the_tool_in(scripted):
    def script(prompt):
        if "Python here is a good idea" in prompt and "```output" not in prompt:
            return "```python\nprint(4821 * 377)\n```"
        if "```output" in prompt:
            return answer_from_output(prompt)
        return "I think it is \\boxed{1800000}."

    plain = solve(scripted(script), PROMPT, CFG)
    hinted = solve(scripted(script), PROMPT, CFG, hints=HintPlan(HintPolicy(at_end=1), "p1"))
    assert plain.n_calls == 0 and plain.answer == "1800000"
    assert hinted.n_calls == 1 and hinted.answer == "1817517"
    assert hinted.steps[1].kind == "hint" and VERIFIED_HINT in hinted.steps[1].text


@pytest.mark.parametrize("repeats", [1, 2, 3])
def test_repeated_hints_inject_R_times(scripted, repeats):
    t = solve(scripted(lambda p: "The answer is \\boxed{7}."), PROMPT, CFG,
              hints=HintPlan(HintPolicy(inline=0, at_end=repeats), "p2"))
    assert t.n_hints == repeats
    assert t.text.count("\\boxed{7}") == repeats + 1


def test_hint_at_terminator_truncates_there(scripted):
    def script(prompt):
        if prompt.endswith("idea.\n"):
            return "\\boxed{1}"
        return "First step. Waiting is fine. Wait, I doubt this. More text \\boxed{2}"

    t = solve(scripted(script), PROMPT, CFG, hints=HintPlan(HintPolicy(inline=1, at_end=0), "p3"))
    assert t.steps[0].text == "First step. Waiting is fine. "  # "Waiting" is not the terminator "Wait"
    assert t.steps[1].kind == "hint" and t.steps[1].meta["at"] == "Wait"
    assert "I doubt this" not in t.text and t.answer == "1"


def test_code_opener_hint_opens_a_block(scripted):
    plan = HintPlan(HintPolicy(at_end=1, code_opener=True), "p4")
    seen = []

    def script(prompt):
        seen.append(prompt)
        if prompt.rstrip().endswith("```python"):
            return "print(2 + 3)\n```"
        if "```output" in prompt:
            return "\\boxed{5}"
        return "\\boxed{4}"

    t = solve(scripted(script), PROMPT, CFG, hints=plan)
    assert t.n_calls == 1 and t.answer == "5"


def test_open_code_detection():
    assert open_code("text ```python\nx = 1\n") == "x = 1"
    assert open_code("```python\nx = 1\n```\n") is None
    assert open_code("no code") is None


def test_time_and_token_limits(scripted):
    t = solve(scripted(lambda p: " ".join(["word"] * 50)), PROMPT,
              LoopConfig(max_tokens_per_segment=20, max_total_tokens=45))
    assert t.stop_reason == "token_limit" and t.tokens == 45
    t = solve(scripted(lambda p: "```python\nimport time; time.sleep(0.3)\n```"), PROMPT,
              LoopConfig(max_calls=50, max_seconds=0.5))
    assert t.stop_reason == "time_limit" and 1 <= t.n_calls < 50


def test_trajectory_roundtrip(scripted):
    t = solve(scripted(answer_from_output), PROMPT, CFG)
    from paperlab.start.tool_loop import Trajectory

    d = t.to_dict()
    assert Trajectory.from_dict(d).text == t.text and d["n_calls"] == 1 and d["answer"] == "1817517"


def test_hint_at_segment_length_keeps_the_total_budget(scripted):
    ramble = " ".join(["blah"] * 100)

    def script(prompt):
        if "good idea" in prompt and "```output" not in prompt:
            return "```python\nprint(2 + 2)\n```"
        return ramble

    cfg = LoopConfig(max_tokens_per_segment=20, max_total_tokens=60)
    plain = solve(scripted(script), PROMPT, cfg)
    hinted = solve(scripted(script), PROMPT, cfg, hints=HintPlan(HintPolicy(inline=0, at_end=1), "p5"))
    off = solve(scripted(script), PROMPT, cfg, hints=HintPlan(HintPolicy(inline=0, at_end=1, at_length=False), "p5"))
    assert plain.n_calls == 0 and plain.tokens == 60 and plain.stop_reason == "token_limit"
    assert hinted.steps[1].meta == {"at": "length"} and hinted.n_calls == 1 and hinted.tokens <= 60
    assert off.n_hints == 0
