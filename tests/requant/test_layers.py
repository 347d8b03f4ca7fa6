"""The dense-and-sparse linear layer and the conversion of a model to it."""

import pytest
import torch
import torch.nn as nn

from paperlab.requant.layers import SparseDenseLinear, convert, model_account, restore, to_linear
from paperlab.requant.quantizers import Quantizer, awq_quantize, rtn_quantize
from paperlab.requant.requant import DenseSparse, dense_and_sparse, top_mask


def _ds(bits=3, group=32, k=40, seed=0, out=24, inp=80):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g) * 0.05
    return w, dense_and_sparse("x", w, Quantizer("rtn", bits, group), top_mask(w.abs(), k))


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_layer_equals_the_dequantised_dense_matmul_plus_sparse(bits):
    w, ds = _ds(bits)
    layer = SparseDenseLinear.from_dense_sparse(ds)
    x = torch.randn(3, 5, 80, generator=torch.Generator().manual_seed(1))
    y = layer(x)
    torch.testing.assert_close(y, x @ ds.weight().T, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.weight_matrix(), ds.weight())
    torch.testing.assert_close(layer.dense_weight(), ds.q.dequantize())
    # without sparse entries the layer is exactly the dequantised dense matmul
    dense_only = SparseDenseLinear.from_dense_sparse(DenseSparse(ds.q, ds.index[:0], ds.value[:0]))
    torch.testing.assert_close(dense_only(x), x @ ds.q.dequantize().T, rtol=1e-6, atol=1e-6)
    # what it stores is what the accounting counts
    assert layer.account().total_bits == ds.account().total_bits
    assert layer.words.numel() * 32 >= 24 * 96 * bits > (layer.words.numel() - 24) * 32
    assert layer.sparse_index.dtype == torch.int32 and layer.sparse_value.dtype == torch.float16


def test_awq_scales_and_bias_survive_the_layer_and_a_state_dict_round_trip():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(16, 64, generator=g) * 0.05
    x = torch.randn(128, 64, generator=g) * torch.linspace(0.1, 3, 64)
    q = awq_quantize(w, 3, 32, x.abs().mean(0), x)
    ds = DenseSparse(q, torch.tensor([5, 70]), (w.reshape(-1)[[5, 70]] - q.dequantize().reshape(-1)[[5, 70]]).half())
    bias = torch.randn(16, generator=g)
    layer = SparseDenseLinear.from_dense_sparse(ds, bias)
    torch.testing.assert_close(layer(x), x @ ds.weight().T + bias, rtol=1e-5, atol=1e-5)
    twin = SparseDenseLinear(16, 64, 3, 32, 2, has_in_scale=True, bias=True)
    twin.load_state_dict(layer.state_dict())
    torch.testing.assert_close(twin(x), layer(x))
    back = to_linear(layer)
    torch.testing.assert_close(back(x), layer(x), rtol=1e-5, atol=1e-5)
    round_trip = layer.to_quantized()
    torch.testing.assert_close(round_trip.weight(), ds.weight())


def test_convert_and_restore_a_model():
    from paperlab.core.transformer import Transformer, TransformerConfig
    from paperlab.requant.lm import tiny_target

    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=16))
    model.eval()
    target = tiny_target(model)
    ids = torch.randint(0, 40, (2, 16))
    ref = model(ids)[0]
    q = Quantizer("rtn", 4, 16)
    layers = {n: dense_and_sparse(n, lin.weight, q, top_mask(lin.weight.abs(), 10)) for n, lin in target.layers.items()}
    # the converted model equals the model whose weights are D + S
    originals = convert(model, layers)
    assert all(isinstance(m, SparseDenseLinear) for m in model.modules() if isinstance(m, SparseDenseLinear))
    assert sum(isinstance(m, SparseDenseLinear) for m in model.modules()) == len(layers)
    out_q = model(ids)[0]
    acct = model_account(model)
    restore(model, originals)
    assert not any(isinstance(m, SparseDenseLinear) for m in model.modules())
    torch.testing.assert_close(model(ids)[0], ref)
    w0 = target.weights()
    target.set_weights({n: ds.weight() for n, ds in layers.items()})
    torch.testing.assert_close(out_q, model(ids)[0], rtol=1e-4, atol=1e-4)
    target.set_weights(w0)
    assert acct.sparse == 10 * len(layers) and acct.weights == target.n_weights


def test_restoring_every_weight_reproduces_the_original_logits():
    """All weights kept sparse (fp32 corrections): D + (w - D) = w, so the logits are the original ones."""
    from paperlab.core.transformer import Transformer, TransformerConfig
    from paperlab.requant.lm import tiny_target

    torch.manual_seed(1)
    model = Transformer(TransformerConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=16))
    model.eval()
    target = tiny_target(model)
    ids = torch.randint(0, 40, (2, 16))
    ref = model(ids)[0]
    q = Quantizer("rtn", 2, 16)
    everything = {n: dense_and_sparse(n, lin.weight, q, torch.ones_like(lin.weight, dtype=torch.bool),
                                      sparse_dtype=torch.float32) for n, lin in target.layers.items()}
    originals = convert(model, everything)
    torch.testing.assert_close(model(ids)[0], ref, rtol=1e-5, atol=1e-5)
    restore(model, originals)
    # with the 48-bit (fp16) corrections the logits agree to fp16 precision of w - D
    half = {n: dense_and_sparse(n, lin.weight, q, torch.ones_like(lin.weight, dtype=torch.bool))
            for n, lin in target.layers.items()}
    originals = convert(model, half)
    assert float((model(ids)[0] - ref).detach().abs().max()) < 1e-2
    restore(model, originals)


def test_layer_is_a_drop_in_for_nn_linear_with_bias():
    lin = nn.Linear(40, 12)
    q = rtn_quantize(lin.weight, 8, 8)
    layer = SparseDenseLinear.from_dense_sparse(DenseSparse(q, torch.zeros(0, dtype=torch.long),
                                                            torch.zeros(0, dtype=torch.float16)), lin.bias)
    x = torch.randn(7, 40)
    torch.testing.assert_close(layer(x), lin(x), rtol=0, atol=2e-2)
