"""The LLMVoX streaming engine (paper §3.3 "streaming inference"; official ``streaming_server.py``).

Any LLM's text token stream is turned into speech while it is being generated:

1. **Producer** (a thread): reads the LLM's tokens, cleans each (:func:`clean_token`), skips empty ones and puts
   it on the *active* FIFO queue; after a token ending in ``"."`` (only ``"."``, as the official code) the other
   queue becomes active. Sentences therefore alternate between the two queues.
2. **Two decoder replicas** (two threads, each with its own copy of the decoder): each takes its queue's tokens
   one by one, feeds the token's byte ids (:func:`~paperlab.llmvox.bytes.token_ids`, ``EOS`` after the sentence's
   last token) one per decoding step, then ``[PAD]`` every step until the end-of-audio code (greedy, KV cache);
   decoding waits for the LLM when the queue is empty. While replica 1 speaks sentence k, replica 2 already
   decodes sentence k+1.
3. **Adaptive chunks**: a replica vocodes its pending speech tokens whenever ``chunk`` of them are ready (and at
   the end of the sentence); after every emitted chunk and every sentence end the chunk grows,
   ``chunk <- min(chunk * growth, max_chunk)``. Official defaults: replica 1 starts at 10 tokens, replica 2 at
   160, growth x3, cap 1,280; the paper describes doubling (``growth=2``). :class:`ChunkPolicy` exposes all.
4. **Player** (the calling thread): plays sentence 0 from replica 1, sentence 1 from replica 2, ... (each chunk
   as soon as it is ready, in order), appending it to a WAV file that is flushed after every chunk (playable
   while it grows, :class:`ProgressiveWav`).

Timing (:class:`StreamResult`): time to first audio (request start -> first chunk written), the simulated
playback of the chunks (each starts when it is ready and the previous one has finished: stalls are the gaps)
and the real-time factor (wall time to the last chunk / audio duration).

Differences from the official server: the LLM's end-of-text is a sentinel, not an EOS string; an early
end-of-audio code inside a sentence starts a fresh utterance for the sentence's remaining tokens (as the
official replica does), but the sentence's audio stays in order (chunks carry their sentence index).
"""

from __future__ import annotations

import copy
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paperlab.core.audio import SAMPLE_RATE
from paperlab.llmvox.bytes import PAD_ID, token_ids
from paperlab.llmvox.decoder import DecodeState

_END = object()


@dataclass(frozen=True)
class ChunkPolicy:
    """Speech tokens per vocoder call: replica i starts at ``initial[i]``, times ``growth`` after every chunk
    and sentence end, capped at ``max_chunk`` (official: (10, 160), x3, 1280; paper: x2)."""

    initial: tuple[int, int] = (10, 160)
    growth: float = 3.0
    max_chunk: int = 1280

    def __post_init__(self):
        if len(self.initial) != 2 or min(self.initial) < 1:
            raise ValueError(f"initial chunk sizes must be two integers >= 1, got {self.initial}")
        if self.growth < 1.0:
            raise ValueError(f"growth must be >= 1, got {self.growth}")
        if self.max_chunk < max(self.initial):
            raise ValueError(f"max_chunk {self.max_chunk} is below an initial size {self.initial}")

    def grow(self, size: int) -> int:
        return min(int(round(size * self.growth)), self.max_chunk) if size < self.max_chunk else size

    @property
    def label(self) -> str:
        return f"{self.initial[0]}/{self.initial[1]} x{self.growth:g}"


def clean_token(text: str) -> str:
    """The official server's token cleaning: markdown bold/asterisks and hashes removed, dashes to spaces,
    '&'/'@'/'/' spelled, a period after a number dropped, whitespace collapsed, stripped."""
    t = text.strip().replace("**", "").replace("-", " ")
    t = re.sub(r"(\d)\.(?=\s|$)", r"\1", t)
    t = t.replace("*", "").replace("#", " number ").replace("&", " and ").replace("@", " at ")
    t = re.sub(r"(\d),(\d)", r"\1\2", t)
    t = re.sub(r"/+", " slash ", t)
    return " ".join(t.split())


@dataclass
class Chunk:
    sentence: int
    replica: int
    tokens: int
    samples: np.ndarray
    t_ready: float = 0.0  # seconds since the request started
    t_written: float = 0.0


