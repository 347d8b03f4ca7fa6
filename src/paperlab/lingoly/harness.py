"""Evaluation harness: any LLM backend (core ``load_lm``) on LINGOLY-TOO problems.

As in the paper (``testing/code/load_questions.py``, ``prompt_models.py``): one prompt per
*question* — the whole sheet (preamble, context and every question with its sub-questions), then
"respond to the following questions" with the question's prompt and sub-questions, asking for a JSON
object keyed by the sub-questions' ``questionpart_n``; greedy decoding (temperature 0). The chat
template is the backend's own (the paper pasted per-model headers around the prompt).
Replies go through the core request cache, so a re-run costs nothing. :func:`parse_answers` reads
the JSON leniently (the first JSON object in the reply that has any expected key; else
``key: value`` lines); a sub-question without an answer scores 0 (empty prediction).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from paperlab.lingoly.problems import parse_questions

INSTRUCTION = ("Below is a problem sheet from a linguistics exam. You will first see the entire sheet, then be "
               "asked to respond to specific questions from the sheet. Your answers to the questions should rely "
               "only on reasoning about the information provided in the sheet.")


def part_id(raw: str, index: int) -> str:
    """A clean sub-question id (``"1. "`` -> ``"1"``, ``"(a)"`` -> ``"a"``); its position when empty."""
    s = re.sub(r"[^\w]", "", str(raw))
    return s or str(index + 1)


@dataclass(frozen=True)
class QuestionPrompt:
    q_index: int
    text: str
    ids: tuple[str, ...]        # sub-question ids, in order (unique within the question)


def _keys(q: dict) -> list[str]:
    """The JSON keys of a question: its sub-questions' ``questionpart_n`` as written (the paper's keys);
    an empty or repeated one is replaced by a position-based id."""
    keys: list[str] = []
    for si, s in enumerate(q["subprompts"]):
        k = str(s.get("questionpart_n", "")).strip()
        if not k or any(part_id(k, 0) == part_id(x, 0) for x in keys):
            k = f"{part_id(k, si)}_{si + 1}" if k else str(si + 1)
        keys.append(k)
    return keys


def _block(q: dict, keys: list[str] | None = None) -> str:
    """A question as the sheet shows it: its prompt, then one line per sub-question."""
    parts = keys or [str(s.get("questionpart_n", "")).strip() for s in q["subprompts"]]
    lines = [f"{k} {s['question']}".strip() for k, s in zip(parts, q["subprompts"], strict=True)]
    return f"{str(q.get('prompt', '')).strip()}\n" + "\n".join(lines)


def build_prompts(problem: dict, max_context_chars: int | None = None) -> list[QuestionPrompt]:
    """One prompt per question of a problem version: the whole sheet (preamble, context, every
    question), then the question to answer and the JSON template of its keys."""
    context = problem.get("context", "")
    if max_context_chars is not None and len(context) > max_context_chars:
        context = context[:max_context_chars] + "\n[...]"
    questions = parse_questions(problem)
    sheet = (f"{problem.get('preamble', '').strip()}\n{context.strip()}\n\n"
             + "\n\n".join(_block(q) for q in questions))
    out = []
    for qi, q in enumerate(questions):
        keys = _keys(q)
        template = json.dumps(dict.fromkeys(keys, ""), ensure_ascii=False)
        text = (f"{INSTRUCTION}\n\n{sheet}\n\nNow respond to the following questions:\n{_block(q, keys)}\n\n"
                f"Make sure to finish your answer with JSON output with the keys as provided below:\n{template}")
        out.append(QuestionPrompt(qi, text, tuple(keys)))
    return out


def _json_objects(text: str):
    dec = json.JSONDecoder()
    i = text.find("{")
    while i != -1:
        try:
            obj, end = dec.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError, ValueError):
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            yield obj
        i = text.find("{", end)


def _as_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ", ".join(_as_text(x) for x in v)
    return str(v)


def parse_answers(reply: str, ids: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The answers of a model reply, keyed by the expected ids (missing ones empty). Never raises."""
    want = {part_id(i, 0).lower(): i for i in ids}
    out = dict.fromkeys(ids, "")
    reply = reply if isinstance(reply, str) else ""
    fenced = re.findall(r"```(?:json)?\s*(.*?)```", reply, flags=re.DOTALL)
    for chunk in [*fenced, reply]:
        for obj in _json_objects(chunk):
            hits = {want[part_id(k, 0).lower()]: _as_text(v) for k, v in obj.items()
                    if part_id(str(k), 0).lower() in want}
            if hits:
                out.update(hits)
                return out
    for line in reply.splitlines():  # no JSON: "a: answer" / "1. answer" lines
        m = re.match(r"\s*[\"']?\(?([\w]+)\)?[\"']?\s*[:.)=-]\s*(.+?)\s*,?\s*$", line)
        if m and m.group(1).lower() in want and not out[want[m.group(1).lower()]]:
            out[want[m.group(1).lower()]] = m.group(2).strip().strip('"')
    return out


def ask(lm, problem: dict, params, max_context_chars: int | None = None,
        on_reply: Callable[[int, str], None] | None = None) -> list[tuple[QuestionPrompt, str]]:
    """Every question prompt of one problem version through ``lm`` (a core LanguageModel)."""
    prompts = build_prompts(problem, max_context_chars)
    results = lm.chat([[{"role": "user", "content": p.text}] for p in prompts], params)
    out = []
    for i, (p, r) in enumerate(zip(prompts, results, strict=False)):
        if on_reply is not None:
            on_reply(i, r.text)
        out.append((p, r.text))
    return out


def answers_by_subquestion(problem: dict, pid: str, replies: list[tuple[QuestionPrompt, str]]) -> dict[str, str]:
    """Map parsed replies back to sub-question keys (``pid/q/s``)."""
    out = {}
    for p, text in replies:
        parsed = parse_answers(text, p.ids)
        for si, i in enumerate(p.ids):
            out[f"{pid}/{p.q_index}/{si}"] = parsed[i]
    return out
