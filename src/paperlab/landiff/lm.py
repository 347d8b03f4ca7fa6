"""LanDiff's language model over semantic tokens (§3.2): text, frame count and motion in; I/P tokens out.

**Sequence** (released ``llm/models/lm_model.py``)::

    [BOS] [frames] [motion] [text_1 .. text_L] [SOI] I_1..I_ni [EOI] ([SOP] P_1..P_np [EOP]) x (K-1) [EOS]

The vocabulary is the tokenizer's codebook plus 7 specials (EOS, BOS, SOI, EOI, SOP, EOP, PAD). The loss
is next-token cross-entropy on the visual and special tokens only (from ``[SOI]`` on; padding ignored).
When sampling, the specials are *forced* at their fixed positions (the frame count fixes the layout) and
only codebook tokens are sampled elsewhere.

**Conditions.**

- Text: a frozen text encoder's per-token embeddings (paper: Flan-T5-XXL, <= 512 tokens) -> MLP -> prefix
  tokens. Here the frozen MiniLM sentence encoder's *token* embeddings (384-d, the offline
  ``embed:minilm`` of the core; any sentence-transformers folder by ``hf:<path>``), padded to ``text_len``.
  Why MiniLM rather than learned word embeddings: it is the paper's design (a frozen pretrained encoder
  whose per-token states are projected), and a user caption with words the training captions never used
  still gets a meaningful embedding.
- Frame count and motion score: each scalar -> sinusoidal 256-d embedding -> MLP 256-512-d with the last
  layer zero-initialised (so a new condition starts as a no-op), one prefix token each. The motion score is
  multiplied by ``motion_scale`` (1000) before the sinusoidal embedding, as diffusion timesteps are, so the
  range of our clips' scores (about 0.005-0.05) spans distinguishable angles.
- Classifier-free guidance: in training, 10% of the text embeddings are replaced by a learned null
  embedding; at inference the logits are ``l_u + s (l_c - l_u)`` with ``l_u`` the null-text logits
  (paper default s = 7.5, temperature 1.0).

**Backbone.** LLaMA-style blocks (RMSNorm, 1D RoPE, gated GELU-tanh MLP as the paper's config, causal
attention) built from the core's small transformer parts (``paperlab.core.transformer``): 4 x 128 here,
24 x 2048 in the paper. ``backbone="hf:<path>"`` runs any transformers decoder (Llama, Qwen, SmolLM...)
on ``inputs_embeds`` instead, with our own token embedding and head for the visual vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

SPECIALS = ("EOS", "BOS", "SOI", "EOI", "SOP", "EOP", "PAD")


@dataclass
class LMConfig:
    codebook_size: int
    n_i: int
    n_p: int
    max_frames: int             # semantic frames (K) of the longest clip
    text_dim: int               # width of the frozen text encoder's token embeddings
    text_len: int = 16          # text tokens kept (paper <= 512)
    d_model: int = 128          # paper 2048
    n_layers: int = 4           # paper 24
    n_heads: int = 4            # paper 16
    d_ff: int = 344             # paper 11008 (gated)
    sin_dim: int = 256          # sinusoidal embedding of frame count and motion (paper 256)
    cond_hidden: int = 512      # micro-condition MLP 256-512-d (paper 256-512-2048)
    motion_scale: float = 1000.0
    p_null: float = 0.1         # share of text embeddings replaced by the null embedding in training
    backbone: str = "small"     # "small" (core blocks) | "hf:<path>" (a transformers decoder)

    @property
    def vocab(self) -> int:
        return self.codebook_size + len(SPECIALS)

    def special(self, name: str) -> int:
        return self.codebook_size + SPECIALS.index(name)

    @property
    def prefix_len(self) -> int:
        return 3 + self.text_len                 # BOS, frames, motion, text

    def visual_len(self, frames: int) -> int:
        """Visual + special tokens for ``frames`` semantic frames, [SOI] .. [EOS]."""
        return (self.n_i + 2) + (frames - 1) * (self.n_p + 2) + 1

    def to_dict(self) -> dict:
        return asdict(self)


def visual_sequence(cfg: LMConfig, codes: torch.Tensor, frames: int) -> torch.Tensor:
    """Code indices ``(B, n_i + (K-1) n_p)`` -> ``[SOI] I [EOI] ([SOP] P [EOP])* [EOS]`` ``(B, visual_len)``."""
    b = codes.shape[0]

    def tok(name: str) -> torch.Tensor:
        return torch.full((b, 1), cfg.special(name), dtype=torch.long, device=codes.device)

    parts = [tok("SOI"), codes[:, : cfg.n_i], tok("EOI")]
    for k in range(frames - 1):
        s = cfg.n_i + k * cfg.n_p
        parts += [tok("SOP"), codes[:, s: s + cfg.n_p], tok("EOP")]
    parts.append(tok("EOS"))
    return torch.cat(parts, 1)


def forced_layout(cfg: LMConfig, frames: int) -> list[int | None]:
    """For each visual position: the special token forced there, or None where a code is sampled."""
    out: list[int | None] = [cfg.special("SOI")] + [None] * cfg.n_i + [cfg.special("EOI")]
    for _ in range(frames - 1):
        out += [cfg.special("SOP")] + [None] * cfg.n_p + [cfg.special("EOP")]
    return out + [cfg.special("EOS")]


def codes_of(cfg: LMConfig, visual: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`visual_sequence`: the code positions of a visual sequence."""
    frames = 1 + (visual.shape[1] - (cfg.n_i + 3)) // (cfg.n_p + 2)
    keep = [i for i, f in enumerate(forced_layout(cfg, frames)) if f is None]
    return visual[:, keep]


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """``[cos(x w_j), sin(x w_j)]`` with ``w_j = max_period^(-j / (dim/2))`` (the timestep embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
    a = x.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], -1)


class MicroCondition(nn.Module):
    """Scalar -> sinusoidal(256) -> Linear 256-512, SiLU, Linear 512-d (zero-initialised) -> one prefix token."""

    def __init__(self, sin_dim: int, hidden: int, d: int, scale: float = 1.0):
        super().__init__()
        self.sin_dim, self.scale = sin_dim, scale
        self.net = nn.Sequential(nn.Linear(sin_dim, hidden), nn.SiLU(), nn.Linear(hidden, d))
        nn.init.zeros_(self.net[-1].weight)   # the paper's zero-initialised last layer
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(sinusoidal(x * self.scale, self.sin_dim))


class GatedGELU(nn.Module):
    """The gated MLP of the paper's LLaMA blocks: ``W_2 (GELU_tanh(W_1 x) * W_3 x)``."""

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.w1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.w3 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.w2 = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.gelu(self.w1(x), approximate="tanh") * self.w3(x))


