"""``paperlab llmvox run``: train a codec and the LLMVoX decoder on espeak-ng speech, measure intelligibility
with Whisper, and stream speech from the default LM under several chunk policies.

The driver (:func:`run_experiment`) is a list of steps:

1. :func:`make_data` -- disjoint training / held-out sentences (:mod:`.corpus`), espeak-ng speech, log-mels;
2. :func:`fit_codec` -- the VQ codec (:mod:`.codec`), then every sentence encoded; the end-of-audio code is the
   code least used in the training speech (its natural occurrences are dropped, as the official data code
   does with code 453);
3. :func:`fit_decoder` -- the LLMVoX decoder (:mod:`.decoder`) on (byte stream, codes) pairs;
4. :func:`intelligibility` -- held-out sentences as espeak audio (top ceiling), through the codec (the codec
   ceiling) and spoken by LLMVoX from text; Whisper tiny.en transcripts and WER per sentence;
5. :func:`streaming_latency` -- for each prompt, the default LM's answer streamed through the engine
   (:mod:`.streaming`) under each chunk policy (time to first audio, real-time factor, stalls), and the same
   answer synthesised non-streaming (LM finished, then every sentence decoded and vocoded);
6. :func:`make_claims`, plots and the report.

Finished stages are kept in the run folder (``model.pt``, ``codes.npz``, ``intelligibility.jsonl``,
``streaming.jsonl``) and reused on a re-run; the training loops resume from their checkpoints.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from paperlab.core.runs import Claim, Run, build_config, claim, markdown_table

PAPER = ("LLMVoX: Autoregressive Streaming Text-to-Speech Model for Any LLM, arXiv:2503.04724, "
         "https://arxiv.org/abs/2503.04724")

SYSTEM_PROMPT = ("You are a friendly voice assistant. Answer in two or three short, plain sentences, "
                 "without lists, symbols or abbreviations.")

PROMPTS = [
    "Why is the sky blue?", "How do plants make their food?", "What is a good way to start running?",
    "Why do we need sleep?", "How does a bicycle stay upright?", "What makes bread rise?",
    "Why do leaves change colour in autumn?", "How can I learn to cook?", "What is the moon made of?",
    "Why is exercise good for you?", "How do birds know where to fly in winter?", "What is rain?",
    "How do I keep a plant alive indoors?", "Why do cats purr?", "What does a library do?",
    "How do bees make honey?", "Why is the ocean salty?", "How can I sleep better?", "What is a rainbow?",
    "Why should we drink water?",
]


class LLMVoXConfig(BaseModel):
    """Configuration of ``paperlab llmvox run`` (saved with every run)."""

    seed: int = 0
    threads: int = Field(1, ge=1, le=64, description="torch threads for training and evaluation (1: these small "
                         "models gain little from a second thread, and lose much on a busy machine)")
    train_sentences: int = Field(4000, ge=8, description="espeak-ng training sentences")
    test_sentences: int = Field(100, ge=4, description="held-out sentences for the WER measurement")
    max_words: int = Field(12, ge=5, le=40)
    espeak_rate: int = Field(175, ge=80, le=450, description="espeak-ng words per minute")
    # codec
    codec_stride: int = Field(2, ge=1, le=8, description="mel frames per token (2: 50 tokens/s)")
    codec_channels: int = Field(192, ge=16)
    code_dim: int = Field(64, ge=4)
    codebook_size: int = Field(512, ge=16)
    codec_steps: int = Field(3000, ge=1)
    codec_batch: int = Field(32, ge=1)
    codec_crop: int = Field(96, ge=8, description="mel frames per training crop")
    codec_lr: float = Field(2e-3, gt=0)
    # decoder (paper: 4 layers, 8 heads, 768 dims)
    n_layer: int = Field(4, ge=1)
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(256, ge=16)
    block_size: int = Field(1024, ge=64)
    decoder_steps: int = Field(8000, ge=1)
    decoder_batch: int = Field(16, ge=1)
    decoder_lr: float = Field(1e-3, gt=0, description="peak lr (paper 3e-4 over ~1M steps)")
    warmup_steps: int = Field(200, ge=0)
    min_lr_ratio: float = Field(0.01, gt=0, le=1, description="cosine floor / peak (paper 3e-6 / 3e-4)")
    max_steps_per_byte: float = Field(8.0, gt=0, description="decoding cap for held-out sentences (steps per byte)")
    # vocoder
    griffin_lim_iters: int = Field(32, ge=1)
    # streaming
    model: str = Field("default", description="LM spec whose token stream is spoken")
    prompts: int = Field(12, ge=2, le=len(PROMPTS))
    max_tokens: int = Field(96, ge=8, description="LM answer length cap")
    policies: list[tuple[int, int, float]] = Field(
        default_factory=lambda: [(10, 160, 3.0), (10, 160, 2.0), (40, 160, 2.0), (160, 160, 2.0)],
        description="chunk policies (replica-1 initial, replica-2 initial, growth); the first is the claim's")
    max_chunk: int = Field(1280, ge=1)
    max_audio_tokens: int = Field(600, ge=16, description="safety cap of speech tokens per utterance "
                                  "(official 8,000 at 75/s; ours 600 = 12 s at 50/s)")
    # claims
    wer_gap_bound: float = Field(0.10, gt=0, description="llmvox_intelligible: WER(LLMVoX) - WER(codec) below this")
    n_boot: int = Field(2000, ge=200)

    @field_validator("policies")
    @classmethod
    def _policies(cls, v):
        if not v:
            raise ValueError("give at least one chunk policy")
        for a, b, g in v:
            if min(a, b) < 1 or g < 1:
                raise ValueError(f"policy {(a, b, g)}: initial sizes >= 1 and growth >= 1")
        return v

    @model_validator(mode="after")
    def _shapes(self):
        if not 0 < self.code_dim < self.n_embd:
            raise ValueError(f"n_embd ({self.n_embd}) must exceed code_dim ({self.code_dim}): the input is "
                             "concat(byte embedding, code vector)")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.max_audio_tokens > self.block_size:
            raise ValueError(f"max_audio_tokens ({self.max_audio_tokens}) exceeds block_size ({self.block_size})")
        return self

    @field_validator("model")
    @classmethod
    def _spec(cls, v: str) -> str:
        from paperlab.core.models import parse_spec

        parse_spec(v)
        return v

    @classmethod
    def quick(cls, **overrides) -> LLMVoXConfig:
        """Quick tier: 1,200 sentences, a 128-dim decoder trained 300 steps (the codec 600), 20 held-out sentences, 5 prompts,
        three chunk policies. Expect a high WER: the decoder is far from converged (see the report)."""
        return cls(**({"train_sentences": 1200, "test_sentences": 20, "codec_steps": 600, "codec_batch": 16,
                       "codec_crop": 64, "codec_channels": 128, "n_embd": 128, "decoder_steps": 300,
                       "decoder_batch": 8, "warmup_steps": 30, "decoder_lr": 2e-3, "prompts": 5, "max_tokens": 64,
                       "policies": [(10, 160, 3.0), (10, 160, 2.0), (160, 160, 2.0)], "n_boot": 1000}
                      | overrides))

    def chunk_policies(self):
        from paperlab.llmvox.streaming import ChunkPolicy

        return [ChunkPolicy((int(a), int(b)), float(g), max(self.max_chunk, int(a), int(b)))
                for a, b, g in self.policies]


def default_config(quick: bool = False, **overrides) -> LLMVoXConfig:
    return build_config(LLMVoXConfig, "llmvox", quick, overrides)


def reproduce(quick: bool = False, out: Path | None = None, **overrides) -> Path:
    return run_experiment(default_config(quick, **overrides), out)


# ---------------------------------------------------------------------------------------------- steps


def make_data(cfg: LLMVoXConfig) -> dict:
    from paperlab.llmvox.codec import mel_of
    from paperlab.llmvox.corpus import split_sentences, synthesise

    train, test = split_sentences(cfg.train_sentences, cfg.test_sentences, cfg.seed, cfg.max_words)
    waves = synthesise(train + test, cfg.espeak_rate)
    mels = [mel_of(w) for w in waves]
    n = len(train)
    return {"train": train, "test": test, "train_waves": waves[:n], "test_waves": waves[n:],
            "train_mels": mels[:n], "test_mels": mels[n:]}


def _codec_config(cfg: LLMVoXConfig):
    from paperlab.llmvox.codec import CodecConfig

    return CodecConfig(stride=cfg.codec_stride, channels=cfg.codec_channels, code_dim=cfg.code_dim,
                       codebook_size=cfg.codebook_size)


def _decoder_config(cfg: LLMVoXConfig, eoa: int):
    from paperlab.llmvox.decoder import DecoderConfig

    return DecoderConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, code_dim=cfg.code_dim,
                         codebook_size=cfg.codebook_size, block_size=cfg.block_size, eoa_code=eoa)


def fit_codec(cfg: LLMVoXConfig, data: dict, run: Run) -> tuple[object, dict, dict]:
    """Train the codec (resumable), encode every sentence, choose the end-of-audio code."""
    import torch

    from paperlab.llmvox.codec import MelVQCodec
    from paperlab.llmvox.train import LoopConfig, train_codec

    torch.manual_seed(cfg.seed)
    codec = MelVQCodec(_codec_config(cfg))
    loop = LoopConfig(steps=cfg.codec_steps, batch_size=cfg.codec_batch, lr=cfg.codec_lr,
                      warmup_steps=min(50, cfg.codec_steps // 10), min_lr_ratio=0.1, weight_decay=0.0,
                      beta2=0.99, seed=cfg.seed)
    hist = train_codec(codec, data["train_mels"], loop, cfg.codec_crop, run.path("codec_ckpt.pt"), run.config_hash)
    codes_path = run.path("codes.npz")
    if codes_path.exists():
        z = np.load(codes_path, allow_pickle=False)
        train_codes = [z[f"train_{i}"] for i in range(len(data["train"]))]
        test_codes = [z[f"test_{i}"] for i in range(len(data["test"]))]
    else:
        train_codes = [codec.encode(m) for m in data["train_mels"]]
        test_codes = [codec.encode(m) for m in data["test_mels"]]
        tmp = run.path("codes.tmp.npz")
        np.savez(tmp, **{f"train_{i}": c for i, c in enumerate(train_codes)},
                 **{f"test_{i}": c for i, c in enumerate(test_codes)})
        tmp.replace(codes_path)
    counts = np.bincount(np.concatenate(train_codes), minlength=cfg.codebook_size)
    eoa = int(np.argmin(counts))  # the rarest code: dropping its natural occurrences loses least
    info = {"codes_used": int((counts > 0).sum()), "eoa_code": eoa, "eoa_natural_count": int(counts[eoa]),
            "tokens_per_second": codec.config.tokens_per_second,
            "train_tokens": int(counts.sum()), "train_audio_hours": float(sum(len(w) for w in data["train_waves"])
                                                                          / 16000 / 3600),
            "final_loss": float(np.mean(hist["loss"][-20:])), "seconds": hist["seconds"],
            "loss_curve": hist["loss"][:: max(1, len(hist["loss"]) // 100)]}
    return codec, {"train": train_codes, "test": test_codes, "eoa": eoa}, info


def fit_decoder(cfg: LLMVoXConfig, data: dict, codec, codes: dict, run: Run) -> tuple[object, dict]:
    import torch

    from paperlab.llmvox.decoder import LLMVoXDecoder, make_example
    from paperlab.llmvox.train import LoopConfig, sequence_losses, train_decoder

    eoa = codes["eoa"]
    torch.manual_seed(cfg.seed)
    model = LLMVoXDecoder(_decoder_config(cfg, eoa), codec.codebook)
    train = [make_example(t, c, eoa) for t, c in zip(data["train"], codes["train"], strict=True)]
    test = [make_example(t, c, eoa) for t, c in zip(data["test"], codes["test"], strict=True)]
    too_long = max(len(y) for _, y in train + test)
    if too_long > cfg.block_size:
        from paperlab.core.errors import UserError

        raise UserError(f"a sentence needs {too_long} speech steps, more than block_size {cfg.block_size}",
                        "raise --block-size or lower max_words")
    loop = LoopConfig(steps=cfg.decoder_steps, batch_size=cfg.decoder_batch, lr=cfg.decoder_lr,
                      warmup_steps=cfg.warmup_steps, min_lr_ratio=cfg.min_lr_ratio, seed=cfg.seed)
    hist = train_decoder(model, train, loop, run.path("decoder_ckpt.pt"), run.config_hash)
    info = {"params": model.num_params(), "params_with_positions": model.num_params(False),
            "final_train_loss": float(np.mean(hist["loss"][-20:])), "seconds": hist["seconds"],
            "heldout_loss": float(np.mean(sequence_losses(model, test))),
            "loss_curve": hist["loss"][:: max(1, len(hist["loss"]) // 200)],
            "mean_steps_per_sentence": float(np.mean([len(y) for _, y in train]))}
    save_checkpoint(run.path("model.pt"), codec, model, cfg)
    return model, info


def save_checkpoint(path: Path, codec, decoder, cfg: LLMVoXConfig) -> None:
    import dataclasses

    import torch

    tmp = path.with_suffix(".tmp")
    torch.save({"codec_config": dataclasses.asdict(codec.config), "codec": codec.state_dict(),
                "decoder_config": dataclasses.asdict(decoder.config), "decoder": decoder.state_dict(),
                "griffin_lim_iters": cfg.griffin_lim_iters}, tmp)
    tmp.replace(path)


def _edits(ref: str, hyp: str) -> tuple[float, int]:
    """(word edits, reference words) of one sentence under the core WER normalisation."""
    from paperlab.core.audio import normalize_text, wer

    n = len(normalize_text(ref).split())
    return (wer([ref], [hyp]) * n if n else 0.0), n


def intelligibility(cfg: LLMVoXConfig, data: dict, codec, decoder, codes: dict, run: Run) -> list[dict]:
    """Whisper transcripts of each held-out sentence: espeak audio, codec reconstruction, LLMVoX from text."""
    from paperlab.core.audio import save_wav, transcribe
    from paperlab.llmvox.bytes import text_ids
    from paperlab.llmvox.decoder import greedy_decode

    done = {r["i"]: r for r in run.read("intelligibility")}
    rows = []
    for i, text in enumerate(data["test"]):
        if i in done:
            rows.append(done[i])
            continue
        t0 = time.perf_counter()
        ids = text_ids(text)
        gen = greedy_decode(decoder, ids, max_steps=min(int(cfg.max_steps_per_byte * len(ids)) + 20,
                                                        cfg.max_audio_tokens))
        t_dec = time.perf_counter() - t0
        waves = {"espeak": data["test_waves"][i], "codec": codec.decode(codes["test"][i], cfg.griffin_lim_iters),
                 "llmvox": codec.decode(gen, cfg.griffin_lim_iters) if gen else np.zeros(1600, np.float32)}
        hyps = dict(zip(waves, transcribe(list(waves.values())), strict=True))
        row = {"i": i, "text": text, "ref_tokens": int(len(codes["test"][i])), "gen_tokens": len(gen),
               "decode_s": t_dec, "audio_s": len(waves["llmvox"]) / 16000}
        for k, h in hyps.items():
            e, n = _edits(text, h)
            row[f"hyp_{k}"], row[f"edits_{k}"], row["words"] = h, e, n
        if i < 3:
            for k, w in waves.items():
                save_wav(run.path(f"sample{i}_{k}.wav"), w)
        run.append("intelligibility", row)
        rows.append(row)
    return rows


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=\.)\s+", text.strip()) if s.strip()]


def streaming_latency(cfg: LLMVoXConfig, codec, decoder, run: Run) -> list[dict]:
    """Per prompt: a non-streaming reference (LM finished, then the whole answer synthesised), then the
    streamed answer under each chunk policy. Live LM calls (no request cache): the LM's own timing counts."""
    from paperlab.core.models import GenerationParams, load_lm
    from paperlab.core.threads import torch_threads
    from paperlab.llmvox.bytes import text_ids
    from paperlab.llmvox.decoder import greedy_decode
    from paperlab.llmvox.streaming import StreamingEngine, clean_token

    lm = load_lm(cfg.model, cache=False)
    params = GenerationParams(temperature=0.0, max_tokens=cfg.max_tokens, seed=cfg.seed)
    done = {(r["prompt"], r["policy"]): r for r in run.read("streaming")}
    rows = []
    engines = {p.label: StreamingEngine(decoder, codec, p, max_audio_tokens=cfg.max_audio_tokens,
                                        griffin_lim_iters=cfg.griffin_lim_iters) for p in cfg.chunk_policies()}
    with torch_threads(1):
        for pi, prompt in enumerate(PROMPTS[: cfg.prompts]):
            msgs = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
            if (pi, "non-streaming") not in done:
                t0 = time.perf_counter()
                raw = "".join(lm.stream_chat(msgs, params))
                t_lm = time.perf_counter() - t0
                text = clean_token(raw)
                audio = [codec.decode(greedy_decode(decoder, text_ids(s), cfg.max_audio_tokens),
                                      cfg.griffin_lim_iters) for s in _sentences(text)]
                total = time.perf_counter() - t0
                secs = sum(len(a) for a in audio) / 16000
                row = {"prompt": pi, "policy": "non-streaming", "text": text, "lm_s": t_lm, "first_audio_s": total,
                       "t_done_s": total, "audio_s": secs, "rtf": total / secs if secs else None, "stall_s": 0.0}
                run.append("streaming", row)
                done[(pi, "non-streaming")] = row
            rows.append(done[(pi, "non-streaming")])
            for label, engine in engines.items():
                if (pi, label) not in done:
                    t0 = time.perf_counter()
                    wav = run.path(f"stream_p{pi}_{label.replace('/', '-').replace(' ', '_')}.wav") if pi == 0 else None
                    res = engine.run(lm.stream_chat(msgs, params), wav=wav, t0=t0)
                    row = {"prompt": pi, "policy": label, "text": res.raw_text, **res.summary(),
                           "order_ok": res.sentence_order == sorted(res.sentence_order)}
                    if label == next(iter(engines)):
                        from paperlab.core.audio import transcribe

                        row["hyp"] = transcribe([res.audio])[0] if res.chunks else ""
                        row["edits"], row["words"] = _edits(clean_token(res.raw_text), row["hyp"])
                    run.append("streaming", row)
                    done[(pi, label)] = row
                rows.append(done[(pi, label)])
    return rows


