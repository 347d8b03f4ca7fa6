"""PQI on losses whose path integral is known: a quadratic (the exact loss change), and a small real LM."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from paperlab.requant.lm import TargetModel, tiny_target
from paperlab.requant.pqi import grid_weights, path_scan, pqi, quadrature, taylor_estimates, top_share


class QuadraticLM(TargetModel):
    """``F_s(W) = mean((X_s W^T - Y_s)^2)``: quadratic in the weights, float64, one 'sequence' per row block."""

    def __init__(self, seed=0):
        g = torch.Generator().manual_seed(seed)
        lin = nn.Linear(6, 4, bias=False).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(4, 6, generator=g, dtype=torch.float64))
        self.x = torch.randn(5, 7, 6, generator=g, dtype=torch.float64)
        self.y = torch.randn(5, 7, 4, generator=g, dtype=torch.float64)
        super().__init__(nn.ModuleDict({"lin": lin}), {"lin": lin}, "quad")

    def nll(self, ids):
        s = int(ids[0, 0])
        return ((self.x[s] @ self.layers["lin"].weight.T - self.y[s]) ** 2).reshape(1, -1)


def _setup(seed=0):
    lm = QuadraticLM(seed)
    w0 = lm.weights()
    w_q = {"lin": torch.round(w0["lin"] * 2) / 2}          # a coarse 'quantization'
    seqs = torch.arange(5).view(5, 1)
    loss = lambda w: float(np.mean([float(lm.nll(seqs[s:s + 1]).mean().detach()) for s in range(5)]))  # noqa: E731
    lm.set_weights(w_q)
    f_q = loss(None)
    lm.set_weights(w0)
    return lm, w0, w_q, seqs, f_q - loss(None)


@pytest.mark.parametrize("rule", ["midpoint", "trapezoid"])
@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_pqi_of_a_quadratic_is_exact_for_midpoint_and_trapezoid(rule, n):
    lm, w0, w_q, seqs, exact = _setup()
    est, elems, scan = pqi(lm, w0, w_q, seqs, n_points=n, rule=rule)
    assert est == pytest.approx(exact, rel=1e-10, abs=1e-12)
    assert float(sum(v.sum() for v in elems.values())) == pytest.approx(exact, rel=1e-10)  # sum_i dF_i = dF
    assert torch.equal(lm.weights()["lin"], w0["lin"])      # weights restored


def test_rectangle_rules_converge_at_order_one_on_a_quadratic():
    """On a quadratic the gradient is linear in t: the right (left) rule's error is exactly +c/N (-c/N),
    c = (g(1) - g(0)).dw / 2, so it halves when N doubles, and left + right averages to the exact value."""
    lm, w0, w_q, seqs, exact = _setup(1)
    errs = {}
    for rule in ("left", "right"):
        errs[rule] = [pqi(lm, w0, w_q, seqs, n, rule)[0] - exact for n in (4, 8, 16, 32)]
    for rule, sign in (("right", 1), ("left", -1)):
        e = np.array(errs[rule])
        assert np.all(sign * e > 0)
        np.testing.assert_allclose(e[:-1] / e[1:], 2.0, rtol=1e-8)
    np.testing.assert_allclose(np.array(errs["left"]) + np.array(errs["right"]), 0.0, atol=1e-10)


def test_grid_weights_reproduce_the_rules_and_taylor_is_the_left_point():
    lm, w0, w_q, seqs, exact = _setup(2)
    dw = {"lin": w_q["lin"] - w0["lin"]}
    n_max = 8
    scan = path_scan(lm, w0, dw, seqs, [k / n_max for k in range(n_max + 1)], n_folds=2)
    for rule, n in (("right", 4), ("left", 2), ("trapezoid", 8), ("midpoint", 4)):
        direct = pqi(lm, w0, w_q, seqs, n, rule)[0]
        assert float((grid_weights(n_max, n, rule) @ scan.seq_dot).mean()) == pytest.approx(direct, rel=1e-10)
    with pytest.raises(ValueError):
        grid_weights(n_max, 8, "midpoint")                  # midpoints of 8 intervals are not on the grid
    # the measured change is the scan's end minus its start
    assert float((scan.seq_loss[-1] - scan.seq_loss[0]).mean()) == pytest.approx(exact, rel=1e-10)
    tay = taylor_estimates(scan, tokens_per_seq=1)
    np.testing.assert_allclose(tay["first"], scan.seq_dot[0])
    assert np.all(tay["second"] >= tay["first"])
    assert len(scan.fold_elem) == 2 and scan.folds == [[0, 2, 4], [1, 3]]


def test_quadrature_weights_sum_to_one():
    for rule in ("left", "right", "midpoint", "trapezoid"):
        for n in (1, 3, 16):
            ts, cs = quadrature(n, rule)
            assert sum(cs) == pytest.approx(1.0) and all(0 <= t <= 1 for t in ts)


def test_top_share():
    v = torch.tensor([10.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, -1.0])
    assert top_share(v, [0.1, 0.2]) == pytest.approx([10 / 19, 15 / 19])
    assert top_share(v, [0.1], by_abs=True) == pytest.approx([10 / 21])


def test_pqi_matches_the_measured_change_on_a_small_transformer():
    """A real (random-weight) transformer at 2 bits: the midpoint PQI with 8 points is within a few percent of
    the measured change, the first-order Taylor estimate is not."""
    from paperlab.core.transformer import Transformer, TransformerConfig
    from paperlab.requant.quantizers import rtn_quantize

    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=32, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=32))
    target = tiny_target(model)
    seqs = torch.randint(0, 32, (4, 32), generator=torch.Generator().manual_seed(1))
    w0 = target.weights()
    w_q = {n: rtn_quantize(w, 2, 16).dequantize() for n, w in w0.items()}
    dw = {n: w_q[n] - w0[n] for n in w0}
    scan = path_scan(target, w0, dw, seqs, [k / 8 for k in range(9)])
    actual = float((scan.seq_loss[-1] - scan.seq_loss[0]).mean())
    mid = float((grid_weights(8, 4, "midpoint") @ scan.seq_dot).mean())
    trap = float((grid_weights(8, 8, "trapezoid") @ scan.seq_dot).mean())
    assert abs(trap / actual - 1) < 0.02 and abs(mid / actual - 1) < 0.05
    assert not all(p.requires_grad is False for p in model.parameters())   # flags restored


def test_frozen_prefix_skips_the_blocks_before_the_first_target_and_changes_nothing(tiny_hf_dir):
    from paperlab.core.internals import decoder_layers
    from paperlab.core.models import load_torch_model
    from paperlab.requant.lm import hf_target

    model, _ = load_torch_model(f"hf:{tiny_hf_dir}", device="cpu")
    target = hf_target(model, [1])
    assert target.start_block() == 1 and len(target.layers) == 7
    seqs = torch.randint(0, 100, (2, 24), generator=torch.Generator().manual_seed(0))
    calls = []
    handle = decoder_layers(model)[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        with target.frozen_prefix(seqs) as nll_of:
            n_setup = len(calls)
            params = [lin.weight for lin in target.layers.values()]
            for p in params:
                p.requires_grad_(True)
            got = nll_of(1)
            assert len(calls) == n_setup                      # block 0 did not run again
            ref = target.nll(seqs[1:2])
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
            for a, b in zip(torch.autograd.grad(got.mean(), params), torch.autograd.grad(ref.mean(), params),
                            strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    finally:
        handle.remove()
        for p in model.parameters():
            p.requires_grad_(True)
    assert len(decoder_layers(model)) == 2                    # the model's blocks are put back
