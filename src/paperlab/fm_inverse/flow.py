"""Conditional flow matching (Section 3.1) and posterior sampling by an ODE.

**Objective.** With a source :math:`x_0 \\sim p_0`, a parameter draw :math:`x_1 = m` and its
observations :math:`d`, the straight path (rectified flow / I-CFM with :math:`\\sigma = 0`)

.. math::

    x_t = t\\, x_1 + (1 - t)\\, x_0, \\qquad u_t(x_t \\mid x_0, x_1) = x_1 - x_0,

gives the loss :math:`\\mathcal{L}(\\theta) = \\mathbb{E}_{t \\sim U[0,1],\\, x_0,\\, (m, d)}
\\| v_\\theta(t, x_t \\mid d) - (x_1 - x_0) \\|^2`. Its minimiser is the marginal velocity
:math:`v^*(t, x \\mid d) = \\mathbb{E}[x_1 - x_0 \\mid x_t = x, d]`, whose flow carries
:math:`p_0` to the posterior :math:`p(m \\mid d)`.

**Sampling.** Draw :math:`x_0 \\sim p_0` -- the *same* source as in training (the official SEIR
code trains with :math:`N(0, I)` and samples from :math:`U[0, 1]`; we do not) -- and integrate
:math:`\\dot x = v_\\theta(t, x \\mid d)` from :math:`t = 0` to :math:`1`; thousands of samples go
through the network as one batch.

**Variable-length batches.** A batch holds observation sets of one size :math:`n`. Two strategies,
as in the paper: ``per_n`` takes an optimiser step on each fixed-:math:`n` batch (cycling over
:math:`n`), ``accumulate`` accumulates the gradients of one batch per :math:`n` and then steps.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from paperlab.fm_inverse.velocity import VelocityTransformer, from_flow_space, to_flow_space


def sample_source(kind: str, shape: tuple[int, ...], generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """:math:`x_0 \\sim p_0`: ``"gaussian"`` :math:`N(0, I)` or ``"uniform"`` :math:`U[0, 1]`."""
    # Drawn on the CPU (where the generator lives), then moved: identical draws on any device.
    if kind == "gaussian":
        return torch.randn(shape, generator=generator).to(device)
    if kind == "uniform":
        return torch.rand(shape, generator=generator).to(device)
    raise ValueError(f"unknown source distribution {kind!r}")


def cfm_loss(model: Callable, x1: torch.Tensor, tokens: torch.Tensor, context: torch.Tensor | None = None,
             source: str = "gaussian", generator: torch.Generator | None = None) -> torch.Tensor:
    """:math:`\\| v_\\theta(t, t x_1 + (1 - t) x_0 \\mid d) - (x_1 - x_0) \\|^2`, averaged over the batch."""
    x0 = sample_source(source, tuple(x1.shape), generator, x1.device)
    t = torch.rand(x1.shape[0], generator=generator).to(x1.device)
    # x_t = t x1 + (1 - t) x0
    x_t = t[:, None] * x1 + (1 - t[:, None]) * x0
    # u_t = x1 - x0
    target = x1 - x0
    v = model(t, x_t, tokens, context) if context is not None else model(t, x_t, tokens)
    return ((v - target) ** 2).mean()


@dataclass
class TrainConfig:
    """Optimisation of the CFM loss (AdamW, lr 8e-4 as in the paper; cosine decay to ``lr_min``)."""

    steps: int = 20_000
    batch_size: int = 512
    lr: float = 8e-4
    lr_min: float = 1e-5
    weight_decay: float = 0.01
    strategy: str = "per_n"        # "per_n" | "accumulate"
    source: str = "gaussian"       # "gaussian" | "uniform"
    val_every: int = 500
    grad_clip: float = 1.0
    seed: int = 0


def _support(model) -> str:
    cfg = getattr(model, "cfg", None)
    return getattr(cfg, "support", "real")


def _split(batch: dict, idx: torch.Tensor, support: str = "real") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(x1, d, e)`` of the rows ``idx``; ``x1`` is ``m`` mapped into the flow's space (logit for a box prior)."""
    ctx = batch.get("e")
    return to_flow_space(batch["m"][idx], support), batch["d"][idx], (ctx[idx] if ctx is not None else None)


