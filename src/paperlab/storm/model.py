"""STORM's pipeline at small width: frozen frame encoder -> Linear projector -> Mamba temporal encoder ->
token reduction -> answer model.

==========================  =======================================================================================
paper                        here
==========================  =======================================================================================
vision encoder (SigLIP)      a frozen :class:`paperlab.core.video.FrameEncoder` (a fixed random conv net or
                             EfficientNet-Lite0); its tokens are computed once per video and cached
pixel shuffle + Linear       :class:`VideoTokens` ``.proj``: a Linear map to the model width (our encoders already
(§8.3)                       give a 4x4 grid, so no pixel shuffle)
Mamba temporal module        ``L`` layers ``X <- X + MambaMixer(LN(X))`` (Eq. 5) over the sequence flattened
(§3.2, Eq. 5)                frame by frame, each frame left-to-right, top-to-bottom, scanned both ways
                             (:mod:`.mamba`); the *Linear* baseline (VILA's projector) has no such layers
temporal pooling (Eq. 6)     :func:`temporal_pool`: the mean of ``k`` consecutive frames, AFTER the Mamba layers
spatial pooling              :func:`spatial_pool`: per-frame ``p x p`` average (kernel = stride), ``p^2`` x fewer
test-time sampling (Eq. 8)   :func:`temporal_sample`: every ``s``-th (pooled) frame, at inference only
LLM (Qwen2 / Llama3)         :class:`AnswerLM`: a small decoder (the core :class:`~paperlab.core.transformer.
                             Transformer`'s blocks, RoPE, LM head) reading ``[visual tokens ; question words]``
                             and scoring each answer choice's word at the last position
==========================  =======================================================================================

A model is trained with its pooling (``k`` or ``p``) in place, as STORM trains its pooled models; test-time
sampling ``s`` is applied to a trained model without retraining.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.core.transformer import Transformer, TransformerConfig
from paperlab.storm.mamba import MambaConfig, MambaLayer

PROJECTORS = ("linear", "mamba")


# ---------------------------------------------------------------------------------------------- token reduction


def temporal_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """Eq. 6: average every ``k`` consecutive frames, ``(b, T, P, d) -> (b, ceil(T/k), P, d)`` (a last, shorter
    window is averaged over the frames it has)."""
    if k == 1:
        return x
    b, T, P, d = x.shape
    full = T // k
    parts = [x[:, : full * k].reshape(b, full, k, P, d).mean(2)] if full else []
    if T % k:
        parts.append(x[:, full * k:].mean(1, keepdim=True))
    return torch.cat(parts, 1)


def spatial_pool(x: torch.Tensor, grid: tuple[int, int], p: int) -> torch.Tensor:
    """Per-frame ``p x p`` average pooling (kernel = stride = p) on the ``grid`` of tokens,
    ``(b, T, h*w, d) -> (b, T, (h/p)*(w/p), d)``."""
    if p == 1:
        return x
    b, T, P, d = x.shape
    h, w = grid
    img = x.reshape(b * T, h, w, d).permute(0, 3, 1, 2)                     # row-major tokens -> (h, w) map
    img = F.avg_pool2d(img, kernel_size=p, stride=p)
    return img.permute(0, 2, 3, 1).reshape(b, T, -1, d)


def temporal_sample(x: torch.Tensor, s: int) -> torch.Tensor:
    """Eq. 8: keep every ``s``-th frame, ``(b, T, P, d) -> (b, ceil(T/s), P, d)``."""
    return x if s == 1 else x[:, ::s]


def tokens_per_video(n_frames: int, grid: tuple[int, int], k: int = 1, p: int = 1, s: int = 1) -> int:
    """Visual tokens the answer model reads for one video under pooling ``k``, ``p`` and sampling ``s``."""
    t = -(-n_frames // k)
    t = -(-t // s)
    return t * (grid[0] // p) * (grid[1] // p)


# ---------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class StormConfig:
    """One variant: projector, width, Mamba depth, training-time pooling; the answer model's size."""

    feat_dim: int = 64                 # frame encoder channels
    grid: tuple[int, int] = (4, 4)     # frame encoder token grid
    n_frames: int = 16
    projector: str = "mamba"           # linear | mamba
    d_model: int = 64
    mamba_layers: int = 2
    bidirectional: bool = True
    scan: str = "auto"
    temporal_pool: int = 1             # k (Eq. 6)
    spatial_pool: int = 1              # p (p x p average)
    vocab_size: int = 64
    answer_layers: int = 2
    answer_heads: int = 4
    max_question_len: int = 24
    answer_lm: str = ""                # a transformers causal LM folder instead of the small decoder

    def __post_init__(self):
        if self.projector not in PROJECTORS:
            raise ValueError(f"projector must be one of {PROJECTORS}, not {self.projector!r}")
        if self.grid[0] % self.spatial_pool or self.grid[1] % self.spatial_pool:
            raise ValueError(f"spatial pooling {self.spatial_pool} does not divide the token grid {self.grid}")

    def visual_tokens(self, s: int = 1) -> int:
        return tokens_per_video(self.n_frames, self.grid, self.temporal_pool, self.spatial_pool, s)

    def as_dict(self) -> dict:
        return asdict(self)


