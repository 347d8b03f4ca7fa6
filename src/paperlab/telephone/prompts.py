"""The paper's three prompt constraint levels (Section 5, prompt ablation), in our own wording.

- **Simple**: the bare task line.
- **Base** (the paper's default): a translation-expert instruction — keep all meaning and
  context, no introduction or summary, return only the passage — then the Simple line.
- **Constrained**: a structured list (task / objective / guidelines: no intro or summary,
  preserve meaning, do not add, omit or modify details, keep tone and style / the passage).

The rephrase chain (the paper's paraphrasing ablation) uses the same three levels with
"rephrase" in place of "translate".
"""

from __future__ import annotations

LEVELS = ("simple", "base", "constrained")


def _task(kind: str, src: str, tgt: str) -> str:
    if kind == "translate":
        return f"Translate the following text from {src} to {tgt}"
    return f"Rephrase the following {src} text in your own words"


def build_prompt(text: str, level: str = "base", kind: str = "translate", src: str = "English",
                 tgt: str = "English") -> list[dict[str, str]]:
    """Chat messages for one step of the chain at constraint ``level``."""
    task = _task(kind, src, tgt)
    if level == "simple":
        content = f"{task}: {text}"
    elif level == "base":
        role = "an expert translator" if kind == "translate" else "an expert editor"
        content = (
            f"You are {role}. Keep every piece of meaning and context of the passage. "
            "Do not add an introduction, a comment or a summary; reply with the passage only.\n\n"
            f"{task}: {text}"
        )
    elif level == "constrained":
        verb = f"translation into {tgt}" if kind == "translate" else "rephrased version"
        content = (
            f"Task: {task}.\n"
            f"Objective: produce a faithful {verb} of the passage.\n"
            "Guidelines:\n"
            "- Do not write an introduction, an explanation or a summary.\n"
            "- Preserve the full meaning of every sentence.\n"
            "- Do not add, omit or change any detail (names, numbers, dates, events).\n"
            "- Keep the original tone, register and style.\n"
            "- Reply with the passage only.\n"
            f"Passage:\n{text}"
        )
    else:
        raise ValueError(f"unknown prompt level {level!r}; use one of {LEVELS}")
    return [{"role": "user", "content": content}]
