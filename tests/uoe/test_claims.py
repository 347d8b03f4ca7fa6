"""``make_claims`` on synthetic measurements built to give each verdict (no training)."""

import math

import numpy as np
import pytest

from paperlab.uoe.experiment import EQUIVALENCE_TOL, make_claims

EQ = {"mlp_forward": 1e-15, "mlp_backward": 3e-15, "attention_forward": 2e-15, "attention_backward": 4e-15}


def row(seq, flops=1000.0, attn=400.0):
    seq = list(seq)
    loss = float(np.mean(seq)) if seq else 1.5
    return {"flops_per_token": flops, "attention_flops": attn, "val_loss": loss, "val_ppl": math.exp(loss),
            "val_seq_losses": seq}


def claims(uoe_seq, moe_seq, uoe_flops=800.0, smha_attn=200.0, eq=EQ):
    rows = {"uoe": row(uoe_seq, uoe_flops), "moe": row(moe_seq, 1000.0),
            "smha": row(moe_seq, attn=smha_attn), "dense": row(moe_seq, attn=400.0)}
    return {c.id: c for c in make_claims(rows, eq, seed=0)}


RNG = np.random.default_rng(0)
MOE = 1.5 + 0.2 * RNG.standard_normal(128)


@pytest.mark.parametrize(("shift", "noise", "verdict"), [
    (-0.03, 0.01, "holds"),
    (+0.03, 0.01, "contradicted"),
    (-0.005, 0.2, "inconclusive"),
])
def test_uoe_vs_moe_is_paired_over_validation_windows(shift, noise, verdict):
    uoe = MOE + shift + noise * np.random.default_rng(1).standard_normal(MOE.size)
    c = claims(uoe, MOE)["uoe_vs_moe_at_flops"]
    assert c.verdict == verdict
    ev = c.values["evidence"]["validation perplexity, UoE - MoE"]
    assert ev["n"] == 128 and ev["value"] == pytest.approx(math.exp(uoe.mean()) - math.exp(MOE.mean()))
    assert "one training seed" in c.values["note"] and "evaluation noise only" in c.values["note"]


def test_uoe_vs_moe_needs_fewer_flops_too():
    c = claims(MOE - 0.03, MOE, uoe_flops=1200.0)["uoe_vs_moe_at_flops"]     # better perplexity, more FLOPs
    assert c.verdict == "contradicted"
    assert c.values["evidence"]["validation perplexity, UoE - MoE"]["verdict"] == "holds"


def test_uoe_vs_moe_without_per_window_losses_is_inconclusive():
    rows = {"uoe": row([], 800.0) | {"val_ppl": 3.0}, "moe": row([], 1000.0) | {"val_ppl": 9.0}}
    c = {c.id: c for c in make_claims(rows, EQ)}["uoe_vs_moe_at_flops"]
    assert c.verdict == "inconclusive"                          # a large point gap alone decides nothing


def test_decomposition_is_an_exact_identity():
    assert claims(MOE, MOE)["decomposition_exact"].verdict == "holds"
    bad = EQ | {"attention_backward": 1e-4}
    c = claims(MOE, MOE, eq=bad)["decomposition_exact"]
    assert c.verdict == "contradicted" and c.values["test"]["null"] == EQUIVALENCE_TOL


def test_smha_flops_are_by_construction():
    assert claims(MOE, MOE)["smha_saves_flops"].verdict == "by_construction"
    assert claims(MOE, MOE, smha_attn=500.0)["smha_saves_flops"].verdict == "contradicted"
