"""LanDiff -- "The Best of Both Worlds: Integrating Language Models and Diffusion Models for Video Generation"
(arXiv:2503.04606; official inference code ``LanDiff/LanDiff``, MIT / Apache-2.0).

**Claim.** Text-to-video in two stages: a language model writes a *very* compressed sequence of semantic
tokens (the paper: ~14,000x compression, 1,218 tokens for a 49-frame clip), and a diffusion model turns
them into pixels. The LM brings text following and long-range structure, the diffusion model visual quality;
together (5B parameters) they beat larger pure-diffusion models on VBench (85.43).

**§3.1 Semantic tokenizer** (:mod:`.tokenizer`). Frozen semantic features of every 4th frame are read by
learned query tokens: ``n_i`` for the key frame, ``n_p`` for each later frame. The encoder mask is causal in
frames (a frame-k query sees only frames <= k and earlier queries), so P-frame tokens carry only what changed
(I/P frames as in video codecs). ``Q`` = EMA vector quantisation (vector-quantize-pytorch: codebook_dim 16,
decay 0.8, rotation trick, k-means init, dead-code threshold 2, commitment 1.0). Loss (Eq. 1)
``||D(Q(E(F))) - F||^2 + L_commit`` on per-channel normalised features.

**§3.2 LM** (:mod:`.lm`). ``[BOS][frames][motion][text][SOI] I [EOI] ([SOP] P [EOP])* [EOS]``; frame count and
motion score enter through sinusoidal embeddings and MLPs whose last layer is zero-initialised; 10% of the text
embeddings are a learned null embedding; sampling forces the special tokens and applies classifier-free
guidance on logits ``l_u + s (l_c - l_u)``.

**§3.3 Detokenizer** (:mod:`.detokenizer`). A frozen video diffusion model plus a trainable copy of its first
half (ControlNet) fed with the VQ-decoded features through a zero-initialised projection, joined to the main
model by zero-initialised linears. **§3.4** Long videos chunk by chunk, each chunk conditioned on the previous
chunk's last frames (clean prefix).

**Our public API**

- :class:`.tokenizer.SemanticTokenizer`, :func:`.tokenizer.encoder_mask`, :func:`.tokenizer.decoder_mask`;
- :class:`.lm.LanDiffLM` (``loss``, ``generate`` with CFG and forced specials), :class:`.lm.TextEncoder`;
- :class:`.detokenizer.VideoDenoiser`, :class:`.detokenizer.Detokenizer`, :func:`.detokenizer.sample`;
- :mod:`.experiment`: ``default_config(quick)``, ``reproduce(quick, out)``, ``generate_clips``,
  ``generate_long``, ``load_checkpoint(run_dir)``;
- ``paperlab landiff run [--quick]`` and ``paperlab landiff generate --checkpoint RUN --caption "a blue square
  moves up slowly" --frames 16 --motion 0.02 --out clip.gif`` (JSON metadata beside the GIF).
"""
