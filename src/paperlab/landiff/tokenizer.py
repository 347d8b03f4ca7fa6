"""The semantic tokenizer of LanDiff (§3.1): I-frame / P-frame query tokens, causal attention masks, EMA VQ.

A clip's frozen "semantic" features ``F = (F_0, ..., F_{K-1})`` (one ``h x w`` grid of ``D``-dim patch
features per semantic frame) are compressed, TiTok-style, into a few *query tokens*: ``n_i`` queries for the
key (I-) frame ``F_0`` and ``n_p`` queries for each later (P-) frame, which only has to carry what changed.
Paper (released config): 330 I-queries and 74 per P-frame for a 30 x 45 grid, 13 semantic frames ->
330 + 12 x 74 = 1,218 tokens per clip. Here: ``n_i = 8``, ``n_p = 2`` for a 4 x 4 grid.

**Encoder** over the sequence ``[all patches][I-queries][P-queries]`` (:func:`encoder_mask`):

- a patch of frame ``f`` sees the patches of frames ``<= f``;
- an I-query sees the frame-0 patches and the I-queries up to itself;
- a P-query of frame ``k`` sees the patches of frames ``<= k`` and every query token up to itself.

**Decoder** over ``[patch placeholders][quantised I-queries][quantised P-queries]``
(:func:`decoder_mask`): the placeholder of a frame-``k`` patch sees the placeholders of frames ``<= k``, all
I-queries and the P-queries of frames ``<= k``. What the query rows of the decoder see is not stated in the
paper or the code we could read; we let a query see the queries of its own and earlier frames (it only
matters through the patch rows). Both masks are causal in frames, so the tokens of the first ``k`` frames
depend on those frames only: a clip's token sequence can be cut after any frame, which is what lets the LM
stream chunk by chunk and condition on a frame count.

**Quantiser** (the exact class LanDiff uses, ``vector_quantize_pytorch.VectorQuantize``): codebook projected
to ``codebook_dim = 16`` (a linear ``width -> 16``), k-means initialisation, EMA codebook updates with decay
0.8 (a library default the paper inherits), Euclidean distance, gradients by the rotation trick (also a
library default), dead codes (EMA count < 2) re-seeded, commitment weight 1.0. All passed explicitly here.

**Loss** (Eq. 1): ``L = ||D(Q(E(F))) - F||^2 + 1.0 * L_commit`` on features normalised per channel by their
training mean and std (the paper's ``norm_features``; the released config gives no ``mean_std_path``, so
their run skips it — :class:`FeatureNorm` with ``enabled=False`` does the same).

Small-scale choices: width 64, 2 + 2 pre-norm layers (paper 12 + 12 at width 768); positions are learned
embeddings factored as frame + row-major grid cell (the paper uses 3D RoPE with flex-attention masks; our
masks go to ``torch.nn.TransformerEncoder`` as boolean masks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TokenizerConfig:
    feat_dim: int                  # D: channels of the frozen frame encoder
    grid: tuple[int, int]          # (h, w) patch grid of one semantic frame
    max_frames: int                # K_max: semantic frames per clip (positions learned up to it)
    width: int = 64                # paper 768
    enc_layers: int = 2            # paper 12
    dec_layers: int = 2            # paper 12
    heads: int = 4                 # paper 12
    n_i: int = 8                   # I-frame query tokens (paper 330)
    n_p: int = 2                   # query tokens per P-frame (paper 74)
    codebook_size: int = 128       # paper 2,048
    codebook_dim: int = 16         # paper 16 (Linear 768 -> 16)
    decay: float = 0.8             # EMA decay: vector-quantize-pytorch's default, which LanDiff keeps
    commitment_weight: float = 1.0
    dead_code_threshold: int = 2
    kmeans_init: bool = True
    rotation_trick: bool = True
    pos_std: float = 0.02          # std of the learned position embeddings at init

    @property
    def patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def n_tokens(self, frames: int) -> int:
        """Tokens of a clip of ``frames`` semantic frames: ``n_i + (frames - 1) n_p``."""
        return self.n_i + (frames - 1) * self.n_p

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- masks


def _layout(frames: int, patches: int, n_i: int, n_p: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each position of ``[patches of all frames][I-queries][P-queries]``: its kind (0 patch, 1 I, 2 P),
    its frame, and its rank in the sequence."""
    kind = torch.cat([torch.zeros(frames * patches), torch.ones(n_i), torch.full(((frames - 1) * n_p,), 2.0)])
    frame = torch.cat([torch.arange(frames).repeat_interleave(patches), torch.zeros(n_i),
                       torch.arange(1, frames).repeat_interleave(n_p)])
    return kind.long(), frame.long(), torch.arange(len(kind))


