"""Apply to your model: quantize a transformers causal LM to dense-and-sparse, save it, load it, score it.

``paperlab requant quantize --model <spec> --bits 3 --out DIR`` calls :func:`quantize_to_dir`, which writes

- ``config.json`` + tokenizer files (the model's own),
- ``model.safetensors``: every tensor of the model, the quantized layers as the buffers of
  :class:`~paperlab.requant.layers.SparseDenseLinear` (packed codes, fp16 scales/minima, sparse fp16
  values + int32 indices) — no dense copy of a quantized matrix,
- ``requant.json``: what was done (method, bits, groups, budget, calibration) and the bit accounting,
  total and per layer.

A killed ``quantize`` resumes: ReQuant's progress (the outcome of each PQI scan) is kept in
``.<DIR>.requant_state.pt`` beside DIR until the folder is written.

``paperlab requant ppl --model DIR`` loads it with :func:`load_quantized` (the forward pass runs on the
dense-and-sparse layers) and reports sliding-window perplexity (:func:`perplexity_report`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from paperlab.core.errors import UserError

FORMAT = "paperlab-requant/1"
QUANTIZE_METHODS = ("requant", "rtn", "magnitude", "fisher")


def calibration_ids(tok, text: str, n_seqs: int, length: int):
    import torch

    from paperlab.requant.lm import windows

    ids = tok(text[: 16 * n_seqs * length], add_special_tokens=False)["input_ids"]
    if len(ids) < n_seqs * length:
        ids = tok(text, add_special_tokens=False)["input_ids"]
    return windows(torch.tensor(ids, dtype=torch.long), length, n_seqs)


def quantize_to_dir(spec: str, out: Path, bits: int, method: str = "requant", base: str = "rtn",
                    group_size: int = 128, sparse_ratio: float = 0.005, outlier_share: float = 0.5,
                    steps: int = 2, temperature: float = 1.0, n_points: int = 4, rule: str = "midpoint",
                    calib_text: str | None = None, calib_seqs: int = 16, calib_len: int = 512,
                    blocks: list[int] | None = None, log=print) -> dict:
    """Quantize ``spec``'s decoder linear layers and write the dense-and-sparse model to ``out``."""
    import torch

    from paperlab.core.data import data_path
    from paperlab.core.models import load_torch_model
    from paperlab.requant.layers import convert, model_account
    from paperlab.requant.lm import hf_target
    from paperlab.requant.pqi import path_scan
    from paperlab.requant.quantizers import Quantizer, collect_activations
    from paperlab.requant.requant import (
        ReQuantConfig,
        dense_and_sparse,
        requant,
        select_per_layer,
    )

    t0 = time.perf_counter()
    state_path = resume_state_path(out)
    model, tok = load_torch_model(spec, device="cpu")
    target = hf_target(model, blocks)
    text = calib_text if calib_text is not None else data_path("wikitext2", "valid.txt").read_text(encoding="utf-8")
    calib = calibration_ids(tok, text, calib_seqs, calib_len)
    acts = None
    if base == "awq":
        def forward():
            with torch.no_grad():
                for i in range(calib.shape[0]):
                    target.nll(calib[i: i + 1])

        acts = collect_activations(model, target.layers, forward)
    q = Quantizer(base, bits, group_size, act=acts or {})
    w0 = target.weights()
    info: dict = {}
    log(f"quantizing {len(w0)} layers ({sum(w.numel() for w in w0.values()):,} weights) with {method}")
    if method == "rtn":
        layers = {n: dense_and_sparse(n, w0[n], q) for n in w0}
    elif method == "magnitude":
        masks = select_per_layer({n: w.abs() for n, w in w0.items()}, sparse_ratio)
        layers = {n: dense_and_sparse(n, w0[n], q, masks[n], "magnitude") for n in w0}
    elif method == "fisher":
        zero = {n: torch.zeros_like(w) for n, w in w0.items()}
        scan = path_scan(target, w0, zero, calib, [0.0], [1.0], fisher=True)
        masks = select_per_layer(scan.fisher, sparse_ratio)
        layers = {n: dense_and_sparse(n, w0[n], q, masks[n], "fisher") for n in w0}
    else:
        rq = ReQuantConfig(r_outlier=sparse_ratio * outlier_share, r_significant=sparse_ratio * (1 - outlier_share),
                           steps=steps, temperature=temperature, n_points=n_points, rule=rule)
        # a killed quantization resumes from the outcome of its last PQI scan, kept beside --out until it is done
        state_path.parent.mkdir(parents=True, exist_ok=True)
        res = requant(target, q, calib, rq, w0=w0, log=log, state_path=state_path)
        layers = res.layers
        info = {"allocation": res.allocation, "steps": res.steps}
    target.set_weights(w0)
    per_layer = {n: ds.account().as_dict() for n, ds in layers.items()}
    originals = convert(model, layers)
    try:
        acct = model_account(model)
        meta = {
            "format": FORMAT, "model": spec, "method": method, "base": base, "bits": bits, "group_size": group_size,
            "sparse_ratio": 0.0 if method == "rtn" else sparse_ratio,
            "requant": {"outlier_share": outlier_share, "steps": steps, "temperature": temperature,
                        "n_points": n_points, "rule": rule} if method == "requant" else None,
            "calibration": {"source": "WikiText-2 valid.txt" if calib_text is None else "user file",
                            "sequences": calib_seqs, "length": calib_len},
            "blocks": blocks, "layers": {n: _layer_meta(model, n) for n in layers},
            "accounting": acct.as_dict(), "per_layer": per_layer, "info": info,
            "seconds": time.perf_counter() - t0,
        }
        save_quantized(model, tok, out, meta)
        state_path.unlink(missing_ok=True)
    finally:
        from paperlab.requant.layers import restore

        restore(model, originals)
    return meta