# ---------------------------------------------------------------------------------------------- claims


def wer_estimates(rows: list[dict], n_boot: int) -> dict:
    """Corpus WER of each condition and the paired difference LLMVoX - codec, bootstrap over sentences."""
    from paperlab.core.stats import index_bootstrap

    words = np.array([r["words"] for r in rows], float)
    e = {k: np.array([r[f"edits_{k}"] for r in rows], float) for k in ("espeak", "codec", "llmvox")}
    out = {k: index_bootstrap(len(rows), lambda i, v=v: v[i].sum() / max(words[i].sum(), 1), n_boot) for k, v in
           e.items()}
    out["gap"] = index_bootstrap(len(rows), lambda i: (e["llmvox"][i].sum() - e["codec"][i].sum())
                                 / max(words[i].sum(), 1), n_boot)
    return out


def latency_arrays(rows: list[dict], policy: str) -> tuple[np.ndarray, np.ndarray]:
    base = {r["prompt"]: r["first_audio_s"] for r in rows if r["policy"] == "non-streaming"}
    stream = {r["prompt"]: r["first_audio_s"] for r in rows if r["policy"] == policy}
    ps = sorted(set(base) & set(stream))
    return np.array([stream[p] for p in ps]), np.array([base[p] for p in ps])


def make_claims(cfg: LLMVoXConfig, west: dict, stream_rows: list[dict]) -> list[Claim]:
    """``west``: the Estimates of :func:`wer_estimates`; ``stream_rows``: :func:`streaming_latency`'s rows."""
    from paperlab.core.stats import paired_bootstrap_diff

    gap = west["gap"]
    claims = [claim(
        "llmvox_intelligible",
        f"Speech generated by LLMVoX from text is nearly as intelligible as the codec's own reconstruction: "
        f"WER(LLMVoX) - WER(codec) < {cfg.wer_gap_bound:g} (Whisper tiny.en, held-out sentences; paired "
        "bootstrap over sentences)", gap, expect="less", null=cfg.wer_gap_bound,
        wer_llmvox=west["llmvox"].value, wer_codec=west["codec"].value, wer_espeak=west["espeak"].value,
        sentences=gap.n)]
    policy = cfg.chunk_policies()[0].label
    s, b = latency_arrays(stream_rows, policy)
    claims.append(claim(
        "first_audio_latency",
        f"Streaming ({policy}) gives the first audio before a non-streaming pipeline (LM answer finished, then "
        "synthesised) has the whole answer: paired over prompts, non-streaming time minus time to first audio > 0",
        paired_bootstrap_diff(b, s, n_boot=cfg.n_boot), expect="greater",
        first_audio_s=float(np.mean(s)) if len(s) else None, non_streaming_s=float(np.mean(b)) if len(b) else None,
        prompts=len(s), model=cfg.model))
    return claims


