"""Measure structural priming in any model on any prime/target items (``paperlab priming measure``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paperlab.core.errors import UserError
from paperlab.priming.measure import Scorer, cell_logprobs, priming_effects


def load_snapshot(path: Path | str):
    """``(model, grammar-like vocabulary)`` of a ``snap_<step>.pt`` written by ``paperlab priming run`` (its
    folder holds ``model.json``: the transformer config and the word vocabulary)."""
    import torch

    from paperlab.core.transformer import Transformer, TransformerConfig
    from paperlab.priming.grammar import Grammar

    path = Path(path)
    meta_path = path.parent / "model.json"
    if not meta_path.exists():
        raise UserError(f"--model {path}: no model.json beside it", "pass a snap_<step>.pt inside a priming run's "
                        "models/<pair>/seed<k>/<regime>/ folder")
    meta = json.loads(meta_path.read_text())
    grammar = Grammar(tuple(meta["languages"]))
    if grammar.vocab != meta["vocab"]:
        raise UserError(f"--model {path}: its vocabulary differs from this paperlab version's grammar",
                        "measure it with the paperlab version that trained it")
    model = Transformer(TransformerConfig(**meta["config"]))
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # noqa: BLE001 - any unreadable / mismatched file is the user's input problem
        raise UserError(f"--model {path} is not a priming snapshot ({type(e).__name__})",
                        "pass a snap_<step>.pt written by `paperlab priming run`") from None
    return model.eval(), grammar


def load_scorer(spec: str, items: Sequence[dict], separator: str = " ") -> tuple[Scorer, str]:
    """A scorer for a priming snapshot (``*.pt``) or a transformers model spec; items are checked against a
    snapshot's vocabulary first (one-line error naming an unknown word)."""
    from paperlab.priming.measure import ITEM_KEYS, transformer_scorer

    if spec.endswith(".pt"):
        model, grammar = load_snapshot(spec)
        for i, it in enumerate(items):
            for k in ITEM_KEYS:
                bad = [w for w in it[k].split() if w not in grammar.stoi]
                if bad:
                    raise UserError(f"item {i + 1} {k}: {bad[0]!r} is not in the snapshot's vocabulary",
                                    "use words of the grammar (see items_<pair>.jsonl of a run)")
        n = sum(p.numel() for p in model.parameters())
        return transformer_scorer(model, grammar), f"priming snapshot {spec} ({n:,} parameters)"
    from paperlab.core.models import load_torch_model
    from paperlab.priming.measure import hf_scorer

    model, tok = load_torch_model(spec, device="cpu")
    return hf_scorer(model, tok, separator), spec


def summarise_items(scorer: Scorer, items: Sequence[dict]) -> tuple[dict, list[dict]]:
    """The effect's mean with a 95% t-interval, t-test and Wilcoxon p-values, the mean log ratio (bootstrap
    interval), and per-item values."""
    from paperlab.core.stats import bootstrap_ci, mean_ci
    from paperlab.priming.experiment import significance

    lp = cell_logprobs(scorer, items)
    eff = priming_effects(lp)
    x = eff["effect"]
    sig = significance(x)
    summary = {
        "n_items": len(items),
        "measure": "P_N(T_x|P_x) - P_N(T_x|P_y), P_N(T_x|P) = P(T_x|P) / (P(T_x|P) + P(T_y|P))",
        "effect": mean_ci(x).as_dict(),
        "t_test_p": sig["t_p"], "wilcoxon_p": sig["wilcoxon_p"],
        "logratio": bootstrap_ci(eff["logratio"]).as_dict(),
        "mean_pn_x_given_px": float(np.mean(eff["pn_x_px"])), "mean_pn_x_given_py": float(np.mean(eff["pn_x_py"])),
    }
    per_item = [{"item": i, "effect": float(x[i]), "logratio": float(eff["logratio"][i]),
                 **{f"logp_{k}": float(v[i]) for k, v in lp.items()}} for i in range(len(items))]
    return summary, per_item
