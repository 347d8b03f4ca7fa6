"""Applying a trained LLMVoX: load a run's ``model.pt`` and stream speech from any LLM to a WAV file."""

from __future__ import annotations

import time
from pathlib import Path

from paperlab.core.errors import UserError

RUNS = Path("runs") / "llmvox"


def find_checkpoint(path: Path | None) -> Path:
    """``path/model.pt`` (a run folder or the file itself), or the newest ``runs/llmvox/*/model.pt``."""
    if path is not None:
        p = path / "model.pt" if path.is_dir() else path
        if not p.is_file():
            raise UserError(f"no trained LLMVoX checkpoint at {p}",
                            "pass a finished `paperlab llmvox run` folder (it holds model.pt)")
        return p
    found = sorted(RUNS.glob("*/model.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"no trained LLMVoX checkpoint under {RUNS}/",
                        "run `paperlab llmvox run --quick` first, or pass --checkpoint RUN_DIR")
    return found[-1]


def load_checkpoint(path: Path):
    """(codec, decoder, griffin_lim_iters) from a ``model.pt``."""
    import torch

    from paperlab.llmvox.codec import CodecConfig, MelVQCodec
    from paperlab.llmvox.decoder import DecoderConfig, LLMVoXDecoder

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        codec = MelVQCodec(CodecConfig(**state["codec_config"]))
        codec.load_state_dict(state["codec"])
        decoder = LLMVoXDecoder(DecoderConfig(**state["decoder_config"]), codec.codebook)
        decoder.load_state_dict(state["decoder"])
    except (OSError, RuntimeError, KeyError, TypeError) as e:
        raise UserError(f"cannot load LLMVoX checkpoint {path}: {str(e).splitlines()[0][:120]}",
                        "pass the model.pt of a finished `paperlab llmvox run`") from None
    return codec.eval(), decoder.eval(), int(state.get("griffin_lim_iters", 32))


def speak_stream(models, spec: str, prompt: str, out: Path, policy: tuple[int, int, float], max_chunk: int,
                 max_tokens: int, temperature: float, max_audio_tokens: int = 600) -> dict:
    from paperlab.core.models import GenerationParams, load_lm
    from paperlab.core.threads import torch_threads
    from paperlab.llmvox.experiment import SYSTEM_PROMPT
    from paperlab.llmvox.streaming import ChunkPolicy, StreamingEngine

    codec, decoder, n_iter = models
    pol = ChunkPolicy((policy[0], policy[1]), policy[2], max(max_chunk, policy[0], policy[1]))
    engine = StreamingEngine(decoder, codec, pol, max_audio_tokens=max_audio_tokens, griffin_lim_iters=n_iter)
    lm = load_lm(spec, cache=False)
    params = GenerationParams(temperature=temperature, max_tokens=max_tokens)
    msgs = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
    with torch_threads(1):
        warm_up(codec, decoder, n_iter)  # first calls load librosa / torch kernels: keep them out of the latency
        t0 = time.perf_counter()
        res = engine.run(lm.stream_chat(msgs, params), wav=out, t0=t0)
    return {"out": str(out), "text": res.raw_text, "policy": pol.label,
            **{k: v for k, v in res.summary().items() if k != "chunk_tokens"}}


def warm_up(codec, decoder, n_iter: int = 32) -> None:
    """One vocoder call and a few decoding steps, so a request's latency excludes one-time start-up costs."""
    from paperlab.llmvox.decoder import DecodeState

    state = DecodeState(decoder)
    for b in (3, 4, 5):
        state.step(b)
    codec.decode_chunk([0] * 10, [0] * 4, n_iter=n_iter)
