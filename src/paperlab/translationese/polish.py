"""§5.1 of the paper: polishing SFT references with an LLM ("SFT-Polished").

The paper has an LLM rewrite each reference translation, given the source and the reference, into natural
target-language text, and trains on the rewrites. Neither the prompt nor the LLM is released; ours is
:data:`POLISH_PROMPT`, sent through any backend of :func:`paperlab.core.models.load_lm` (cached, so a re-run
or a killed run recomputes nothing).

Local models (``default``, ``hf:``, ``gguf:``) polish through transformers (the model already in memory,
batched greedy decoding), an ``openai:`` spec through its server; the replies are kept in the run folder
(``polished.jsonl``), so a resumed run does not polish again.

A guard (ours, not the paper's) keeps the original reference when the reply is unusable (a small LM may answer
with a comment, copy the source, or stop mid-sentence): the rewrite must be non-empty, within half to twice the
reference's length in characters, share content with the reference (sentence chrF >= 0.3) and be closer to the
reference than to the source (chrF). Every record says whether it was rewritten, so the report counts how many
were.
"""

from __future__ import annotations

from collections.abc import Sequence

from paperlab.core.models import GenerationParams

POLISH_PROMPT = (
    "Here is a {src} text and its {tgt} translation. Rewrite the translation so that it reads as natural, fluent "
    "{tgt} written by a native speaker, keeping the full meaning of the source. Reply with the rewritten "
    "translation only.\n\n{src} source: {source}\n{tgt} translation: {reference}"
)
LANG_NAMES = {"de": "German", "en": "English", "zh": "Chinese"}
_PREFIXES = ("rewritten translation:", "rewritten:", "translation:", "english translation:", "here is")


def polish_messages(source: str, reference: str, src: str = "de", tgt: str = "en") -> list[dict]:
    text = POLISH_PROMPT.format(src=LANG_NAMES.get(src, src), tgt=LANG_NAMES.get(tgt, tgt), source=source,
                                reference=reference)
    return [{"role": "user", "content": text}]


def clean_reply(reply: str) -> str:
    """The first non-empty line of a reply, without a leading label or surrounding quotes."""
    lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    low = text.lower()
    for p in _PREFIXES:
        if low.startswith(p) and len(text) > len(p):
            text = text[len(p):].strip()
            break
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def accept(polished: str, reference: str, source: str, lo: float = 0.5, hi: float = 2.0,
           min_chrf: float = 0.3) -> bool:
    """The guard: a non-empty rewrite within [lo, hi] times the reference's length, with chrF to the reference
    >= ``min_chrf`` and above its chrF to the source (not a copy of the source)."""
    from paperlab.core.metrics import chrf

    if not polished or not lo <= len(polished) / max(len(reference), 1) <= hi:
        return False
    to_ref = chrf(polished, reference)
    return to_ref >= min_chrf and to_ref > chrf(polished, source)


def polish(lm, sources: Sequence[str], references: Sequence[str], src: str = "de", tgt: str = "en",
           params: GenerationParams | None = None) -> list[dict]:
    """Polished references (one record per pair: ``text`` used for training, ``reply``, ``rewritten``).

    ``lm`` is a :class:`~paperlab.core.models.LanguageModel` (``load_lm(spec)``: cached, any backend) or a
    ``(model, tokenizer)`` pair of a local transformers chat model (batched greedy generation).
    """
    params = params or GenerationParams(temperature=0.0, max_tokens=160)
    batch = [polish_messages(s, r, src, tgt) for s, r in zip(sources, references, strict=True)]
    if isinstance(lm, tuple):
        from paperlab.translationese.sft import generate_chat

        texts = generate_chat(*lm, batch, max_new_tokens=params.max_tokens, desc="polish")
    else:
        texts = [r.text for r in lm.chat(batch, params)]
    out = []
    for src_text, ref, text in zip(sources, references, texts, strict=True):
        cand = clean_reply(text)
        ok = accept(cand, ref, src_text)
        out.append({"text": cand if ok else ref, "reply": text, "rewritten": ok})
    return out
