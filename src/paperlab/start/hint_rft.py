"""Hint-RFT (START §2.3, Fig. 1): Hint-infer trajectories -> rule-based scoring, filtering and content
modification -> D_seed -> fine-tune the model on D_seed (START-0). The paper then samples START-0 again
(self-distillation, D_START) and fine-tunes once more; our ``rounds`` setting repeats the cycle.

- :func:`score` — a trajectory's answer checked against the gold one (:mod:`paperlab.start.answers`),
  its tool calls, whether it repeats itself (:func:`is_repetitive`).
- :func:`keep` — the filter: correct, at least one tool call that ran without error, not repetitive,
  not cut by a limit (unverified details: the paper names scoring, filtering and "content modification"
  without the rules; these are ours).
- :func:`to_example` — content modification: the trajectory's text as the assistant turn, the hint
  sentences kept (the model learns to say them itself and call the tool unprompted), the code outputs
  kept in the text but masked from the loss (they come from the interpreter, not the model), the end of
  turn appended.
- :func:`finetune_lora` — LoRA (peft) on the kept examples with a plain torch loop (masked causal-LM loss;
  a plain loop instead of trl's SFTTrainer because the loss mask covers interleaved spans — the output
  blocks — which SFTTrainer's completion-only collator does not express), merged and saved as a
  transformers checkpoint named by the hash of its weights.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlab.start.answers import is_equivalent
from paperlab.start.tool_loop import END_OF_TURN, Trajectory

OUTPUT_BLOCK = re.compile(r"```output\n.*?\n```\n?", re.S)


def is_repetitive(text: str, max_line_repeats: int = 3, min_distinct_4grams: float = 0.4) -> bool:
    """A line (10+ characters) said ``max_line_repeats`` times or more, or (over 60 words) fewer than
    ``min_distinct_4grams`` of the word 4-grams distinct: the loops a small model falls into."""
    lines = [ln.strip() for ln in text.splitlines() if len(ln.strip()) >= 10]
    if lines and Counter(lines).most_common(1)[0][1] >= max_line_repeats:
        return True
    words = text.split()
    if len(words) > 60:
        grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
        if len(set(grams)) / len(grams) < min_distinct_4grams:
            return True
    return False


@dataclass
class Score:
    correct: bool
    calls: int
    ok_calls: int
    repetitive: bool
    finished: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def score(traj: Trajectory, gold: str) -> Score:
    return Score(correct=is_equivalent(traj.answer, gold), calls=traj.n_calls,
                 ok_calls=sum(bool(c.meta.get("ok")) for c in traj.calls), repetitive=is_repetitive(traj.text),
                 finished=traj.stop_reason == "end")


def keep(s: Score, require_correct: bool = True) -> bool:
    """The D_seed filter: correct, tool used successfully, not repetitive, ended by the model itself.
    ``require_correct=False`` drops the correctness test (NOT the paper's filter: an ablation for models too
    small to ever be right, which tests only whether fine-tuning on hinted tool use makes it unprompted)."""
    return (s.correct or not require_correct) and s.ok_calls >= 1 and not s.repetitive and s.finished


def to_example(traj: Trajectory) -> dict[str, Any]:
    """One fine-tuning example: ``prompt``, ``completion`` and the character spans of the completion that
    are masked from the loss (the interpreter's output blocks)."""
    completion = traj.text.rstrip() + END_OF_TURN
    masked = [(m.start(), m.end()) for m in OUTPUT_BLOCK.finditer(completion)]
    return {"prompt": traj.prompt, "completion": completion, "masked": masked}


def _tokenize(tok, ex: dict[str, Any], max_len: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the prompt and masked spans), cut to ``max_len`` tokens."""
    text = ex["prompt"] + ex["completion"]
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    p = len(ex["prompt"])
    spans = [(a + p, b + p) for a, b in ex["masked"]]
    labels = []
    for tid, (a, _) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
        train = a >= p and not any(s <= a < e for s, e in spans)
        labels.append(tid if train else -100)
    return enc["input_ids"][:max_len], labels[:max_len]


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    lr: float = 2e-4
    epochs: int = 3
    batch_size: int = 4
    max_len: int = 768
    seed: int = 0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


def finetune_lora(base_path: str | Path, examples: list[dict[str, Any]], out_root: Path, s: LoraSettings,
                  log=print) -> tuple[Path, dict[str, Any]]:
    """LoRA-fine-tune the transformers checkpoint at ``base_path`` on ``examples``; merge the adapter and save
    the model to ``out_root/rft-<hash of weights>``. Returns the folder and the training record (losses)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(s.seed)
    tok = AutoTokenizer.from_pretrained(str(base_path))
    model = AutoModelForCausalLM.from_pretrained(str(base_path), torch_dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout,
                                             target_modules=list(s.target_modules), task_type="CAUSAL_LM"))
    data = [_tokenize(tok, ex, s.max_len) for ex in examples]
    data = [d for d in data if any(x != -100 for x in d[1])]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s.lr)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    g = torch.Generator().manual_seed(s.seed)
    losses: list[float] = []
    model.train()
    for epoch in range(s.epochs):
        epoch_losses = []
        order = torch.randperm(len(data), generator=g).tolist()
        for i in range(0, len(order), s.batch_size):
            batch = [data[j] for j in order[i:i + s.batch_size]]
            n = max(len(ids) for ids, _ in batch)
            ids = torch.tensor([x + [pad] * (n - len(x)) for x, _ in batch])
            lab = torch.tensor([y + [-100] * (n - len(y)) for _, y in batch])
            att = torch.tensor([[1] * len(x) + [0] * (n - len(x)) for x, _ in batch])
            loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            epoch_losses.append(float(loss.detach()))
        losses += epoch_losses
        log(f"Hint-RFT epoch {epoch + 1}/{s.epochs}: mean loss {sum(epoch_losses) / max(1, len(epoch_losses)):.3f}")
    merged = model.merge_and_unload()
    h = hashlib.sha256()
    for name, p in sorted(merged.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    folder = Path(out_root) / f"rft-{h.hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, {"examples": len(data), "steps": len(losses), "first_loss": losses[0] if losses else None,
                    "last_loss": losses[-1] if losses else None, "losses": losses}