class VideoTokens(nn.Module):
    """Encoder tokens -> Linear projector -> (Mamba layers) -> pooling -> (sampling): the visual tokens."""

    def __init__(self, cfg: StormConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.feat_dim, cfg.d_model)
        mcfg = MambaConfig(d_model=cfg.d_model, bidirectional=cfg.bidirectional, scan=cfg.scan)
        n = cfg.mamba_layers if cfg.projector == "mamba" else 0
        self.layers = nn.ModuleList(MambaLayer(mcfg) for _ in range(n))

    def forward(self, feats: torch.Tensor, sample: int = 1) -> torch.Tensor:
        """``feats: (b, T, P, feat_dim)`` -> ``(b, n_visual_tokens, d_model)``."""
        b, T, P, _ = feats.shape
        x = self.proj(feats)                                                # Linear projector
        if len(self.layers):
            x = x.reshape(b, T * P, -1)                                     # scan order: frame by frame, row-major
            for layer in self.layers:
                x = layer(x)                                                # X <- X + MambaMixer(LN(X))   (Eq. 5)
            x = x.reshape(b, T, P, -1)
        x = temporal_pool(x, self.cfg.temporal_pool)                        # Eq. 6, after the Mamba layers
        x = spatial_pool(x, self.cfg.grid, self.cfg.spatial_pool)
        x = temporal_sample(x, sample)                                      # Eq. 8, test time only
        return x.reshape(b, -1, x.shape[-1])


class AnswerLM(nn.Module):
    """A small decoder LM over ``[visual tokens ; question words]``; the answer is the choice whose word the LM
    head scores highest at the question's last token (the visual tokens are a prefix, as in a VLM)."""

    def __init__(self, cfg: StormConfig):
        super().__init__()
        max_len = cfg.visual_tokens() + cfg.max_question_len
        tcfg = TransformerConfig(vocab_size=cfg.vocab_size, d_model=cfg.d_model, n_layers=cfg.answer_layers,
                                 n_heads=cfg.answer_heads, d_ff=int(8 * cfg.d_model / 3) // 8 * 8,
                                 max_seq_len=max_len)
        self.lm = Transformer(tcfg)

    def forward(self, visual: torch.Tensor, q_ids: torch.Tensor, q_len: torch.Tensor,
                choice_ids: torch.Tensor) -> torch.Tensor:
        """``visual: (m, V, d)`` (one row per question), ``q_ids: (m, Lq)`` right-padded, ``q_len: (m,)``,
        ``choice_ids: (m, K)`` word ids of the choices (-1 pads) -> choice logits ``(m, K)`` (pads at -inf)."""
        lm = self.lm
        x = torch.cat([visual, lm.tok_emb(q_ids)], 1)
        for block in lm.blocks:
            x = block(x, lm.rope)                                           # causal: pads after a question are unseen
        last = x[torch.arange(x.shape[0]), visual.shape[1] + q_len - 1]     # the question's last token
        logits = lm.lm_head(lm.norm(last))                                  # (m, vocab)
        out = logits.gather(1, choice_ids.clamp(min=0))
        return out.masked_fill(choice_ids < 0, float("-inf"))


