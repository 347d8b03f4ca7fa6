"""``make_claims`` on synthetic measurements built to give each verdict (no training)."""

import numpy as np
import pytest

from paperlab.hybridnorm.experiment import make_claims

PRE = [2.00, 2.10, 2.05]
H1 = 3.3


def stable_all(n, post=False, hybrid=True, lrs=(1e-3, 1e-2)):
    """Everything stable at the low lr; at the high lr Post-Norm stable iff ``post``, HybridNorm iff ``hybrid``."""
    out = {}
    for lr in lrs:
        high = lr == max(lrs)
        out["post", lr] = [post if high else True] * n
        out["hybrid", lr] = [hybrid if high else True] * n
        out["pre", lr] = [True] * n
    return out


def lower(final, seq=None, n=3):
    seq = seq if seq is not None else {v: [[]] * len(x) for v, x in final.items()}
    return make_claims(24, 100, 1e-3, list(range(n)), final, seq, stable_all(n), H1)[0]


@pytest.mark.parametrize(("deltas", "verdict"), [
    ([-0.10, -0.11, -0.09], "holds"),
    ([+0.10, +0.11, +0.09], "contradicted"),
    ([-0.10, +0.10, -0.02], "inconclusive"),
])
def test_lower_loss_over_seeds(deltas, verdict):
    hyb = [p + d for p, d in zip(PRE, deltas, strict=True)]
    star = [p + 0.3 for p in PRE]                                  # the worse variant
    c = lower({"pre": PRE, "hybrid": hyb, "hybrid_star": star})
    assert c.verdict == verdict
    v = c.values
    assert v["best"] == "hybrid" and v["evidence"]["n"] == 3 and v["test"]["expect"] == "less"
    assert v["evidence"]["value"] == pytest.approx(np.mean(deltas))
    assert "HybridNorm*" in v["other_variants"]                     # the other variant's interval, reported
    assert v["other_variants"]["HybridNorm*"]["verdict"] == "contradicted"
    assert "seeds" in v["note"]


def test_lower_loss_picks_the_better_variant():
    hyb = [p + 0.05 for p in PRE]
    star = [p - 0.1 + 0.001 * i for i, p in enumerate(PRE)]
    c = lower({"pre": PRE, "hybrid": hyb, "hybrid_star": star})
    assert c.values["best"] == "hybrid_star" and c.verdict == "holds"
    assert "HybridNorm*" in c.statement


def test_two_seeds_of_the_same_sign_are_not_enough_when_they_disagree_in_size():
    # a point difference of -0.1 with a t interval on 1 degree of freedom straddles 0
    c = lower({"pre": [2.0, 2.0], "hybrid": [1.99, 1.81]}, n=2)
    assert c.values["evidence"]["value"] == pytest.approx(-0.1) and c.verdict == "inconclusive"


def test_lower_loss_with_one_seed_pairs_validation_windows():
    rng = np.random.default_rng(0)
    pre_seq = (2.0 + 0.3 * rng.standard_normal(64)).tolist()
    better = [x - 0.05 + 0.01 * rng.standard_normal() for x in pre_seq]
    worse = [x + 0.05 + 0.01 * rng.standard_normal() for x in pre_seq]
    noisy = [x + 0.3 * rng.standard_normal() for x in pre_seq]
    for seq, verdict in ((better, "holds"), (worse, "contradicted"), (noisy, "inconclusive")):
        final = {"pre": [float(np.mean(pre_seq))], "hybrid": [float(np.mean(seq))]}
        c = lower(final, {"pre": [pre_seq], "hybrid": [seq]}, n=1)
        assert c.verdict == verdict, verdict
        assert c.values["evidence"]["n"] == 64 and "validation windows" in c.values["note"]
        assert "covers evaluation noise" in c.values["note"]


def test_one_seed_without_per_window_losses_is_inconclusive_not_the_point_estimate():
    c = lower({"pre": [2.0], "hybrid": [1.5]}, n=1)                  # a large gap, but no units to vary over
    assert c.verdict == "inconclusive" and c.values["delta_vs_prenorm"] == pytest.approx(-0.5)


def stability(n, post, hybrid, lrs=(1e-3, 1e-2)):
    final = {"pre": [2.0] * n, "hybrid": [1.9] * n}
    return make_claims(24, 100, 1e-3, list(range(n)), final, {}, stable_all(n, post, hybrid, lrs), H1)[1]


def test_stability_holds_with_enough_unanimous_seeds():
    c = stability(5, post=False, hybrid=True)
    assert c.verdict == "holds" and c.values["lr"] == 1e-2 and c.values["test"]["null"] == 0.5
    assert set(c.values["evidence"]) == {"Post-Norm diverged, share of seeds (lr 0.01)",
                                         "HybridNorm stable, share of seeds (lr 0.01)"}
    cells = {c_["lr"]: c_["verdict"] for c_ in c.values["cells"]}
    assert cells == {1e-3: "contradicted", 1e-2: "holds"}         # low lr: Post-Norm is stable


@pytest.mark.parametrize("n", [1, 3])
def test_stability_with_few_seeds_is_inconclusive(n):
    c = stability(n, post=False, hybrid=True)                       # the pattern the old rule called "holds"
    assert c.verdict == "inconclusive"
    assert "cannot be 'holds'" in c.values["note"]


def test_stability_contradicted_when_post_norm_is_stable_everywhere():
    c = stability(5, post=True, hybrid=True)
    assert c.verdict == "contradicted"


def test_stability_inconclusive_when_seeds_split():
    final = {"pre": [2.0] * 5, "hybrid": [1.9] * 5}
    st = stable_all(5, post=False, hybrid=True)
    st["hybrid", 1e-2] = [True, False, True, False, True]          # 3 of 5 stable
    c = make_claims(24, 100, 1e-3, list(range(5)), final, {}, st, H1)[1]
    assert c.verdict == "inconclusive"
