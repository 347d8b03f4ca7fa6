"""The shared training loop for small language models, on 🤗 accelerate.

``train(model, train_data, val_data, TrainConfig(...), run_dir)`` runs the same code on a laptop CPU,
one GPU, or several GPUs/nodes under ``accelerate launch`` (several CPU processes:
``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N script.py``; each process draws its own batches, so
``tokens`` counts all processes):

- AdamW (decoupled weight decay on matrices only), linear warmup then cosine decay to
  ``min_lr_ratio * lr`` (:func:`lr_at`), gradient clipping by global norm;
- fp32 or bf16 autocast (``precision``);
- evaluation on a fixed held-out set every ``eval_every`` steps;
- per-layer gradient norms (``||grad||_2`` over each block's parameters, before clipping);
- checkpoints every ``checkpoint_every`` steps (written atomically) and automatic resume from
  ``run_dir/checkpoint.pt``. Training batches are a pure function of ``(seed, step)`` and the RNG
  state is saved, so a run killed and restarted produces exactly the losses of an uninterrupted run;
- divergence detection: a non-finite loss (or one above ``diverge_loss``) stops the run early and
  marks it ``diverged``.

It returns (and writes to ``run_dir/history.json``) a history dict: steps, train/val losses, learning
rates, total and per-layer gradient norms, tokens seen and analytic FLOPs (:mod:`paperlab.core.flops`),
and ``final_val_seq_losses``: the mean loss of each validation window at the last evaluation (the units
over which a comparison of final validation losses takes its interval).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from paperlab.core import flops as fl
from paperlab.core.errors import UserError


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 1e-3
    min_lr_ratio: float = 0.1           # cosine decays to min_lr_ratio * lr (OLMo-2: alpha_f = 0.1)
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0              # 0 disables clipping
    precision: str = "fp32"             # "fp32" | "bf16"
    eval_every: int = 100
    eval_tokens: int = 32768            # size of the fixed validation set
    eval_batch_size: int = 32
    grad_norm_every: int = 10           # per-layer gradient norms every n steps
    checkpoint_every: int = 0           # 0: no periodic checkpoints (the final state is saved)
    seed: int = 0
    diverge_loss: float | None = None   # stop when the training loss exceeds this (or is not finite)
    cpu: bool = False                   # force CPU even when a GPU is visible
    find_unused_parameters: bool = False  # DDP: set for routed layers whose experts may get no tokens

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16"):
            raise UserError(f"precision must be 'fp32' or 'bf16', not {self.precision!r}", "use --precision fp32|bf16")
        for name in ("steps", "batch_size", "seq_len", "eval_every"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}", f"pass a positive {name}")
        if not self.lr > 0:
            raise UserError(f"lr must be > 0, got {self.lr}", "pass a positive learning rate")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine to ``min_lr_ratio``.

    ``lr_t = lr (t+1)/W`` for ``t < W``;  ``lr_t = lr [r + (1-r)(1 + cos(pi p))/2]`` with
    ``p = (t - W) / (S - W - 1)`` afterwards (``S`` steps, ``W`` warmup, ``r = min_lr_ratio``).
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps - 1)
    p = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices (dim >= 2), none on gains and biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def layer_grad_norms(model: nn.Module) -> list[float]:
    """``||grad||_2`` of each block's parameters (``model.blocks``), in layer order."""
    out = []
    for block in model.blocks:
        sq = [p.grad.detach().float().pow(2).sum() for p in block.parameters() if p.grad is not None]
        out.append(float(torch.stack(sq).sum().sqrt()) if sq else 0.0)
    return out