@torch.no_grad()
def validation_loss(model: VelocityTransformer, data: dict[int, dict], source: str, seed: int = 1234,
                    max_per_n: int = 2048) -> float:
    """The CFM loss on held-out pairs, averaged over ``n`` (fixed noise draws for comparability)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _n, batch in sorted(data.items()):
        idx = torch.arange(min(max_per_n, batch["m"].shape[0]))
        m, d, e = _split(batch, idx, _support(model))
        losses.append(cfm_loss(model, m, d, e, source, g).item())
    model.train()
    return float(np.mean(losses))


def train_cfm(model: VelocityTransformer, train: dict[int, dict], cfg: TrainConfig,
              val: dict[int, dict] | None = None, progress: bool = True,
              log: Callable[[dict], None] | None = None) -> dict:
    """Minimise the CFM loss over the fixed-``n`` training sets ``train[n] = {"m", "d", ("e")}``.

    Keeps the weights with the lowest validation loss (as the official code does) and loads them
    into ``model`` at the end. Returns a history dict (losses, seconds, best step).
    """
    g = torch.Generator().manual_seed(cfg.seed)
    support = _support(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))) / cfg.lr)
    ns = sorted(train)
    best = (math.inf, -1, None)
    history = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
    t0 = time.perf_counter()
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("CFM training {task.fields[loss]}"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), transient=True)
        bar.start()
        task = bar.add_task("train", total=cfg.steps, loss="")
    order: list[int] = []
    running = []
    model.train()
    for step in range(1, cfg.steps + 1):
        opt.zero_grad(set_to_none=True)
        if cfg.strategy == "per_n":
            # One optimiser step per fixed-n batch, cycling over n in a shuffled order.
            if not order:
                order = [ns[i] for i in torch.randperm(len(ns), generator=g).tolist()]
            n = order.pop()
            size = train[n]["m"].shape[0]
            idx = torch.randint(size, (min(cfg.batch_size, size),), generator=g)
            loss = cfm_loss(model, *_split(train[n], idx, support), cfg.source, g)
            loss.backward()
            value = loss.item()
        elif cfg.strategy == "accumulate":
            # Accumulate the gradients of one batch for every n, then one optimiser step.
            value = 0.0
            per = max(1, cfg.batch_size // len(ns))
            for n in ns:
                size = train[n]["m"].shape[0]
                idx = torch.randint(size, (min(per, size),), generator=g)
                loss = cfm_loss(model, *_split(train[n], idx, support), cfg.source, g) / len(ns)
                loss.backward()
                value += loss.item()
        else:
            raise ValueError(f"unknown strategy {cfg.strategy!r}")
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        running.append(value)
        if step % 50 == 0 or step == cfg.steps:
            history["step"].append(step)
            history["train_loss"].append(float(np.mean(running)))
            running = []
        if val is not None and (step % cfg.val_every == 0 or step == cfg.steps):
            vl = validation_loss(model, val, cfg.source)
            history["val_step"].append(step)
            history["val_loss"].append(vl)
            if vl < best[0]:
                best = (vl, step, copy.deepcopy(model.state_dict()))
            if log is not None:
                log({"step": step, "train_loss": history["train_loss"][-1] if history["train_loss"] else value, "val_loss": vl,
                     "seconds": time.perf_counter() - t0})
        if bar is not None:
            bar.update(task, advance=1, loss=f"{history['train_loss'][-1]:.4f}" if history["train_loss"] else "")
    if bar is not None:
        bar.stop()
    if best[2] is not None:
        model.load_state_dict(best[2])
    model.eval()
    history.update(seconds=time.perf_counter() - t0, best_step=best[1], best_val_loss=best[0])
    return history


@torch.no_grad()
def sample_posterior(model: VelocityTransformer, tokens: torch.Tensor | np.ndarray, num_samples: int,
                     context: torch.Tensor | np.ndarray | None = None, source: str = "gaussian",
                     method: str = "midpoint", steps: int = 32, seed: int | None = 0,
                     max_batch: int = 32_768, atol: float = 1e-5, rtol: float = 1e-5) -> np.ndarray:
    """Posterior samples by integrating :math:`\\dot x = v_\\theta(t, x \\mid d)` from ``t = 0`` to ``1``.

    ``tokens``: ``(n, token_dim)`` -> returns ``(num_samples, P)``; or ``(K, n, token_dim)`` (K
    observation sets of one size) -> ``(K, num_samples, P)``. ``method``: a torchdiffeq method;
    fixed-grid ones (``euler``, ``midpoint``, ``rk4``) take ``steps`` steps, adaptive ones
    (``dopri5``) use ``atol``/``rtol``. All samples of all sets go through the network together
    (in chunks of ``max_batch``). For a model with ``cfg.support == "unit_box"`` the ODE runs in
    logit space and the samples are mapped back through the sigmoid: they lie inside the box.
    """
    from torchdiffeq import odeint

    model.eval()
    device = next(model.parameters()).device
    tokens = torch.as_tensor(np.asarray(tokens) if not torch.is_tensor(tokens) else tokens, dtype=torch.float32)
    tokens = tokens.to(device)
    single = tokens.dim() == 2
    if single:
        tokens = tokens[None]
    K = tokens.shape[0]
    ctx = None
    if context is not None:
        ctx = torch.as_tensor(np.asarray(context) if not torch.is_tensor(context) else context, dtype=torch.float32)
        ctx = ctx.reshape(K, -1).to(device)
    P = model.cfg.param_dim
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    x0 = sample_source(source, (K * num_samples, P), g, device)
    # Row r belongs to observation set r // num_samples.
    owner = torch.arange(K, device=device).repeat_interleave(num_samples)
    out = torch.empty_like(x0)
    fixed = method in ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams")
    for s in range(0, x0.shape[0], max_batch):
        rows = owner[s:s + max_batch]
        d = tokens[rows]
        e = ctx[rows] if ctx is not None else None

        def f(t, x, d=d, e=e):
            return model(t.reshape(1).expand(x.shape[0]), x, d, e)

        grid = torch.tensor([0.0, 1.0], device=device)
        opts = {"step_size": 1.0 / steps} if fixed else None
        kw = {"options": opts} if fixed else {"atol": atol, "rtol": rtol}
        out[s:s + max_batch] = odeint(f, x0[s:s + max_batch], grid, method=method, **kw)[-1]
    # x(1) lives in the flow's space: map it back into the parameters' (into the prior's support).
    out = from_flow_space(out.double(), _support(model))
    res = out.cpu().numpy().reshape(K, num_samples, P)
    return res[0] if single else res
