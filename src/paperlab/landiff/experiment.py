"""``paperlab landiff run``: LanDiff end to end on procedural videos, and its three claims tested.

The driver (:func:`run_experiment`) is a list of steps, each cached in the run folder (a killed run resumes):

1. :func:`make_data` -- single-object clips ("a red circle moves left quickly"): training clips for all
   three models, held-out test clips, and judge clips with their own seed;
2. :func:`encode_semantic` -- the frozen frame encoder on every ``stride``-th frame (the paper's 49 -> 13);
3. :func:`train_tokenizer` -- I/P query tokens + EMA VQ on normalised features (:mod:`.tokenizer`);
4. :func:`train_lm` -- the AR LM over [BOS][frames][motion][text][SOI] I [EOI] ([SOP] P [EOP])* [EOS], clips cut
   after a random number of frames so the frame-count condition varies (the masks are causal in frames);
5. :func:`train_detokenizer` -- the base video flow model, frozen, then the zero-initialised control branch
   on the tokenizer's reconstructed features;
6. :func:`train_judges` -- held-out colour / shape / direction CNNs on real clips;
7. :func:`evaluate` -- compression and reconstruction, caption following (text vs. null condition), requested
   vs. measured motion, a long video generated chunk by chunk, GIFs;
8. :func:`~paperlab.landiff.report.make_claims` and the report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from paperlab.core.runs import Run, build_config

PAPER = ("The Best of Both Worlds: Integrating Language Models and Diffusion Models for Video Generation "
         "(LanDiff), arXiv:2503.04606, https://arxiv.org/abs/2503.04606")


class LanDiffConfig(BaseModel):
    """Configuration of ``paperlab landiff run`` (saved with every run and read back by ``generate``)."""

    seed: int = 0
    size: int = Field(32, ge=16, le=128, description="frame size in pixels (a multiple of 8)")
    clip_frames: int = Field(16, ge=4, le=64, description="pixel frames per clip / chunk")
    stride: int = Field(2, ge=1, le=8, description="pixel frames per semantic frame (paper: 4, 49 -> 13)")
    min_frames: int = Field(8, ge=2, description="shortest clip the LM is trained on (frame-count condition)")
    n_train: int = Field(3000, ge=16, description="training clips (tokenizer, LM, detokenizer)")
    n_test: int = Field(300, ge=8, description="held-out clips (reconstruction, judge ceiling)")
    n_judge: int = Field(2000, ge=16, description="judge training clips (own seed)")
    min_speed: float = Field(0.5, gt=0)
    max_speed: float = Field(2.5, gt=0)
    encoder: str = Field("random", description="frozen semantic frame encoder: random | efficientnet_lite0")
    text_encoder: str = Field("embed:minilm", description="frozen text encoder: embed:minilm | hf:<folder>")
    text_len: int = Field(12, ge=4, le=128, description="text tokens kept (our captions have <= 10)")
    # tokenizer (§3.1)
    normalise_features: bool = True
    tok_width: int = Field(64, ge=8)
    tok_layers: int = Field(2, ge=1)
    n_i: int = Field(8, ge=1, description="I-frame query tokens (paper 330)")
    n_p: int = Field(2, ge=1, description="query tokens per P-frame (paper 74)")
    codebook_size: int = Field(128, ge=4, description="paper 2048")
    codebook_dim: int = Field(16, ge=2, description="paper 16")
    tok_steps: int = Field(1500, ge=1)
    tok_batch: int = Field(32, ge=2)
    tok_lr: float = Field(1e-3, gt=0)
    # LM (§3.2)
    lm_backbone: str = Field("small", description="small | hf:<path to a transformers decoder>")
    lm_width: int = Field(128, ge=16)
    lm_layers: int = Field(4, ge=1)
    lm_heads: int = Field(4, ge=1)
    lm_steps: int = Field(2000, ge=1)
    lm_batch: int = Field(64, ge=2)
    lm_lr: float = Field(1e-3, gt=0)
    p_null: float = Field(0.1, ge=0, le=1, description="share of null text embeddings in training (paper 0.1)")
    cfg_scale: float = Field(7.5, ge=1, description="classifier-free guidance on logits (paper default 7.5)")
    temperature: float = Field(1.0, gt=0)
    # detokenizer (§3.3)
    det_width: int = Field(96, ge=16)
    det_layers: int = Field(4, ge=2)
    det_control_layers: int = Field(2, ge=1)
    det_base_steps: int = Field(800, ge=1)
    det_control_steps: int = Field(1200, ge=1)
    det_batch: int = Field(16, ge=2)
    det_lr: float = Field(5e-4, gt=0)
    sample_steps: int = Field(20, ge=1, description="Euler steps of the rectified-flow sampler")
    prefix_frames: int = Field(4, ge=0, description="clean frames carried between chunks")
    # judges
    judge_frames: int = Field(8, ge=2)
    judge_steps: int = Field(800, ge=1)
    judge_lr: float = Field(3e-3, gt=0)
    judge_batch: int = Field(64, ge=2)
    # evaluation
    n_gen: int = Field(96, ge=4, description="captions generated with text and with the null condition")
    n_motion: int = Field(24, ge=4, description="captions in the motion sweep")
    motion_quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9])
    n_long: int = Field(12, ge=2, description="long videos")
    long_chunks: int = Field(4, ge=2)
    mse_bound: float = Field(0.5, gt=0, description="tokenizer error relative to the mean-clip predictor must stay "
                             "below this (the tokens explain at least half of what varies between clips)")
    drift_bound: float = Field(0.25, gt=0, description="largest accepted drop in caption agreement, first to "
                               "last chunk")
    n_boot: int = Field(2000, ge=200)
    threads: int = Field(2, ge=1)

    @field_validator("encoder")
    @classmethod
    def _encoder(cls, v: str) -> str:
        if v not in ("random", "efficientnet_lite0"):
            raise ValueError("use random or efficientnet_lite0")
        return v

    @field_validator("text_encoder")
    @classmethod
    def _text(cls, v: str) -> str:
        if not (v == "embed:minilm" or v.startswith("hf:")):
            raise ValueError("use embed:minilm or hf:<sentence-transformers folder>")
        return v

    @field_validator("lm_backbone")
    @classmethod
    def _backbone(cls, v: str) -> str:
        if not (v == "small" or v.startswith("hf:")):
            raise ValueError("use small or hf:<path>")
        return v

    @field_validator("motion_quantiles")
    @classmethod
    def _quantiles(cls, v: list[float]) -> list[float]:
        if len(v) < 2 or any(not 0 < q < 1 for q in v) or len(set(v)) != len(v):
            raise ValueError("give at least two distinct quantiles in (0, 1)")
        return sorted(v)

    @model_validator(mode="after")
    def _shapes(self) -> LanDiffConfig:
        if self.size % 8:
            raise ValueError("size must be a multiple of 8")
        if self.clip_frames % self.stride or self.min_frames % self.stride:
            raise ValueError("clip_frames and min_frames must be multiples of stride")
        if self.min_frames > self.clip_frames or self.min_frames < 2 * self.stride:
            raise ValueError("need 2*stride <= min_frames <= clip_frames")
        if self.prefix_frames % self.stride or self.prefix_frames >= self.clip_frames:
            raise ValueError("prefix_frames must be a multiple of stride below clip_frames")
        if self.judge_frames > self.min_frames:
            raise ValueError("judge_frames must be <= min_frames")
        if self.det_control_layers > self.det_layers:
            raise ValueError("det_control_layers must be <= det_layers")
        if self.tok_width % 4 or self.lm_width % self.lm_heads or self.det_width % 4:
            raise ValueError("widths must divide by the head counts (4 for tokenizer and detokenizer)")
        if not self.min_speed <= self.max_speed <= self.size / 4:
            raise ValueError("need min_speed <= max_speed <= size/4")
        return self

    @classmethod
    def quick(cls, **overrides) -> LanDiffConfig:
        """Quick tier (<= 10 min alone on 2 cores, training included): fewer clips, steps and evaluation clips."""
        return cls(**({"n_train": 1500, "n_test": 200, "n_judge": 1200, "clip_frames": 8, "min_frames": 4,
                       "judge_frames": 4, "prefix_frames": 4, "tok_width": 48, "tok_steps": 400,
                       "lm_width": 64, "lm_layers": 3, "lm_batch": 32, "lm_steps": 600, "det_width": 64,
                       "det_base_steps": 400, "det_control_steps": 500, "judge_steps": 500, "n_gen": 64,
                       "n_motion": 16, "n_long": 8, "long_chunks": 5, "n_boot": 1000} | overrides))

    @property
    def max_k(self) -> int:
        return self.clip_frames // self.stride


def default_config(quick: bool = False, **overrides) -> LanDiffConfig:
    return build_config(LanDiffConfig, "landiff", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)


# ---------------------------------------------------------------------------------------------- data


@dataclass
class Split:
    frames: np.ndarray            # (N, T, H, W, 3) uint8
    captions: list[str]
    videos: list


def video_config(cfg: LanDiffConfig):
    from paperlab.core.video import VideoConfig

    return VideoConfig(n_frames=cfg.clip_frames, size=cfg.size, min_objects=1, max_objects=1,
                       min_speed=cfg.min_speed, max_speed=cfg.max_speed, late_entry=0.0, bounce=True)


def make_split(cfg: LanDiffConfig, n: int, seed: int) -> Split:
    from paperlab.core.video import video_dataset

    vids = video_dataset(n, video_config(cfg), seed)
    return Split(np.stack([v.frames for v in vids]), [v.caption for v in vids], vids)


def make_data(cfg: LanDiffConfig) -> dict[str, Split]:
    """Training, test and judge clips from disjoint seeds (``seed``, ``seed + 1``, ``seed + 2``)."""
    return {"train": make_split(cfg, cfg.n_train, cfg.seed), "test": make_split(cfg, cfg.n_test, cfg.seed + 1),
            "judge": make_split(cfg, cfg.n_judge, cfg.seed + 2)}


def lengths(cfg: LanDiffConfig) -> list[int]:
    """Pixel-frame counts the LM and detokenizer train on: min_frames .. clip_frames in steps of stride."""
    return list(range(cfg.min_frames, cfg.clip_frames + 1, cfg.stride))


def motions_by_length(frames: np.ndarray, lens: list[int]) -> np.ndarray:
    """``(N, len(lens))``: the motion score of each clip's first ``L`` frames."""
    from paperlab.core.video import motion_score

    return np.array([[motion_score(f[:n]) for n in lens] for f in frames], dtype=np.float32)


