"""The byte stream LLMVoX reads (paper §3.1 "text input"; official ``src/data.py`` and ``streaming_server.py``).

LLMVoX has no phonemiser and no aligner: the text is a stream of **ByT5 byte ids** fed one per decoder step,
while the speech tokens come out one per step. Ids follow the ByT5 tokenizer (``google/byt5-small``):

============  =====================================================================
``b + 3``     a UTF-8 byte ``b`` (0..255 -> 3..258); 0 = pad, 1 = ``</s>``, 2 = unk
``1``         ``</s>``: the tokenizer appends it to every call, so it separates words
``384``       ``[PAD]`` (an added token): fed after the text runs out
``385``       ``EOS`` (an added token): the end of the sentence's text
============  =====================================================================

Training (:func:`training_stream`): the text is split on whitespace, each word tokenised with its ``</s>``,
one ``EOS`` appended, then ``[PAD]`` up to the number of speech steps (truncated if the text is longer:
the stream is *aligned by position only*, byte t beside speech token t). Inference
(:func:`token_ids`): each streamed LLM token is tokenised the same way (its stripped text + ``</s>``), ``EOS``
after the token that ends the sentence, then ``[PAD]`` every step until the end-of-audio code.

We split on any whitespace (the official code splits on " "); an empty word would only add a lone ``</s>``.
"""

from __future__ import annotations

from collections.abc import Sequence

BYTE_OFFSET = 3
SEP_ID = 1  # ByT5 </s>, appended to each tokenised word / token
PAD_ID = 384  # added token "[PAD]"
EOS_ID = 385  # added token "EOS"
BYTE_VOCAB = 386


def word_ids(word: str) -> list[int]:
    """One tokenizer call: UTF-8 bytes + 3, then ``</s>`` (= 1)."""
    return [b + BYTE_OFFSET for b in word.encode("utf-8")] + [SEP_ID]


def text_ids(text: str) -> list[int]:
    """A sentence's text ids: every word with its ``</s>``, then ``EOS``."""
    out: list[int] = []
    for w in text.split():
        out += word_ids(w)
    return out + [EOS_ID]


def aligned_stream(ids: Sequence[int], length: int) -> list[int]:
    """The byte stream beside ``length`` speech steps: ``ids`` padded with ``[PAD]`` or truncated."""
    ids = list(ids)[:length]
    return ids + [PAD_ID] * (length - len(ids))


def training_stream(text: str, n_speech: int) -> list[int]:
    """The byte ids of a training pair whose target holds ``n_speech`` codes (end-of-audio included)."""
    return aligned_stream(text_ids(text), n_speech)


def token_ids(token: str, end_of_sentence: bool = False) -> list[int]:
    """The ids one streamed LLM token adds (its stripped text + ``</s>``; ``EOS`` after the last token)."""
    t = token.strip()
    ids = word_ids(t) if t else []
    return ids + [EOS_ID] if end_of_sentence else ids


def decode_ids(ids: Sequence[int]) -> str:
    """Readable text of a stream (words joined by spaces; PAD/EOS dropped) — for logs and tests."""
    words, cur = [], bytearray()
    for i in ids:
        if BYTE_OFFSET <= i < BYTE_OFFSET + 256:
            cur.append(i - BYTE_OFFSET)
        elif i == SEP_ID:
            words.append(cur.decode("utf-8", "replace"))
            cur = bytearray()
    if cur:
        words.append(cur.decode("utf-8", "replace"))
    return " ".join(w for w in words if w)
