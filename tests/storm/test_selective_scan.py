"""The selective scan: the parallel scan equals the sequential recurrence (outputs and gradients), the
recurrence equals a hand computation, and the CUDA kernel (when present) agrees."""

from __future__ import annotations

import math

import pytest
import torch

from paperlab.storm.selective_scan import (
    cuda_kernel_available,
    max_abs_difference,
    random_inputs,
    selective_scan,
    selective_scan_parallel,
    selective_scan_ref,
)


@pytest.mark.parametrize("length", [1, 2, 7, 64, 100])
def test_parallel_equals_sequential_float64(length):
    x = random_inputs(b=2, d=6, l=length, n=5, seed=length, dtype=torch.float64)
    y_seq, y_par = selective_scan_ref(**x), selective_scan_parallel(**x)
    assert y_seq.shape == (2, 6, length)
    torch.testing.assert_close(y_par, y_seq, rtol=0, atol=1e-11)


def test_gradients_agree_and_report_is_small():
    r = max_abs_difference(b=1, d=4, l=33, n=4, seeds=2)
    assert r["max_abs_output"] < 1e-10 and r["max_rel_grad"] < 1e-10 and r["output_scale"] > 0.1


def test_recurrence_by_hand():
    # one channel, one state, two steps, no softplus: h1 = d1 b1 u1; h2 = exp(d2 a) h1 + d2 b2 u2; y = c h + D u
    u, d, B, C = [1.5, -2.0], [0.3, 0.7], [0.5, 2.0], [1.0, -1.0]
    a, D = -1.2, 0.25
    t = lambda v: torch.tensor(v, dtype=torch.float64).view(1, 1, -1)  # noqa: E731
    y = selective_scan_ref(t(u), t(d), torch.tensor([[a]], dtype=torch.float64), t(B), t(C),
                           torch.tensor([D], dtype=torch.float64))
    h1 = d[0] * B[0] * u[0]
    h2 = math.exp(d[1] * a) * h1 + d[1] * B[1] * u[1]
    expect = [C[0] * h1 + D * u[0], C[1] * h2 + D * u[1]]
    torch.testing.assert_close(y.view(-1), torch.tensor(expect, dtype=torch.float64))


def test_gate_and_softplus_bias():
    x = random_inputs(b=1, d=3, l=5, n=2, seed=1, dtype=torch.float64)
    plain = dict(x, z=None, delta_bias=None, delta_softplus=False)
    manual = dict(plain, delta=torch.nn.functional.softplus(x["delta"] + x["delta_bias"][None, :, None]))
    y = selective_scan_ref(**x)
    torch.testing.assert_close(y, selective_scan_ref(**manual) * torch.nn.functional.silu(x["z"]))


def test_auto_mode_on_cpu_is_parallel_and_bad_mode_refused():
    x = random_inputs(b=1, d=4, l=16, n=4, seed=2)
    torch.testing.assert_close(selective_scan(**x, mode="auto"), selective_scan_parallel(**x))
    with pytest.raises(ValueError):
        selective_scan(**x, mode="fast")


@pytest.mark.skipif(not cuda_kernel_available(), reason="needs CUDA and mamba_ssm")
def test_cuda_kernel_matches_reference():
    x = random_inputs(b=2, d=16, l=257, n=16, seed=3)
    y_ref = selective_scan_ref(**x)
    xc = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in x.items()}
    y = selective_scan(**xc, mode="cuda").cpu()
    torch.testing.assert_close(y, y_ref, rtol=1e-3, atol=1e-3)