def encoder_mask(frames: int, patches: int, n_i: int, n_p: int) -> torch.Tensor:
    """``allowed[q, k]``: may position ``q`` attend to ``k`` in the tokenizer encoder (True = yes)."""
    kind, frame, rank = _layout(frames, patches, n_i, n_p)
    q_kind, q_frame, q_rank = kind[:, None], frame[:, None], rank[:, None]
    k_kind, k_frame, k_rank = kind[None, :], frame[None, :], rank[None, :]
    k_patch, k_query = k_kind == 0, k_kind > 0
    # patches: patches of frames <= own frame
    patch_rows = (q_kind == 0) & k_patch & (k_frame <= q_frame)
    # I-queries: frame-0 patches, I-queries up to itself
    i_rows = (q_kind == 1) & ((k_patch & (k_frame == 0)) | ((k_kind == 1) & (k_rank <= q_rank)))
    # P-queries of frame k: patches of frames <= k, every query token up to itself
    p_rows = (q_kind == 2) & ((k_patch & (k_frame <= q_frame)) | (k_query & (k_rank <= q_rank)))
    return patch_rows | i_rows | p_rows


def decoder_mask(frames: int, patches: int, n_i: int, n_p: int) -> torch.Tensor:
    """``allowed[q, k]`` in the tokenizer decoder (same layout as the encoder; the patch rows are placeholders
    that become the reconstructed features)."""
    kind, frame, _ = _layout(frames, patches, n_i, n_p)
    q_kind, q_frame = kind[:, None], frame[:, None]
    k_kind, k_frame = kind[None, :], frame[None, :]
    # frame-k patches: patches of frames <= k, all I-queries, P-queries of frames <= k
    patch_rows = (q_kind == 0) & (((k_kind == 0) & (k_frame <= q_frame)) | (k_kind == 1)
                                  | ((k_kind == 2) & (k_frame <= q_frame)))
    # queries (our choice): the queries of their own and earlier frames
    query_rows = (q_kind > 0) & (k_kind > 0) & (k_frame <= q_frame)
    return patch_rows | query_rows


# ---------------------------------------------------------------------------------------------- model


class FeatureNorm(nn.Module):
    """Per-channel normalisation ``(F - mu) / sigma`` with statistics of the training features."""

    def __init__(self, dim: int, enabled: bool = True):
        super().__init__()
        self.enabled = enabled
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, feats: torch.Tensor) -> FeatureNorm:
        if self.enabled:
            flat = feats.reshape(-1, feats.shape[-1]).float()
            self.mean.copy_(flat.mean(0))
            self.std.copy_(flat.std(0).clamp_min(1e-4))
        return self

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean


