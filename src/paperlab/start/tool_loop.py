"""Tool-integrated reasoning (START §2, the ToRA-style loop): generate until a ```python block closes, run
it in the sandbox, append the output block, continue.

One *segment* is one generation request. The conversation is rendered once with the chat template and then
continued as raw text (``lm.complete``), so the model's own text, code outputs and hints form one assistant
turn, as in the paper's trajectories::

    <|im_start|>user\\n{problem}\\n{instruction}<|im_end|>\\n<|im_start|>assistant\\n
    ...reasoning...```python\\n{code}\\n```            <- generation stops at the closing fence
    ```output\\n{stdout or error}\\n```\\n              <- appended by the loop (sandboxed run)
    ...reasoning continues...\\boxed{answer}<|im_end|>

Settings follow CoRT's inference defaults (the nearest public START-style loop; the START values are not
published): at most ``max_calls`` executions (CoRT: 10), 30 s per call, T 0.6, top-p 0.95; the output of
the last allowed execution carries the final-call notice (:data:`FINAL_CALL_NOTICE`), after which code
is no longer run and the model must finish in words. Earlier error-free cells are re-run (output
discarded) before a new one, so variables persist like in a notebook (CoRT's executor does the same).

Hints (:mod:`paperlab.start.hint_infer`) plug in through :class:`HintPlan`: generation also stops at
the plan's terminators and at the end of the response, and the plan may inject a hint there.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from paperlab.core.models import GenerationParams, LanguageModel
from paperlab.start.answers import extract_answer
from paperlab.start.sandbox import Limits, run_python

#: CoRT's prompt suffix (fact sheet): asks for interleaved reasoning and code, answer in \boxed{}.
INSTRUCTION = ("Please integrate natural language reasoning with python programs to solve the problem above, "
               "and put your final answer within \\boxed{}.")
#: a neutral suffix for the "no tool instruction" setting (the hint must then bring the tool in).
PLAIN_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
SYSTEM = "You are a helpful assistant."
#: CoRT's final-call notice (its first sentence is quoted in the fact sheet; the rest is ours).
FINAL_CALL_NOTICE = ("[SYSTEM] You have exceeded the allowed number of code executions. You can no longer write "
                     "or run code. Please continue solving the problem based on the existing results.")
CODE_OPEN = "```python"
#: the closing fence ends a segment; the chat end-of-turn marker is the model's EOS anyway
CODE_STOPS = ("```\n", "```output")
END_OF_TURN = "<|im_end|>"


def render_prompt(problem: str, instruction: str = INSTRUCTION, system: str = SYSTEM) -> str:
    """The ChatML rendering of the conversation up to the assistant's turn (SmolLM2, Qwen2.5 and
    QwQ all use ChatML; any other template can be passed as a ready prompt to :func:`solve`)."""
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{problem.strip()}\n{instruction}"
            f"<|im_end|>\n<|im_start|>assistant\n")


def open_code(text: str) -> str | None:
    """The code of the last ```python block of ``text`` that is still open (no closing fence after it)."""
    i = text.rfind(CODE_OPEN)
    if i < 0:
        return None
    body = text[i + len(CODE_OPEN):]
    if "```" in body:
        return None
    return body.strip("\n")


def pending_code(text: str) -> str | None:
    """The cell to run when a segment stopped: the open block the stop string closed, or a block the model
    closed itself right at the end of its text (```` ``` ```` then end of turn, no newline to stop at)."""
    code = open_code(text)
    if code is None and text.rstrip().endswith("```"):
        code = open_code(text.rstrip()[:-3])
    return code


@dataclass(frozen=True)
class LoopConfig:
    """Limits of one tool-integrated solution."""

    max_calls: int = 10
    max_seconds: float = 300.0          # wall time of the whole solution (generation + code)
    max_segments: int = 24              # generation requests per solution
    max_tokens_per_segment: int = 1024
    max_total_tokens: int = 4096
    temperature: float = 0.6
    top_p: float = 0.95
    sandbox: Limits = field(default_factory=lambda: Limits(wall_seconds=30.0))
    show_chars: int = 800               # how much of a code output the model sees


@dataclass
class Step:
    """One piece of the assistant turn: ``model`` text, ``code`` (the executed cell, already part of the
    preceding model text), ``output`` block, ``hint`` or ``notice``."""

    kind: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trajectory:
    """The assistant turn of one solution, with its tool calls, hints and answer."""

    prompt: str
    steps: list[Step] = field(default_factory=list)
    stop_reason: str = ""
    seconds: float = 0.0
    tokens: int = 0

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.steps if s.kind != "code")

    @property
    def calls(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "code"]

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    @property
    def n_hints(self) -> int:
        return sum(s.kind == "hint" for s in self.steps)

    @property
    def answer(self) -> str | None:
        return extract_answer(self.text)[0]

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "steps": [asdict(s) for s in self.steps], "stop_reason": self.stop_reason,
                "seconds": round(self.seconds, 3), "tokens": self.tokens, "n_calls": self.n_calls,
                "n_hints": self.n_hints, "answer": self.answer, "answer_rule": extract_answer(self.text)[1]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trajectory:
        return cls(d["prompt"], [Step(**s) for s in d["steps"]], d.get("stop_reason", ""), d.get("seconds", 0.0),
                   d.get("tokens", 0))