@dataclass
class StreamResult:
    chunks: list[Chunk]
    text: str  # what the producer forwarded (cleaned tokens joined by spaces)
    sentence_codes: dict[int, list[int]]  # every sentence's speech codes (end-of-audio excluded)
    t_first_token: float  # the LLM's first token (s after the request)
    t_last_token: float
    t_done: float
    sentence_order: list[int] = field(default_factory=list)  # sentence index of each chunk, as played
    raw_text: str = ""  # the LLM's answer as it streamed (tokens concatenated)

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate([c.samples for c in self.chunks]) if self.chunks else np.zeros(0, np.float32)

    @property
    def audio_seconds(self) -> float:
        return sum(len(c.samples) for c in self.chunks) / SAMPLE_RATE

    @property
    def first_audio(self) -> float:
        return self.chunks[0].t_written if self.chunks else float("nan")

    @property
    def rtf(self) -> float:
        return self.t_done / self.audio_seconds if self.audio_seconds else float("nan")

    @property
    def stall_seconds(self) -> float:
        """Silence inside the playback: a chunk not ready when the previous one finished playing."""
        clock, stall = None, 0.0
        for c in self.chunks:
            if clock is None:
                clock = c.t_written
            elif c.t_written > clock:
                stall += c.t_written - clock
                clock = c.t_written
            clock += len(c.samples) / SAMPLE_RATE
        return stall

    def summary(self) -> dict:
        return {"first_audio_s": self.first_audio, "rtf": self.rtf, "stall_s": self.stall_seconds,
                "audio_s": self.audio_seconds, "chunks": len(self.chunks), "sentences": len(self.sentence_codes),
                "t_first_token_s": self.t_first_token, "t_last_token_s": self.t_last_token, "t_done_s": self.t_done,
                "chunk_tokens": [c.tokens for c in self.chunks]}


