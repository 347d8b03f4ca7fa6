"""A trained TSV detector as a reusable artefact: save, load, score new (question, answer) pairs.

A detector folder holds ``detector.json`` (model spec, steering layer, lambda, tau, prompt template,
whether answers sit in the chat template, training config) and ``tensors.pt`` (the vector :math:`v` and
prototypes :math:`\\mu`). Scoring embeds each answer in the context it was generated in
(:func:`paperlab.tsv.labelling.scoring_context`), runs the full steered forward pass (no cache) and
returns :math:`p(\\text{truthful} \\mid r)`.

Input lines are ``{"question": ..., "answer": ...}`` plus any other fields, which are kept in the
output next to ``p_truthful``. An empty answer, or a damaged detector folder, is a one-line error.

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
from paperlab.tsv.labelling import PROMPT, uses_chat
from paperlab.tsv.prototypes import VMFPrototypes
from paperlab.tsv.steering import Encoded, SteeringVector, encode_answers, encode_texts, full_embeddings

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
    chat: bool = False  # answers embedded in the tokenizer's chat template (as generated), not raw text
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
        hint = "re-create it with `paperlab tsv run`"
        try:
            meta = json.loads(meta_p.read_text(encoding="utf-8"))
        except (ValueError, RecursionError, OSError) as e:  # bad JSON, bad UTF-8, unreadable
            raise UserError(f"cannot read detector {meta_p}: {e.__class__.__name__}", hint) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise UserError(f"{folder} has format {got!r}, expected {FORMAT!r}", hint)
        try:  # a truncated or foreign file fails in many ways (zip, pickle, EOF, unsupported global)
            tensors = torch.load(tens_p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 -- any failure to read it means the same to the user
            raise UserError(f"cannot read detector tensors {tens_p}: {e.__class__.__name__}", hint) from None
        return cls(**_checked_fields(folder, meta, tensors, hint))

    # ---------------------------------------------------------------- scoring
    def encode(self, tokenizer, questions: Sequence[str], answers: Sequence[str]) -> list[Encoded]:
        """The pairs as the detector was trained on them: in the chat template, or after the raw prompt."""
        if self.chat and not uses_chat(tokenizer):
            raise UserError(f"the detector embeds answers in a chat template, but '{self.model}' has none",
                            "score with the model the detector was trained on")
        if self.chat:
            return encode_answers(tokenizer, questions, answers, self.max_length, chat=True, prompt=self.prompt)
        prompts = [self.prompt.format(question=q.strip()) for q in questions]
        return encode_texts(tokenizer, prompts, [" " + a.strip() for a in answers], max_length=self.max_length)

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
        enc = self.encode(tokenizer, questions, answers)
        r = full_embeddings(model, enc, steer, self.layer, batch_size=batch_size)
        protos = VMFPrototypes(self.v.numel(), 2, tau=self.tau, mu=self.mu)
        return [float(x) for x in protos.probs(r)[:, 1]]


def _layers(model):
    from paperlab.core.internals import decoder_layers

    return decoder_layers(model)


def read_records(path: Path | str) -> list[dict]:
    """Read ``{"question": ..., "answer": ..., <any other fields>}`` lines; one-line :class:`UserError` on
    any bad line: a missing or non-string question or answer, or an empty one (an empty answer has no
    token to embed; the detector has nothing to say about it)."""
    from paperlab.core.data import read_jsonl

    rows = read_jsonl(path)
    for i, r in enumerate(rows, 1):
        if not isinstance(r.get("question"), str) or not isinstance(r.get("answer"), str):
            raise UserError(f"{path} record {i} lacks string fields 'question' and 'answer'",
                            'write {"question": "...", "answer": "..."} per line')
        if not r["question"].strip():
            raise UserError(f"{path} record {i} has an empty question", "give every line a question")
        if not r["answer"].strip():
            raise UserError(f"{path} record {i} has an empty answer",
                            "drop it, or score a placeholder such as \"I have no comment.\"")
    return rows


def read_pairs(path: Path | str) -> tuple[list[str], list[str]]:
    """The questions and answers of :func:`read_records`."""
    rows = read_records(path)
    return [r["question"] for r in rows], [r["answer"] for r in rows]


def score_file(detector_dir: Path | str, input_path: Path | str, output: Path | str | None = None,
               model=None, tokenizer=None) -> list[dict]:
    """Score a JSONL file of pairs; each output record is the input record (every field kept, in order)
    plus ``p_truthful`` (which replaces an input field of that name)."""
    det = Detector.load(detector_dir)
    rows = read_records(input_path)
    scores = det.score([r["question"] for r in rows], [r["answer"] for r in rows], model=model, tokenizer=tokenizer)
    records = [{**{k: v for k, v in r.items() if k != "p_truthful"}, "p_truthful": s if math.isfinite(s) else None}
               for r, s in zip(rows, scores, strict=True)]
    if output is not None:
        Path(output).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return records


def _checked_fields(folder: Path, meta: dict, tensors: Any, hint: str) -> dict:
    """The detector's fields from its files, each checked: a damaged folder is one clear error."""
    def bad(what: str) -> UserError:
        return UserError(f"damaged detector {folder}: {what}", hint)

    def number(k: str, positive: bool = False) -> float:
        x = meta.get(k)
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or (positive and x <= 0):
            raise bad(f"'{k}' is {x!r}, not a finite{' positive' if positive else ''} number")
        return float(x)

    for k in ("model", "prompt"):
        if not isinstance(meta.get(k), str):
            raise bad(f"'{k}' is {meta.get(k)!r}, not a string")
    if "{question}" not in meta["prompt"]:
        raise bad("'prompt' has no {question} slot")
    for k in ("layer", "max_length"):
        x = meta.get(k)
        if isinstance(x, bool) or not isinstance(x, int) or x < 0 or (k == "max_length" and x < 2):
            raise bad(f"'{k}' is {x!r}, not a whole number in range")
    chat = meta.get("chat", False)  # detectors written before answers sat in the chat template: raw text
    if not isinstance(chat, bool):
        raise bad(f"'chat' is {chat!r}, not true/false")
    config = meta.get("config", {})
    if not isinstance(config, dict):
        raise bad("'config' is not an object")
    if not isinstance(tensors, dict) or not all(isinstance(tensors.get(k), torch.Tensor) for k in ("v", "mu")):
        raise bad("tensors.pt lacks the tensors 'v' and 'mu'")
    v, mu = tensors["v"].float(), tensors["mu"].float()
    if v.ndim != 1 or v.numel() == 0 or tuple(mu.shape) != (2, v.numel()):
        raise bad(f"v has shape {tuple(v.shape)} and mu {tuple(mu.shape)}; expected [d] and [2, d]")
    if not (torch.isfinite(v).all() and torch.isfinite(mu).all()) or bool((mu.norm(dim=1) == 0).any()):
        raise bad("v or mu holds non-finite values, or a prototype is zero")
    return dict(model=meta["model"], layer=meta["layer"], lam=number("lam"), tau=number("tau", positive=True),
                v=v, mu=mu, prompt=meta["prompt"], max_length=meta["max_length"], chat=chat, config=config)
