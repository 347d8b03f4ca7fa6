"""START — "START: Self-taught Reasoner with Tools", arXiv:2503.04625 (2025). https://arxiv.org/abs/2503.04625
(no official code; the nearest public loop is CoRT, same first author; this is our reference implementation).

**Claim.** A long-CoT reasoning model rarely calls a code interpreter on its own. *Hint-infer* — cutting the
response at terminators ("Wait", "Alternatively", the end of thinking, the end of the response) and
injecting a hint such as "Wait, maybe using Python here is a good idea." — makes it call the tool; repeating
the hint at the end is sequential test-time scaling. *Hint-RFT* — scoring, filtering and modifying Hint-infer
trajectories into D_seed and fine-tuning on them (START-0, then self-distillation: START) — makes the model
use the tool without hints (QwQ-32B-Preview -> START: AMC23 95.0, AIME24 66.7, GPQA 63.6).

**The loop** (one assistant turn; ``c_k`` code, ``o_k = Sandbox(c_1..c_k)`` its output, ``h`` a hint)::

    y = r_1 ```python c_1``` ```output o_1``` r_2 ... h r_j ```python c_k``` ```output o_k``` ... \\boxed{a}
    Hint-infer: r_j stops at a terminator t in T or at the end -> y += h ~ HintLibrary(problem, j)
    D_seed = { y : correct(a), calls(y) >= 1, not repetitive(y) };  START-0 = LoRA-SFT(M, D_seed)

**Modules:**

- :mod:`~paperlab.start.sandbox` — the code sandbox, a security boundary (namespaces, a fresh unprivileged uid, rlimits,
  private tmp, output cap; refuses to run where it cannot be built); threat model in its docstring.
- :mod:`~paperlab.start.redteam` — the attack battery, judged on the host.
- :mod:`~paperlab.start.tool_loop` — generate until a ```python block closes, run, append output; limits on
  calls, tokens and time; the final-call notice.
- :mod:`~paperlab.start.hint_infer` — Hint-Library, terminators, :class:`HintPolicy` (inline / at-end / R).
- :mod:`~paperlab.start.answers` — ``\\boxed{}`` extraction, rule-based equivalence (math-verify or fallback).
- :mod:`~paperlab.start.hint_rft` — scoring, filtering, content modification, LoRA fine-tuning.
- :mod:`~paperlab.start.experiment` / :mod:`~paperlab.start.report` — ``paperlab start run``.

**Our choices where the paper (as we could read it: abstract and Fig. 1 only) is unspecified:** the loop's
settings and final-call notice follow CoRT (max 10 calls, 30 s per call, T 0.6, top-p 0.95), not published
START values; terminators "Wait", "Alternatively", ``</think>`` and the end of the response, plus — for a
small model that rambles until its budget — the end of a segment's token budget (same total budget in
every condition); one verified hint, the rest of the Hint-Library ours; the D_seed filter (correct, >= 1
error-free call, not repetitive, ended by the model) and content modification (hints kept, interpreter
outputs masked from the loss) ours; LoRA (peft) instead of full fine-tuning; a problem "uses the tool" when
at least one code block closed and ran.

API::

    from paperlab.start import run_python, solve, render_prompt, HintPlan, HintPolicy
    run_python("print(2**100)").stdout                       # sandboxed
    t = solve(load_lm("default"), render_prompt("What is 4821 * 377?"), hints=HintPlan(HintPolicy(), "q1"))
    t.n_calls, t.answer

    paperlab start run --quick                                # red team + hint conditions + claims
    paperlab start solve --input problems.jsonl               # your problems -> JSONL with trajectories
"""

# Lazy, so that ``paperlab start --help`` (which imports paperlab.start.cli) stays cheap.
_EXPORTS = {"HintPlan": "hint_infer", "HintPolicy": "hint_infer", "ExecResult": "sandbox", "Limits": "sandbox",
            "SandboxUnavailable": "sandbox", "run_python": "sandbox", "LoopConfig": "tool_loop",
            "Trajectory": "tool_loop", "render_prompt": "tool_loop", "solve": "tool_loop"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"paperlab.start.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'paperlab.start' has no attribute {name!r}")
