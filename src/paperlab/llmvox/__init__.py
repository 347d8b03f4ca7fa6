"""LLMVoX -- "LLMVoX: Autoregressive Streaming Text-to-Speech Model for Any LLM" (Shikhar et al., arXiv:2503.04724;
official code ``mbzuai-oryx/LLMVoX``).

**Claim.** A small (30M) decoder-only TTS, kept apart from the LLM, can speak any LLM's answer *while it is being
generated*: low latency (first audio in a few hundred ms), a word error rate close to the speech codec's own,
and no change to the LLM.

**Model** (§3.1-3.2). Speech is a sequence of single-codebook codec tokens ``c_t`` (WavTokenizer in the paper).
The text enters as a stream of ByT5 byte ids ``b_t`` that is *aligned by position only*: byte t sits beside speech
step t, the stream padded with ``[PAD]`` after its end-of-text id (:mod:`.bytes`). A 4-layer nanoGPT decoder
reads at each step the vector (Eq. 1)

    x_t = L2-normalise( concat( E(b_t), F(c_{t-1}) ) ),   F(c_{-1}) = 0,

(E: byte embeddings; F: the codec's frozen codebook vector of the previous token), with learned positions and no
input token table, and predicts ``c_t`` (cross-entropy); an ordinary code marks the end of audio
(:mod:`.decoder`). Decoding is greedy with a KV cache.

**Streaming** (§3.3, :mod:`.streaming`). The LLM's tokens go to one of two FIFO queues, switched after each
token ending in ``"."``; two decoder replicas decode alternate sentences in parallel; each vocodes its tokens in
chunks that start small (10 tokens for replica 1, 160 for replica 2) and grow (x3 in the official code, x2 in
the paper, capped at 1,280), so the first audio comes quickly and later chunks amortise the vocoder.

**Here** (small scale, offline): a VQ autoencoder over log-mels + Griffin-Lim as the codec (:mod:`.codec`),
training speech from espeak-ng on sentences of the packaged novels (:mod:`.corpus`), byte embeddings learned
from scratch, WER from Whisper tiny.en, the default LM (SmolLM2-135M, llama.cpp) streaming its answers
(any core backend's ``stream_chat``).

**Our public API**

- :mod:`.bytes` -- ``text_ids``, ``training_stream``, ``token_ids``: the byte stream (PAD 384, EOS 385, ``</s>`` 1).
- :mod:`.decoder` -- ``DecoderConfig``, ``LLMVoXDecoder``, ``make_example``, ``collate``, ``DecodeState``,
  ``greedy_decode`` (KV cache), ``greedy_decode_recompute`` (the no-cache reference).
- :mod:`.codec` -- ``CodecConfig``, ``MelVQCodec`` (``encode``, ``decode``, ``decode_chunk``), ``griffin_lim``.
- :mod:`.streaming` -- ``ChunkPolicy``, ``StreamingEngine.run(tokens, wav=...) -> StreamResult``,
  ``ProgressiveWav``.
- ``paperlab llmvox run [--quick]``; ``paperlab llmvox speak --model SPEC --prompt "..." --out speech.wav
  [--checkpoint RUN_DIR]``.
"""

PAPER = "LLMVoX (arXiv:2503.04724)"