@torch.no_grad()
def evaluate(model: nn.Module, data, cfg: TrainConfig, accelerator=None,
             per_sequence: bool = False) -> float | tuple[float, list[float]]:
    """Mean cross-entropy (nats/token) on the fixed validation windows.

    ``per_sequence=True`` also returns each validation window's mean cross-entropy, in window order
    (the units a claim's interval is taken over; their mean is the returned mean, all windows having
    ``seq_len`` tokens). ``accelerator=None`` evaluates on the model's device without autocast.
    """
    import contextlib

    import torch.nn.functional as F

    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    autocast = accelerator.autocast if accelerator is not None else contextlib.nullcontext
    raw = accelerator.unwrap_model(model) if accelerator is not None else model
    model.eval()
    total, count = 0.0, 0
    seq: list[float] = []
    for x, y in data.eval_batches(cfg.eval_batch_size, cfg.seq_len, cfg.eval_tokens):
        x, y = x.to(device), y.to(device)
        with autocast():
            logits, loss = model(x, y)
        aux = raw.last_aux_loss
        ce = loss - aux if aux is not None else loss
        total += float(ce) * y.numel()
        count += y.numel()
        if per_sequence:
            tok = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-1,
                                  reduction="none").view(y.shape)
            seq += (tok * (y != -1)).sum(1).div((y != -1).sum(1).clamp(min=1)).tolist()
    model.train()
    return (total / count, seq) if per_sequence else total / count


