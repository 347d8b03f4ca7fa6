"""§5 of the paper, at small scale: supervised fine-tuning (LoRA) on raw, PPL-filtered or polished references,
then greedy translation of held-out sources.

The paper fine-tunes Llama-3.1-8B / Qwen-2.5-7B on 31,621 ALMA pairs (3 epochs, batch 16). Here: LoRA
(``peft``) on a small chat LM (default SmolLM2-135M-Instruct), a few hundred pairs, a few dozen steps. The
prompt is the released data's Alpaca instruction ("You are an expert translator and only output the result.
Translate this from German to English:" + newline + source) in the model's chat template, the instruction's
first sentence as the system turn (SmolLM2's template would otherwise insert its own default system prompt);
the loss covers the reference tokens and the end-of-turn token only.

Why a plain loop rather than ``trl.SFTTrainer``: assistant-only loss in SFTTrainer needs generation markers in
the chat template, which SmolLM2's lacks; the loop below is the textbook masked-LM step (AdamW, linear warm-up,
gradient accumulation not needed at this size), and ``peft`` supplies the LoRA layers and adapter files.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

SYSTEM = "You are an expert translator and only output the result."
LANG_NAMES = {"de": "German", "en": "English", "zh": "Chinese"}


def messages(source: str, src: str = "de", tgt: str = "en") -> list[dict]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Translate this from {LANG_NAMES[src]} to {LANG_NAMES[tgt]}:\n{source}"}]


def _ids(enc) -> list[int]:
    return list(enc["input_ids"] if not isinstance(enc, list) else enc)


def encode(tok, source: str, target: str, src: str = "de", tgt: str = "en", max_len: int = 256):
    """(input ids, labels): the prompt's labels are -100, the target and the end-of-turn token are learned."""
    prompt = _ids(tok.apply_chat_template(messages(source, src, tgt), add_generation_prompt=True, tokenize=True))
    answer = _ids(tok(target, add_special_tokens=False)) + [tok.eos_token_id]
    ids = (prompt + answer)[:max_len]
    labels = ([-100] * len(prompt) + answer)[:max_len]
    return ids, labels


def train_lora(base, tok, pairs: Sequence[tuple[str, str]], folder: Path, *, steps: int, batch_size: int,
               lr: float, rank: int, alpha: int, seed: int, max_len: int = 256, top_layers: int | None = None,
               progress: Callable[[int, float], None] | None = None):
    """A LoRA-adapted copy of ``base`` trained on ``pairs`` (source, reference), or the adapter already saved in
    ``folder`` (a finished arm is never retrained: the run resumes per arm). ``top_layers``: adapt only the last
    ``top_layers`` decoder blocks (the backward pass then stops there: cheaper on a CPU). Returns (model, losses)."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    folder = Path(folder)
    done = folder / "train_log.json"
    model = copy.deepcopy(base)
    if done.exists() and (folder / "adapter_config.json").exists():
        return PeftModel.from_pretrained(model, str(folder)), json.loads(done.read_text())["losses"]
    torch.manual_seed(seed)
    rng = random.Random(seed)
    n_layers = model.config.num_hidden_layers
    layers = list(range(n_layers - top_layers, n_layers)) if top_layers and top_layers < n_layers else None
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, task_type="CAUSAL_LM", layers_to_transform=layers,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, cfg)
    model.train()
    data = [encode(tok, s, t, max_len=max_len) for s, t in pairs]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    order: list[int] = []
    losses = []
    for step in range(steps):
        batch = []
        for _ in range(batch_size):  # epochs over a reshuffled order
            if not order:
                order = list(range(len(data)))
                rng.shuffle(order)
            batch.append(data[order.pop()])
        width = max(len(ids) for ids, _ in batch)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch])
        lab = torch.tensor([ll + [-100] * (width - len(ll)) for _, ll in batch])
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.item()))
        if progress is not None:
            progress(step, losses[-1])
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    done.write_text(json.dumps({"losses": losses, "n_pairs": len(pairs), "steps": steps}))
    return model, losses


def generate_chat(model, tok, conversations: Sequence[list[dict]], *, max_new_tokens: int,
                  batch_size: int = 16, desc: str = "generate") -> list[str]:
    """Greedy replies of a transformers chat model to ``conversations`` (left-padded batches, shortest first);
    each reply up to the end-of-turn token."""
    import torch
    from tqdm.auto import tqdm

    out: list[str] = [""] * len(conversations)
    prompts = [_ids(tok.apply_chat_template(c, add_generation_prompt=True, tokenize=True)) for c in conversations]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for b in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        idx = order[b: b + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in idx])
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in idx])
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=pad, eos_token_id=tok.eos_token_id)
        for j, i in enumerate(idx):
            out[i] = tok.decode(gen[j, width:], skip_special_tokens=True).strip()
    return out


def translate(model, tok, sources: Sequence[str], *, max_new_tokens: int, batch_size: int = 24,
              src: str = "de", tgt: str = "en") -> list[str]:
    """Greedy translations: the first line of each reply."""
    replies = generate_chat(model, tok, [messages(s, src, tgt) for s in sources], max_new_tokens=max_new_tokens,
                            batch_size=batch_size, desc="translate")
    return [r.split("\n")[0].strip() for r in replies]


def lora_size(model) -> int:
    return int(sum(p.numel() for n, p in model.named_parameters() if "lora_" in n))
