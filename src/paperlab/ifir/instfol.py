"""InstFol@k: does adding the instruction bring passages that follow it? (the paper's Section 4.2)

For each instructed query ``Q_I = query + " " + instruction`` two top-k lists are judged **against Q_I**:
the list retrieved for the plain query (``q``) and the list retrieved for ``Q_I`` (``i``). Every passage
gets a G-Eval score from an LLM judge (rubric below); a rank position whose score is negative (a failed
judge call) in either list is dropped from both; then, per query (``src/llm_eval.py``, ``fmss_avg``):

    q_avg = mean(q scores),  i_avg = mean(i scores)
    InstFol = 0                               if i_avg == q_avg
            = i_avg - q_avg                   if q_avg == 3
            = (i_avg - q_avg) / (3 - q_avg)   otherwise

with the denominator 3 for every rubric (the official code's fixed ``max_score = 3.0``, also for the
0-1 and 0-2 rubrics of levels 1 and 2). The data-set score is the mean over queries, per level.

**G-Eval score** (``src/utils/llm_metrics/GEval/geval.py``, ``openai_weighted_sum_score``): the judge
answers JSON ``{"score": s, "reason": ...}`` (``content2json``: from the first ``{`` to the last ``}``,
a missing ``}`` appended); unparsable -> 0; a score that is not a non-negative integer -> 0; the first
generated token equal to ``str(s)`` is found, its top-10 alternatives kept when ``p >= 0.01`` and the
token is a digit 0-5, and the score is their probability-weighted mean renormalised over the kept
probabilities, ``sum_d d p_d / sum_d p_d``. The judge's decoding: temperature 0, top_p 0.7, max_tokens
512, top_logprobs 10 (``evaluator.py``). A failed call scores -1.

**What we fix** (and say so in every results.json):

1. ``src/llm_eval_pre.py`` writes the judge's scores onto the record but exports deep copies taken
   before scoring, so the plain-query scores of the level data sets never reach ``src/llm_eval.py``: we
   compute InstFol from the definition above on the scores themselves.
2. When none of the score token's alternatives passes the filter the official code divides 0 by 0
   (NaN, which poisons the mean); we fall back to the parsed integer score.
3. A token's surrounding whitespace is ignored when matching ``str(s)`` and testing digits
   (``strip_tokens``): the official exact match works for GPT-4o's tokens but would score 0 whenever a
   tokenizer glues a space to the digit (``" 2"``); set ``strip_tokens=False`` for the literal rule.

The rubrics follow the official ``GEvalPrompts.scifact_open{1,2,3}`` (levels, scales, JSON answer) in our own
words, so a judge's scores are comparable in kind but not token-for-token with the paper's: the judge is given
the instructed query as the instruction and the passage (``title + " " + text``). Any backend of :func:`paperlab.core.models.load_lm` that returns top log-probabilities serves as
judge (the default SmolLM2-135M through llama.cpp; ``openai:<url>#gpt-4o-mini`` is the paper's).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from paperlab.core.models import ChatResult, GenerationParams

MAX_SCORE = 3.0
MIN_PROB = 0.01
TOP_LOGPROBS = 10

# The rubrics, written here in our own words after the official ``GEvalPrompts.scifact_open{1,2,3}``: the same
# levels, the same integer scales (0-1, 0-2, 0-3), the same JSON answer with "score" and "reason".
_HEAD = """Instruction: {instruction}
Passage: {corpus}

Rate how well the passage satisfies the instruction, using the criteria below, and answer with a JSON object
holding a "score" and a "reason".

"""
_TAIL = """
Answer with the JSON object only, keys "score" and "reason", and nothing else. Reason step by step inside
"reason" and choose the score from the criteria.

Example:
{{
    "score": 1,
    "reason": "The passage is about the same research field and topic as the instruction, nothing more."
}}

JSON:
"""
_BODY = {
    3: """The passage can satisfy the instruction at three levels:
1. Topic: it is about the same research field and topic.
2. Stance: it also relates to the claim as asked (supports it, or refutes it).
3. Full match: it satisfies every condition of the instruction.

Scoring:
- 0 if it satisfies none of the levels;
- 1 if it satisfies level 1 only;
- 2 if it satisfies levels 1 and 2;
- 3 if it satisfies all three levels.

Give a score from 0 to 3.
""",
    2: """The passage can satisfy the instruction at two levels:
1. Topic: it is about the same research field and topic.
2. Full match: it satisfies every condition of the instruction, including the stance asked for (supports or
refutes the claim).

Scoring:
- 0 if it satisfies neither level;
- 1 if it satisfies level 1 only;
- 2 if it satisfies levels 1 and 2.

Give a score from 0 to 2.
""",
    1: """The passage can satisfy the instruction at one level:
1. Full match: it satisfies the instruction, including being about the same research field and topic.

Scoring:
- 0 if it does not satisfy it;
- 1 if it does.