def _make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState, GradientState

    # several trainings in one process (sweeps, tests) may each ask for their own precision
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    ddp = DistributedDataParallelKwargs(find_unused_parameters=cfg.find_unused_parameters)
    return Accelerator(mixed_precision="bf16" if cfg.precision == "bf16" else "no", cpu=cfg.cpu,
                       kwargs_handlers=[ddp])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(model: nn.Module, train_data, val_data, cfg: TrainConfig, run_dir: Path | str | None = None,
          resume: bool = True, progress: bool = False, desc: str = "train",
          on_step: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """Train ``model`` (a :class:`~paperlab.core.transformer.Transformer`) and return its history.

    ``run_dir`` holds ``checkpoint.pt`` and ``history.json``; with ``resume`` an existing checkpoint is
    loaded and training continues from its step. ``on_step(step, record)`` is called after every
    optimizer step (used by tests to interrupt a run).
    """
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt" if run_dir is not None else None
    key = training_key(model, cfg)

    accelerator = _make_accelerator(cfg)
    torch.manual_seed(cfg.seed)
    raw = model
    seq_len = cfg.seq_len
    if seq_len > raw.config.max_seq_len:
        raise UserError(f"seq_len={seq_len} exceeds the model's max_seq_len={raw.config.max_seq_len}",
                        "lower --seq-len or raise max_seq_len")
    optimizer = torch.optim.AdamW(param_groups(raw, cfg.weight_decay), lr=cfg.lr,
                                  betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    flops_per_token = fl.model_flops_per_token(raw, seq_len)
    hist: dict[str, Any] = {
        "config": asdict(cfg), "step": [], "train_loss": [], "lr": [], "grad_norm": [],
        "val_step": [], "val_loss": [], "layer_grad_norms": {"step": [], "norms": []},
        "diverged": False, "diverged_step": None, "flops_per_token": flops_per_token,
        "params": sum(p.numel() for p in raw.parameters()), "train_seconds": 0.0, "resumed_from": None,
        "key": key, "final_val_seq_losses": [],
    }
    start = 0
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state.get("key") != key:
            raise UserError(f"{ckpt_path} was written by another model or training configuration",
                            "use a new run folder (or --overwrite) instead of resuming into this one")
        raw.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        hist, start = state["history"], state["step"]
        hist["resumed_from"] = start
    model, optimizer = accelerator.prepare(raw, optimizer)
    rank = accelerator.process_index

    def save(step: int) -> None:
        if ckpt_path is None:
            return
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            _atomic_save({"model": accelerator.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
                          "rng": torch.get_rng_state(), "history": hist, "step": step, "key": key}, ckpt_path)

    bar = None
    if progress and accelerator.is_main_process:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                       TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), transient=True)
        bar.start()
        task = bar.add_task(desc, total=cfg.steps, completed=start, loss="-")

    t0 = time.perf_counter()
    model.train()
    if start == 0 and not hist["val_step"]:
        hist["val_step"].append(0)
        mean, hist["final_val_seq_losses"] = evaluate(model, val_data, cfg, accelerator, per_sequence=True)
        hist["val_loss"].append(mean)
    step = start
    try:
        for step in range(start, cfg.steps):
            if hist["diverged"]:
                break
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            x, y = train_data.batch(step, cfg.batch_size, seq_len, seed=cfg.seed, rank=rank)
            x, y = x.to(accelerator.device), y.to(accelerator.device)
            with accelerator.autocast():
                _, loss = model(x, y)
            accelerator.backward(loss)
            if (step + 1) % cfg.grad_norm_every == 0 or step == 0:
                hist["layer_grad_norms"]["step"].append(step + 1)
                hist["layer_grad_norms"]["norms"].append(layer_grad_norms(accelerator.unwrap_model(model)))
            max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
            gnorm = float(accelerator.clip_grad_norm_(model.parameters(), max_norm))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_val = float(accelerator.reduce(loss.detach().float(), reduction="mean"))
            hist["step"].append(step + 1)
            hist["train_loss"].append(loss_val)
            hist["lr"].append(lr)
            hist["grad_norm"].append(gnorm)
            if not math.isfinite(loss_val) or (cfg.diverge_loss is not None and loss_val > cfg.diverge_loss):
                hist["diverged"], hist["diverged_step"] = True, step + 1
            elif (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                hist["val_step"].append(step + 1)
                mean, hist["final_val_seq_losses"] = evaluate(model, val_data, cfg, accelerator, per_sequence=True)
                hist["val_loss"].append(mean)
            if bar is not None:
                bar.update(task, advance=1, loss=f"{loss_val:.3f}")
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                hist["train_seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                save(step + 1)
            if on_step is not None:
                on_step(step + 1, {"loss": loss_val, "lr": lr, "grad_norm": gnorm})
    finally:
        if bar is not None:
            bar.stop()
    hist["train_seconds"] += time.perf_counter() - t0
    done = hist["step"][-1] if hist["step"] else start
    tokens = done * cfg.batch_size * seq_len * accelerator.num_processes
    hist.update(tokens=tokens, train_flops=3.0 * flops_per_token * tokens, steps_done=done,
                num_processes=accelerator.num_processes, device=str(accelerator.device),
                final_val_loss=hist["val_loss"][-1] if hist["val_loss"] else None)
    save(done)
    if run_dir is not None and accelerator.is_main_process:
        (run_dir / "history.json").write_text(json.dumps(_jsonable(hist)))
    return hist


def training_key(model: nn.Module, cfg: TrainConfig) -> str:
    """The identity of a training job: its TrainConfig, the model's config and class and every
    parameter's name and shape. A checkpoint or finished history is reused only under the same key."""
    from paperlab.core.runs import config_hash

    mc = getattr(model, "config", None)
    mc = asdict(mc) if mc is not None and hasattr(mc, "__dataclass_fields__") else repr(mc)
    shapes = {n: list(p.shape) for n, p in model.named_parameters()}
    return config_hash({"train": asdict(cfg), "model_class": type(model).__qualname__, "model": mc,
                        "shapes": shapes})


def finished_training(model: nn.Module, cfg: TrainConfig, run_dir: Path | str,
                      weights: bool = True) -> dict[str, Any] | None:
    """The history of a finished (or diverged) ``train`` in ``run_dir`` with the same
    :func:`training_key`, its final weights loaded into ``model``; or None, and then train it.
    ``weights=False`` accepts a history whose checkpoint was deleted (only the curves are reused)."""
    run_dir = Path(run_dir)
    hist_path, ckpt = run_dir / "history.json", run_dir / "checkpoint.pt"
    if not hist_path.exists():
        return None
    hist = json.loads(hist_path.read_text())
    if hist.get("key") != training_key(model, cfg) or not (hist.get("steps_done") == cfg.steps or hist.get("diverged")):
        return None
    if not ckpt.exists():
        return None if weights else hist
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    if state.get("key") != hist["key"]:
        return None
    model.load_state_dict(state["model"])
    return hist


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


# ----------------------------------------------------------------------------------------------------------------
# fit: the resumable loop for any loss (systems whose models are not a language-model Transformer)


@dataclass
class FitConfig:
    """Optimisation settings of :func:`fit`: AdamW with the warmup + cosine schedule of :func:`lr_at`."""

    steps: int
    lr: float
    warmup_steps: int | None = None     # None: 5% of the steps (at least 1)
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0              # 0 disables clipping
    checkpoint_every: int = 100         # 0: only the final state is saved

    def __post_init__(self):
        if self.steps < 0:
            raise UserError(f"steps must be >= 0, got {self.steps}", "pass a non-negative number of steps")
        if not self.lr > 0:
            raise UserError(f"lr must be > 0, got {self.lr}", "pass a positive learning rate")

    def schedule(self) -> TrainConfig:
        warmup = max(1, self.steps // 20) if self.warmup_steps is None else self.warmup_steps
        return TrainConfig(steps=max(1, self.steps), lr=self.lr, warmup_steps=max(0, min(warmup, self.steps)),
                           min_lr_ratio=self.min_lr_ratio)


def step_generator(seed: int, step: int) -> torch.Generator:
    """A torch generator that depends only on ``(seed, step)``: batches drawn from it are the same whether a
    run went straight through or was killed and resumed."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def step_rng(seed: int, step: int):
    """The numpy counterpart of :func:`step_generator`."""
    import numpy as np

    return np.random.default_rng([seed, step])


def fit(model: nn.Module, loss_at: Callable[[int], Any], cfg: FitConfig, folder: Path | str | None = None,
        name: str = "model", key: Any = None, params: Any = None, log: Callable[[str], None] | None = None,
        on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Minimise ``loss_at(step)`` over ``params`` (default: the model's trainable parameters) for ``cfg.steps``
    AdamW steps and return the history.

    ``loss_at(step)`` returns the loss tensor, or ``(loss, parts)`` with ``parts`` a dict of floats to record.
    It must draw its randomness from ``step`` (:func:`step_generator`, :func:`step_rng`), so a resumed run
    repeats the uninterrupted one exactly.

    With ``folder``, ``<folder>/<name>.ckpt`` is written atomically every ``cfg.checkpoint_every`` steps and
    resumed from after a kill, and the finished model goes to ``<folder>/<name>.pt``; a later call with the
    same ``key`` (any JSON-able description of the model, data and settings) loads it instead of training.
    A file written under another key is ignored and replaced, never resumed.

    History: ``loss``, ``lr`` and ``parts`` per step, ``seconds`` of training, ``resumed_from`` (the step a
    resumed run started at), ``reused`` (loaded from ``<name>.pt``), ``steps``.
    """
    folder = Path(folder) if folder is not None else None
    full_key = json.dumps(_jsonable({"key": key, "fit": asdict(cfg)}), sort_keys=True, default=str)
    final = ckpt = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        final, ckpt = folder / f"{name}.pt", folder / f"{name}.ckpt"
        if final.exists():
            state = torch.load(final, map_location="cpu", weights_only=False)
            if state.get("key") == full_key:
                model.load_state_dict(state["model"])
                model.eval()
                return {**state["history"], "reused": True}
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    params = list(params)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(cfg.beta1, cfg.beta2),
                            eps=cfg.eps)
    clip = [p for g in opt.param_groups for p in g["params"]]
    sched = cfg.schedule()
    hist: dict[str, Any] = {"loss": [], "lr": [], "parts": [], "seconds": 0.0, "resumed_from": None,
                            "reused": False, "steps": cfg.steps}
    start = 0
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state.get("key") == full_key:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            hist, start = state["history"], state["step"]
            hist["resumed_from"] = start
    model.train()
    t0 = time.perf_counter()
    every = max(1, cfg.steps // 5)
    for step in range(start, cfg.steps):
        lr = lr_at(step, sched)
        for g in opt.param_groups:
            g["lr"] = lr
        out = loss_at(step)
        loss, parts = out if isinstance(out, tuple) else (out, {})
        if not torch.isfinite(loss):
            raise UserError(f"{name}: the loss is {loss.item()} at step {step}",
                            "lower the learning rate or check the inputs")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(clip, cfg.grad_clip)
        opt.step()
        hist["loss"].append(float(loss.detach()))
        hist["lr"].append(lr)
        hist["parts"].append({k: float(v) for k, v in parts.items()})
        if log is not None and (step + 1) % every == 0:
            log(f"{name}: step {step + 1}/{cfg.steps} loss {sum(hist['loss'][-every:]) / every:.4f}")
        if ckpt is not None and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 \
                and step + 1 < cfg.steps:
            hist["seconds"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            _atomic_save({"key": full_key, "model": model.state_dict(), "opt": opt.state_dict(),
                          "history": hist, "step": step + 1}, ckpt)
        if on_step is not None:
            on_step(step + 1)
    hist["seconds"] += time.perf_counter() - t0
    model.eval()
    if final is not None:
        _atomic_save({"key": full_key, "model": model.state_dict(), "history": hist}, final)
        if ckpt.exists():
            ckpt.unlink()
    return hist
