"""STORM -- "Token-Efficient Long Video Understanding for Multimodal LLMs" (arXiv:2503.04130; no official code).

**Claim.** A video LLM that feeds every frame's tokens to the LLM runs out of context and compute on long videos.
STORM puts a *temporal encoder* -- Mamba layers scanning the whole space-time token sequence -- between the image
encoder and the LLM, so that every token carries information about the rest of the video. Then tokens can be cut
hard without losing the answer: average-pooling k = 4 consecutive frames (training-time temporal pooling) keeps
25 % of the tokens and *gains* accuracy at the same 8K budget (Table 2: VideoMME 60.1 -> 63.4, MLVU 70.2 -> 72.5),
and sampling every 2nd pooled frame at test time (12.5 %) costs little (62.4). Without Mamba, more frames help
little (+0.8 average vs. +2.5 with it, Table 4).

**Pipeline** (§3):

- image encoder -> Linear projector (replacing VILA's MLP, §8.3) -> ``L`` Mamba layers, each
  ``X <- X + MambaMixer(LayerNorm(X))`` (Eq. 5), over the tokens flattened frame by frame, each frame
  left-to-right, top-to-bottom, scanned in both directions (§3.2);
- temporal pooling (Eq. 6): the mean of every ``k`` consecutive frames' tokens, after the Mamba layers;
- spatial pooling (the alternative): per-frame ``p x p`` average (2x2: 4x fewer tokens);
- test-time temporal sampling (Eq. 8): keep every ``s``-th frame after pooling, no retraining;
- the selective scan (Mamba's S6): ``h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t``, ``y_t = C_t h_t + D x_t``,
  gated by ``SiLU(z)``; Mamba defaults d_state 16, conv 4, expand 2, dt_rank ceil(d/16).

**Our choices** (the paper does not say): the number of Mamba layers (2), how the two scan directions merge (Vim's
bimamba v2: separate conv/SSM parameters per direction, outputs summed before ``out_proj``); at small scale the
encoder is frozen (a fixed random conv net or EfficientNet-Lite0) and the LLM is a small decoder trained from
scratch that reads the visual tokens as a prefix and scores the answer words.

**Our public API**

- :mod:`.selective_scan` -- ``selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, mode)`` with
  ``mode`` = ``sequential`` (the reference recurrence, the oracle), ``parallel`` (Blelloch scan, pure PyTorch),
  ``cuda`` (``mamba_ssm`` kernels) or ``auto``; ``max_abs_difference`` checks parallel against sequential.
- :mod:`.mamba` -- ``MambaConfig``, ``MambaMixer`` (bidirectional), ``MambaLayer`` (Eq. 5).
- :mod:`.model` -- ``StormConfig``, ``Storm`` (projector + Mamba + pooling + answer LM), ``temporal_pool``
  (Eq. 6), ``spatial_pool``, ``temporal_sample`` (Eq. 8), ``tokens_per_video``.
- :mod:`.encoders` -- ``make_encoder``: the core's offline frame encoders, or ``hf:<path>`` of a transformers
  vision tower (SigLIP, CLIP, ViT); ``model.HFAnswerLM`` / ``--answer-lm hf:<path>``: a transformers causal LM as
  the answer model with the visual tokens as its prefix (for users with a GPU; training and evaluation move to it).
- :mod:`.training` -- ``fit`` (resumable) and ``predict`` on cached encoder tokens.
- :mod:`.experiment` -- ``paperlab storm run [--quick]``: Linear vs. Mamba projector x token budget (1x, k x
  temporal pooling, k*s x pooling + sampling, p^2 x spatial pooling), held-out accuracy with intervals, claims
  ``mamba_keeps_accuracy_under_pooling``, ``spatial_pooling_hurts``, ``scan_exact``.
- :mod:`.apply` -- ``paperlab storm answer --checkpoint RUN_DIR --video clip.gif --question "..." --choices a,b``
  (or ``--batch items.jsonl``): a trained variant on your clips.
"""