class SmallBackbone(nn.Module):
    """Causal pre-norm blocks from :mod:`paperlab.core.transformer` over input embeddings."""

    def __init__(self, cfg: LMConfig, max_len: int):
        super().__init__()
        from paperlab.core.transformer import (
            CausalSelfAttention,
            PreNormBlock,
            RMSNorm,
            Rotary,
            TransformerConfig,
        )

        tc = TransformerConfig(vocab_size=cfg.vocab, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                               d_ff=cfg.d_ff, max_seq_len=max_len)
        self.rope = Rotary(tc.head_dim, max_len)
        self.blocks = nn.ModuleList(PreNormBlock(tc, i, CausalSelfAttention(tc, i), GatedGELU(tc))
                                    for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.hidden = cfg.d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, self.rope)
        return self.norm(x)


class HFBackbone(nn.Module):
    """Any transformers decoder on ``inputs_embeds`` (a real LLM by path); returns its last hidden states."""

    def __init__(self, path: str):
        super().__init__()
        from transformers import AutoModel

        self.model = AutoModel.from_pretrained(path)
        self.hidden = int(self.model.config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(inputs_embeds=x, use_cache=False).last_hidden_state


class LanDiffLM(nn.Module):
    """``forward(codes_seq, text, text_mask, frames, motion, drop_text)`` -> logits over the visual vocabulary."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        max_len = cfg.prefix_len + cfg.visual_len(cfg.max_frames)
        if cfg.backbone == "small":
            self.backbone: nn.Module = SmallBackbone(cfg, max_len)
        elif cfg.backbone.startswith("hf:"):
            self.backbone = HFBackbone(cfg.backbone[3:])
        else:
            raise ValueError(f"unknown LM backbone {cfg.backbone!r}")
        d = self.backbone.hidden
        self.tok_emb = nn.Embedding(cfg.vocab, d)
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.text_pad = nn.Parameter(torch.zeros(d))
        self.null_text = nn.Parameter(torch.randn(cfg.text_len, d) * 0.02)   # the learned null embedding (CFG)
        self.frames_cond = MicroCondition(cfg.sin_dim, cfg.cond_hidden, d)
        self.motion_cond = MicroCondition(cfg.sin_dim, cfg.cond_hidden, d, cfg.motion_scale)
        self.head = nn.Linear(d, cfg.vocab, bias=False)
        for m in (self.tok_emb, self.head, *self.text_proj):
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def prefix(self, text: torch.Tensor, text_mask: torch.Tensor, frames: torch.Tensor, motion: torch.Tensor,
               drop_text: torch.Tensor) -> torch.Tensor:
        """``[BOS][frames][motion][text]`` embeddings ``(B, prefix_len, d)``; rows with ``drop_text`` get the
        null text embedding."""
        b = text.shape[0]
        t = self.text_proj(text)
        t = torch.where(text_mask[..., None], t, self.text_pad)
        t = torch.where(drop_text[:, None, None], self.null_text.expand(b, -1, -1), t)
        bos = self.tok_emb(torch.full((b, 1), self.cfg.special("BOS"), dtype=torch.long, device=text.device))
        return torch.cat([bos, self.frames_cond(frames)[:, None], self.motion_cond(motion)[:, None], t], 1)

    def forward(self, visual_in: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, visual_in_len + 1, vocab)``: position j predicts visual token j (the last prefix
        position predicts [SOI])."""
        x = torch.cat([prefix, self.tok_emb(visual_in)], 1)
        h = self.backbone(x)
        return self.head(h[:, prefix.shape[1] - 1:])

    def loss(self, visual: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, frames: torch.Tensor,
             motion: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Cross-entropy on the visual and special tokens (PAD ignored); 10% null text (CFG training)."""
        drop = torch.rand(visual.shape[0], generator=generator) < self.cfg.p_null
        logits = self(visual[:, :-1], self.prefix(text, text_mask, frames, motion, drop.to(visual.device)))
        target = visual.masked_fill(visual == self.cfg.special("PAD"), -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)

    @torch.no_grad()
    def generate(self, text: torch.Tensor, text_mask: torch.Tensor, frames: int, motion: torch.Tensor,
                 pixel_frames: int, cfg_scale: float = 7.5, temperature: float = 1.0,
                 generator: torch.Generator | None = None, prefix_codes: torch.Tensor | None = None,
                 uncond_only: bool = False) -> torch.Tensor:
        """Sample code indices ``(B, n_i + (K-1) n_p)`` for ``frames`` semantic frames.

        Specials are forced at their positions; elsewhere ``logits = l_u + s (l_c - l_u)`` over codebook
        tokens only, sampled at ``temperature``. ``prefix_codes`` (B, m) forces the first m codes (a chunk
        continuing from the tokens of the previous chunk's last frames). ``uncond_only`` samples from the null
        condition alone (the no-text baseline).
        """
        self.eval()
        b = text.shape[0]
        dev = text.device
        fr = torch.full((b,), float(pixel_frames), device=dev)
        cond = self.prefix(text, text_mask, fr, motion, torch.full((b,), uncond_only, dtype=torch.bool, device=dev))
        uncond = self.prefix(text, text_mask, fr, motion, torch.ones(b, dtype=torch.bool, device=dev))
        layout = forced_layout(self.cfg, frames)
        seq = torch.zeros(b, 0, dtype=torch.long, device=dev)
        n_code = 0
        for forced in layout:
            if forced is not None:
                nxt = torch.full((b, 1), forced, dtype=torch.long, device=dev)
            elif prefix_codes is not None and n_code < prefix_codes.shape[1]:
                nxt = prefix_codes[:, n_code: n_code + 1].to(dev)
                n_code += 1
            else:
                n_code += 1
                if uncond_only or cfg_scale == 1.0:
                    logits = self(seq, cond)[:, -1]
                else:
                    both = self(torch.cat([seq, seq]), torch.cat([cond, uncond]))[:, -1]
                    lc, lu = both[:b], both[b:]
                    logits = lu + cfg_scale * (lc - lu)          # CFG on logits
                logits = logits[:, : self.cfg.codebook_size] / max(temperature, 1e-6)
                probs = F.softmax(logits.float(), -1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            seq = torch.cat([seq, nxt], 1)
        return codes_of(self.cfg, seq)


class TextEncoder:
    """A frozen sentence-transformers encoder's per-token embeddings, padded to ``max_len`` (with a mask).

    ``spec``: ``embed:minilm`` (the core's offline all-MiniLM-L6-v2) or ``hf:<folder>``; embeddings of each
    distinct caption are computed once and kept.
    """

    def __init__(self, spec: str = "embed:minilm", max_len: int = 16):
        from paperlab.core.embeddings import load_embedder
        from paperlab.core.errors import UserError

        emb = load_embedder(spec)
        if not hasattr(emb, "model"):
            raise UserError(f"text encoder {spec!r} gives no per-token embeddings",
                            "use embed:minilm or hf:<sentence-transformers folder>")
        self.model, self.spec, self.max_len = emb.model, spec, max_len
        self.dim = int(emb.dim)
        self._memo: dict[str, tuple[torch.Tensor, int]] = {}

    def __call__(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, max_len, dim)`` embeddings and a ``(B, max_len)`` boolean mask of real tokens."""
        todo = sorted({c for c in captions if c not in self._memo})
        if todo:
            outs = self.model.encode(todo, output_value="token_embeddings", convert_to_numpy=False,
                                     show_progress_bar=False)
            for c, o in zip(todo, outs, strict=True):
                o = torch.as_tensor(o, dtype=torch.float32)[: self.max_len].cpu()
                self._memo[c] = (o, o.shape[0])
        x = torch.zeros(len(captions), self.max_len, self.dim)
        m = torch.zeros(len(captions), self.max_len, dtype=torch.bool)
        for i, c in enumerate(captions):
            o, n = self._memo[c]
            x[i, :n], m[i, :n] = o, True
        return x, m
