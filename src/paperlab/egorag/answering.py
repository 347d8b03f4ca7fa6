"""Answering (paper §4.2: the answer model gets (q, R)): any LLM backend through the core, greedy decoding.

Multiple-choice questions are scored exactly: the first standalone option letter of the reply must equal the
key (a reply without a letter is wrong). Open questions (``paperlab egorag ask``) get a free-text answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from paperlab.egorag.prompts import multiple_choice_prompt, open_prompt, parse_letter


def answer_choices(lm, items: Sequence[dict], max_tokens: int = 8,
                   on_result: Callable[[int, object], None] | None = None) -> list[dict]:
    """``items``: dicts with question, options, query_time, clips [(t, caption)], answer (key letter).
    Returns, per item, the reply, the parsed letter and whether it is correct."""
    from paperlab.core.models import GenerationParams

    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    batch = [[{"role": "user", "content": multiple_choice_prompt(it["question"], it["options"], it["query_time"],
                                                                 it["clips"])}] for it in items]
    replies = lm.chat(batch, params, on_result=on_result)
    out = []
    for it, r in zip(items, replies, strict=True):
        letter = parse_letter(r.text)
        out.append({"reply": r.text, "letter": letter, "correct": letter == it["answer"]})
    return out


def answer_open(lm, question: str, query_time: float, clips: Sequence[tuple[float, str]],
                max_tokens: int = 128) -> str:
    from paperlab.core.models import GenerationParams

    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    return lm.chat([[{"role": "user", "content": open_prompt(question, query_time, clips)}]], params)[0].text.strip()