def load_encoder(cfg: LanDiffConfig):
    from paperlab.core.video import frame_encoder

    return frame_encoder(cfg.encoder, cfg.size, seed=cfg.seed)


def encode_semantic(cfg: LanDiffConfig, encoder, frames: np.ndarray):
    """Semantic frames = every ``stride``-th pixel frame through the frozen encoder: ``(N, K, h*w, D)``."""
    from paperlab.core.video import encode_frames

    return encode_frames(encoder, np.ascontiguousarray(frames[:, :: cfg.stride]))


# ---------------------------------------------------------------------------------------------- models


@dataclass
class Models:
    tokenizer: Any
    lm: Any
    detok: Any
    text: Any
    encoder: Any
    judge: Any = None


def model_configs(cfg: LanDiffConfig, feat_dim: int, grid: tuple[int, int], text_dim: int) -> dict:
    from paperlab.landiff.detokenizer import DetokConfig
    from paperlab.landiff.lm import LMConfig
    from paperlab.landiff.tokenizer import TokenizerConfig

    tok = TokenizerConfig(feat_dim=feat_dim, grid=tuple(grid), max_frames=cfg.max_k, width=cfg.tok_width,
                          enc_layers=cfg.tok_layers, dec_layers=cfg.tok_layers, n_i=cfg.n_i, n_p=cfg.n_p,
                          codebook_size=cfg.codebook_size, codebook_dim=cfg.codebook_dim)
    lm = LMConfig(codebook_size=cfg.codebook_size, n_i=cfg.n_i, n_p=cfg.n_p, max_frames=cfg.max_k,
                  text_dim=text_dim, text_len=cfg.text_len, d_model=cfg.lm_width, n_layers=cfg.lm_layers,
                  n_heads=cfg.lm_heads, d_ff=int(round(8 / 3 * cfg.lm_width / 8)) * 8, p_null=cfg.p_null,
                  backbone=cfg.lm_backbone)
    det = DetokConfig(frames=cfg.clip_frames, size=cfg.size, feat_dim=feat_dim, grid=tuple(grid), stride=cfg.stride,
                      width=cfg.det_width, layers=cfg.det_layers, heads=4, control_layers=cfg.det_control_layers,
                      prefix_frames=cfg.prefix_frames)
    return {"tokenizer": tok, "lm": lm, "detokenizer": det}


