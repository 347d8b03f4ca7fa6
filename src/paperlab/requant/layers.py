"""The dense-and-sparse linear layer that a ReQuant model runs on, and the conversion of a model to it.

:class:`SparseDenseLinear` holds exactly what the bit accounting counts — bit-packed ``b``-bit codes
(int32 words), an fp16 scale and minimum per group, an optional fp16 scale per input channel (AWQ),
and the sparse corrections as fp16 values with int32 flat indices — and computes

    y = x D^T + (S x^T)^T + bias,      D = (s q + m) / in_scale  (dequantized in the forward pass)

with ``S`` a ``torch.sparse_csr_tensor`` built from the stored indices (a row-pointer array is derived at
load time; only the 48-bit entries are stored). No dense copy of ``W`` is kept.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from paperlab.requant.quantizers import (
    SPARSE_ENTRY_BITS,
    BitAccount,
    QuantizedTensor,
    dequantize_parts,
    pack_codes,
    unpack_codes,
)
from paperlab.requant.requant import DenseSparse


class SparseDenseLinear(nn.Module):
    """``y = x (D + S)^T + b`` from packed low-bit codes and a sparse correction."""

    def __init__(self, out_features: int, in_features: int, bits: int, group_size: int, n_sparse: int,
                 has_in_scale: bool = False, bias: bool = False, sparse_dtype: torch.dtype = torch.float16):
        super().__init__()
        self.out_features, self.in_features = out_features, in_features
        self.bits, self.group_size = bits, group_size
        n_groups = -(-in_features // group_size)
        n_words = -(-n_groups * group_size * bits // 32)
        self.register_buffer("words", torch.zeros(out_features, n_words, dtype=torch.int32))
        self.register_buffer("scale", torch.zeros(out_features, n_groups, dtype=torch.float16))
        self.register_buffer("minimum", torch.zeros(out_features, n_groups, dtype=torch.float16))
        self.register_buffer("in_scale", torch.ones(in_features, dtype=torch.float16) if has_in_scale else None)
        self.register_buffer("sparse_index", torch.zeros(n_sparse, dtype=torch.int32))
        self.register_buffer("sparse_value", torch.zeros(n_sparse, dtype=sparse_dtype))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self._csr: torch.Tensor | None = None

    @classmethod
    def from_dense_sparse(cls, ds: DenseSparse, bias: torch.Tensor | None = None) -> SparseDenseLinear:
        q = ds.q
        out, inp = q.shape
        if out * inp >= 2**31:
            raise ValueError("int32 flat indices need matrices of fewer than 2^31 weights")
        layer = cls(out, inp, q.bits, q.group_size, int(ds.index.numel()), q.in_scale is not None,
                    bias is not None, ds.value.dtype)
        layer.words.copy_(pack_codes(q.codes, q.bits))
        layer.scale.copy_(q.scale)
        layer.minimum.copy_(q.minimum)
        if q.in_scale is not None:
            layer.in_scale.copy_(q.in_scale)
        layer.sparse_index.copy_(ds.index.to(torch.int32))
        layer.sparse_value.copy_(ds.value)
        if bias is not None:
            layer.bias.copy_(bias.detach())
        return layer

    # -- the stored representation --------------------------------------------------------------
    def codes(self) -> torch.Tensor:
        n = self.scale.shape[1] * self.group_size
        return unpack_codes(self.words, self.bits, n)

    def dense_weight(self) -> torch.Tensor:
        """``D``, dequantized from the packed codes (float32)."""
        return dequantize_parts(self.codes(), self.scale, self.minimum, self.group_size, self.in_features,
                                self.in_scale)

    def sparse(self) -> torch.Tensor:
        """``S`` as a CSR tensor (float32), built once from the stored flat indices."""
        if self._csr is None or self._csr.device != self.sparse_value.device:
            idx = self.sparse_index.long()
            rows, cols = idx // self.in_features, idx % self.in_features
            crow = torch.zeros(self.out_features + 1, dtype=torch.int64, device=idx.device)
            crow[1:] = torch.cumsum(torch.bincount(rows, minlength=self.out_features), 0)
            with warnings.catch_warnings():     # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                self._csr = torch.sparse_csr_tensor(crow.to(torch.int32), cols.to(torch.int32),
                                                    self.sparse_value.float(), (self.out_features, self.in_features),
                                                    check_invariants=False)
        return self._csr

    def weight_matrix(self) -> torch.Tensor:
        """``D + S`` as a dense matrix (tests and export only; the forward pass never builds it)."""
        w = self.dense_weight().reshape(-1)
        w[self.sparse_index.long()] += self.sparse_value.float()
        return w.view(self.out_features, self.in_features)

    def to_quantized(self) -> DenseSparse:
        q = QuantizedTensor(self.codes(), self.scale.clone(), self.minimum.clone(), self.bits, self.group_size,
                            self.in_features, None if self.in_scale is None else self.in_scale.clone())
        return DenseSparse(q, self.sparse_index.long().clone(), self.sparse_value.clone())

    def account(self) -> BitAccount:
        return BitAccount(weights=self.out_features * self.in_features,
                          codes=self.bits * self.out_features * self.scale.shape[1] * self.group_size,
                          groups=self.scale.numel(), in_scales=0 if self.in_scale is None else self.in_features,
                          sparse=int(self.sparse_index.numel()),
                          sparse_bits_each=SPARSE_ENTRY_BITS[str(self.sparse_value.dtype).removeprefix("torch.")])

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        d = self.dense_weight().to(x.dtype)
        y = x2 @ d.T
        if self.sparse_index.numel():
            y = y + torch.sparse.mm(self.sparse(), x2.float().T).T.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, bits={self.bits}, group={self.group_size}, "
                f"sparse={self.sparse_index.numel()}, awq={self.in_scale is not None}")


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, leaf = name.split(".")
    mod = model
    for p in path:
        mod = getattr(mod, p)
    return mod, leaf


def convert(model: nn.Module, layers: dict[str, DenseSparse]) -> dict[str, nn.Module]:
    """Replace each named ``nn.Linear`` by a :class:`SparseDenseLinear` of its ``DenseSparse``; return the
    replaced modules (for :func:`restore`)."""
    originals = {}
    for name, ds in layers.items():
        parent, leaf = _parent(model, name)
        old = getattr(parent, leaf)
        new = SparseDenseLinear.from_dense_sparse(ds, getattr(old, "bias", None))
        dev = next(old.parameters(), None)
        if dev is not None:
            new.to(dev.device)
        setattr(parent, leaf, new)
        originals[name] = old
    return originals


def restore(model: nn.Module, originals: dict[str, nn.Module]) -> None:
    """Put back the modules :func:`convert` replaced."""
    for name, old in originals.items():
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, old)


def to_linear(layer: SparseDenseLinear) -> nn.Linear:
    """An ``nn.Linear`` with ``W = D + S`` (back-conversion, e.g. for export)."""
    lin = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        lin.weight.copy_(layer.weight_matrix())
        if layer.bias is not None:
            lin.bias.copy_(layer.bias)
    return lin


def model_account(model: nn.Module) -> BitAccount:
    """The bits of every :class:`SparseDenseLinear` in ``model``."""
    total = BitAccount()
    for m in model.modules():
        if isinstance(m, SparseDenseLinear):
            total = total + m.account()
    return total
