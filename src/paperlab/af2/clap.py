"""AF-CLAP (Audio Flamingo 2, §3.1–3.2): an audio encoder and a text encoder trained contrastively, with the
AF-CLAP loss (linguistic variants as positives, compositional negatives) or plain InfoNCE.

**Audio encoder** (:class:`AudioEncoder`). AF2 runs HTS-AT-large on each 10 s log-mel window and keeps the
final stage's 64 x 2048 tokens (not a pooled vector) for the language model. Ours, at small width: the
window's (1001, 64) log-mel -> 3 strided 1-D convolutions over time (x 16 down-sampling) -> average pooling
to ``n_tokens`` tokens -> learned positions -> a small pre-LN transformer encoder -> ``tokens`` (n, T, d).
The contrastive embedding: the tokens' means over 4 consecutive stretches of the window, concatenated in time
order, projected and L2-normalised (our choice, see :meth:`AudioEncoder.embed_tokens`). Long audio: each window is
encoded on its own (AF2's sliding windows); :func:`clip_embedding` averages the window embeddings.

**Text encoder** (:class:`TextEncoder`). Our choice (the paper uses a T5-style pretrained text encoder): a
small transformer trained from scratch over *words* (lower-cased words and punctuation, vocabulary = the
training captions' words; unknown words map to ``<unk>``), learned positions, mean pooling over non-pad
tokens, projection, L2 norm. A word-order-aware encoder is needed for "A then B" vs "B then A"; the frozen
MiniLM of the core would mostly average the words away.

**Losses.** With ``s(a, t) = exp(cos(a, t) / tau)`` (``1/tau`` a learned logit scale, CLIP's init 1/0.07):

- :func:`info_nce` (LAION-CLAP's ClipLoss, the baseline): one caption per audio, in-batch negatives,
  symmetric: ``L = 1/2 [CE(A T^T / tau, I) + CE(T A^T / tau, I)]``.
- :func:`af_clap_loss` (AF-CLAP). The paper's equation could not be read and no training code is released
  (the released ``clap_module/loss.py`` is the plain ClipLoss), so this is the reading of the fact sheet,
  UNVERIFIED: audio ``a_i`` has ``M`` linguistic variants ``t_i^j`` of its caption (positives) and ``N``
  compositional negatives ``t_i^{j,n}`` of each (event order or one attribute swapped)::

      L_i = -log  sum_j s(a_i, t_i^j)
                  / [ sum_j s(a_i, t_i^j) + sum_{k != i} sum_j s(a_i, t_k^j) + sum_j sum_n s(a_i, t_i^{j,n}) ]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, UNK = "<pad>", "<unk>"
MEL_OFFSET, MEL_SCALE = 50.0, 25.0  # fixed input scaling of the dB log-mel: (dB + 50) / 25, floor -100 dB


# ---------------------------------------------------------------------------------------------- words


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: ``'A "dog", then'`` -> ``['a', '"', 'dog', '"', ',', 'then']``."""
    return re.findall(r"[a-z0-9']+|[^\sa-z0-9']", text.lower())


class WordVocab:
    """Word <-> id. Ids 0 and 1 are ``<pad>`` and ``<unk>``; ``specials`` follow them."""

    def __init__(self, tokens: Sequence[str]):
        self.itos = list(tokens)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str], specials: Sequence[str] = ()) -> WordVocab:
        seen = dict.fromkeys([PAD, UNK, *specials])
        for t in texts:
            seen.update(dict.fromkeys(words(t)))
        return cls(list(seen))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        unk = self.stoi[UNK]
        return [self.stoi.get(w, unk) for w in words(text)]

    def unknown_share(self, text: str) -> float:
        ws = words(text)
        return sum(w not in self.stoi for w in ws) / max(1, len(ws))

    def batch(self, texts: Sequence[str], max_len: int) -> torch.Tensor:
        """Right-padded id matrix (len(texts), L <= max_len); longer texts are cut."""
        ids = [self.encode(t)[:max_len] or [self.stoi[UNK]] for t in texts]
        out = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
        for i, row in enumerate(ids):
            out[i, : len(row)] = torch.tensor(row)
        return out


# ---------------------------------------------------------------------------------------------- encoders


@dataclass
class ClapConfig:
    d_model: int = 128        # audio token width (AF2: 2048)
    n_tokens: int = 32        # tokens per 10 s window (AF2: 64)
    audio_layers: int = 2
    text_layers: int = 2
    n_heads: int = 4
    embed_dim: int = 128      # joint embedding
    max_text_len: int = 64
    segments: int = 4         # the audio embedding pools 4 stretches of the window separately (n_tokens % 4 == 0)
    vocab_size: int = 0       # set from the vocabulary