def _key(cfg: LanDiffConfig, stage: str, mc: dict) -> str:
    from paperlab.core.runs import config_hash

    return config_hash({"stage": stage, "config": cfg.model_dump(), "models": {k: v.to_dict() for k, v in mc.items()}})


def train_tokenizer(cfg: LanDiffConfig, mc: dict, feats, folder: Path | None, log=print):
    """Eq. 1 on normalised features; batches are random clips of the training set."""
    import torch

    from paperlab.landiff.tokenizer import SemanticTokenizer
    from paperlab.landiff.training import fit

    torch.manual_seed(cfg.seed)
    tok = SemanticTokenizer(mc["tokenizer"])
    tok.norm.enabled = cfg.normalise_features
    tok.norm.fit(feats)

    def batch_loss(step: int, gen: torch.Generator):
        idx = torch.randint(0, len(feats), (cfg.tok_batch,), generator=gen)
        loss, extra = tok.loss(tok.norm(feats[idx]))
        return loss, extra

    hist = fit("tokenizer", tok, [p for p in tok.parameters() if p.requires_grad], batch_loss, cfg.tok_steps,
               cfg.tok_lr, folder, _key(cfg, "tokenizer", mc), cfg.seed, log=log)
    tok.eval()
    return tok, hist


def train_lm(cfg: LanDiffConfig, mc: dict, codes, text_x, text_m, motions, folder: Path | None, log=print):
    """Next-token loss on [SOI] .. [EOS]; each batch is cut to one random length (frame-count condition)."""
    import torch

    from paperlab.landiff.lm import LanDiffLM, visual_sequence
    from paperlab.landiff.training import fit

    torch.manual_seed(cfg.seed + 1)
    lm = LanDiffLM(mc["lm"])
    lens = lengths(cfg)
    mot = torch.as_tensor(motions)

    def batch_loss(step: int, gen: torch.Generator):
        j = int(torch.randint(0, len(lens), (1,), generator=gen))
        k = lens[j] // cfg.stride
        idx = torch.randint(0, len(codes), (cfg.lm_batch,), generator=gen)
        vis = visual_sequence(mc["lm"], codes[idx, : cfg.n_i + (k - 1) * cfg.n_p], k)
        frames = torch.full((cfg.lm_batch,), float(lens[j]))
        return lm.loss(vis, text_x[idx], text_m[idx], frames, mot[idx, j], generator=gen), {}

    hist = fit("lm", lm, [p for p in lm.parameters() if p.requires_grad], batch_loss, cfg.lm_steps, cfg.lm_lr,
               folder, _key(cfg, "lm", mc), cfg.seed + 1, weight_decay=0.01, log=log)
    lm.eval()
    return lm, hist


