"""``make_claims`` on synthetic measurements built to give each verdict (no training)."""

import numpy as np
import pytest

from paperlab.hybridnorm.experiment import make_claims

PRE = [2.00, 2.10, 2.05]
H1 = 3.3


def stable_all(n, post=False, hybrid=True, lrs=(1e-3, 1e-2), post_fail="diverged"):
    """Everything stable at the low lr; at the high lr Post-Norm stable iff ``post`` (else ``post_fail``),
    HybridNorm iff ``hybrid`` (else collapsed)."""
    out = {}
    for lr in lrs:
        high = lr == max(lrs)
        out["post", lr] = ["stable" if (post or not high) else post_fail] * n
        out["hybrid", lr] = ["stable" if (hybrid or not high) else "collapsed"] * n
        out["pre", lr] = ["stable"] * n
    return out


def lower_claims(final, seq=None, n=3):
    seq = seq if seq is not None else {v: [[]] * len(x) for v, x in final.items()}
    return {c.id: c for c in make_claims(24, 100, 1e-3, list(range(n)), final, seq, stable_all(n), H1)}


def lower(final, seq=None, n=3):
    return lower_claims(final, seq, n)["hybridnorm_lower_loss"]


@pytest.mark.parametrize(("deltas", "verdict"), [
    ([-0.10, -0.11, -0.09], "holds"),
    ([+0.10, +0.11, +0.09], "contradicted"),
    ([-0.10, +0.10, -0.02], "inconclusive"),
])
def test_lower_loss_over_seeds(deltas, verdict):
    hyb = [p + d for p, d in zip(PRE, deltas, strict=True)]
    star = [p + 0.3 for p in PRE]                                  # the worse variant
    cs = lower_claims({"pre": PRE, "hybrid": hyb, "hybrid_star": star})
    c = cs["hybridnorm_lower_loss"]
    assert c.verdict == verdict
    v = c.values
    assert v["variant"] == "HybridNorm" and v["evidence"]["n"] == 3 and v["test"]["expect"] == "less"
    assert v["evidence"]["value"] == pytest.approx(np.mean(deltas))
    assert v["delta_per_seed"] == pytest.approx(deltas)
    assert "seeds" in v["note"]
    # each variant is decided on its own, with its own id
    assert cs["hybridnorm_star_lower_loss"].verdict == "contradicted"
    assert cs["hybridnorm_star_lower_loss"].values["variant"] == "HybridNorm*"


def test_each_variant_decided_on_its_own_no_picking_the_better():
    # HybridNorm* beats Pre-Norm, plain HybridNorm loses to it: the old single claim reported only the winner
    hyb = [p + 0.05 + 0.001 * i for i, p in enumerate(PRE)]
    star = [p - 0.1 + 0.001 * i for i, p in enumerate(PRE)]
    cs = lower_claims({"pre": PRE, "hybrid": hyb, "hybrid_star": star})
    assert cs["hybridnorm_lower_loss"].verdict == "contradicted"
    assert cs["hybridnorm_star_lower_loss"].verdict == "holds"
    assert "HybridNorm*" in cs["hybridnorm_star_lower_loss"].statement
    assert "HybridNorm*" not in cs["hybridnorm_lower_loss"].statement
    # a run without HybridNorm* makes no claim about it
    assert "hybridnorm_star_lower_loss" not in lower_claims({"pre": PRE, "hybrid": hyb})


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


def stability(n, post, hybrid, lrs=(1e-3, 1e-2), post_fail="diverged"):
    final = {"pre": [2.0] * n, "hybrid": [1.9] * n}
    return make_claims(24, 100, 1e-3, list(range(n)), final, {}, stable_all(n, post, hybrid, lrs, post_fail),
                       H1)[-1]


def test_stability_holds_with_enough_unanimous_seeds():
    c = stability(5, post=False, hybrid=True)
    assert c.verdict == "holds" and c.values["lr"] == 1e-2 and c.values["test"]["null"] == 0.5
    assert set(c.values["evidence"]) == {"Post-Norm failed (diverged or collapsed), share of seeds (lr 0.01)",
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
    st["hybrid", 1e-2] = ["stable", "collapsed", "stable", "diverged", "stable"]          # 3 of 5 stable
    c = make_claims(24, 100, 1e-3, list(range(5)), final, {}, st, H1)[-1]
    assert c.verdict == "inconclusive"


def test_post_norm_collapse_is_counted_as_a_collapse_not_a_divergence():
    c = stability(5, post=False, hybrid=True, post_fail="collapsed")
    assert c.verdict == "holds"                                     # a collapse is a failure to train
    high = next(x for x in c.values["cells"] if x["lr"] == 1e-2)
    assert high["post"] == {"collapsed": 5} and high["variant_runs"] == {"stable": 5}
    assert "collapses onto the unigram plateau" in c.statement
