"""The Feedback-Edit inference-time-scaling pipeline (paper Section "Inference-Time Scaling"):
four roles, three scaling knobs, one selection.

    prompt ──generator──▶ N initial responses r_i                   (sampled, T 0.7, top_p 0.9)
    (prompt, r_i) ──feedback──▶ M feedbacks f_ij per response        (sampled; ranked by criticism keywords)
    (prompt, r_i, f_ij) ──editor──▶ K edits e_ijk per feedback       (sampled)
    selector: reward R(prompt, e_ijk) for all N·M·K edits; answer = argmax_ijk R

Compute of one setting (calls; tokens are summed per role from the backends' usage counts):

    generation calls  C(N, M, K) = N + N·M + N·M·K,        selector calls  N·M·K

Best-of-N at equal calls samples ``N' = C(N, M, K)`` responses from the generator and selects by
the same selector (selector calls ``N'``: best-of-N gets the more selector calls of the two).

**Nested sampling.** Every request's seed is a hash of ``(seed, prompt id, role, indices)``, so the
samples of a setting ``(N, M, K)`` are exactly the first ``N``, ``M``, ``K`` of those of a larger
setting: one pipeline run at ``(N_max, M_max, K_max)`` (plus ``N'_max`` initial samples) gives every
smaller setting of the grid, and best-of-N' shares its first samples with Feedback-Edit's initial
responses. Each stage is one batched call over all prompts, so an OpenAI-compatible backend runs
the stage's requests concurrently (``OpenAILM.concurrency``).

**Selector.** The paper's Select model is a scaled Bradley-Terry reward model. Offline, the
selector is any chat LM used as a judge: ``R = log P("Yes") - log P("No")`` at the first token of
its answer to :data:`~paperlab.feedback_edit.prompts.JUDGE` (greedy, top-20 log-probabilities;
case and leading spaces ignored; a word absent from the top 20 gets the smallest listed
log-probability, an upper bound on its own). A backend that returns no log-probabilities is read
from its text (+1 Yes, -1 No, 0 otherwise).

**Feedback ranking** (seed digest, unverified: "rank feedbacks, e.g. by count of
constructive-criticism keywords"): :func:`rank_feedback` orders a response's feedbacks by that
count; with ``keep`` < M only the top ``keep`` are edited (default: all M are edited, so ranking
changes nothing, and the experiment measures whether the count predicts an edit's gain instead).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from paperlab.core.models import ChatResult, GenerationParams, LanguageModel
from paperlab.feedback_edit import prompts as P

ROLES = ("generator", "feedback", "editor", "selector")
GEN_ROLES = ("generator", "feedback", "editor")


@dataclass
class Call:
    """One model request: its text and usage (what compute accounting sums)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"

    @classmethod
    def of(cls, r: ChatResult) -> Call:
        return cls(r.text, r.prompt_tokens, r.completion_tokens, r.finish_reason)


@dataclass
class Judged:
    """A selector call and the reward read from it."""

    score: float
    call: Call


@dataclass
class Tree:
    """Everything sampled for one prompt at the largest setting (smaller settings are sub-arrays).

    ``initial[i]`` (``N'_max`` of them; Feedback-Edit uses the first ``N_max``), ``feedback[i][j]``,
    ``edits[i][j][k]``, ``initial_judged[i]``, ``edit_judged[i][j][k]``.
    """

    uid: str
    prompt: str
    initial: list[Call]
    feedback: list[list[Call]]
    edits: list[list[list[Call]]]
    initial_judged: list[Judged]
    edit_judged: list[list[list[Judged]]]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tree:
        def judged(x):
            return Judged(x["score"], Call(**x["call"]))

        return cls(d["uid"], d["prompt"], [Call(**c) for c in d["initial"]],
                   [[Call(**c) for c in row] for row in d["feedback"]],
                   [[[Call(**c) for c in ks] for ks in row] for row in d["edits"]],
                   [judged(x) for x in d["initial_judged"]],
                   [[[judged(x) for x in ks] for ks in row] for row in d["edit_judged"]], d.get("extra", {}))