def resume_state_path(out: Path) -> Path:
    """Where :func:`quantize_to_dir` keeps ReQuant's progress while it runs: ``.<DIR>.requant_state.pt`` beside DIR."""
    out = Path(out)
    return out.parent / f".{out.name}.requant_state.pt"


def _layer_meta(model, name: str) -> dict:
    from paperlab.requant.layers import _parent

    parent, leaf = _parent(model, name)
    m = getattr(parent, leaf)
    return {"out": m.out_features, "in": m.in_features, "bits": m.bits, "group_size": m.group_size,
            "n_sparse": int(m.sparse_index.numel()), "in_scale": m.in_scale is not None, "bias": m.bias is not None,
            "sparse_dtype": str(m.sparse_value.dtype).removeprefix("torch.")}


def save_quantized(model, tok, out: Path, meta: dict) -> None:
    """Write the converted model (see the module doc); files are written to a temporary folder first."""
    import shutil

    from safetensors.torch import save_model

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.config.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "requant.json").write_text(json.dumps(meta, indent=2))
    if out.exists():
        if any(out.iterdir()) and not is_quantized_dir(out):   # never delete a folder we did not write
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError(f"{out} is not empty and is not a requant model folder", "pass a new or empty --out")
        shutil.rmtree(out)
    tmp.replace(out)


def is_quantized_dir(path: str | Path) -> bool:
    return (Path(path) / "requant.json").is_file()


def load_quantized(path: str | Path):
    """``(model, tokenizer, meta)`` of a folder written by :func:`quantize_to_dir`; the quantized layers are
    :class:`~paperlab.requant.layers.SparseDenseLinear` modules."""
    import torch
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from paperlab.requant.layers import SparseDenseLinear, _parent

    path = Path(path)
    try:
        meta = json.loads((path / "requant.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"{path} is not a requant model folder (no readable requant.json)",
                        "pass a folder written by `paperlab requant quantize`") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}/requant.json has format {meta.get('format')!r}, not {FORMAT}",
                        "re-run `paperlab requant quantize`")
    config = AutoConfig.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    for name, m in meta["layers"].items():
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, SparseDenseLinear(m["out"], m["in"], m["bits"], m["group_size"], m["n_sparse"],
                                                m["in_scale"], m["bias"], getattr(torch, m["sparse_dtype"])))
    missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
    if unexpected or [k for k in missing if not k.endswith("rotary_emb.inv_freq")]:
        raise UserError(f"{path}/model.safetensors does not match its requant.json "
                        f"({len(missing)} missing, {len(unexpected)} unexpected tensors)", "re-run the quantize command")
    model.eval()
    tok = AutoTokenizer.from_pretrained(str(path))
    return model, tok, meta


def perplexity_report(model_arg: str, data_text: str | None = None, context: int = 512, stride: int = 256,
                      max_tokens: int | None = 32768, n_boot: int = 1000) -> dict:
    """Sliding-window perplexity of a requant folder or a model spec on a text (default WikiText-2 test)."""
    import torch

    from paperlab.core.data import data_path
    from paperlab.core.models import load_torch_model
    from paperlab.core.stats import bootstrap_ci
    from paperlab.requant.layers import model_account
    from paperlab.requant.lm import TargetModel, perplexity, window_nll

    t0 = time.perf_counter()
    if is_quantized_dir(model_arg):
        model, tok, meta = load_quantized(model_arg)
    else:
        model, tok = load_torch_model(model_arg, device="cpu")
        meta = None
    text = data_text if data_text is not None else data_path("wikitext2", "test.txt").read_text(encoding="utf-8")
    cut = text if max_tokens is None else text[: 16 * max_tokens]
    ids = tok(cut, add_special_tokens=False)["input_ids"]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    if len(ids) < 2:
        raise UserError("the text has fewer than 2 tokens", "pass a longer text")
    target = TargetModel(model, {}, "hf")
    sums, counts = window_nll(target, torch.tensor(ids, dtype=torch.long), min(context, len(ids)),
                              min(stride, context, len(ids)))
    boot = bootstrap_ci(np.arange(len(sums), dtype=float),
                        stat=lambda x: float(np.exp(sums[x.astype(int)].sum() / counts[x.astype(int)].sum())),
                        n_boot=n_boot)
    acct = model_account(model)
    return {
        "model": str(model_arg), "ppl": perplexity(sums, counts),
        "ppl_ci95": [boot.lo, boot.hi], "ci_method": boot.method + " over windows",
        "tokens_scored": int(counts.sum()), "windows": len(sums), "context": context, "stride": stride,
        "data": "WikiText-2 test.txt" if data_text is None else "user file",
        "quantized": meta is not None,
        "bits_per_weight": acct.bits_per_weight if meta is not None else None,
        "accounting": acct.as_dict() if meta is not None else None,
        "method": meta.get("method") if meta else None, "seconds": time.perf_counter() - t0,
    }