def _encoder(d: int, heads: int, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class AudioEncoder(nn.Module):
    """(n, frames, 64) dB log-mel windows -> tokens (n, T, d) and normalised embeddings (n, e)."""

    def __init__(self, cfg: ClapConfig):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.conv = nn.Sequential(                                   # 1001 -> 250 -> 125 -> 63 frames
            nn.Conv1d(64, d, 4, stride=4), nn.GELU(),
            nn.Conv1d(d, d, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(d, d, 3, stride=2, padding=1), nn.GELU())
        self.pos = nn.Parameter(torch.randn(cfg.n_tokens, d) * 0.2)
        self.encoder = _encoder(d, cfg.n_heads, cfg.audio_layers)
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(cfg.segments * d, cfg.embed_dim)

    def tokens(self, mel: torch.Tensor) -> torch.Tensor:
        x = (mel.float().clamp_min(-100.0) + MEL_OFFSET) / MEL_SCALE          # (n, frames, 64)
        x = self.conv(x.transpose(1, 2))                                      # (n, d, frames / 16)
        x = F.adaptive_avg_pool1d(x, self.cfg.n_tokens).transpose(1, 2)       # (n, T, d)
        return self.norm(self.encoder(x + self.pos))

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean over each of ``segments`` consecutive stretches of tokens, concatenated in time order, projected
        (our choice: a plain mean over all tokens would leave the order of events to subtle token features)."""
        n, T, d = tokens.shape
        seg = tokens.view(n, self.cfg.segments, T // self.cfg.segments, d).mean(2).reshape(n, -1)
        return F.normalize(self.proj(seg), dim=-1)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokens(mel)
        return tok, self.embed_tokens(tok)


class TextEncoder(nn.Module):
    """(B, L) word ids (0 = pad) -> normalised embeddings (B, e)."""

    def __init__(self, cfg: ClapConfig):
        super().__init__()
        d = cfg.d_model
        self.emb = nn.Embedding(cfg.vocab_size, d, padding_idx=0)     # N(0, 1)
        self.pos = nn.Parameter(torch.randn(cfg.max_text_len, d))      # positions on the words' scale: word order
        self.encoder = _encoder(d, cfg.n_heads, cfg.text_layers)
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, cfg.embed_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == 0
        x = self.emb(ids) + self.pos[: ids.shape[1]]
        x = self.norm(self.encoder(x, src_key_padding_mask=pad))
        keep = (~pad).unsqueeze(-1).float()
        pooled = (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)               # mean over words
        return F.normalize(self.proj(pooled), dim=-1)


class Clap(nn.Module):
    """The two encoders and the learned logit scale ``1/tau`` (CLIP init 1/0.07, clamped at 100)."""

    def __init__(self, cfg: ClapConfig, vocab: WordVocab):
        super().__init__()
        cfg.vocab_size = len(vocab)
        self.cfg, self.vocab = cfg, vocab
        self.audio = AudioEncoder(cfg)
        self.text = TextEncoder(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=100.0)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.text(self.vocab.batch(texts, self.cfg.max_text_len).to(self.logit_scale.device))

    def state(self) -> dict:
        """Everything needed to rebuild the model (``Clap.from_state``)."""
        return {"config": asdict(self.cfg), "vocab": self.vocab.itos, "weights": self.state_dict()}

    @classmethod
    def from_state(cls, state: dict) -> Clap:
        model = cls(ClapConfig(**state["config"]), WordVocab(state["vocab"]))
        model.load_state_dict(state["weights"])
        return model


@torch.no_grad()
def clip_embedding(model: Clap, window_mels: torch.Tensor) -> torch.Tensor:
    """One embedding for a clip of any length: the normalised mean of its windows' embeddings (our choice;
    AF-CLAP scores one 10 s window)."""
    _, e = model.audio(window_mels)
    return F.normalize(e.mean(0), dim=-1)


# ---------------------------------------------------------------------------------------------- losses


def info_nce(a: torch.Tensor, t: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Plain symmetric InfoNCE (CLIP / LAION ClipLoss) over a batch of (audio, caption) pairs.

    ``L = 1/2 [CE(s A T^T, I) + CE(s T A^T, I)]`` with ``a`` (B, e), ``t`` (B, e) L2-normalised, ``s = 1/tau``.
    """
    logits = scale * a @ t.T                                                     # (B, B)
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def af_clap_loss(a: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AF-CLAP loss (reading of the fact sheet, unverified; see the module docstring).

    ``a`` (B, e) audio, ``pos`` (B, M, e) the M linguistic variants of each caption, ``neg`` (B, M, N, e) N
    compositional negatives of each variant, all L2-normalised::

        L_i = -log sum_j s(a_i, t_i^j) / [sum_j s(a_i, t_i^j) + sum_{k!=i,j} s(a_i, t_k^j) + sum_{j,n} s(a_i, t_i^{j,n})]

    computed in log space: ``L_i = logsumexp(all logits of a_i) - logsumexp(its M positive logits)``.
    """
    B, M, _ = pos.shape
    batch_logits = scale * torch.einsum("be,kme->bkm", a, pos).reshape(B, B * M)    # s(a_i, t_k^j), all k, j
    neg_logits = scale * torch.einsum("be,bmne->bmn", a, neg).reshape(B, -1)       # s(a_i, t_i^{j,n})
    own = torch.arange(B, device=a.device)
    pos_logits = batch_logits.view(B, B, M)[own, own]                               # (B, M): k = i
    denominator = torch.logsumexp(torch.cat([batch_logits, neg_logits], 1), dim=1)
    return (denominator - torch.logsumexp(pos_logits, dim=1)).mean()


# ---------------------------------------------------------------------------------------------- scoring


@torch.no_grad()
def rank_captions(model: Clap, window_mels: np.ndarray | torch.Tensor, captions: Sequence[str]) -> list[dict]:
    """Cosine of each caption with the clip, best first: ``[{caption, score, rank, unknown_word_share}]``."""
    model.eval()
    a = clip_embedding(model, torch.as_tensor(np.asarray(window_mels), dtype=torch.float32))
    t = model.encode_text(list(captions))
    scores = (t @ a).tolist()
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [{"rank": r + 1, "caption": captions[i], "score": round(float(scores[i]), 5),
             "unknown_word_share": round(model.vocab.unknown_share(captions[i]), 3)} for r, i in enumerate(order)]
