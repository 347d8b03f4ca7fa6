"""A trained TSV detector as a reusable artefact: save, load, score new (question, answer) pairs.

A detector folder holds ``detector.json`` (model spec, steering layer, lambda, tau, prompt template,
training config) and ``tensors.pt`` (the vector :math:`v` and prototypes :math:`\\mu`). Scoring runs
the full steered forward pass (no cache) and returns :math:`p(\\text{truthful} \\mid r)`.

    paperlab tsv score --detector runs/tsv/<stamp>/detector --input pairs.jsonl
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from paperlab.core.errors import UserError
from paperlab.tsv.labelling import PROMPT
from paperlab.tsv.prototypes import VMFPrototypes
from paperlab.tsv.steering import SteeringVector, encode_texts, full_embeddings

FORMAT = "paperlab-tsv-detector/1"


@dataclass
class Detector:
    """Everything needed to score new answers with a trained TSV."""

    model: str  # model spec (default | hf:<path> | gguf:<file>)
    layer: int
    lam: float
    tau: float
    v: torch.Tensor
    mu: torch.Tensor  # [2, d]: row 0 hallucinated, row 1 truthful
    prompt: str = PROMPT
    max_length: int = 256
    config: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- files
    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {k: v for k, v in asdict(self).items() if k not in ("v", "mu")}
        meta["format"] = FORMAT
        meta["classes"] = ["hallucinated", "truthful"]
        (folder / "detector.json").write_text(json.dumps(meta, indent=2))
        torch.save({"v": self.v.detach().cpu().float(), "mu": self.mu.detach().cpu().float()}, folder / "tensors.pt")
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> Detector:
        folder = Path(folder)
        meta_p, tens_p = folder / "detector.json", folder / "tensors.pt"
        if not meta_p.is_file() or not tens_p.is_file():
            raise UserError(f"{folder} is not a TSV detector (needs detector.json and tensors.pt)",
                            "pass the `detector` folder of a `paperlab tsv run`")
        try:
            meta = json.loads(meta_p.read_text())
            tensors = torch.load(tens_p, map_location="cpu", weights_only=True)
        except (json.JSONDecodeError, RuntimeError, OSError) as e:
            raise UserError(f"cannot read detector {folder}: {e.__class__.__name__}",
                            "re-create it with `paperlab tsv run`") from None
        if meta.get("format") != FORMAT:
            raise UserError(f"{folder} has format {meta.get('format')!r}, expected {FORMAT!r}",
                            "re-create it with `paperlab tsv run`")
        kw = {k: meta[k] for k in ("model", "layer", "lam", "tau", "prompt", "max_length", "config")}
        return cls(v=tensors["v"], mu=tensors["mu"], **kw)

    # ---------------------------------------------------------------- scoring
    def texts(self, questions: Sequence[str], answers: Sequence[str]) -> tuple[list[str], list[str]]:
        prompts = [self.prompt.format(question=q.strip()) for q in questions]
        return prompts, [" " + a.strip() for a in answers]

    def score(self, questions: Sequence[str], answers: Sequence[str], model=None, tokenizer=None,
              batch_size: int = 16) -> list[float]:
        """p(truthful) for each (question, answer) pair; loads the model from its spec if not given."""
        if model is None or tokenizer is None:
            from paperlab.core.models import load_torch_model

            model, tokenizer = load_torch_model(self.model)
        n_layers = len(_layers(model))
        if not 0 <= self.layer < n_layers or model.config.hidden_size != self.v.numel():
            raise UserError(f"detector (layer {self.layer}, width {self.v.numel()}) does not fit model "
                            f"'{self.model}' ({n_layers} layers, width {model.config.hidden_size})",
                            "score with the model the detector was trained on")
        dev = next(model.parameters()).device
        steer = SteeringVector(self.v.numel(), self.lam).to(dev)
        with torch.no_grad():
            steer.v.copy_(self.v.to(dev))
        enc = encode_texts(tokenizer, *self.texts(questions, answers), max_length=self.max_length)
        r = full_embeddings(model, enc, steer, self.layer, batch_size=batch_size)
        protos = VMFPrototypes(self.v.numel(), 2, tau=self.tau, mu=self.mu)
        return [float(x) for x in protos.probs(r)[:, 1]]


def _layers(model):
    from paperlab.core.internals import decoder_layers

    return decoder_layers(model)


def read_pairs(path: Path | str) -> tuple[list[str], list[str]]:
    """Read ``{"question": ..., "answer": ...}`` lines; one-line :class:`UserError` on any bad line."""
    from paperlab.core.data import read_jsonl

    rows = read_jsonl(path)
    qs, ans = [], []
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not isinstance(r.get("question"), str) or not isinstance(r.get("answer"), str):
            raise UserError(f"{path} record {i} lacks string fields 'question' and 'answer'",
                            'write {"question": "...", "answer": "..."} per line')
        if not r["question"].strip():
            raise UserError(f"{path} record {i} has an empty question", "give every line a question")
        qs.append(r["question"])
        ans.append(r["answer"])
    return qs, ans


def score_file(detector_dir: Path | str, input_path: Path | str, output: Path | str | None = None,
               model=None, tokenizer=None) -> list[dict]:
    """Score a JSONL file of pairs; each output record is the input plus ``p_truthful``."""
    det = Detector.load(detector_dir)
    qs, ans = read_pairs(input_path)
    scores = det.score(qs, ans, model=model, tokenizer=tokenizer)
    records = [{"question": q, "answer": a, "p_truthful": s if math.isfinite(s) else None}
               for q, a, s in zip(qs, ans, scores, strict=True)]
    if output is not None:
        Path(output).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return records