# ---------------------------------------------------------------------------------------------- report


def policy_table(rows: list[dict]) -> tuple[str, list[dict]]:
    from paperlab.core.stats import mean_ci

    labels = list(dict.fromkeys(r["policy"] for r in rows))
    summary, table = [], []
    for lab in labels:
        rs = [r for r in rows if r["policy"] == lab]
        fa, rtf = mean_ci([r["first_audio_s"] for r in rs]), mean_ci([r["rtf"] for r in rs if r["rtf"]])
        stall = float(np.mean([r["stall_s"] for r in rs]))
        summary.append({"policy": lab, "first_audio": fa.as_dict(), "rtf": rtf.as_dict(), "stall_s": stall,
                        "audio_s": float(np.mean([r["audio_s"] for r in rs])),
                        "order_ok": all(r.get("order_ok", True) for r in rs)})
        table.append([lab, f"{fa.value:.3f} [{fa.lo:.3f}, {fa.hi:.3f}]", f"{rtf.value:.2f} [{rtf.lo:.2f}, {rtf.hi:.2f}]",
                      stall, summary[-1]["audio_s"], len(rs)])
    return markdown_table(["policy (initial 1/2, growth)", "time to first audio s [95% CI]", "RTF [95% CI]",
                           "mean stall s", "mean audio s", "prompts"], table), summary


