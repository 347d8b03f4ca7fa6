"""Union of Experts (UoE) — Yang, Lian, Li, "Union of Experts: Adapting Hierarchical Routing to Equivalently
Decomposed Transformer", arXiv:2503.02495 (2025). https://arxiv.org/abs/2503.02495

**Claim.** Instead of assembling independent experts (MoE), decompose one transformer *equivalently* into
experts — the MLP by the column/row split of tensor parallelism, attention by heads — and route data to
them hierarchically. The resulting UoE (Selective Multi-Head Attention + Union of MLP Experts) reaches a
lower language-modelling perplexity than the best MoE (-2.38 on average) at 76% of its FLOPs.

**Equivalent decomposition** (:mod:`~paperlab.uoe.decompose`). With ``W_1 = [W_1^1 ... W_1^E]`` split by
columns and ``W_2 = [W_2^1; ...; W_2^E]`` by rows,

    MLP(x) = sum_e E_e(x),     E_e(x) = (SiLU(x W_1^e) * x W_3^e) W_2^e                         (1)
    Attn(X) = sum_h softmax(RoPE(X W_Q^h) RoPE(X W_K^h)^T / sqrt(Dh) + M) X W_V^h W_O^h          (2)

**Hierarchical routing** (:mod:`~paperlab.uoe.routing`). ``p_t = softmax(x_t W_r)`` (3); each token
selects its top-``k`` experts (expert selection), each expert keeps the top-``C`` tokens that selected it,
in sequence order (patch-wise data selection); outputs are scatter-added back (4).

**SMHA** (:mod:`~paperlab.uoe.smha`): heads are experts; head ``h`` computes Q, K, V only for its
selected tokens and attends causally among them (5). **UoME** (:mod:`~paperlab.uoe.uome`): the MLP's
experts, data-selection (per token, for LM) or expert-selection (per sequence) routing (6).

**Routing as in the official code** (the default :class:`UoEConfig`): SMHA drops nothing (each head's
buffer as long as its busiest head's, ``SMHA_v3``); UoME's experts each compute exactly ``T/2`` tokens,
free slots holding *filler tokens* whose outputs are added (``UoME_DS``). Fillers and capacity drops
depend on later tokens, so that UoME is not causal in an LM (``experiment.future_leak``); the dropless
UoME (``mlp_capacity=None``) is, and only such leak-free variants decide the run's claims. With
``uome_d_ff_mult=2`` UoME has the top-2 MoE's parameters and expert FLOPs exactly.

**Parallel implementation.** Experts' weights are stacked, tokens gathered into ``[E, B C, D]`` and every
expert runs in one batched matmul; ``batched=False`` gives the per-expert loop.

**Our choice for the router.** The official code only *selects* with the gate scores and never multiplies
outputs by them, so its router gets no gradient. We keep the forward pass (so Eq. 1/2 stay exact) and use
a straight-through gate ``(1 + p - sg(p))`` whose value is 1 and whose gradient is that of a multiplying
gate (``gate="straight_through"``); ``"multiply"`` (standard MoE) and ``"none"`` (official) are options.

API::

    from paperlab.uoe import build_model, UoEConfig
    model = build_model("uoe", TransformerConfig(...), UoEConfig())   # dense | moe | uome | smha | uoe
    logits, loss = model(idx, targets)
    model.flops_per_token(seq_len)                                    # counted, selection-aware

    paperlab uoe run --quick        # CLI: equivalence check + lr sweep + seeds + claims + report
    paperlab uoe run --seeds 0,1,2 --lrs 1e-3,2e-3,4e-3 --d-ff-mult 2 --routing paper,causal
"""

# The API is imported lazily (PEP 562) so that ``paperlab.uoe.cli`` stays cheap to import (no torch).
_API = {
    "DecomposedAttentionWeights": "decompose", "DecomposedMLP": "decompose",
    "VARIANTS": "model", "UoEConfig": "model", "build_model": "model",
    "TopKMoE": "moe",
    "Router": "routing", "Routing": "routing", "hierarchical_route": "routing", "load_balancing_loss": "routing",
    "SelectiveMultiHeadAttention": "smha",
    "UnionOfMLPExperts": "uome", "UoMEExpertSelection": "uome",
    "reproduce": "experiment",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f"paperlab.uoe.{_API[name]}"), name)
    raise AttributeError(f"module 'paperlab.uoe' has no attribute {name!r}")
