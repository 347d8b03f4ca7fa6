"""Group-wise RTN, bit packing, AWQ-style scaling and the bit accounting."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.requant.quantizers import (
    BitAccount,
    Quantizer,
    awq_quantize,
    bits_per_weight,
    equal_bits_sparse_ratio,
    pack_codes,
    rtn_quantize,
    sum_accounts,
    unpack_codes,
)
from paperlab.requant.requant import dense_and_sparse, top_mask


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 8), out=st.integers(1, 6), inp=st.integers(1, 70), group=st.integers(2, 40),
       seed=st.integers(0, 10_000))
def test_rtn_round_trip_properties(bits, out, inp, group, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g) * 0.05
    q = rtn_quantize(w, bits, group)
    assert q.codes.dtype == torch.uint8 and int(q.codes.max()) <= 2**bits - 1
    assert q.codes.shape == (out, q.n_groups * group) and q.n_groups == math.ceil(inp / group)
    w_q = q.dequantize()
    assert w_q.shape == w.shape
    # round to nearest: within half a step of the (fp16-stored) grid, plus fp16 rounding of scale and minimum
    step = q.scale.float().repeat_interleave(group, 1)[:, :inp]
    tol = step / 2 + 2e-3 * w.abs().amax() + 1e-6
    assert torch.all((w_q - w).abs() <= tol)
    # the grid's end points are the group's min and max (up to fp16)
    assert torch.allclose(w_q.amin(), w.amin(), atol=1e-3) or bits == 1
    # quantizing the quantized weights again changes nothing (a fixed point), up to fp16 rounding
    assert torch.allclose(rtn_quantize(w_q, bits, group).dequantize(), w_q, atol=step.max() * 1e-2 + 1e-4)


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 8), rows=st.integers(1, 4), cols=st.integers(1, 100), seed=st.integers(0, 10_000))
def test_pack_unpack_is_lossless_and_dense(bits, rows, cols, seed):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (rows, cols), generator=g, dtype=torch.int64).to(torch.uint8)
    words = pack_codes(codes, bits)
    assert words.dtype == torch.int32 and words.shape == (rows, math.ceil(cols * bits / 32))
    assert torch.equal(unpack_codes(words, bits, cols), codes)


def test_more_bits_less_error_and_smaller_groups_less_error():
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))
    err = {(b, g): float((rtn_quantize(w, b, g).dequantize() - w).pow(2).mean()) for b in (2, 3, 4) for g in (32, 128)}
    assert err[(2, 128)] > err[(3, 128)] > err[(4, 128)]
    for b in (2, 3, 4):
        assert err[(b, 32)] < err[(b, 128)]


def test_excluded_weights_leave_the_range():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(1)) * 0.02
    w[0, 3] = 1.0                                           # one outlier stretches its group's range
    mask = torch.zeros_like(w, dtype=torch.bool)
    mask[0, 3] = True
    plain = rtn_quantize(w, 3, 32)
    kept = rtn_quantize(w, 3, 32, exclude=mask)
    assert float(kept.scale[0, 0]) < float(plain.scale[0, 0]) / 10
    err_plain = (plain.dequantize() - w)[0, :32][~mask[0, :32]].abs().max()
    err_kept = (kept.dequantize() - w)[0, :32][~mask[0, :32]].abs().max()
    assert err_kept < err_plain / 5
    # and dense-and-sparse puts the outlier back exactly
    ds = dense_and_sparse("x", w, Quantizer("rtn", 3, 32), mask, sparse_dtype=torch.float32)
    assert float(ds.weight()[0, 3]) == pytest.approx(1.0, abs=1e-6)


def test_bit_accounting_sums():
    w = torch.randn(48, 192, generator=torch.Generator().manual_seed(2))
    for bits, group in ((3, 64), (2, 96), (4, 192)):
        q = rtn_quantize(w, bits, group)
        a = q.account()
        assert a.total_bits == bits * w.numel() + 32 * 48 * (192 // group)
        assert a.bits_per_weight == pytest.approx(bits_per_weight(bits, group))
    # AWQ 3-bit g128 = 3.25; g256 + 0.25% sparse at 48 bits = 3.245 (the fact sheet's arithmetic)
    assert bits_per_weight(3, 128) == pytest.approx(3.25)
    assert bits_per_weight(3, 256, 0.0025) == pytest.approx(3.245)
    # sparse entries: 48 bits each (fp16 value + int32 index), 64 with fp32 values
    ds = dense_and_sparse("x", w, Quantizer("rtn", 3, 64), top_mask(w.abs(), 100))
    acct = ds.account()
    assert acct.sparse == 100 and acct.sparse_bits == 4800
    assert acct.total_bits == 3 * w.numel() + 32 * 48 * 3 + 4800
    ds32 = dense_and_sparse("x", w, Quantizer("rtn", 3, 64), top_mask(w.abs(), 100), sparse_dtype=torch.float32)
    assert ds32.account().sparse_bits == 6400
    # accounts add up over matrices
    parts = [BitAccount(10, 30, 1, 0, 2), BitAccount(20, 60, 2, 4, 0)]
    total = sum_accounts(parts)
    assert total.total_bits == sum(p.total_bits for p in parts) and total.weights == 30
    # a padded last group stores its padding codes: in=100, g=32 -> 4 groups of 32 codes
    assert rtn_quantize(torch.randn(2, 100), 3, 32).account().code_bits == 3 * 2 * 128


def test_equal_bits_ratio_equalises_measured_bits():
    w = torch.randn(96, 576, generator=torch.Generator().manual_seed(3))
    r = equal_bits_sparse_ratio(96, 192)
    assert r == pytest.approx((32 / 96 - 32 / 192) / 48)
    fine = rtn_quantize(w, 3, 96).account().bits_per_weight
    ds = dense_and_sparse("x", w, Quantizer("rtn", 3, 192), top_mask(w.abs(), round(r * w.numel())))
    assert ds.account().bits_per_weight == pytest.approx(fine, abs=48 / w.numel())


def test_awq_never_worse_than_rtn_on_its_inputs_and_counts_its_scales():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(32, 64, generator=g) * 0.05
    x = torch.randn(256, 64, generator=g) * torch.linspace(0.05, 5.0, 64)   # a few loud channels
    ref = x @ w.T
    rtn_err = float((x @ rtn_quantize(w, 3, 32).dequantize().T - ref).pow(2).mean())
    q = awq_quantize(w, 3, 32, x.abs().mean(0), x)
    assert q.meta["output_mse"] <= rtn_err + 1e-9
    assert q.in_scale is not None and q.account().in_scale_bits == 16 * 64
    # the Quantizer reuses the chosen alpha when re-quantizing with exclusions
    qz = Quantizer("awq", 3, 32, act={"l": (x.abs().mean(0), x)})
    first = qz.quantize("l", w)
    again = qz.quantize("l", w)
    assert qz.alphas["l"] == first.meta["alpha"] and torch.equal(first.dequantize(), again.dequantize())
