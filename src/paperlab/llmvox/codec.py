"""The speech codec trained here: a single-codebook VQ autoencoder over log-mel frames, and a Griffin-Lim
vocoder (stand-in for WavTokenizer, which LLMVoX uses at 24 kHz / 75 tokens/s / 4,096 codes and whose
weights are not available offline).

- Front end: the core's log-mel (:func:`paperlab.core.audio.log_mel`: 16 kHz, 64 mels, hop 160 = 100
  frames/s), each band standardised with the training set's mean and deviation.
- Encoder: 1-D convolutions over time, a strided convolution merging ``stride`` frames into one vector
  (``stride`` 2: **50 tokens/s**), a projection to ``code_dim``.
- Quantiser: one codebook (``vector-quantize-pytorch``'s ``VectorQuantize``: k-means initialisation, EMA
  codebook updates, dead-code replacement, commitment loss). Its vectors are the ``F(c)`` the LLMVoX decoder
  reads (frozen, as WavTokenizer's ``codes_to_features``).
- Decoder: the mirror image (transposed convolution back to 100 frames/s).
- Loss: L1 + L2 on the standardised mel + the commitment term.
- Vocoder: the mel is mapped back to a linear magnitude (the filterbank's pseudo-inverse, clipped at 0)
  and phase is recovered by Griffin-Lim (librosa, fast GL with momentum 0.99). Why Griffin-Lim and not a
  neural vocoder: it needs no training, runs in tens of milliseconds per second of audio on a CPU, and its
  quality is measured directly (the codec ceiling's WER includes it). :meth:`MelVQCodec.decode_chunk`
  decodes a slice of codes with left context, as the streaming engine needs.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from paperlab.core.audio import HOP, N_FFT, N_MELS, SAMPLE_RATE, log_mel

DB_FLOOR = -80.0  # log-mel values (dB) are floored here before standardising (silence ~ -100 dB)


@dataclass
class CodecConfig:
    stride: int = 2  # mel frames (10 ms) per token: 2 -> 50 tokens/s (WavTokenizer: 75)
    channels: int = 192
    code_dim: int = 64
    codebook_size: int = 512  # WavTokenizer: 4,096
    res_blocks: int = 2
    commitment: float = 0.25
    ema_decay: float = 0.9

    @property
    def tokens_per_second(self) -> float:
        return SAMPLE_RATE / HOP / self.stride

    @property
    def samples_per_token(self) -> int:
        return HOP * self.stride


class ResBlock(nn.Module):
    def __init__(self, c: int, dilation: int):
        super().__init__()
        self.c1 = nn.Conv1d(c, c, 3, padding=dilation, dilation=dilation)
        self.c2 = nn.Conv1d(c, c, 1)

    def forward(self, x):
        return x + self.c2(F.gelu(self.c1(F.gelu(x))))


class MelVQCodec(nn.Module):
    """Log-mel (frames, 64) <-> codes (frames / stride,), one codebook."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.config = cfg
        C, s = cfg.channels, cfg.stride
        self.register_buffer("mean", torch.zeros(N_MELS))
        self.register_buffer("std", torch.ones(N_MELS))
        self.encoder = nn.Sequential(
            nn.Conv1d(N_MELS, C, 5, padding=2), *[ResBlock(C, 2 ** i) for i in range(cfg.res_blocks)],
            nn.GELU(), nn.Conv1d(C, C, s, stride=s), nn.GELU(), nn.Conv1d(C, cfg.code_dim, 1))
        self.vq = VectorQuantize(dim=cfg.code_dim, codebook_size=cfg.codebook_size, decay=cfg.ema_decay,
                                 commitment_weight=cfg.commitment, kmeans_init=True, kmeans_iters=10,
                                 threshold_ema_dead_code=2)
        self.decoder = nn.Sequential(
            nn.Conv1d(cfg.code_dim, C, 3, padding=1), nn.GELU(), nn.ConvTranspose1d(C, C, s, stride=s),
            *[ResBlock(C, 2 ** i) for i in range(cfg.res_blocks)], nn.GELU(), nn.Conv1d(C, N_MELS, 5, padding=2))

    # ------------------------------------------------------------ mel <-> standardised mel
    def normalise(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel.clamp(min=DB_FLOOR) - self.mean) / self.std

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean

    def fit_stats(self, mels: Sequence[np.ndarray]) -> None:
        allm = torch.from_numpy(np.concatenate(mels)).clamp(min=DB_FLOOR)
        self.mean.copy_(allm.mean(0))
        self.std.copy_(allm.std(0).clamp(min=1.0))

    def pad_frames(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, T, 64) padded at the end with silence to a multiple of ``stride`` frames."""
        r = (-mel.shape[1]) % self.config.stride
        return F.pad(mel, (0, 0, 0, r), value=DB_FLOOR) if r else mel

    # ------------------------------------------------------------ model
    def forward(self, mel: torch.Tensor):
        """(B, T, 64) dB mel -> (reconstructed standardised mel, target standardised mel, codes, commit loss)."""
        z = self.normalise(self.pad_frames(mel))
        q, codes, commit = self.vq(self.encoder(z.transpose(1, 2)).transpose(1, 2))
        rec = self.decoder(q.transpose(1, 2)).transpose(1, 2)
        return rec, z, codes, commit

    def loss(self, mel: torch.Tensor) -> tuple[torch.Tensor, dict]:
        rec, z, _, commit = self(mel)
        l1, l2 = F.l1_loss(rec, z), F.mse_loss(rec, z)
        commit = commit.sum()
        return l1 + l2 + commit, {"l1": float(l1.detach()), "l2": float(l2.detach()), "commit": float(commit.detach())}

    @torch.no_grad()
    def encode(self, mel: np.ndarray) -> np.ndarray:
        """(T, 64) dB mel -> (ceil(T / stride),) int codes."""
        z = self.normalise(self.pad_frames(torch.from_numpy(mel)[None].float()))
        _, codes, _ = self.vq(self.encoder(z.transpose(1, 2)).transpose(1, 2))
        return codes[0].cpu().numpy().astype(np.int64)

    @property
    def codebook(self) -> torch.Tensor:
        """(codebook_size, code_dim): the vector of each code (the decoder's frozen F)."""
        return self.vq.codebook.detach().reshape(self.config.codebook_size, self.config.code_dim)

    @torch.no_grad()
    def codes_to_mel(self, codes: Sequence[int]) -> np.ndarray:
        """codes -> (len * stride, 64) dB mel."""
        idx = torch.as_tensor(np.asarray(codes, dtype=np.int64), device=self.mean.device)
        q = self.codebook.to(self.mean.device)[idx][None]  # (1, N, D)
        mel = self.denormalise(self.decoder(q.transpose(1, 2)).transpose(1, 2))
        return mel[0].cpu().numpy()

    @torch.no_grad()
    def decode_chunk(self, codes: Sequence[int], context: Sequence[int] = (), n_iter: int = 32) -> np.ndarray:
        """Audio of ``codes`` decoded after ``context`` (the previous codes of the utterance, for the
        convolutions and Griffin-Lim), returning only the new samples: len(codes) * samples_per_token."""
        codes, context = list(codes), list(context)[-8:]
        if not codes:
            return np.zeros(0, np.float32)
        wave = griffin_lim(self.codes_to_mel(context + codes), n_iter=n_iter)
        return wave[len(context) * self.config.samples_per_token:]

    def decode(self, codes: Sequence[int], n_iter: int = 32) -> np.ndarray:
        """Audio of a whole utterance's codes."""
        return self.decode_chunk(codes, (), n_iter)


def mel_of(wave: np.ndarray) -> np.ndarray:
    """The codec's input: the core log-mel of a 16 kHz wave (frames = 1 + n // 160)."""
    return log_mel(wave)


@functools.cache
def _mel_pinv() -> np.ndarray:
    from paperlab.core.audio import mel_filterbank

    return np.linalg.pinv(mel_filterbank()).astype(np.float32)  # (513, 64)


def griffin_lim(mel_db: np.ndarray, n_iter: int = 32) -> np.ndarray:
    """(T, 64) dB mel -> T * 160 samples: the mel power mapped back to linear frequencies by the filterbank's
    pseudo-inverse (clipped at 0; librosa's NNLS ``mel_to_stft`` is exact too but takes minutes per sentence
    on our CPUs), then Griffin-Lim phase recovery (librosa, momentum 0.99)."""
    import librosa

    power = np.power(10.0, np.maximum(mel_db, DB_FLOOR) / 10.0).T.astype(np.float32)  # (64, T)
    mag = np.sqrt(np.maximum(_mel_pinv() @ power, 0.0))  # (513, T) linear magnitude
    mag = np.concatenate([mag, mag[:, -1:]], axis=1)  # T + 1 centred frames span exactly T * 160 samples
    with warnings.catch_warnings():  # a chunk of a few tokens is shorter than one FFT window: fine, padded
        warnings.filterwarnings("ignore", message="n_fft=.*is too large")
        wave = librosa.griffinlim(mag, n_iter=n_iter, hop_length=HOP, win_length=N_FFT, n_fft=N_FFT, center=True,
                                  length=mel_db.shape[0] * HOP, random_state=0)
    return wave.astype(np.float32)