def _stack(width: int, heads: int, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class SemanticTokenizer(nn.Module):
    """Features ``(B, K, h*w, D)`` (already normalised) -> code indices ``(B, n_i + (K-1) n_p)`` -> features."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.cfg = cfg
        w = cfg.width
        self.norm = FeatureNorm(cfg.feat_dim)
        self.proj_in = nn.Linear(cfg.feat_dim, w)
        self.frame_pos = nn.Parameter(torch.randn(cfg.max_frames, w) * cfg.pos_std)
        self.cell_pos = nn.Parameter(torch.randn(cfg.patches, w) * cfg.pos_std)
        self.i_queries = nn.Parameter(torch.randn(cfg.n_i, w) * 0.02)
        self.p_queries = nn.Parameter(torch.randn(cfg.n_p, w) * 0.02)
        self.encoder = _stack(w, cfg.heads, cfg.enc_layers)
        self.enc_norm = nn.LayerNorm(w)
        self.vq = VectorQuantize(
            dim=w, codebook_size=cfg.codebook_size, codebook_dim=cfg.codebook_dim, decay=cfg.decay,
            kmeans_init=cfg.kmeans_init, kmeans_iters=10, threshold_ema_dead_code=cfg.dead_code_threshold,
            commitment_weight=cfg.commitment_weight, rotation_trick=cfg.rotation_trick, use_cosine_sim=False)
        self.mask_token = nn.Parameter(torch.randn(w) * 0.02)
        self.dec_i_pos = nn.Parameter(torch.randn(cfg.n_i, w) * 0.02)
        self.dec_p_pos = nn.Parameter(torch.randn(cfg.n_p, w) * 0.02)
        self.decoder = _stack(w, cfg.heads, cfg.dec_layers)
        self.dec_norm = nn.LayerNorm(w)
        self.proj_out = nn.Linear(w, cfg.feat_dim)

    # -- positions -------------------------------------------------------------------------------
    def _patch_pos(self, frames: int) -> torch.Tensor:
        return (self.frame_pos[:frames, None, :] + self.cell_pos[None]).reshape(frames * self.cfg.patches, -1)

    def _query_pos(self, frames: int, i_pos: torch.Tensor, p_pos: torch.Tensor) -> torch.Tensor:
        p = (self.frame_pos[1:frames, None, :] + p_pos[None]).reshape((frames - 1) * self.cfg.n_p, self.cfg.width)
        return torch.cat([i_pos + self.frame_pos[0], p])

    def _check(self, frames: int) -> None:
        if not 1 <= frames <= self.cfg.max_frames:
            raise ValueError(f"{frames} semantic frames: the tokenizer handles 1..{self.cfg.max_frames}")

    # -- encoder / quantiser / decoder -----------------------------------------------------------
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised features ``(B, K, P, D)`` -> continuous query outputs ``(B, n_i + (K-1) n_p, width)``."""
        b, k, p, _ = z.shape
        self._check(k)
        x = self.proj_in(z).reshape(b, k * p, -1) + self._patch_pos(k)
        q = self._query_pos(k, self.i_queries, self.p_queries).expand(b, -1, -1)
        seq = torch.cat([x, q], 1)
        mask = ~encoder_mask(k, p, self.cfg.n_i, self.cfg.n_p).to(z.device)    # True = blocked
        out = self.enc_norm(self.encoder(seq, mask=mask))
        return out[:, k * p:]

    def decode_latents(self, zq: torch.Tensor, frames: int) -> torch.Tensor:
        """Quantised query vectors ``(B, Nq, width)`` -> normalised features ``(B, K, P, D)``."""
        b = zq.shape[0]
        p = self.cfg.patches
        self._check(frames)
        ph = self.mask_token + self._patch_pos(frames)
        q = zq + self._query_pos(frames, self.dec_i_pos, self.dec_p_pos)
        seq = torch.cat([ph.expand(b, -1, -1), q], 1)
        mask = ~decoder_mask(frames, p, self.cfg.n_i, self.cfg.n_p).to(zq.device)
        out = self.dec_norm(self.decoder(seq, mask=mask))
        return self.proj_out(out[:, : frames * p]).reshape(b, frames, p, -1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction, indices, commitment loss)`` of normalised features ``z``."""
        h = self.encode(z)
        zq, idx, commit = self.vq(h)
        return self.decode_latents(zq, z.shape[1]), idx, commit.sum()

    def loss(self, z: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Eq. 1: ``MSE(recon, z) + commitment_weight * commit`` (the weight is applied inside the VQ)."""
        rec, _, commit = self(z)
        mse = F.mse_loss(rec, z)
        return mse + commit, {"mse": mse.item(), "commit": commit.item()}

    # -- tokens ----------------------------------------------------------------------------------
    @torch.no_grad()
    def tokenize(self, feats: torch.Tensor) -> torch.Tensor:
        """Raw features ``(B, K, P, D)`` -> code indices ``(B, n_i + (K-1) n_p)`` (eval mode, no EMA update)."""
        was = self.training
        self.eval()
        _, idx, _ = self.vq(self.encode(self.norm(feats)))
        self.train(was)
        return idx

    @torch.no_grad()
    def detokenize(self, idx: torch.Tensor, frames: int, normalised: bool = True) -> torch.Tensor:
        """Code indices -> features ``(B, K, P, D)`` (normalised, or in the encoder's units)."""
        was = self.training
        self.eval()
        zq = self.vq.get_output_from_indices(idx)
        z = self.decode_latents(zq, frames)
        self.train(was)
        return z if normalised else self.norm.inverse(z)

    def frames_of(self, n_tokens: int) -> int:
        """Semantic frames of a token sequence of length ``n_tokens``."""
        extra = n_tokens - self.cfg.n_i
        if extra < 0 or extra % self.cfg.n_p:
            raise ValueError(f"{n_tokens} tokens is not n_i + k n_p")
        return 1 + extra // self.cfg.n_p
