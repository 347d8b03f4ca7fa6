"""Two-stage training of the target model — FuseChat-3.0, Section 4: SFT on the best responses, then
length-normalised DPO on the same-source pairs.

**Length-normalised DPO** (the paper's Eq. for Llama-3.1-8B / Llama-3.2, beta = 10):

    L_LN-DPO = -log sigma( beta/|y_w| * log(pi_theta(y_w|x) / pi_ref(y_w|x))
                         - beta/|y_l| * log(pi_theta(y_l|x) / pi_ref(y_l|x)) )

where ``|y|`` is the number of response tokens and ``pi_ref`` is the SFT model. TRL (>= 1.4) has exactly this
loss as ``DPOConfig(loss_type="sigmoid_norm")`` (the summed log-ratio of each sequence divided by its completion
token count, then ``-logsigmoid(beta * delta)``), so training uses TRL; :func:`ln_dpo_loss` is the formula written
out, which the tests hold TRL's trainer to (and which reduces to standard sigmoid DPO, :func:`dpo_loss`, when
every length is 1). An installed TRL without ``sigmoid_norm`` is refused with a one-line error
(:func:`require_trl_ln`).

Training is LoRA (peft) on a small causal LM, tiny at quick scale; each stage saves its adapter in the run
folder and a re-run loads it instead of training again (:func:`train_sft`, :func:`train_dpo`). DPO starts from
the SFT model with its adapter merged, so the reference model ``pi_ref`` is the SFT model (the adapter disabled).

Evaluation: :func:`greedy_answers` — batched greedy decoding of held-out prompts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from paperlab.core.errors import UserError


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float):
    """Standard (sigmoid) DPO per pair: ``-log sigma(beta [(log pi - log pi_ref)(y_w) - (log pi - log pi_ref)(y_l)])``
    from the sequences' summed log-probabilities (tensors of shape ``[B]``)."""
    import torch.nn.functional as F

    return -F.logsigmoid(beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)))


def ln_dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_len, rejected_len, beta: float):
    """The paper's length-normalised DPO per pair: each sequence's log-ratio divided by its token count."""
    import torch.nn.functional as F

    # beta/|y_w| log(pi/pi_ref)(y_w|x) - beta/|y_l| log(pi/pi_ref)(y_l|x)
    margin = (policy_chosen - ref_chosen) / chosen_len - (policy_rejected - ref_rejected) / rejected_len
    return -F.logsigmoid(beta * margin)


def require_trl_ln() -> str:
    """The installed TRL's version, after checking its DPO trainer has the length-normalised loss."""
    import importlib.metadata
    import inspect

    import trl.trainer.dpo_trainer as mod
    from trl.trainer.dpo_trainer import DPOTrainer  # noqa: F401 -- the trainer must import

    if "sigmoid_norm" not in inspect.getsource(mod):
        raise UserError(f"trl {importlib.metadata.version('trl')} has no length-normalised DPO loss (sigmoid_norm)",
                        "install trl >= 1.4 (extra paperlab[lang])")
    return importlib.metadata.version("trl")


@dataclass(frozen=True)
class TrainSettings:
    """One training stage: LoRA rank/alpha, steps, batch, learning rate (cosine, warm-up 10 %), DPO beta."""

    steps: int = 30
    batch_size: int = 4
    lr: float = 1e-4
    lora_r: int = 8
    lora_alpha: int = 16
    max_length: int = 256
    beta: float = 10.0
    loss_type: str = "sigmoid_norm"
    seed: int = 0


def _lora(s: TrainSettings):
    from peft import LoraConfig

    return LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def _common_args(s: TrainSettings, out: Path) -> dict:
    import torch

    return dict(output_dir=str(out / "trainer"), max_steps=s.steps, per_device_train_batch_size=s.batch_size,
                gradient_accumulation_steps=1, learning_rate=s.lr, lr_scheduler_type="cosine", warmup_steps=max(
                    1, round(0.1 * s.steps)), logging_steps=1, save_strategy="no", report_to=[], seed=s.seed,
                data_seed=s.seed, use_cpu=not torch.cuda.is_available(), disable_tqdm=True, max_length=s.max_length,
                dataloader_num_workers=0, bf16=False, fp16=False)


def sft_to_prompt_completion(records: Sequence[dict]) -> list[dict]:
    """TRL ``messages`` records as ``prompt`` / ``completion`` (the loss on the response tokens only)."""
    return [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in records]


def _clean_pairs(records: Sequence[dict]) -> list[dict]:
    return [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in records]


def _load_or_train(model, out: Path, train) -> tuple[object, list[dict]]:
    """Merge the adapter saved in ``out`` into ``model``, training it first when it is not there yet.

    Training wraps ``model`` with LoRA layers in place, so the adapter is merged into an untouched copy: the
    model returned is the same whether the adapter was trained now or loaded by a resumed run."""
    import copy

    from peft import PeftModel

    pristine = copy.deepcopy(model)
    log_file = out / "log.json"
    if not (out / "adapter_config.json").exists() or not log_file.exists():
        trained, log = train(model)
        trained.save_pretrained(str(out))
        log_file.write_text(json.dumps(log))
        del trained, model
    log = json.loads(log_file.read_text())
    merged = PeftModel.from_pretrained(pristine, str(out)).merge_and_unload()
    if hasattr(merged, "peft_config"):  # a plain model again: the next stage adds its own adapter
        del merged.peft_config
    merged.eval()
    return merged, log


def _quiet(trainer) -> None:
    """No per-step dict printing (the log is kept in the run folder instead)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def _history(trainer) -> list[dict]:
    keep = ("step", "loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected",
            "logps/chosen", "logps/rejected", "learning_rate")
    return [{k: h[k] for k in keep if k in h} for h in trainer.state.log_history if "loss" in h]


def train_sft(model, tokenizer, records: Sequence[dict], out: Path, s: TrainSettings):
    """LoRA SFT on ``messages`` records (loss on the responses); returns ``(merged model, loss log)``.

    ``model`` is consumed (the adapter is merged into it); the adapter is kept in ``out``."""
    out = Path(out)

    def train(model):
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**_common_args(s, out), completion_only_loss=True, packing=False)
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(sft_to_prompt_completion(records)),
                             processing_class=tokenizer, peft_config=_lora(s))
        _quiet(trainer)
        trainer.train()
        return trainer.model, _history(trainer)

    return _load_or_train(model, out, train)


def train_dpo(model, tokenizer, records: Sequence[dict], out: Path, s: TrainSettings):
    """LoRA DPO (``s.loss_type``, default the paper's length-normalised ``sigmoid_norm``) starting from ``model``,
    which is also the reference (adapter disabled); returns ``(merged model, log)``."""
    out = Path(out)

    def train(model):
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**_common_args(s, out), beta=s.beta, loss_type=[s.loss_type])
        trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=Dataset.from_list(
            _clean_pairs(records)), processing_class=tokenizer, peft_config=_lora(s))
        _quiet(trainer)
        trainer.train()
        return trainer.model, _history(trainer)

    return _load_or_train(model, out, train)


def greedy_answers(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 64,
                   batch_size: int = 32) -> list[str]:
    """Greedy responses of a chat model to single-turn prompts (batched, left padding)."""
    import torch

    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    out: list[str] = []
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            with torch.no_grad():
                g = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                   top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
            out += [t.strip() for t in tokenizer.batch_decode(g[:, enc["input_ids"].shape[1]:],
                                                               skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
    return out