def plots(run: Run, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = results["wer"]
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.6))
    names = ["espeak", "codec", "llmvox"]
    vals = [w[k]["value"] for k in names]
    err = np.array([[w[k]["value"] - w[k]["lo"], w[k]["hi"] - w[k]["value"]] for k in names]).T
    ax[0].bar(["espeak audio", "codec recon.", "LLMVoX"], vals, yerr=err, color=["#888", "#4a7", "#37c"])
    ax[0].set_ylabel("WER (Whisper tiny.en)")
    ax[0].set_title("held-out sentences")
    ax[1].plot(results["decoder"]["loss_curve"])
    ax[1].set_title("decoder training loss (sampled steps)")
    ax[1].set_ylabel("cross-entropy (nats)")
    pol = results["policies"]
    x = np.arange(len(pol))
    ax[2].bar(x - 0.2, [p["first_audio"]["value"] for p in pol], 0.4, label="time to first audio (s)")
    ax[2].bar(x + 0.2, [p["rtf"]["value"] for p in pol], 0.4, label="real-time factor")
    ax[2].set_xticks(x, [p["policy"] for p in pol], rotation=20, fontsize=8)
    ax[2].legend(fontsize=8)
    ax[2].set_title(f"streaming from {results['model']}")
    run.savefig(fig, "llmvox", "WER with 95% CIs; decoder loss; latency and RTF by chunk policy")