def train_detokenizer(cfg: LanDiffConfig, mc: dict, frames: np.ndarray, sem, folder: Path | None, log=print):
    """The base flow model (unconditional, then frozen), then the control branch on reconstructed features.
    Half the batches show a clean prefix of ``prefix_frames`` frames (the chunk hand-over)."""
    import torch

    from paperlab.landiff.detokenizer import Detokenizer, VideoDenoiser, flow_loss, to_model
    from paperlab.landiff.training import fit

    torch.manual_seed(cfg.seed + 2)
    base = VideoDenoiser(mc["detokenizer"])
    lens = lengths(cfg)
    x_all = torch.from_numpy(frames)

    def batch(step: int, gen: torch.Generator):
        n_f = lens[int(torch.randint(0, len(lens), (1,), generator=gen))]
        idx = torch.randint(0, len(x_all), (cfg.det_batch,), generator=gen)
        use = torch.rand(cfg.det_batch, generator=gen) < 0.5
        prefix = torch.where(use, min(cfg.prefix_frames, n_f - cfg.stride), 0)
        return to_model(x_all[idx, :n_f]), sem[idx, : n_f // cfg.stride], prefix

    def base_loss(step: int, gen: torch.Generator):
        x1, _, prefix = batch(step, gen)
        return flow_loss(base, x1, prefix, gen), {}

    h_base = fit("detok_base", base, list(base.parameters()), base_loss, cfg.det_base_steps, cfg.det_lr, folder,
                 _key(cfg, "detok_base", mc), cfg.seed + 2, log=log)
    det = Detokenizer(base)

    def control_loss(step: int, gen: torch.Generator):
        x1, s, prefix = batch(step, gen)
        return flow_loss(det, x1, prefix, gen, sem=s), {}

    h_ctrl = fit("detok_control", det, det.trainable(), control_loss, cfg.det_control_steps, cfg.det_lr, folder,
                 _key(cfg, "detok_control", mc), cfg.seed + 3, log=log)
    det.eval()
    return det, {"base": h_base, "control": h_ctrl}


def train_judges(cfg: LanDiffConfig, judge_split: Split, folder: Path | None, log=print):
    import torch

    from paperlab.landiff.classifiers import AttributeCNN, classifier_loss, labels_of
    from paperlab.landiff.training import fit

    torch.manual_seed(cfg.seed + 4)
    model = AttributeCNN(cfg.judge_frames)
    x = torch.from_numpy(np.ascontiguousarray(judge_split.frames[:, : cfg.judge_frames]))
    labels = {k: torch.as_tensor(v) for k, v in labels_of(judge_split.videos).items()}

    def loss(step: int, gen: torch.Generator):
        idx = torch.randint(0, len(x), (cfg.judge_batch,), generator=gen)
        return classifier_loss(model, x[idx], {k: v[idx] for k, v in labels.items()}, gen), {}

    hist = fit("judge", model, list(model.parameters()), loss, cfg.judge_steps, cfg.judge_lr, folder,
               _key(cfg, "judge", {}), cfg.seed + 4, log=log)
    model.eval()
    return model, hist


# ---------------------------------------------------------------------------------------------- generation


def generate_clips(models: Models, cfg: LanDiffConfig, captions: list[str], motion: np.ndarray | list[float],
                   n_frames: int, seed: int, cfg_scale: float | None = None, uncond_only: bool = False,
                   prefix_frames: np.ndarray | None = None, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Caption + frame count + motion -> LM codes -> VQ decoder features -> detokenizer frames.

    ``prefix_frames`` ``(B, m, H, W, 3)`` continues earlier chunks: their tokens (through the frozen encoder and
    tokenizer) are forced as the first codes, and their pixels are the detokenizer's clean prefix.
    Returns uint8 frames ``(B, n_frames, H, W, 3)`` and the codes ``(B, n_tokens)``.
    """
    import torch

    from paperlab.landiff.detokenizer import sample, to_model, to_uint8

    k = n_frames // cfg.stride
    scale = cfg.cfg_scale if cfg_scale is None else cfg_scale
    motion = np.asarray(motion, dtype=np.float32)
    out_f, out_c = [], []
    for s in range(0, len(captions), batch):
        caps = captions[s: s + batch]
        b = len(caps)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + s)
        tx, tm = models.text(caps)
        pre_codes = pre_pix = None
        if prefix_frames is not None:
            pf = prefix_frames[s: s + b]
            feats = encode_semantic(cfg, models.encoder, pf)
            pre_codes = models.tokenizer.tokenize(feats)
            pre_pix = to_model(torch.from_numpy(np.ascontiguousarray(pf)))
        codes = models.lm.generate(tx, tm, k, torch.as_tensor(motion[s: s + b]), n_frames, cfg_scale=scale,
                                   temperature=cfg.temperature, generator=gen, prefix_codes=pre_codes,
                                   uncond_only=uncond_only)
        sem = models.tokenizer.detokenize(codes, k)
        x = sample(models.detok, (b, n_frames, 3, cfg.size, cfg.size), cfg.sample_steps, gen, prefix=pre_pix,
                   sem=sem)
        out_f.append(to_uint8(x).numpy())
        out_c.append(codes.numpy())
    return np.concatenate(out_f), np.concatenate(out_c)


def generate_long(models: Models, cfg: LanDiffConfig, captions: list[str], motion, chunks: int,
                  seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Chunk by chunk: each chunk of ``clip_frames`` frames starts from the previous chunk's last
    ``prefix_frames`` frames (clean prefix + their tokens forced). Returns the whole videos
    ``(B, clip + (chunks-1)(clip - prefix), ...)`` and each chunk's own frames."""
    first, _ = generate_clips(models, cfg, captions, motion, cfg.clip_frames, seed)
    parts, pieces = [first], [first]
    prev = first
    for c in range(1, chunks):
        nxt, _ = generate_clips(models, cfg, captions, motion, cfg.clip_frames, seed + 7919 * c,
                                prefix_frames=np.ascontiguousarray(prev[:, -cfg.prefix_frames:]))
        pieces.append(nxt)
        parts.append(nxt[:, cfg.prefix_frames:])
        prev = nxt
    return np.concatenate(parts, 1), pieces


def reconstruct(models: Models, cfg: LanDiffConfig, frames: np.ndarray, seed: int) -> np.ndarray:
    """Real clip -> encoder -> tokens -> features -> detokenizer frames (the tokenizer+detokenizer ceiling)."""
    import torch

    from paperlab.landiff.detokenizer import sample, to_uint8

    out = []
    for s in range(0, len(frames), 64):
        f = frames[s: s + 64]
        codes = models.tokenizer.tokenize(encode_semantic(cfg, models.encoder, f))
        sem = models.tokenizer.detokenize(codes, cfg.max_k)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + s)
        x = sample(models.detok, (len(f), cfg.clip_frames, 3, cfg.size, cfg.size), cfg.sample_steps, gen, sem=sem)
        out.append(to_uint8(x).numpy())
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------- evaluation


def evaluate_tokenizer(cfg: LanDiffConfig, tok, feats_test, feats_train=None) -> dict:
    """Per-clip normalised feature MSE, the same for the *mean clip* (every clip predicted by the training
    clips' mean feature at each position: the error of tokens that carry nothing about the clip), codebook
    usage, tokens per clip and the compression ratios."""
    import torch

    with torch.no_grad():
        codes = tok.tokenize(feats_test)
        rec = tok.detokenize(codes, feats_test.shape[1])
        z = tok.norm(feats_test)
        mean_clip = tok.norm(feats_train).mean(0) if feats_train is not None else z.mean(0)
        per_clip = (rec - z).pow(2).mean((1, 2, 3)).numpy()
        per_clip_mean = (mean_clip - z).pow(2).mean((1, 2, 3)).numpy()
        per_frame = (rec - z).pow(2).mean((0, 2, 3)).numpy()
    counts = np.bincount(codes.reshape(-1).numpy(), minlength=cfg.codebook_size)
    p = counts / counts.sum()
    nz = p[p > 0]
    k = cfg.max_k
    n_tokens = cfg.n_i + (k - 1) * cfg.n_p
    bits = n_tokens * np.log2(cfg.codebook_size)
    pixel_bits = cfg.clip_frames * cfg.size * cfg.size * 3 * 8
    d, patches = feats_test.shape[-1], feats_test.shape[-2]
    feature_bits = k * patches * d * 32
    return {"mse_per_clip": per_clip.tolist(), "mse_per_semantic_frame": per_frame.tolist(),
            "mean_clip_mse_per_clip": per_clip_mean.tolist(),
            "codes_used": int((counts > 0).sum()), "codebook_size": cfg.codebook_size,
            "usage": float((counts > 0).mean()), "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
            "tokens_per_clip": n_tokens, "lm_sequence_tokens": n_tokens + 2 + 2 * (k - 1) + 1,
            "semantic_frames": k, "pixel_frames": cfg.clip_frames, "bits_per_clip": float(bits),
            "pixel_bits": pixel_bits, "feature_bits": feature_bits,
            "ratio_pixels": pixel_bits / bits, "ratio_features": feature_bits / bits,
            "ratio_pixel_values_per_token": cfg.clip_frames * cfg.size * cfg.size * 3 / n_tokens}


def judge_scores(judge, clips: np.ndarray, videos_or_labels) -> dict[str, list[int]]:
    """1/0 per clip and attribute: does the judge read the asked-for value off the clip?"""
    from paperlab.landiff.classifiers import labels_of, predict

    labels = videos_or_labels if isinstance(videos_or_labels, dict) else labels_of(videos_or_labels)
    pred = predict(judge, clips)
    return {k: (pred[k] == labels[k]).astype(int).tolist() for k in labels}


def evaluate(cfg: LanDiffConfig, models: Models, data: dict[str, Split], feats_test, feats_train,
             train_motion: np.ndarray, run: Run | None, log=print) -> dict:
    from paperlab.core.video import motion_score

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    out["tokenizer"] = evaluate_tokenizer(cfg, models.tokenizer, feats_test, feats_train)
    test = data["test"]
    out["judge_real"] = judge_scores(models.judge, test.frames, test.videos)
    rec = reconstruct(models, cfg, test.frames, cfg.seed + 11)
    out["judge_reconstructed"] = judge_scores(models.judge, rec, test.videos)
    out["recon_pixel_mse"] = float(np.mean((rec.astype(np.float32) - test.frames) ** 2) / 255.0 ** 2)
    out["seconds_reconstruct"] = time.perf_counter() - t0
    log(f"tokenizer mse {np.mean(out['tokenizer']['mse_per_clip']):.3f} (mean clip "
        f"{np.mean(out['tokenizer']['mean_clip_mse_per_clip']):.3f}), judge real "
        f"{ {k: np.mean(v) for k, v in out['judge_real'].items()} }")

    # caption following: the captions (and motions) of held-out clips, with text and with the null condition
    t0 = time.perf_counter()
    n = min(cfg.n_gen, len(test.captions))
    caps = test.captions[:n]
    mot = np.array([v.motion for v in test.videos[:n]], dtype=np.float32)
    gen_c, codes_c = generate_clips(models, cfg, caps, mot, cfg.clip_frames, cfg.seed + 21)
    gen_u, _ = generate_clips(models, cfg, caps, mot, cfg.clip_frames, cfg.seed + 21, uncond_only=True)
    asked = test.videos[:n]
    out["judge_generated"] = judge_scores(models.judge, gen_c, asked)
    out["judge_null"] = judge_scores(models.judge, gen_u, asked)
    out["generated_motion"] = [motion_score(f) for f in gen_c]
    out["requested_motion_gen"] = mot.tolist()
    out["seconds_generate"] = time.perf_counter() - t0

    # motion sweep: the same captions at training-motion quantiles
    t0 = time.perf_counter()
    levels = np.quantile(train_motion, cfg.motion_quantiles).astype(np.float32)
    m = min(cfg.n_motion, len(test.captions))
    sweep_caps = [c for c in test.captions[:m] for _ in levels]
    sweep_mot = np.tile(levels, m)
    sweep, _ = generate_clips(models, cfg, sweep_caps, sweep_mot, cfg.clip_frames, cfg.seed + 31)
    measured = np.array([motion_score(f) for f in sweep]).reshape(m, len(levels))
    out["motion_sweep"] = {"levels": levels.tolist(), "quantiles": cfg.motion_quantiles,
                           "measured": measured.tolist(), "captions": test.captions[:m]}
    out["seconds_motion"] = time.perf_counter() - t0

    # long videos, chunk by chunk
    t0 = time.perf_counter()
    nl = min(cfg.n_long, len(test.captions))
    long_caps = test.captions[:nl]
    long_mot = np.array([v.motion for v in test.videos[:nl]], dtype=np.float32)
    long_v, pieces = generate_long(models, cfg, long_caps, long_mot, cfg.long_chunks, cfg.seed + 41)
    from paperlab.landiff.classifiers import labels_of

    labels = labels_of(test.videos[:nl])
    per_chunk = []
    for piece in pieces:
        sc = judge_scores(models.judge, piece, {k: labels[k] for k in ("colour", "shape")})
        per_chunk.append({"colour": sc["colour"], "shape": sc["shape"],
                          "motion": [motion_score(f) for f in piece]})
    out["long"] = {"frames": int(long_v.shape[1]), "chunks": cfg.long_chunks, "per_chunk": per_chunk,
                   "requested_motion": long_mot.tolist(), "captions": long_caps}
    out["seconds_long"] = time.perf_counter() - t0

    if run is not None:
        save_media(cfg, run, test, rec, gen_c, gen_u, caps, sweep, levels, m, long_v, long_caps)
    return out


def save_media(cfg, run: Run, test: Split, rec, gen_c, gen_u, caps, sweep, levels, m, long_v, long_caps) -> None:
    """GIFs and frame strips for the report (the figures are listed by :mod:`.report`)."""
    from paperlab.core.video import save_gif

    media = run.path("media")
    media.mkdir(exist_ok=True)
    for i in range(min(4, len(caps))):
        save_gif(test.frames[i], media / f"real_{i}.gif")
        save_gif(rec[i], media / f"reconstructed_{i}.gif")
        save_gif(gen_c[i], media / f"generated_{i}.gif")
        save_gif(gen_u[i], media / f"null_{i}.gif")
    for i in range(min(2, len(long_caps))):
        save_gif(long_v[i], media / f"long_{i}.gif")
    sw = np.asarray(sweep).reshape(m, len(levels), *sweep.shape[1:])
    for j in range(len(levels)):
        save_gif(sw[0, j], media / f"motion_{j}.gif")


# ---------------------------------------------------------------------------------------------- driver


def _features(cfg: LanDiffConfig, encoder, split: Split, run: Run | None, name: str):
    """Semantic features of a split, cached in the run folder."""
    import torch

    path = run.path(f"features_{name}.pt") if run is not None else None
    if path is not None and path.exists():
        return torch.load(path)
    feats = encode_semantic(cfg, encoder, split.frames)
    if path is not None:
        tmp = path.with_suffix(".tmp")
        torch.save(feats, tmp)
        tmp.replace(path)
    return feats


def build_models(cfg: LanDiffConfig, data: dict[str, Split], run: Run | None, log=print) -> tuple[Models, dict]:
    """Steps 2-6: encode, then train (or reload) the tokenizer, LM, detokenizer and judges."""
    import torch

    from paperlab.landiff.lm import TextEncoder

    folder = run.dir if run is not None else None
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    encoder = load_encoder(cfg)
    feats = _features(cfg, encoder, data["train"], run, "train")
    timings["encode"] = time.perf_counter() - t0
    text = TextEncoder(cfg.text_encoder, cfg.text_len)
    mc = model_configs(cfg, encoder.dim, encoder.grid, text.dim)
    if run is not None:
        (run.path("models.json")).write_text(json.dumps({k: v.to_dict() for k, v in mc.items()}, indent=1))

    t0 = time.perf_counter()
    tok, h_tok = train_tokenizer(cfg, mc, feats, folder, log)
    timings["tokenizer"] = time.perf_counter() - t0
    with torch.no_grad():
        codes = torch.cat([tok.tokenize(feats[i: i + 256]) for i in range(0, len(feats), 256)])
        sem = torch.cat([tok.detokenize(codes[i: i + 256], cfg.max_k) for i in range(0, len(codes), 256)])
    t0 = time.perf_counter()
    tx, tm = text(data["train"].captions)
    timings["text_encoder"] = time.perf_counter() - t0
    motions = motions_by_length(data["train"].frames, lengths(cfg))
    t0 = time.perf_counter()
    lm, h_lm = train_lm(cfg, mc, codes, tx, tm, motions, folder, log)
    timings["lm"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    det, h_det = train_detokenizer(cfg, mc, data["train"].frames, sem, folder, log)
    timings["detokenizer"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    judge, h_judge = train_judges(cfg, data["judge"], folder, log)
    timings["judges"] = time.perf_counter() - t0
    hist = {"tokenizer": h_tok, "lm": h_lm, "detok_base": h_det["base"], "detok_control": h_det["control"],
            "judge": h_judge, "timings": timings, "train_motion": motions[:, -1].tolist()}
    return Models(tok, lm, det, text, encoder, judge), hist


def run_experiment(cfg: LanDiffConfig, out: Path | None = None) -> Path:
    import torch

    from paperlab.core.threads import torch_threads
    from paperlab.landiff.report import make_claims, write_report

    run = Run("landiff", out=out, config=cfg)
    t_start = time.perf_counter()
    with torch_threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        t0 = time.perf_counter()
        data = make_data(cfg)
        t_data = time.perf_counter() - t0
        models, hist = build_models(cfg, data, run)
        hist["timings"]["data"] = t_data
        feats_test = _features(cfg, models.encoder, data["test"], run, "test")
        cached = run.path("evaluation.json")
        if cached.exists():
            results = json.loads(cached.read_text())
        else:
            t0 = time.perf_counter()
            feats_train = _features(cfg, models.encoder, data["train"], run, "train")
            results = evaluate(cfg, models, data, feats_test, feats_train, np.asarray(hist["train_motion"]), run)
            results["seconds_evaluate"] = time.perf_counter() - t0
            tmp = cached.with_suffix(".tmp")
            tmp.write_text(json.dumps(results))
            tmp.replace(cached)
    results["training"] = {k: _brief(v) for k, v in hist.items() if k not in ("timings", "train_motion")}
    results["timings"] = hist["timings"] | {"total": time.perf_counter() - t_start}
    results["params"] = {"tokenizer": sum(p.numel() for p in models.tokenizer.parameters()),
                         "lm": sum(p.numel() for p in models.lm.parameters()),
                         "detok_base": sum(p.numel() for p in models.detok.base.parameters()),
                         "detok_control": sum(p.numel() for p in models.detok.control.parameters()),
                         "judge": sum(p.numel() for p in models.judge.parameters())}
    claims = make_claims(cfg, results)
    write_report(run, cfg, results, claims, PAPER)
    return run.dir


def _brief(h: dict) -> dict:
    loss = h.get("loss", [])
    k = max(1, len(loss) // 20)
    return {"steps": len(loss), "first_loss": float(np.mean(loss[:k])) if loss else None,
            "last_loss": float(np.mean(loss[-k:])) if loss else None, "seconds": h.get("seconds"),
            "resumed_from": h.get("resumed_from"), "reused": h.get("reused", False),
            "curve": [float(np.mean(loss[i: i + k])) for i in range(0, len(loss), k)]}


# ---------------------------------------------------------------------------------------------- loading


def load_checkpoint(run_dir: Path | str) -> tuple[LanDiffConfig, Models]:
    """A finished run folder -> its config and trained models (for ``paperlab landiff generate``)."""
    import torch

    from paperlab.core.errors import UserError
    from paperlab.landiff.classifiers import AttributeCNN
    from paperlab.landiff.detokenizer import Detokenizer, VideoDenoiser
    from paperlab.landiff.lm import LanDiffLM, TextEncoder
    from paperlab.landiff.tokenizer import SemanticTokenizer

    d = Path(run_dir)
    needed = ["config.json", "tokenizer.pt", "lm.pt", "detok_base.pt", "detok_control.pt"]
    missing = [n for n in needed if not (d / n).is_file()]
    if missing:
        raise UserError(f"{d} is not a finished landiff run (missing {', '.join(missing)})",
                        "pass the --out folder of a finished `paperlab landiff run`")
    try:
        cfg = LanDiffConfig(**json.loads((d / "config.json").read_text()))
    except (ValueError, TypeError) as e:
        raise UserError(f"{d}/config.json is not a landiff configuration ({type(e).__name__})",
                        "pass the folder of a `paperlab landiff run`") from None
    encoder = load_encoder(cfg)
    text = TextEncoder(cfg.text_encoder, cfg.text_len)
    mc = model_configs(cfg, encoder.dim, encoder.grid, text.dim)

    def state(name: str) -> dict:
        return torch.load(d / f"{name}.pt", map_location="cpu", weights_only=False)["model"]

    try:
        tok = SemanticTokenizer(mc["tokenizer"])
        tok.load_state_dict(state("tokenizer"))
        lm = LanDiffLM(mc["lm"])
        lm.load_state_dict(state("lm"))
        base = VideoDenoiser(mc["detokenizer"])
        base.load_state_dict(state("detok_base"))
        det = Detokenizer(base)
        det.load_state_dict(state("detok_control"))
        judge = None
        if (d / "judge.pt").is_file():
            judge = AttributeCNN(cfg.judge_frames)
            judge.load_state_dict(state("judge"))
            judge.eval()
    except (RuntimeError, KeyError) as e:
        raise UserError(f"the weights in {d} do not fit its configuration ({str(e).splitlines()[0][:100]})",
                        "re-create the run with `paperlab landiff run`") from None
    for m in (tok, lm, det):
        m.eval()
    return cfg, Models(tok, lm, det, text, encoder, judge)