@dataclass(frozen=True)
class Sampling:
    """Decoding of each role: T 0.7 / top_p 0.9 for every generating role (fact sheet, seed digest)."""

    temperature: float = 0.7
    top_p: float = 0.9
    max_tokens_generator: int = 256
    max_tokens_feedback: int = 160
    max_tokens_editor: int = 256

    def params(self, role: str) -> GenerationParams:
        mt = {"generator": self.max_tokens_generator, "feedback": self.max_tokens_feedback,
              "editor": self.max_tokens_editor}[role]
        return GenerationParams(temperature=self.temperature, top_p=self.top_p, max_tokens=mt)


#: The selector's request: one greedy token with its 20 most likely alternatives.
JUDGE_PARAMS = GenerationParams(temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=20)


def request_seed(seed: int, uid: str, role: str, *idx: int) -> int:
    """The seed of one request, a function of its place in the tree only (nested, reproducible)."""
    h = hashlib.sha256(f"{seed}/{uid}/{role}/{'/'.join(map(str, idx))}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


Progress = Callable[[str, int], None] | None


def _chat(lm: LanguageModel, chats: list, params: list[GenerationParams], role: str,
          progress: Progress) -> list[ChatResult]:
    def tick(i, r):
        if progress:
            progress(role, 1)

    return lm.chat(chats, params, on_result=tick) if chats else []


# ------------------------------------------------------------------ the stages


def sample_initial(lm: LanguageModel, prompts: Sequence[str], uids: Sequence[str], n: int, sampling: Sampling,
                   seed: int = 0, progress: Progress = None) -> list[list[Call]]:
    """Stage 1: ``n`` sampled responses per prompt, ``r_i ~ generator(prompt)``."""
    base = sampling.params("generator")
    chats, params = [], []
    for p, u in zip(prompts, uids, strict=True):
        for i in range(n):
            chats.append(P.generator_chat(p))
            params.append(base.replace(seed=request_seed(seed, u, "generator", i)))
    res = _chat(lm, chats, params, "generator", progress)
    return [[Call.of(r) for r in res[j * n:(j + 1) * n]] for j in range(len(prompts))]


def write_feedback(lm: LanguageModel, prompts: Sequence[str], uids: Sequence[str], responses: Sequence[Sequence[str]],
                   m: int, sampling: Sampling, seed: int = 0, progress: Progress = None) -> list[list[list[Call]]]:
    """Stage 2: ``m`` sampled feedbacks per response, ``f_ij ~ feedback(prompt, r_i)``."""
    base = sampling.params("feedback")
    chats, params, shape = [], [], []
    for p, u, rs in zip(prompts, uids, responses, strict=True):
        shape.append(len(rs))
        for i, r in enumerate(rs):
            for j in range(m):
                chats.append(P.feedback_chat(p, r))
                params.append(base.replace(seed=request_seed(seed, u, "feedback", i, j)))
    res = iter(_chat(lm, chats, params, "feedback", progress))
    return [[[Call.of(next(res)) for _ in range(m)] for _ in range(n)] for n in shape]


def criticism_count(feedback: str) -> int:
    """How many constructive-criticism keywords a feedback holds (whole words, case-insensitive)."""
    words = re.findall(r"[a-z']+", feedback.lower())
    keys = set(P.CRITICISM_KEYWORDS)
    return sum(1 for w in words if w in keys or (w.endswith("n't") and "not" in keys))  # isn't, doesn't: not


def rank_feedback(feedbacks: Sequence[str]) -> list[int]:
    """Indices of ``feedbacks`` ordered by :func:`criticism_count`, most first (ties: sampling order)."""
    return sorted(range(len(feedbacks)), key=lambda j: (-criticism_count(feedbacks[j]), j))


def write_edits(lm: LanguageModel, prompts: Sequence[str], uids: Sequence[str], responses: Sequence[Sequence[str]],
                feedback: Sequence[Sequence[Sequence[str]]], k: int, sampling: Sampling, seed: int = 0,
                keep: int | None = None, progress: Progress = None) -> list[list[list[list[Call]]]]:
    """Stage 3: ``k`` sampled edits per (response, feedback), ``e_ijk ~ editor(prompt, r_i, f_ij)``.

    With ``keep``, only each response's top-``keep`` feedbacks by :func:`rank_feedback` are edited
    (the others get no edits: an empty list)."""
    base = sampling.params("editor")
    chats, params, slots = [], [], []
    for a, (p, u, rs, fss) in enumerate(zip(prompts, uids, responses, feedback, strict=True)):
        for i, (r, fs) in enumerate(zip(rs, fss, strict=True)):
            chosen = set(rank_feedback(fs)[:keep] if keep is not None else range(len(fs)))
            for j, f in enumerate(fs):
                if j not in chosen:
                    continue
                for kk in range(k):
                    chats.append(P.edit_chat(p, r, f))
                    params.append(base.replace(seed=request_seed(seed, u, "editor", i, j, kk)))
                    slots.append((a, i, j))
    res = _chat(lm, chats, params, "editor", progress)
    out: list[list[list[list[Call]]]] = [[[[] for _ in fs] for fs in fss] for fss in feedback]
    for (a, i, j), r in zip(slots, res, strict=True):
        out[a][i][j].append(Call.of(r))
    return out


def _logprob_of(top: Sequence[tuple[str, float]], word: str) -> float:
    """log P(word) at one position: the log-sum-exp over the listed tokens that read as ``word``."""
    hits = [lp for t, lp in top if t.strip().lower() == word]
    if hits:
        mx = max(hits)
        return mx + math.log(sum(math.exp(h - mx) for h in hits))
    return min((lp for _, lp in top), default=-50.0)  # absent from the list: at most the smallest listed


def judge_score(r: ChatResult) -> float:
    """The selector's reward from one judge call: ``log P(Yes) - log P(No)`` at its first token."""
    if r.logprobs:
        t0 = r.logprobs[0]
        top = list(t0.top) or [(t0.token, t0.logprob)]
        if all(tok != t0.token for tok, _ in top):
            top.append((t0.token, t0.logprob))
        return _logprob_of(top, "yes") - _logprob_of(top, "no")
    word = r.text.strip().lower()
    return 1.0 if word.startswith("yes") else -1.0 if word.startswith("no") else 0.0


def judge(lm: LanguageModel, prompts: Sequence[str], candidates: Sequence[Sequence[str]],
          progress: Progress = None) -> list[list[Judged]]:
    """Stage 4 (scoring): the selector's reward of every candidate response of every prompt."""
    chats = [P.judge_chat(p, c) for p, cs in zip(prompts, candidates, strict=True) for c in cs]
    res = iter(_chat(lm, chats, [JUDGE_PARAMS] * len(chats), "selector", progress))
    return [[(lambda r: Judged(judge_score(r), Call.of(r)))(next(res)) for _ in cs] for cs in candidates]


def vote(answers: Sequence[str | None], scores: Sequence[float]) -> int:
    """Self-consistency selection (a model-free alternative to the selector, for math tasks): the
    candidate whose final answer is the most common; among those, the highest selector reward."""
    counts: dict[str, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    if not counts:
        return select(scores)
    top = max(counts.values())
    return select([s if a is not None and counts[a] == top else -math.inf
                   for a, s in zip(answers, scores, strict=True)])


def select(scores: Sequence[float]) -> int:
    """Stage 4 (selection): the index of the highest reward (ties: the first; no candidates: -1)."""
    best, arg = -math.inf, -1
    for i, s in enumerate(scores):
        if s > best:
            best, arg = s, i
    return arg


# ------------------------------------------------------------------ the whole pipeline


@dataclass
class Roles:
    """One backend per role (the same LM may play several)."""

    generator: LanguageModel
    feedback: LanguageModel
    editor: LanguageModel
    selector: LanguageModel

    def ids(self) -> dict[str, str]:
        return {r: getattr(self, r).id for r in ROLES}


def run_pipeline(roles: Roles, prompts: Sequence[str], uids: Sequence[str], n: int, m: int, k: int,
                 n_bon: int = 0, sampling: Sampling = Sampling(), seed: int = 0, keep: int | None = None,
                 progress: Progress = None) -> list[Tree]:
    """Feedback-Edit at ``(n, m, k)`` for every prompt, plus ``max(n, n_bon)`` initial samples for
    best-of-N (its first ``n`` are Feedback-Edit's initial responses); every stage one batched call."""
    if len(set(uids)) != len(uids):
        raise ValueError("prompt ids must be unique (they seed the requests)")
    initial = sample_initial(roles.generator, prompts, uids, max(n, n_bon), sampling, seed, progress)
    responses = [[c.text for c in cs[:n]] for cs in initial]
    fb = write_feedback(roles.feedback, prompts, uids, responses, m, sampling, seed, progress)
    fb_text = [[[c.text for c in row] for row in fs] for fs in fb]
    edits = write_edits(roles.editor, prompts, uids, responses, fb_text, k, sampling, seed, keep, progress)
    flat = [[e.text for row in es for ks in row for e in ks] for es in edits]
    judged = judge(roles.selector, prompts, [f + [c.text for c in cs] for f, cs in zip(flat, initial, strict=True)],
                   progress)
    trees = []
    for a, (p, u) in enumerate(zip(prompts, uids, strict=True)):
        it = iter(judged[a][:len(flat[a])])
        edit_judged = [[[next(it) for _ in ks] for ks in row] for row in edits[a]]
        trees.append(Tree(u, p, initial[a], fb[a], edits[a], judged[a][len(flat[a]):], edit_judged))
    return trees


# ------------------------------------------------------------------ settings: selection and compute


def generation_calls(n: int, m: int, k: int) -> int:
    """C(N, M, K) = N + N·M + N·M·K generation calls of one Feedback-Edit setting."""
    return n + n * m + n * m * k


def edit_index(tree: Tree, n: int, m: int, k: int) -> list[tuple[int, int, int]]:
    """The (i, j, k) of the edits that setting (n, m, k) made (a sub-array of the tree)."""
    return [(i, j, kk) for i in range(n) for j in range(m) for kk in range(k)
            if kk < len(tree.edits[i][j])]


def select_feedback_edit(tree: Tree, n: int, m: int, k: int) -> tuple[int, int, int]:
    """The edit that Feedback-Edit at ``(n, m, k)`` answers with."""
    idx = edit_index(tree, n, m, k)
    if not idx:
        raise ValueError(f"setting ({n}, {m}, {k}) made no edits for prompt {tree.uid} (feedbacks not kept)")
    return idx[select([tree.edit_judged[i][j][kk].score for i, j, kk in idx])]


def select_best_of_n(tree: Tree, n: int) -> int:
    """The initial response that best-of-``n`` answers with."""
    return select([j.score for j in tree.initial_judged[:n]])


def _add(acc: dict[str, dict[str, int]], role: str, c: Call) -> None:
    a = acc.setdefault(role, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
    a["calls"] += 1
    a["prompt_tokens"] += c.prompt_tokens
    a["completion_tokens"] += c.completion_tokens


def compute_feedback_edit(tree: Tree, n: int, m: int, k: int) -> dict[str, dict[str, int]]:
    """Calls and tokens per role spent by setting ``(n, m, k)`` on one prompt."""
    acc: dict[str, dict[str, int]] = {r: {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0} for r in ROLES}
    for i in range(n):
        _add(acc, "generator", tree.initial[i])
        for j in range(m):
            _add(acc, "feedback", tree.feedback[i][j])
    for i, j, kk in edit_index(tree, n, m, k):
        _add(acc, "editor", tree.edits[i][j][kk])
        _add(acc, "selector", tree.edit_judged[i][j][kk].call)
    return acc


def compute_best_of_n(tree: Tree, n: int) -> dict[str, dict[str, int]]:
    """Calls and tokens per role spent by best-of-``n`` on one prompt."""
    acc: dict[str, dict[str, int]] = {r: {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0} for r in ROLES}
    for i in range(n):
        _add(acc, "generator", tree.initial[i])
        _add(acc, "selector", tree.initial_judged[i].call)
    return acc
