"""Language models as scorers, and the long-document samples the bipartite estimators read.

:class:`LMScorer` turns any transformers causal LM (``--model default`` = SmolLM2-135M, or
``hf:<path>``) into a :class:`~paperlab.l2m.estimators.TokenScorer`: it prepends the start token and
returns ``log q(s_j | <start>, s_<j)`` for every token (:func:`paperlab.core.internals.sequence_logprobs`:
log-softmax runs over position chunks of the final hidden states, so a 49k-vocabulary model never
materialises a ``[B, T, V]`` tensor).

GPU users with vLLM (the official code's path) use :class:`VLLMScorer`: one generation of one token
with ``SamplingParams(max_tokens=1, prompt_logprobs=0)`` returns the log-prob of every prompt token::

    from vllm import LLM, SamplingParams
    llm = LLM(model="meta-llama/Llama-3.1-8B")
    out = llm.generate([{"prompt_token_ids": [bos] + ids}],
                       SamplingParams(max_tokens=1, prompt_logprobs=0))
    logps = [d[t].logprob for d, t in zip(out[0].prompt_logprobs[1:], ids)]

(``prompt_logprobs[0]`` is ``None``: nothing predicts the first token.) ``paperlab l2m run --model
hf:<path> --scorer vllm`` does this for every sequence the estimators need.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from paperlab.core.data import data_path
from paperlab.core.errors import UserError

GUTENBERG_BOOKS = ("105.txt", "121.txt", "174.txt", "564-0.txt")


def load_documents(corpus: str = "gutenberg") -> list[str]:
    """Long documents: ``gutenberg`` (four packaged novels), ``wikitext2`` (test-split articles), or a
    path to a ``.txt`` file (one document) or a folder of them."""
    if corpus == "gutenberg":
        return [data_path("gutenberg", f).read_text(encoding="utf-8") for f in GUTENBERG_BOOKS]
    if corpus == "wikitext2":
        text = data_path("wikitext2", "test.txt").read_text(encoding="utf-8")
        # articles start at a level-1 heading line " = Title = "
        parts = re.split(r"\n(?= = [^=].* = \n)", text)
        return [p for p in parts if len(p) > 2000]
    p = Path(corpus)
    if p.is_dir():
        files = sorted(p.glob("*.txt"))
        if not files:
            raise UserError(f"no .txt files in {p}", "pass a folder of .txt documents, a .txt file, gutenberg or wikitext2")
        return [f.read_text(encoding="utf-8", errors="replace") for f in files]
    if p.is_file():
        return [p.read_text(encoding="utf-8", errors="replace")]
    raise UserError(f"unknown corpus {corpus!r}", "use gutenberg, wikitext2, a .txt file or a folder of .txt files")


def load_extra_novels() -> list[str]:
    """The eleven further Gutenberg novels of the same origin (``data/gutenberg_extra/*.txt.xz``, ~2.3 M
    words): more text for the corpus statistics (the BOS correction's ``H_2``, two-point MI), never scored
    by the LM."""
    import lzma

    folder = data_path("gutenberg_extra")
    return [lzma.open(f, "rt", encoding="utf-8").read() for f in sorted(folder.glob("*.txt.xz"))]


def tokenize_documents(docs: list[str], tokenizer) -> list[np.ndarray]:
    """Token ids of every document (no special tokens)."""
    out = []
    for d in docs:
        ids = tokenizer(d, add_special_tokens=False)["input_ids"]
        out.append(np.asarray(ids, dtype=np.int64))
    return out


#: a paragraph break: a line that is empty (or only blanks) between two lines of text
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
#: a chapter heading line of a Gutenberg novel ("Chapter 1", "CHAPTER I—THE DAWN", "CHAPTER XII.")
_CHAPTER = re.compile(r"(?:CHAPTER|Chapter)\s+(?:[0-9]+|[IVXLC]+)\b")
BLOCK_STARTS = ("paragraph", "chapter", "any")


def paragraph_offsets(text: str, unit: str = "paragraph") -> list[int]:
    """Character offsets where a paragraph (``unit="paragraph"``) or a chapter heading (``"chapter"``) begins.

    A paragraph begins at the first non-blank character after an empty line, and at the start of the text.
    """
    if unit not in ("paragraph", "chapter"):
        raise ValueError(f"unit must be paragraph or chapter, not {unit!r}")
    lead = len(text) - len(text.lstrip())
    starts = ([lead] if lead < len(text) else []) + [m.end() for m in _PARAGRAPH_BREAK.finditer(text)
                                                     if m.end() < len(text)]
    if unit == "chapter":
        starts = [s for s in starts if _CHAPTER.match(text, s)]
    return starts


def tokenize_with_starts(docs: list[str], tokenizer, unit: str = "paragraph") -> tuple[list[np.ndarray],
                                                                                      list[np.ndarray]]:
    """Token ids of every document and the token indices where its paragraphs (or chapters) begin.

    Each document is tokenized piece by piece, cut at the paragraph starts, so that a paragraph's first
    character always opens a token (BPE pre-tokenizers split at the blank line anyway, so the pieces
    tokenize as the whole text does up to the odd whitespace token). ``unit="any"`` gives every
    token position (the old behaviour: blocks may open mid-sentence).
    """
    if unit not in BLOCK_STARTS:
        raise ValueError(f"unit must be one of {BLOCK_STARTS}, not {unit!r}")
    ids_out, starts_out = [], []
    for d in docs:
        cuts = paragraph_offsets(d, "paragraph")
        if not cuts or cuts[0] != 0:
            cuts = [0, *cuts]
        pieces = [d[a:b] for a, b in zip(cuts, [*cuts[1:], len(d)], strict=True)]
        enc = tokenizer(pieces, add_special_tokens=False)["input_ids"] if pieces else []
        lens = np.array([len(e) for e in enc], dtype=np.int64)
        first = np.concatenate([[0], np.cumsum(lens)[:-1]]) if len(lens) else np.zeros(0, np.int64)
        ids = np.asarray([t for e in enc for t in e], dtype=np.int64)
        keep = set(paragraph_offsets(d, "chapter")) if unit == "chapter" else None
        if unit == "any":
            st = np.arange(len(ids), dtype=np.int64)
        else:
            st = np.asarray([f for c, f, n in zip(cuts, first, lens, strict=True)
                             if n > 0 and not d[c].isspace() and (keep is None or c in keep)], dtype=np.int64)
        ids_out.append(ids)
        starts_out.append(st)
    return ids_out, starts_out


def sample_blocks(token_docs: list[np.ndarray], n_samples: int, length: int, seed: int = 0,
                  starts: list[np.ndarray] | None = None) -> np.ndarray:
    """``n_samples`` non-overlapping blocks of ``length`` consecutive tokens, drawn at random across documents.

    ``starts[i]``: the token indices of document ``i`` a block may begin at (paragraph or chapter starts,
    from :func:`tokenize_with_starts`); without them, blocks tile each document from its first token
    (a block may then open mid-sentence, right behind the scorer's document-start token).
    """
    rng = np.random.default_rng(seed)
    if starts is None:
        blocks = [(i, s) for i, d in enumerate(token_docs) for s in range(0, len(d) - length + 1, length)]
        if len(blocks) < n_samples:
            raise UserError(f"the corpus holds only {len(blocks)} blocks of {length} tokens, fewer than {n_samples}",
                            "use fewer samples, a smaller --max-split, or a larger corpus")
        pick = [blocks[j] for j in rng.choice(len(blocks), n_samples, replace=False)]
    else:
        cands = [(i, int(s)) for i, (d, st) in enumerate(zip(token_docs, starts, strict=True))
                 for s in st if s + length <= len(d)]
        taken: dict[int, list[int]] = {}
        pick = []
        for j in rng.permutation(len(cands)):
            i, s = cands[j]
            if all(abs(s - t) >= length for t in taken.get(i, [])):     # no overlap with a block taken
                taken.setdefault(i, []).append(s)
                pick.append((i, s))
                if len(pick) == n_samples:
                    break
        if len(pick) < n_samples:
            raise UserError(f"the corpus holds only {len(pick)} non-overlapping blocks of {length} tokens that "
                            f"open a paragraph/chapter, fewer than {n_samples}",
                            "use fewer samples, a smaller --max-split, --block-start paragraph, or a larger corpus")
    return np.stack([token_docs[i][s: s + length] for i, s in pick])


def start_token_id(tokenizer, choice: str = "auto") -> int:
    """The token that opens every scored sequence, i.e. marks a document start.

    ``auto``: ``<|endoftext|>`` when the vocabulary has it (the document separator of GPT-2, SmolLM2 and
    Qwen pre-training; SmolLM2-Instruct's BOS ``<|im_start|>`` would open a chat turn), else BOS, else EOS.
    Any other value is a token string.
    """
    if choice == "auto":
        vocab = tokenizer.get_vocab()
        if "<|endoftext|>" in vocab:
            return int(vocab["<|endoftext|>"])
    else:
        tid = tokenizer.convert_tokens_to_ids(choice)
        if tid is None or tid == tokenizer.unk_token_id:
            raise UserError(f"start token {choice!r} is not in the vocabulary", "pass --start-token auto")
        return int(tid)
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise UserError("the tokenizer has neither a BOS nor an EOS token", "pass --start-token <token>")


class LMScorer:
    """``log q(s_j | <start>, s_<j)`` from a transformers causal LM (one forward pass per batch)."""

    def __init__(self, model, tokenizer, start_token: str = "auto", chunk: int = 256):
        self.model, self.tokenizer = model, tokenizer
        self.start_id = start_token_id(tokenizer, start_token)
        self.chunk = chunk
        self.tokens_scored = 0

    def token_logprobs(self, seqs: np.ndarray) -> np.ndarray:
        import torch

        from paperlab.core.internals import sequence_logprobs

        seqs_t = torch.as_tensor(np.asarray(seqs), dtype=torch.long)
        B, T = seqs_t.shape
        ids = torch.cat([torch.full((B, 1), self.start_id, dtype=torch.long), seqs_t], dim=1)
        with torch.no_grad():
            out = sequence_logprobs(self.model, ids, chunk=self.chunk).double().cpu()  # [B, T]
        self.tokens_scored += B * (T + 1)
        return out.numpy()


class VLLMScorer:
    """The same log-probs from vLLM's ``prompt_logprobs`` (GPU users; vLLM is not a paperlab dependency)."""

    def __init__(self, model_path: str, start_id: int, **llm_kwargs):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise UserError("vLLM is not installed", "pip install vllm on a GPU machine, or use --scorer torch") from None
        self.llm = LLM(model=model_path, **llm_kwargs)
        self.params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        self.start_id = start_id

    def token_logprobs(self, seqs: np.ndarray) -> np.ndarray:
        prompts = [{"prompt_token_ids": [self.start_id] + [int(t) for t in s]} for s in np.asarray(seqs)]
        outs = self.llm.generate(prompts, self.params, use_tqdm=False)
        res = np.zeros(np.asarray(seqs).shape)
        for i, (o, s) in enumerate(zip(outs, np.asarray(seqs), strict=True)):
            # prompt_logprobs[0] is None (the start token); entry j+1 holds token j's log-prob
            res[i] = [d[int(t)].logprob for d, t in zip(o.prompt_logprobs[1:], s, strict=True)]
        return res