def run_experiment(cfg: LLMVoXConfig, out: Path | None = None) -> Path:
    from paperlab.core.audio import wer_signature
    from paperlab.core.threads import torch_threads

    run = Run("llmvox", out=out, config=cfg)
    t_start = time.perf_counter()
    with torch_threads(cfg.threads):
        data = make_data(cfg)
        codec, codes, codec_info = fit_codec(cfg, data, run)
        decoder, dec_info = fit_decoder(cfg, data, codec, codes, run)
        rows = intelligibility(cfg, data, codec, decoder, codes, run)
    stream_rows = streaming_latency(cfg, codec, decoder, run)
    west = wer_estimates(rows, cfg.n_boot)
    w = {k: v.as_dict() for k, v in west.items()}
    table, pol = policy_table(stream_rows)
    streamed = [r for r in stream_rows if "edits" in r]
    streamed_wer = (sum(r["edits"] for r in streamed) / max(1, sum(r["words"] for r in streamed))) if streamed else None
    results = {"wer": w, "codec": codec_info, "decoder": dec_info, "streaming": stream_rows, "policies": pol,
               "streamed_wer": streamed_wer, "model": cfg.model, "wer_signature": wer_signature(),
               "train_sentences": len(data["train"]), "test_sentences": len(data["test"]),
               "gen_tokens_ratio": float(np.mean([r["gen_tokens"] / max(1, r["ref_tokens"]) for r in rows])),
               "stopped_at_eoa": float(np.mean([r["gen_tokens"] < cfg.block_size - 1 for r in rows])),
               "wall_s": time.perf_counter() - t_start}
    claims = make_claims(cfg, west, stream_rows)
    plots(run, results)
    return run.finish(claims, results, sections=report_sections(cfg, results, rows, table),
                      scale_note=SCALE_NOTE, title="LLMVoX: streaming TTS for any LLM", paper=PAPER).parent