class ProgressiveWav:
    """A 16-bit mono WAV written chunk by chunk; the header is rewritten on every flush, so the file is
    playable (and readable) while it grows."""

    def __init__(self, path: str | Path, sr: int = SAMPLE_RATE):
        import soundfile as sf

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.f = sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16", format="WAV")

    def write(self, samples: np.ndarray) -> None:
        self.f.write(np.clip(np.asarray(samples, np.float32), -1.0, 1.0))
        self.f.flush()

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class StreamingEngine:
    """Two decoder replicas + a vocoder behind sentence queues; :meth:`run` consumes a token iterator."""

    def __init__(self, decoder, codec, policy: ChunkPolicy = ChunkPolicy(), max_audio_tokens: int | None = None,
                 griffin_lim_iters: int = 32):
        self.replicas = [decoder, copy.deepcopy(decoder)]  # two replicas (the official server: two GPUs)
        for r in self.replicas:
            r.eval()
        self.codec = codec
        self.policy = policy
        # safety cap of buffered speech tokens per utterance (official max_audio_length 8,000); the decoder's
        # learned positions bound it too
        self.max_audio_tokens = min(max_audio_tokens or decoder.config.block_size, decoder.config.block_size)
        self.n_iter = griffin_lim_iters

    # -------------------------------------------------------------- threads
    def _produce(self, tokens: Iterable[str], queues, log: dict) -> None:
        active, sentence = 0, 0
        try:
            for tok in tokens:
                log["raw"].append(tok)
                now = time.perf_counter() - log["t0"]
                log.setdefault("t_first_token", now)
                log["t_last_token"] = now
                t = clean_token(tok)
                if not t:
                    continue
                log["text"].append(t)
                end = t.endswith(".")
                queues[active].put((sentence, t, end))
                if end:  # the sentence boundary: switch queues
                    active, sentence = 1 - active, sentence + 1
        except BaseException as e:  # an LLM error ends the stream; the caller re-raises it
            log["error"] = e
        finally:
            for q in queues:
                q.put(_END)

    def _replica(self, i: int, inbox: queue.Queue, outbox: queue.Queue, t0: float, codes_out: dict) -> None:
        model, eoa = self.replicas[i], self.replicas[i].config.eoa_code
        chunk = self.policy.initial[i]
        try:
            while True:
                item = inbox.get()
                if item is _END:
                    break
                sentence, tok, end = item
                state, pending, spoken = DecodeState(model), [], []  # a new utterance
                feed = list(token_ids(tok, end))
                sentence_done = False
                while not sentence_done:
                    if not feed and not end:  # wait for the LLM's next token of this sentence
                        nxt = inbox.get()
                        if nxt is _END:  # the text stopped mid-sentence: close it with EOS + PAD
                            end, feed = True, list(token_ids("", True))
                            inbox.put(_END)
                        else:
                            _, tok, end = nxt
                            feed = list(token_ids(tok, end))
                        continue
                    b = feed.pop(0) if feed else PAD_ID
                    c = state.step(b)
                    hit_cap = state.t >= self.max_audio_tokens
                    if c != eoa:
                        pending.append(c)
                    if len(pending) >= chunk:  # a full chunk: vocode and hand it to the player
                        self._emit(i, sentence, pending[:chunk], spoken, outbox, t0)
                        spoken += pending[:chunk]
                        pending = pending[chunk:]
                        chunk = self.policy.grow(chunk)
                    if c == eoa or hit_cap:
                        if pending:  # the utterance's last (partial) chunk
                            self._emit(i, sentence, pending, spoken, outbox, t0)
                            spoken += pending
                            pending = []
                            chunk = self.policy.grow(chunk)
                        chunk = self.policy.grow(chunk)  # and again at the end of the utterance
                        codes_out.setdefault(sentence, []).extend(spoken)
                        if end and not feed:
                            sentence_done = True
                        else:  # early end of audio: the sentence's remaining text is a fresh utterance
                            state, spoken = DecodeState(model), []
                outbox.put(("done", sentence))
        except BaseException as e:
            outbox.put(("error", e))
        finally:
            outbox.put(("end", None))

    def _emit(self, i, sentence, codes, context, outbox, t0) -> None:
        wave = self.codec.decode_chunk(codes, context, n_iter=self.n_iter)
        outbox.put(("audio", Chunk(sentence, i, len(codes), wave, time.perf_counter() - t0)))

    # -------------------------------------------------------------- the request
    def run(self, tokens: Iterable[str], wav: str | Path | None = None,
            on_chunk: Callable[[Chunk], None] | None = None, t0: float | None = None) -> StreamResult:
        """Speak a token stream. ``t0`` (perf_counter) is when the request started (default: now), so the LLM's
        own time to first token counts in the latency."""
        import torch

        t0 = time.perf_counter() if t0 is None else t0
        log: dict = {"t0": t0, "text": [], "raw": []}
        text_q = [queue.Queue(), queue.Queue()]
        audio_q = [queue.Queue(), queue.Queue()]
        codes: dict[int, list[int]] = {}
        threads = [threading.Thread(target=self._produce, args=(tokens, text_q, log), daemon=True)]
        threads += [threading.Thread(target=self._replica, args=(i, text_q[i], audio_q[i], t0, codes), daemon=True)
                    for i in range(2)]
        chunks: list[Chunk] = []
        order: list[int] = []
        writer = ProgressiveWav(wav) if wav is not None else None
        error = None
        with torch.inference_mode():
            for t in threads:
                t.start()
            current, ended = 0, [False, False]
            try:
                while not ended[current % 2]:
                    kind, payload = audio_q[current % 2].get()
                    if kind == "audio":
                        if payload.sentence != current:
                            raise RuntimeError(f"replica {current % 2} sent sentence {payload.sentence} "
                                               f"while sentence {current} was playing")
                        if writer is not None:
                            writer.write(payload.samples)
                        payload.t_written = time.perf_counter() - t0
                        chunks.append(payload)
                        order.append(payload.sentence)
                        if on_chunk is not None:
                            on_chunk(payload)
                    elif kind == "done":
                        current += 1
                    elif kind == "error":
                        error = payload
                    else:
                        ended[current % 2] = True
            finally:
                if writer is not None:
                    writer.close()
            for t in threads:
                t.join()
        error = error or log.get("error")
        if error is not None:
            raise error
        return StreamResult(chunks, " ".join(log["text"]), codes, log.get("t_first_token", float("nan")),
                            log.get("t_last_token", float("nan")), time.perf_counter() - t0, order,
                            "".join(log["raw"]))