class HFAnswerLM(nn.Module):
    """A transformers causal LM (any ``AutoModelForCausalLM`` folder) as the answer model: the visual tokens,
    mapped to its hidden size by a Linear, are a prefix of the question's token embeddings (the VILA / STORM
    layout); the choices are scored by their first token at the question's last position. Fine-tuned with the
    rest (the paper's SFT stage)."""

    def __init__(self, cfg: StormConfig):
        super().__init__()
        from transformers import AutoModelForCausalLM

        self.lm = AutoModelForCausalLM.from_pretrained(cfg.answer_lm)
        self.bridge = nn.Linear(cfg.d_model, self.lm.config.hidden_size)

    def forward(self, visual, q_ids, q_len, choice_ids):
        emb = self.lm.get_input_embeddings()
        x = torch.cat([self.bridge(visual).to(emb.weight.dtype), emb(q_ids)], 1)
        V = visual.shape[1]
        mask = torch.cat([torch.ones(len(q_ids), V, dtype=torch.long, device=x.device),
                          (torch.arange(q_ids.shape[1], device=x.device)[None] < q_len[:, None]).long()], 1)
        logits = self.lm(inputs_embeds=x, attention_mask=mask).logits
        last = logits[torch.arange(len(q_ids), device=x.device), V + q_len - 1].float()
        return last.gather(1, choice_ids.clamp(min=0)).masked_fill(choice_ids < 0, float("-inf"))


class Storm(nn.Module):
    """The whole trainable model: :class:`VideoTokens` + :class:`AnswerLM` (the frame encoder stays frozen,
    outside)."""

    def __init__(self, cfg: StormConfig):
        super().__init__()
        self.cfg = cfg
        self.video = VideoTokens(cfg)
        self.answer = HFAnswerLM(cfg) if cfg.answer_lm else AnswerLM(cfg)

    def forward(self, feats: torch.Tensor, video_of: torch.Tensor, q_ids: torch.Tensor, q_len: torch.Tensor,
                choice_ids: torch.Tensor, sample: int = 1) -> torch.Tensor:
        """``feats: (b, T, P, C)`` for ``b`` videos; question ``i`` asks about video ``video_of[i]``."""
        vis = self.video(feats, sample)                                     # each video encoded once
        return self.answer(vis[video_of], q_ids, q_len, choice_ids)


# ---------------------------------------------------------------------------------------------- words


PAD, UNK = "<pad>", "<unk>"


def words(text: str) -> list[str]:
    """Lower-case word tokens of a question (punctuation kept as its own token)."""
    return re.findall(r"[a-z0-9]+|[?]", text.lower())


class Vocab:
    """Question words and answer choices (each choice string one token), fixed when training starts."""

    def __init__(self, tokens: list[str]):
        self.itos = [PAD, UNK] + [t for t in dict.fromkeys(tokens) if t not in (PAD, UNK)]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, questions: list[str], choices: list[str]) -> Vocab:
        return cls(sorted({w for q in questions for w in words(q)}) + sorted(set(choices)))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(w, 1) for w in words(text)]

    def choice(self, c: str) -> int:
        return self.stoi.get(c, 1)

    def knows(self, c: str) -> bool:
        return c in self.stoi

    def state(self) -> list[str]:
        return self.itos


class TokenizerVocab:
    """The :class:`Vocab` interface over a transformers tokenizer (``answer_lm``): question ids as the LM
    tokenizes them, a choice as the first token of " choice"."""

    def __init__(self, path: str):
        from transformers import AutoTokenizer

        self.path = path
        self.tok = AutoTokenizer.from_pretrained(path)

    def __len__(self) -> int:
        return len(self.tok)

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def choice(self, c: str) -> int:
        ids = self.tok(" " + c, add_special_tokens=False).input_ids
        word = [i for i in ids if self.tok.decode([i]).strip()]            # skip a bare-space piece
        return (word or ids)[0]

    def knows(self, c: str) -> bool:
        return True

    def state(self) -> dict:
        return {"hf": self.path}


def load_vocab(state) -> Vocab | TokenizerVocab:
    """The vocabulary saved by :meth:`Vocab.state` / :meth:`TokenizerVocab.state`."""
    return TokenizerVocab(state["hf"]) if isinstance(state, dict) else Vocab(state[2:])
