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


def tokenize_documents(docs: list[str], tokenizer) -> list[np.ndarray]:
    """Token ids of every document (no special tokens)."""
    out = []
    for d in docs:
        ids = tokenizer(d, add_special_tokens=False)["input_ids"]
        out.append(np.asarray(ids, dtype=np.int64))
    return out


def sample_blocks(token_docs: list[np.ndarray], n_samples: int, length: int, seed: int = 0) -> np.ndarray:
    """``n_samples`` non-overlapping blocks of ``length`` consecutive tokens, drawn at random across documents."""
    blocks = [(i, s) for i, d in enumerate(token_docs) for s in range(0, len(d) - length + 1, length)]
    if len(blocks) < n_samples:
        raise UserError(f"the corpus holds only {len(blocks)} blocks of {length} tokens, fewer than {n_samples}",
                        "use fewer samples, a smaller --max-split, or a larger corpus")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(blocks), n_samples, replace=False)
    return np.stack([token_docs[blocks[j][0]][blocks[j][1]: blocks[j][1] + length] for j in pick])


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
