"""Base quantizers (the ``Q`` in ``w~ = Q(w)``) and the bit accounting of a dense-and-sparse matrix.

Group-wise round-to-nearest (RTN), asymmetric, along the input dimension: a weight matrix
``W [out, in]`` is cut into groups of ``g`` consecutive inputs of one output row, and each group keeps

    s = (max - min) / (2^b - 1),     m = min         (both stored in fp16)
    q = clamp(round((w - m) / s), 0, 2^b - 1)        (b-bit code)                         (RTN)
    w~ = s q + m

A last group shorter than ``g`` (``in`` not a multiple of ``g``) is padded and its padding never
enters the range. Weights named in ``exclude`` (outliers kept apart in a sparse matrix) do not enter
their group's ``[min, max]`` either: that is how removing outliers lets the dense part be
re-quantized on a narrower range.

**Activation-aware scaling (AWQ-style).** AWQ (Lin et al. 2024) protects the input channels with large
activations by quantizing ``W diag(s)`` and dividing the input by ``s``:

    W~ = Q(W diag(s)) diag(s)^-1,     s_j = mean|x_j|^alpha  (normalised),                  (AWQ)

with ``alpha`` picked from a grid per matrix to minimise ``||X W^T - X W~^T||^2`` on calibration
inputs ``X``. Hand-written here because no CPU library does it: ``autoawq`` needs CUDA kernels,
``optimum-quanto`` and ``hqq`` quantize without activation statistics. Our simplification: the search
is per matrix (AWQ searches per group of matrices sharing an input) and ``s`` is stored with the
matrix (16 bits per input channel, counted) instead of being folded into the preceding norm.

**Bits per weight.** Everything stored is counted (:class:`BitAccount`): ``b`` bits per dense code,
32 bits per group (fp16 scale + fp16 minimum, so ``b + 32/g``: AWQ 3-bit g128 = 3.25), 16 bits per
input channel of an AWQ scale, and 48 bits per sparse entry (fp16 value + int32 flat index, as the
fact sheet derives from the paper's Bits columns: 0.5% sparse adds 0.24 bits).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: bits of one stored sparse entry: an fp16 value and an int32 flat index ``row * in + col``
SPARSE_ENTRY_BITS = {"float16": 16 + 32, "float32": 32 + 32}
#: bits per quantization group: fp16 scale + fp16 minimum
GROUP_BITS = 32
#: bits per input channel of an activation-aware scale (fp16)
IN_SCALE_BITS = 16
BASES = ("rtn", "awq")


@dataclass
class BitAccount:
    """Stored bits of one or more quantized matrices; ``bits_per_weight`` divides by their weights."""

    weights: int = 0
    codes: int = 0
    groups: int = 0
    in_scales: int = 0
    sparse: int = 0
    sparse_bits_each: int = SPARSE_ENTRY_BITS["float16"]

    @property
    def code_bits(self) -> int:
        return self.codes

    @property
    def group_bits(self) -> int:
        return GROUP_BITS * self.groups

    @property
    def in_scale_bits(self) -> int:
        return IN_SCALE_BITS * self.in_scales

    @property
    def sparse_bits(self) -> int:
        return self.sparse_bits_each * self.sparse

    @property
    def total_bits(self) -> int:
        return self.code_bits + self.group_bits + self.in_scale_bits + self.sparse_bits

    @property
    def bits_per_weight(self) -> float:
        return self.total_bits / self.weights if self.weights else float("nan")

    def __add__(self, other: BitAccount) -> BitAccount:
        if self.weights and other.weights and self.sparse_bits_each != other.sparse_bits_each:
            raise ValueError("cannot add accounts with different sparse entry sizes")
        each = self.sparse_bits_each if self.weights else other.sparse_bits_each
        return BitAccount(self.weights + other.weights, self.codes + other.codes, self.groups + other.groups,
                          self.in_scales + other.in_scales, self.sparse + other.sparse, each)

    def as_dict(self) -> dict:
        return {"weights": self.weights, "code_bits": self.code_bits, "group_bits": self.group_bits,
                "in_scale_bits": self.in_scale_bits, "sparse_entries": self.sparse,
                "sparse_bits_per_entry": self.sparse_bits_each, "sparse_bits": self.sparse_bits,
                "total_bits": self.total_bits, "bits_per_weight": self.bits_per_weight}


def sum_accounts(accounts) -> BitAccount:
    total = BitAccount()
    for a in accounts:
        total = total + a
    return total


def bits_per_weight(bits: int, group_size: int, sparse_ratio: float = 0.0, sparse_bits: int = 48) -> float:
    """The nominal ``b + 32/g + 48 r`` of a matrix whose input size is a multiple of ``g``."""
    return bits + GROUP_BITS / group_size + sparse_bits * sparse_ratio


def equal_bits_sparse_ratio(fine_group: int, coarse_group: int, sparse_bits: int = 48) -> float:
    """The sparse ratio ``r`` at which ``b + 32/coarse + 48 r = b + 32/fine``: the budget that puts a
    dense-and-sparse matrix with coarse groups at the bits of the dense base with fine groups."""
    return (GROUP_BITS / fine_group - GROUP_BITS / coarse_group) / sparse_bits


# ----------------------------------------------------------------------------------------------
# Packed codes


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack ``b``-bit codes ``[R, C]`` (uint8) into int32 words ``[R, ceil(C b / 32)]``, as a bit stream
    per row (3-bit codes use every bit: 32 codes in 3 words)."""
    r, c = codes.shape
    shifts = torch.arange(bits, dtype=torch.int64)
    stream = ((codes.to(torch.int64)[..., None] >> shifts) & 1).reshape(r, c * bits)
    n_words = -(-c * bits // 32)
    stream = torch.nn.functional.pad(stream, (0, n_words * 32 - c * bits)).reshape(r, n_words, 32)
    words = (stream << torch.arange(32, dtype=torch.int64)).sum(-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def unpack_codes(words: torch.Tensor, bits: int, n_codes: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: int32 words ``[R, W]`` -> uint8 codes ``[R, n_codes]``."""
    r = words.shape[0]
    w = words.to(torch.int64) & 0xFFFFFFFF
    stream = ((w[..., None] >> torch.arange(32, dtype=torch.int64)) & 1).reshape(r, -1)[:, : n_codes * bits]
    return (stream.reshape(r, n_codes, bits) << torch.arange(bits, dtype=torch.int64)).sum(-1).to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# Quantized matrix


@dataclass
class QuantizedTensor:
    """A group-wise quantized matrix ``[out, in]``: codes, fp16 scale and minimum per group, and (AWQ)
    an fp16 scale per input channel. :meth:`dequantize` gives ``W~``."""

    codes: torch.Tensor               # uint8 [out, n_groups * group_size] (padded)
    scale: torch.Tensor               # fp16 [out, n_groups]
    minimum: torch.Tensor             # fp16 [out, n_groups]
    bits: int
    group_size: int
    in_features: int
    in_scale: torch.Tensor | None = None   # fp16 [in] (AWQ): W~ = deq / in_scale
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape[0], self.in_features

    @property
    def n_groups(self) -> int:
        return self.scale.shape[1]

    def dequantize(self) -> torch.Tensor:
        """``W~ = (s q + m) / in_scale`` in float32, ``[out, in]``."""
        return dequantize_parts(self.codes, self.scale, self.minimum, self.group_size, self.in_features,
                                self.in_scale)

    def account(self, sparse_entries: int = 0, sparse_dtype: str = "float16") -> BitAccount:
        out, inp = self.shape
        # the padded codes of a last short group are stored too
        return BitAccount(weights=out * inp, codes=self.bits * out * self.n_groups * self.group_size,
                          groups=out * self.n_groups,
                          in_scales=inp if self.in_scale is not None else 0, sparse=sparse_entries,
                          sparse_bits_each=SPARSE_ENTRY_BITS[sparse_dtype])


def dequantize_parts(codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor, group_size: int,
                     in_features: int, in_scale: torch.Tensor | None = None) -> torch.Tensor:
    out = codes.shape[0]
    q = codes.to(torch.float32).view(out, -1, group_size)
    w = (q * scale.float()[..., None] + minimum.float()[..., None]).reshape(out, -1)[:, :in_features]
    if in_scale is not None:
        w = w / in_scale.float()
    return w


def rtn_quantize(w: torch.Tensor, bits: int, group_size: int, exclude: torch.Tensor | None = None
                 ) -> QuantizedTensor:
    """Asymmetric group-wise RTN of ``w [out, in]`` (Eq. RTN); ``exclude`` (bool ``[out, in]``) marks
    weights left out of their group's range (they get a code all the same, which a sparse correction
    overrides)."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    w = w.detach().float()
    out, inp = w.shape
    n_groups = -(-inp // group_size)
    pad = n_groups * group_size - inp
    valid = torch.ones_like(w, dtype=torch.bool) if exclude is None else ~exclude.to(torch.bool)
    wp = torch.nn.functional.pad(w, (0, pad)).view(out, n_groups, group_size)
    vp = torch.nn.functional.pad(valid, (0, pad), value=False).view(out, n_groups, group_size)
    inf = torch.tensor(float("inf"))
    lo = torch.where(vp, wp, inf).amin(-1)
    hi = torch.where(vp, wp, -inf).amax(-1)
    empty = ~vp.any(-1)                      # a group whose weights are all excluded
    lo = torch.where(empty, torch.zeros_like(lo), lo)
    hi = torch.where(empty, torch.zeros_like(hi), hi)
    levels = 2**bits - 1
    scale = ((hi - lo) / levels).half()
    minimum = lo.half()
    s = scale.float()[..., None]
    safe = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.round((wp - minimum.float()[..., None]) / safe).clamp(0, levels)
    q = torch.where(s > 0, q, torch.zeros_like(q))
    return QuantizedTensor(q.to(torch.uint8).reshape(out, -1), scale, minimum, bits, group_size, inp)


def awq_quantize(w: torch.Tensor, bits: int, group_size: int, act_scale: torch.Tensor, x: torch.Tensor,
                 exclude: torch.Tensor | None = None, grid: int = 11) -> QuantizedTensor:
    """Activation-aware scaling then RTN (Eq. AWQ). ``act_scale`` [in] is the mean ``|x_j|`` of each input
    channel over calibration tokens, ``x`` [n, in] a sample of calibration inputs; ``alpha`` runs over
    ``grid`` values in [0, 1] (``alpha = 0`` is plain RTN, so the search never does worse than RTN on ``x``)."""
    w = w.detach().float()
    x = x.float()
    ref = x @ w.T
    a = act_scale.float().clamp(min=1e-8)
    best = None
    for k in range(grid):
        alpha = k / (grid - 1)
        s = a.pow(alpha)
        s = s / (s.max() * s.min()).sqrt()          # normalised as AWQ's auto_scale
        s16 = s.half()
        qt = rtn_quantize(w * s16.float(), bits, group_size, exclude)
        qt.in_scale = s16
        err = float((x @ qt.dequantize().T - ref).pow(2).mean())
        if best is None or err < best[0]:
            best = (err, alpha, qt)
    err, alpha, qt = best
    qt.meta = {"alpha": alpha, "output_mse": err}
    return qt


@dataclass
class Quantizer:
    """The base method behind one interface: ``quantize(name, w, exclude=None) -> QuantizedTensor``.

    ``base="rtn"`` needs nothing else; ``base="awq"`` needs per-layer activation statistics
    (``act[name] = (mean |x| per channel [in], sample of inputs [n, in])``, from
    :func:`collect_activations`) and keeps each matrix's chosen ``alpha`` so that re-quantizing with
    outliers excluded reuses the same scales."""

    base: str
    bits: int
    group_size: int
    act: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    alphas: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.base not in BASES:
            raise ValueError(f"unknown base quantizer {self.base!r}; use one of {BASES}")

    def quantize(self, name: str, w: torch.Tensor, exclude: torch.Tensor | None = None) -> QuantizedTensor:
        if self.base == "rtn":
            return rtn_quantize(w, self.bits, self.group_size, exclude)
        if name not in self.act:
            raise KeyError(f"AWQ needs activation statistics of {name}")
        mean_abs, x = self.act[name]
        if name in self.alphas:       # re-quantization: keep the matrix's scaling, grid of one
            a = self.alphas[name]
            s = mean_abs.float().clamp(min=1e-8).pow(a)
            s16 = (s / (s.max() * s.min()).sqrt()).half()
            qt = rtn_quantize(w.detach().float() * s16.float(), self.bits, self.group_size, exclude)
            qt.in_scale = s16
            qt.meta = {"alpha": a}
            return qt
        qt = awq_quantize(w, self.bits, self.group_size, mean_abs, x, exclude)
        self.alphas[name] = qt.meta["alpha"]
        return qt

    def describe(self) -> str:
        return f"{self.base.upper()} {self.bits}-bit g{self.group_size}"


@torch.no_grad()
def collect_activations(model: torch.nn.Module, layers: dict[str, torch.nn.Linear], run_forward,
                        max_rows: int = 256, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Inputs of each Linear in ``layers`` while ``run_forward()`` runs the calibration data: mean |x| per
    input channel and a uniform random sample of ``max_rows`` input rows (reservoir by random keys, so
    memory stays bounded), for AWQ's scale search."""
    g = torch.Generator().manual_seed(seed)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    kept: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for name, lin in layers.items():
        def hook(mod, args, _out, name=name):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            sums[name] = sums.get(name, 0) + x.abs().sum(0)
            counts[name] = counts.get(name, 0) + x.shape[0]
            keys = torch.rand(x.shape[0], generator=g)
            if name in kept:
                x, keys = torch.cat([kept[name][0], x]), torch.cat([kept[name][1], keys])
            top = keys.topk(min(max_rows, keys.numel())).indices
            kept[name] = (x[top].clone(), keys[top])
        handles.append(lin.register_forward_hook(hook))
    try:
        run_forward()
    finally:
        for h in handles:
            h.remove()
    return {name: (sums[name] / counts[name], kept[name][0]) for name in layers}