class HintPlan(Protocol):
    """What Hint-infer adds to the loop (see :mod:`paperlab.start.hint_infer`)."""

    def terminators(self, traj: Trajectory) -> tuple[str, ...]:
        """The terminator words at which a hint would be injected now (empty: none)."""

    def at_terminator(self, traj: Trajectory, terminator: str) -> str: ...

    def at_end(self, traj: Trajectory) -> str | None: ...

    def at_length(self, traj: Trajectory) -> str | None:
        """A hint where a segment ran out of tokens (None: decoding just goes on)."""


Executor = Callable[[list[str], Limits], Any]  # (cells, limits) -> ExecResult


def _seed(base: int, prompt: str, segment: int) -> int:
    h = hashlib.sha256(f"{base}|{prompt}|{segment}".encode()).hexdigest()
    return int(h[:8], 16)


def _cut_at_terminator(text: str, terminators: tuple[str, ...]) -> tuple[str, str | None]:
    """``text`` cut before the first terminator that stands as a word ("Wait", not "Waiting") outside a
    code block; ``(text, None)`` when there is none."""
    best, which = len(text), None
    for t in terminators:
        for m in re.finditer(r"(?<![A-Za-z0-9])" + re.escape(t) + r"(?![A-Za-z0-9])", text):
            if m.start() < best and open_code(text[: m.start()]) is None:
                best, which = m.start(), t
                break
    return text[:best], which


def solve(lm: LanguageModel, prompt: str, cfg: LoopConfig = LoopConfig(), hints: HintPlan | None = None,
          seed: int = 0, execute: Executor | None = None) -> Trajectory:
    """Solve one problem with the tool loop (and Hint-infer when ``hints`` is given).

    ``prompt`` is the rendered conversation (:func:`render_prompt`). Each segment is one ``lm.complete``
    request with its own seed (a function of ``seed``, the text so far and the segment number), so a
    solution is reproducible and every request is served from the cache on a re-run.
    """
    execute = execute or (lambda cells, limits: run_python(cells, limits))
    traj = Trajectory(prompt)
    good_cells: list[str] = []
    t0 = time.monotonic()
    for segment in range(cfg.max_segments):
        if time.monotonic() - t0 > cfg.max_seconds:
            traj.stop_reason = "time_limit"
            break
        budget = min(cfg.max_tokens_per_segment, cfg.max_total_tokens - traj.tokens)
        if budget < 1:
            traj.stop_reason = "token_limit"
            break
        may_run = traj.n_calls < cfg.max_calls
        stops = (CODE_STOPS if may_run else ()) + (END_OF_TURN,)
        params = GenerationParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=budget,
                                  seed=_seed(seed, prompt + traj.text, segment), stop=stops)
        r = lm.complete([prompt + traj.text], params)[0]
        traj.tokens += r.completion_tokens
        # Terminators are found in the finished segment, not passed as stop strings: a backend reports a
        # stop string and the end of turn alike, so a stop there could not be told from the model's end.
        terminators = hints.terminators(traj) if hints is not None else ()
        text, term = _cut_at_terminator(r.text, terminators)
        code = pending_code(traj.text + text) if may_run and term is None else None
        if term is not None and hints is not None:
            traj.steps.append(Step("model", text))
            traj.steps.append(Step("hint", hints.at_terminator(traj, term), {"at": term}))
            continue
        if code is not None and r.finish_reason == "stop":
            body = text.rstrip()
            traj.steps.append(Step("model", (body if body.endswith("```") else body + "\n```") + "\n"))
            res = execute([*good_cells, code], cfg.sandbox)
            traj.steps.append(Step("code", "", {"code": code, "ok": res.ok, "exit_code": res.exit_code,
                                                "killed": res.killed, "seconds": round(res.seconds, 3)}))
            if res.ok:
                good_cells.append(code)
            obs = res.observation(cfg.show_chars)
            if traj.n_calls >= cfg.max_calls:
                obs = (obs + "\n" if obs else "") + FINAL_CALL_NOTICE
            traj.steps.append(Step("output", f"```output\n{obs}\n```\n"))
            continue
        traj.steps.append(Step("model", text))
        if r.finish_reason == "length":
            if traj.tokens >= cfg.max_total_tokens:
                traj.stop_reason = "token_limit"
                break
            hint = hints.at_length(traj) if hints is not None else None
            if hint:  # the segment budget is a truncation point too (see hint_infer.HintPolicy.at_length)
                traj.steps.append(Step("hint", hint, {"at": "length"}))
            continue
        hint = hints.at_end(traj) if hints is not None else None
        if hint:
            traj.steps.append(Step("hint", hint, {"at": "end"}))
            continue
        traj.stop_reason = "end"
        break
    else:
        traj.stop_reason = "segment_limit"
    traj.seconds = time.monotonic() - t0
    return traj