Give a score from 0 to 1.
""",
}


def rubric_prompt(level: int, instruction: str, corpus: str) -> str:
    """The official ``GEvalPrompts.scifact_open<level>(instruction, corpus)``."""
    return (_HEAD + _BODY[level] + _TAIL).format(instruction=instruction, corpus=corpus)


def judge_params(max_tokens: int = 512, early_stop: bool = False) -> GenerationParams:
    """The official judge decoding (temperature 0, top_p 0.7, 10 top log-probs). ``early_stop`` ends the
    answer at the first ``,`` (after ``{"score": s``): the score and its log-probs are those of the full
    greedy answer whenever the judge writes the score first, at a fraction of the cost (quick tier)."""
    return GenerationParams(temperature=0.0, top_p=0.7, max_tokens=max_tokens, seed=0,
                            stop=(",",) if early_stop else (), logprobs=True, top_logprobs=TOP_LOGPROBS)


def content2json(text: str | None) -> dict | None:
    """The official ``content2json``: the JSON between the first ``{`` and the last ``}`` (one appended
    when missing); None when it does not parse (the official code then scores 0)."""
    if text is None:
        return None
    start, end = text.find("{"), text.rfind("}") + 1
    if end == 0 and start != -1:
        text, end = text + "}", len(text) + 1
    blob = text[start:end] if start != -1 and end != 0 else ""
    try:
        out = json.loads(blob)
    except (json.JSONDecodeError, RecursionError):
        return None
    return out if isinstance(out, dict) else None


def geval_score(result: ChatResult, strip_tokens: bool = True) -> float:
    """The G-Eval expected score of one judge answer (see the module doc; fixes 2 and 3 applied)."""
    parsed = content2json(result.text)
    if parsed is None or not result.logprobs:
        return 0.0
    s = parsed.get("score")
    if s is None or isinstance(s, bool) or not str(s).isdigit():   # official: not str(score).isdigit() -> 0
        s = 0
    target = str(s)

    def norm(t: str) -> str:
        return t.strip() if strip_tokens else t

    hit = next((t for t in result.logprobs if norm(t.token) == target), None)
    if hit is None:
        return 0.0                                                  # official: the lookup raises -> 0.0
    probs: dict[int, float] = {}
    for tok, lp in hit.top:
        t = norm(tok)
        if lp < math.log(MIN_PROB) or not t.isdecimal() or not t.isascii():
            continue
        v = int(t)
        if 0 <= v <= 5:
            probs[v] = probs.get(v, 0.0) + math.exp(lp)
    if not probs:                                                   # fix 2: 0/0 in the official code
        return float(int(target)) if int(target) <= 5 else 0.0
    # score = sum_d d p_d / sum_d p_d
    return sum(v * p for v, p in probs.items()) / sum(probs.values())


def instfol(q_scores: Sequence[float], i_scores: Sequence[float], max_score: float = MAX_SCORE) -> float:
    """InstFol of one query: positions with a negative score in either list dropped from both, then
    the official ``fmss_avg`` (NaN when nothing is left)."""
    n = max(len(q_scores), len(i_scores))
    bad = {j for j in range(n) if (j < len(q_scores) and q_scores[j] < 0) or (j < len(i_scores) and i_scores[j] < 0)}
    q = [x for j, x in enumerate(q_scores) if j not in bad]
    i = [x for j, x in enumerate(i_scores) if j not in bad]
    if not q or not i:
        return float("nan")
    q_avg, i_avg = float(np.mean(q)), float(np.mean(i))
    if i_avg == q_avg:
        return 0.0
    if q_avg == max_score:
        return i_avg - q_avg
    return (i_avg - q_avg) / (max_score - q_avg)


#: The default judge: SmolLM2-135M-Instruct (the core's ``default`` GGUF), dequantised once and run by
#: transformers. Judging is prompt-bound (~500-900 prompt tokens, ~8 generated), and on our 2-core
#: machines transformers' fp32 prompt pass was ~4x faster than the llama.cpp build (8 s vs 27-34 s
#: for an 830-token prompt under load); ``--judge default`` keeps llama.cpp.
DEFAULT_JUDGE = "default-hf"


class Judge:
    """G-Eval scoring with any :func:`~paperlab.core.models.load_lm` backend (cached per request)."""

    def __init__(self, spec: str = DEFAULT_JUDGE, max_tokens: int = 512, early_stop: bool = False,
                 strip_tokens: bool = True, n_ctx: int = 2048, chunk: int = 8):
        from paperlab.core.models import load_lm, parse_spec

        self.spec = spec
        kw = {"n_ctx": n_ctx} if parse_spec(spec).kind == "gguf" else {}
        self.lm = load_lm(spec, **kw)
        self.params = judge_params(max_tokens, early_stop)
        self.strip_tokens, self.chunk = strip_tokens, chunk
        self.failures = 0

    def __call__(self, prompts: Sequence[str]) -> list[float]:
        """Scores of ``prompts`` (each a user message); a failed request scores -1. A prompt that occurs
        twice (a passage in both lists) is judged once, so both positions get the very same score."""
        unique = list(dict.fromkeys(prompts))
        scores: dict[str, float] = {}
        for s in range(0, len(unique), self.chunk):
            part = unique[s: s + self.chunk]
            try:
                results: list[ChatResult | None] = self.lm.chat([[{"role": "user", "content": p}] for p in part],
                                                                self.params)
            except Exception:  # noqa: BLE001 — one bad request must not sink the batch: retry one by one
                results = []
                for p in part:
                    try:
                        results.append(self.lm.chat([[{"role": "user", "content": p}]], self.params)[0])
                    except Exception:  # noqa: BLE001 — the official evaluator scores a failed call -1
                        self.failures += 1
                        results.append(None)
            for p, r in zip(part, results, strict=True):
                scores[p] = -1.0 if r is None else geval_score(r, self.strip_tokens)
        return [scores[p] for p in prompts]
