"""``paperlab llmvox``: the LLMVoX experiment, and streaming speech from any LLM with a trained checkpoint
(cheap to import: the work happens inside the commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from paperlab.core.cli import (
    Out,
    Overwrite,
    Quick,
    check_model_spec,
    check_writable_file,
    print_run,
    start_fresh,
    system_app,
)
from paperlab.core.errors import UserError

app = system_app("llmvox", "LLMVoX (2503.04724): autoregressive streaming text-to-speech for any LLM.")


@app.callback()
def llmvox() -> None:
    """LLMVoX (arXiv 2503.04724): a small decoder that speaks any LLM's token stream (byte stream in, codec
    tokens out), two replicas behind sentence queues, adaptive chunk sizes."""


def parse_policies(text: str) -> list[tuple[int, int, float]]:
    """``"10/160x3,10/160x2"`` -> [(10, 160, 3.0), (10, 160, 2.0)]."""
    out = []
    for part in text.split(","):
        try:
            sizes, growth = part.strip().split("x")
            a, b = sizes.split("/")
            pol = (int(a), int(b), float(growth))
        except ValueError:
            raise UserError(f"--policies: cannot read {part.strip()!r}",
                            "write INITIAL1/INITIAL2xGROWTH, comma-separated, e.g. 10/160x3,10/160x2") from None
        if min(pol[:2]) < 1 or pol[2] < 1:
            raise UserError(f"--policies: {part.strip()!r} needs sizes >= 1 and growth >= 1", "e.g. 10/160x2")
        out.append(pol)
    return out


@app.command()
def run(
    quick: Quick = False,
    out: Out = None,
    overwrite: Overwrite = False,
    model: Annotated[str | None, typer.Option("--model", help="LM whose token stream is spoken (default | "
                                              "gguf:<file> | hf:<path> | openai:<url>#<model>).")] = None,
    sentences: Annotated[int | None, typer.Option("--sentences", min=8, help="espeak-ng training sentences.")] = None,
    test_sentences: Annotated[int | None, typer.Option("--test-sentences", min=4,
                                                       help="Held-out sentences for WER.")] = None,
    codec_steps: Annotated[int | None, typer.Option("--codec-steps", min=1)] = None,
    decoder_steps: Annotated[int | None, typer.Option("--decoder-steps", min=1)] = None,
    n_embd: Annotated[int | None, typer.Option("--n-embd", min=16, help="Decoder width (paper 768).")] = None,
    prompts: Annotated[int | None, typer.Option("--prompts", min=2, help="LM prompts for the latency part.")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=8, help="LM answer length cap.")] = None,
    policies: Annotated[str | None, typer.Option("--policies", help="Chunk policies INITIAL1/INITIAL2xGROWTH, "
                                                 "comma-separated; the first is the claim's (default "
                                                 "10/160x3,10/160x2,40/160x2,160/160x2).")] = None,
    max_audio_tokens: Annotated[int | None, typer.Option("--max-audio-tokens", min=16,
                                                         help="Safety cap of speech tokens per utterance (600).")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Torch threads (default 1: faster "
                                                "for these small models on a busy machine).")] = None,
) -> None:
    """Train the codec and the decoder on espeak-ng speech, measure WER with Whisper (espeak / codec / LLMVoX),
    stream the default LM's answers under each chunk policy; writes report.md + results.json + model.pt."""
    overrides: dict = {}
    if model is not None:
        check_model_spec(model)
        overrides["model"] = model
    if policies is not None:
        overrides["policies"] = parse_policies(policies)
    for key, val in (("train_sentences", sentences), ("test_sentences", test_sentences), ("codec_steps", codec_steps),
                     ("decoder_steps", decoder_steps), ("n_embd", n_embd), ("prompts", prompts),
                     ("max_tokens", max_tokens), ("seed", seed), ("threads", threads),
                     ("max_audio_tokens", max_audio_tokens)):
        if val is not None:
            overrides[key] = val
    from paperlab.llmvox.experiment import default_config, reproduce

    default_config(quick, **overrides)  # the settings' own checks, before any work
    start_fresh(out, overwrite)
    print_run(reproduce(quick=quick, out=out, **overrides))


@app.command()
def speak(
    prompt: Annotated[str, typer.Option("--prompt", help="The user's message to the LM.")],
    out: Annotated[Path, typer.Option("--out", help="WAV file, written progressively while the LM streams.")],
    model: Annotated[str, typer.Option("--model", help="LM spec (default | gguf:<file> | hf:<path> | "
                                       "openai:<url>#<model>).")] = "default",
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="A finished `paperlab llmvox run` folder "
                                                    "(default: the latest under runs/llmvox/).")] = None,
    policy: Annotated[str, typer.Option("--policy", help="Chunk policy INITIAL1/INITIAL2xGROWTH.")] = "10/160x3",
    max_chunk: Annotated[int, typer.Option("--max-chunk", min=1, help="Chunk size cap (official 1280).")] = 1280,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="LM answer length cap.")] = 256,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.0,
    max_audio_tokens: Annotated[int, typer.Option("--max-audio-tokens", min=16,
                                                  help="Safety cap of speech tokens per utterance.")] = 600,
) -> None:
    """Stream speech from an LLM: its tokens go through the sentence queues, two decoder replicas and the
    vocoder; prints a JSON summary (time to first audio, RTF, stalls, the text)."""
    if not prompt.strip():
        raise UserError("--prompt is empty", "pass the message to answer, e.g. --prompt 'Why is the sky blue?'")
    check_model_spec(model)
    check_writable_file(out, "--out")
    pol = parse_policies(policy)
    if len(pol) != 1:
        raise UserError("--policy takes one policy", "e.g. --policy 10/160x3")
    from paperlab.llmvox.inference import find_checkpoint, load_checkpoint

    ckpt = find_checkpoint(checkpoint)
    from paperlab.llmvox.inference import speak_stream

    summary = speak_stream(load_checkpoint(ckpt), model, prompt, out, pol[0], max_chunk, max_tokens, temperature,
                           max_audio_tokens)
    summary["checkpoint"] = str(ckpt)
    typer.echo(json.dumps(summary, indent=1))