SCALE_NOTE = """\
- Codec: our single-codebook VQ autoencoder over 64-band log-mels (50 tokens/s, 512 codes, Griffin-Lim
  vocoder) trained here in minutes, instead of WavTokenizer (24 kHz, 75 tokens/s, 4,096 codes, neural decoder).
- Decoder: 4 layers as in the paper, but 128-256 dims (paper 768) and byte embeddings learned from scratch
  (paper: the frozen ByT5 G2P encoder embeddings), trained for hundreds to thousands of steps on a few thousand
  espeak-ng sentences (paper: ~2,200 h of synthetic single-speaker speech, 1M+ steps).
- WER is measured with Whisper tiny.en (paper: larger ASR) on sentences from Gutenberg novels; LM answers
  come from SmolLM2-135M-Instruct through llama.cpp on 2 CPU cores (paper: LLaMA-3.1-8B on a GPU)."""


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def report_sections(cfg: LLMVoXConfig, res: dict, rows: list[dict], table: str) -> list[str]:
    w, c, d = res["wer"], res["codec"], res["decoder"]
    wer_rows = [[name, w[k]["value"], f"[{_f(w[k]['lo'])}, {_f(w[k]['hi'])}]"] for k, name in
                (("espeak", "espeak-ng audio (top ceiling)"), ("codec", "codec reconstruction (codec ceiling)"),
                 ("llmvox", "LLMVoX from text"))]
    ex = "\n".join(f"- ref: *{r['text']}*  \n  codec: {r['hyp_codec']!r}  \n  LLMVoX: {r['hyp_llmvox']!r}"
                   for r in rows[:4])
    return [
        "## Intelligibility (held-out sentences, Whisper tiny.en)\n\n"
        + markdown_table(["audio", "WER", "95% CI"], wer_rows)
        + f"\n\nGap LLMVoX - codec: {_f(w['gap']['value'])} [{_f(w['gap']['lo'])}, {_f(w['gap']['hi'])}] over "
        f"{w['gap']['n']} sentences. Generated / reference token count: {res['gen_tokens_ratio']:.2f}; share of "
        f"sentences ended by the end-of-audio code: {res['stopped_at_eoa']:.2f}. WER: {res['wer_signature']}.\n\n"
        f"Examples:\n\n{ex}",
        "## Models\n\n"
        f"Codec: {c['codes_used']} of {cfg.codebook_size} codes used, {c['tokens_per_second']:g} tokens/s, final "
        f"loss {c['final_loss']:.3f}, end-of-audio code {c['eoa_code']} ({c['eoa_natural_count']} natural "
        f"occurrences dropped), {c['train_audio_hours'] * 60:.1f} min of training speech, trained {c['seconds']:.0f} s."
        f"\n\nDecoder: {d['params'] / 1e6:.2f}M parameters without positions ({d['params_with_positions'] / 1e6:.2f}M "
        f"with), {cfg.decoder_steps} steps x {cfg.decoder_batch} sentences, final train loss "
        f"{d['final_train_loss']:.3f}, held-out teacher-forced loss {d['heldout_loss']:.3f} (nats per code; "
        f"uniform = {np.log(cfg.codebook_size):.2f}), trained {d['seconds']:.0f} s.",
        f"## Streaming from `{res['model']}` by chunk policy\n\n" + table
        + "\n\nTime to first audio counts from the request (the LM's own time to its first token included); "
        "RTF = wall time to the last chunk / seconds of audio; a stall is playback waiting for the next chunk. "
        "The non-streaming row waits for the whole LM answer and synthesises it sentence by sentence. "
        + (f"WER of the streamed speech against the LM's text ({cfg.chunk_policies()[0].label}): "
           f"{res['streamed_wer']:.3f}." if res["streamed_wer"] is not None else ""),
    ]
