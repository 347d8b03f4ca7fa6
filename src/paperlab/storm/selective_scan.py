"""The selective scan of Mamba (S6), three ways: the sequential recurrence, a parallel scan, CUDA kernels.

STORM's temporal encoder (§3.2, Eq. 5) is a stack of Mamba layers; each one runs the *selective scan*
over the flattened space-time token sequence. With ``x`` the input, ``Δ`` the step sizes, ``A`` the state
matrix (diagonal, one row per channel), ``B_t``/``C_t`` the input-dependent projections and ``z`` the gate
(the fact sheet's ``selective_scan_ref`` from ``state-spaces/mamba``)::

    Δ_t  = softplus(Δ_t + bias)                       (optional)
    h_t  = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t x_t         h_0 = 0, h_t ∈ R^{D x N}
    y_t  = C_t · h_t + D ⊙ x_t
    out  = y ⊙ SiLU(z)                                (optional)

Three implementations of the same function:

=========================  ===================================================================================
:func:`selective_scan_ref`  the oracle: a Python loop over ``t``, exactly the recurrence above (O(L) steps)
``mode="parallel"``         the linear recurrence ``h_t = a_t h_{t-1} + b_t`` solved by a Blelloch parallel scan
                            (``mambapy.pscan``: 2 log2 L steps of whole-tensor products, with its own backward);
                            the only pure-PyTorch path fast enough to train on CPU
``mode="cuda"``             ``mamba_ssm``'s fused ``selective_scan_fn`` (when ``mamba_ssm`` imports and the
                            tensors live on a CUDA device)
=========================  ===================================================================================

``mode="auto"`` picks ``cuda`` when it can, else ``parallel``. Why a library for the parallel scan: a scan of
products in ``(0, 1]`` is numerically safe (no ``exp(-cumsum)`` that overflows), and ``mambapy`` ships one with
a hand-derived backward pass; the recurrence itself is written here because it is the oracle the others are
checked against (``tests/storm/test_selective_scan.py``; the run's ``scan_exact`` claim measures the largest
difference on random inputs).

Shapes follow ``mamba_ssm``: ``u, delta, z: (b, d, l)``, ``A: (d, n)``, ``B, C: (b, n, l)``, ``D, bias: (d,)``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

MODES = ("auto", "parallel", "sequential", "cuda")


def _discretise(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                delta_bias: torch.Tensor | None, delta_softplus: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``exp(Δ A)`` and ``Δ B x`` for every step, both ``(b, l, d, n)``."""
    if delta_bias is not None:
        delta = delta + delta_bias[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)                                           # Δ = softplus(Δ + bias)
    dA = torch.exp(torch.einsum("bdl,dn->bldn", delta, A))                  # Ā_t = exp(Δ_t A)
    dBu = torch.einsum("bdl,bnl,bdl->bldn", delta, B, u)                    # B̄_t x_t = Δ_t B_t x_t
    return dA, dBu


def _readout(h: torch.Tensor, u: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None,
             z: torch.Tensor | None) -> torch.Tensor:
    y = torch.einsum("bldn,bnl->bdl", h, C)                                 # y_t = C_t · h_t
    if D is not None:
        y = y + D[None, :, None] * u                                        #     + D x_t
    if z is not None:
        y = y * F.silu(z)                                                   # out = y ⊙ SiLU(z)
    return y


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False) -> torch.Tensor:
    """The sequential recurrence, one time step at a time: the oracle the fast scans are checked against."""
    dA, dBu = _discretise(u, delta, A, B, delta_bias, delta_softplus)
    h = torch.zeros_like(dBu[:, 0])
    hs = []
    for t in range(u.shape[-1]):
        h = dA[:, t] * h + dBu[:, t]                                        # h_t = Ā_t h_{t-1} + B̄_t x_t
        hs.append(h)
    return _readout(torch.stack(hs, 1), u, C, D, z)


