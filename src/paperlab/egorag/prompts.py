"""Prompts (in our own words, after the released code's roles) and the parsers of their replies."""

from __future__ import annotations

import re
from collections.abc import Sequence

from paperlab.egorag.memory import clock


def hour_summary_prompt(texts: Sequence[str], times: Sequence[float], words: int) -> str:
    lines = "\n".join(f"[{clock(t)}] {x}" for x, t in zip(texts, times, strict=True))
    return (f"Below are captions of what I saw and heard during one hour, from my wearable camera.\n{lines}\n\n"
            f"Summarise this hour in under {words} words: who was there, where, what happened, which objects "
            "were used or put away, and anything unusual. Write in the first person, in plain sentences.")


def day_summary_prompt(hour_texts: Sequence[str], hour_times: Sequence[float], words: int) -> str:
    lines = "\n".join(f"[{clock(t)[:-3]}] {x}" for x, t in zip(hour_texts, hour_times, strict=True))
    return (f"Below are summaries of the hours of one day of my life.\n{lines}\n\nSummarise the whole day in "
            f"under {words} words, keeping the main activities, the people, notable events and what was "
            "decided or asked. Write in the first person, in plain sentences.")


def select_day_prompt(question: str, query_time: float, days: Sequence[tuple[int, str]], chars: int) -> str:
    lines = "\n".join(f"DAY{d + 1}: {text[:chars]}" for d, text in days)
    return (f"It is now {clock(query_time)}. Question: {question}\n\nSummaries of the days so far:\n{lines}\n\n"
            "Which day most likely holds the moment the question is about? Answer with the day only, "
            "for example: DAY2")


def select_hours_prompt(question: str, day: int, hours: Sequence[tuple[int, str]], chars: int) -> str:
    lines = "\n".join(f"{h % 24:02d}:00-{h % 24 + 1:02d}:00: {text[:chars]}" for h, text in hours)
    return (f"Question: {question}\n\nSummaries of the hours of DAY{day + 1}:\n{lines}\n\n"
            "Which hours most likely hold the moment the question is about? Answer with an hour range only, "
            "for example: 14-16")


def parse_day(reply: str, allowed: Sequence[int]) -> int | None:
    """``DAY3`` / ``day 3`` / ``3`` -> 2 (0-based), if allowed."""
    m = re.search(r"day\s*(\d+)", reply, re.I) or re.search(r"\b(\d+)\b", reply)
    if not m:
        return None
    d = int(m.group(1)) - 1
    return d if d in allowed else None


def parse_hours(reply: str) -> tuple[int, int] | None:
    """``14-16`` / ``14:00-16:00`` / ``from 14 to 16`` / ``15`` -> (start hour, end hour exclusive)."""
    m = re.search(r"(\d{1,2})(?::\d\d)?\s*(?:-|–|to)\s*(\d{1,2})(?::\d\d)?", reply)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if 0 <= a < 24 and 0 < b <= 24:
            return (min(a, b), max(a, b) if max(a, b) > min(a, b) else min(a, b) + 1)
    m = re.search(r"\b(\d{1,2})\b", reply)
    if m and 0 <= int(m.group(1)) < 24:
        return int(m.group(1)), int(m.group(1)) + 1
    return None


def context_block(clips: Sequence[tuple[float, str]]) -> str:
    return "\n".join(f"[{clock(t)}] {text}" for t, text in clips) or "(nothing retrieved)"


def multiple_choice_prompt(question: str, options: Sequence[str], query_time: float,
                           clips: Sequence[tuple[float, str]]) -> str:
    opts = "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(options))
    return (f"My memories (time, what I saw):\n{context_block(clips)}\n\nNow: {clock(query_time)}.\n"
            f"Question: {question}\n{opts}\nAnswer with the letter (A, B, C or D) only.")


def open_prompt(question: str, query_time: float, clips: Sequence[tuple[float, str]]) -> str:
    return (f"Memories from my wearable camera (time, caption):\n{context_block(clips)}\n\n"
            f"It is now {clock(query_time)}. Using the memories, answer the question briefly.\nQuestion: {question}")


def parse_letter(reply: str) -> str | None:
    """The option letter of a reply: ``B``, ``B.``, ``(B)``, ``Answer: B`` -> ``B``; None when absent."""
    m = re.search(r"\b([ABCD])\b", reply.strip())
    return m.group(1) if m else None