def selective_scan_parallel(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                            delta_softplus=False) -> torch.Tensor:
    """The same recurrence solved by a parallel (Blelloch) scan over time, ``mambapy.pscan``."""
    pscan = _pscan()
    dA, dBu = _discretise(u, delta, A, B, delta_bias, delta_softplus)
    h = pscan(dA, dBu)                                                      # all h_t at once, (b, l, d, n)
    return _readout(h, u, C, D, z)


@functools.cache
def _pscan():
    try:
        from mambapy.pscan import pscan
    except ImportError:
        from paperlab.core.errors import UserError

        raise UserError("the parallel selective scan needs the mambapy package",
                        "pip install mambapy==1.2.0 (or use --scan sequential)") from None
    return pscan


@functools.cache
def cuda_kernel_available() -> bool:
    """``mamba_ssm``'s fused kernel imports and a CUDA device is present."""
    if not torch.cuda.is_available():
        return False
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken CUDA build raises more than ImportError
        return False
    return True


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   mode: str = "auto") -> torch.Tensor:
    """Run the selective scan with ``mode`` (see the module docstring); all modes compute the same function."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if mode == "auto":
        mode = "cuda" if u.is_cuda and cuda_kernel_available() else "parallel"
    if mode == "cuda":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        return selective_scan_fn(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(),
                                 C.contiguous(), D, z.contiguous() if z is not None else None, delta_bias,
                                 delta_softplus)
    fn = selective_scan_parallel if mode == "parallel" else selective_scan_ref
    return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def random_inputs(b: int = 2, d: int = 8, l: int = 64, n: int = 16, seed: int = 0,  # noqa: E741
                  dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Random inputs with the Mamba initialisation's ranges (A = -(1..n), Δ around softplus^-1 of [1e-3, 0.1])."""
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g, dtype=dtype)

    A = -torch.arange(1, n + 1, dtype=dtype).repeat(d, 1) * torch.exp(0.1 * r(d, n))
    dt = torch.exp(torch.rand(d, generator=g, dtype=dtype) * (torch.log(torch.tensor(0.1)) - torch.log(
        torch.tensor(1e-3))) + torch.log(torch.tensor(1e-3)))
    bias = dt + torch.log(-torch.expm1(-dt))                                # softplus^-1(dt)
    return {"u": r(b, d, l), "delta": 0.5 * r(b, d, l), "A": A, "B": r(b, n, l), "C": r(b, n, l),
            "D": r(d), "z": r(b, d, l), "delta_bias": bias.to(dtype), "delta_softplus": True}


def max_abs_difference(b: int = 2, d: int = 16, l: int = 257, n: int = 16, seeds: int = 3,  # noqa: E741
                       dtype: torch.dtype = torch.float64) -> dict[str, float]:
    """Largest ``|parallel - sequential|`` over outputs and over input gradients on random inputs (``l`` not a
    power of two on purpose: the parallel scan pads). Returns the maxima and the outputs' scale."""
    out_err = grad_err = scale = 0.0
    for s in range(seeds):
        res = {}
        for fn in (selective_scan_ref, selective_scan_parallel):
            x = random_inputs(b, d, l, n, seed=s, dtype=dtype)
            leaves = {k: v.requires_grad_() for k, v in x.items() if isinstance(v, torch.Tensor)}
            y = fn(**x)
            y.pow(2).sum().backward()
            res[fn.__name__] = (y.detach(), {k: v.grad for k, v in leaves.items()})
        (y0, g0), (y1, g1) = res["selective_scan_ref"], res["selective_scan_parallel"]
        out_err = max(out_err, float((y0 - y1).abs().max()))
        grad_err = max(grad_err, max(float(((g0[k] - g1[k]).abs() / (1 + g0[k].abs())).max()) for k in g0))
        scale = max(scale, float(y0.abs().max()))
    return {"max_abs_output": out_err, "max_rel_grad": grad_err, "output_scale": scale, "length": l,
            "dtype": str(dtype).removeprefix("torch."), "seeds": seeds}
