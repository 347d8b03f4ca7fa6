"""Length-normalised DPO: identities of the formula, and TRL's ``sigmoid_norm`` trainer loss equal to it on a real
(tiny) model's batch; LoRA SFT/DPO training runs, saves its adapter and resumes from it."""

import copy
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.fusechat.dpo import (
    TrainSettings,
    dpo_loss,
    greedy_answers,
    ln_dpo_loss,
    require_trl_ln,
    sft_to_prompt_completion,
    train_dpo,
    train_sft,
)

logps = st.lists(st.floats(-50, 0), min_size=4, max_size=4)


@settings(max_examples=50, deadline=None)
@given(logps, logps, logps, logps, st.floats(0.01, 20))
def test_ln_dpo_is_dpo_when_every_length_is_one(pc, pr, rc, rr, beta):
    t = [torch.tensor(x, dtype=torch.float64) for x in (pc, pr, rc, rr)]
    one = torch.ones(4, dtype=torch.float64)
    assert torch.allclose(ln_dpo_loss(*t, one, one, beta), dpo_loss(*t, beta))


@settings(max_examples=50, deadline=None)
@given(logps, logps, logps, logps, st.lists(st.integers(1, 300), min_size=8, max_size=8), st.floats(0.01, 20))
def test_ln_dpo_is_dpo_on_per_token_log_ratios(pc, pr, rc, rr, lens, beta):
    t = [torch.tensor(x, dtype=torch.float64) for x in (pc, pr, rc, rr)]
    lc, lr = torch.tensor(lens[:4], dtype=torch.float64), torch.tensor(lens[4:], dtype=torch.float64)
    expect = dpo_loss(t[0] / lc, t[1] / lr, t[2] / lc, t[3] / lr, beta)
    assert torch.allclose(ln_dpo_loss(*t, lc, lr, beta), expect)


def test_length_normalisation_removes_the_length_scale():
    """Repeating a response k times (k x the tokens, k x the log-ratio) leaves LN-DPO unchanged; plain DPO grows."""
    pc, pr, rc, rr = (torch.tensor([v]) for v in (-10.0, -12.0, -11.0, -11.5))
    lc, lr = torch.tensor([5.0]), torch.tensor([6.0])
    base = ln_dpo_loss(pc, pr, rc, rr, lc, lr, 1.0)
    k = 3.0
    assert torch.allclose(ln_dpo_loss(pc, k * pr, rc, k * rr, lc, k * lr, 1.0), base)
    assert not torch.allclose(dpo_loss(pc, k * pr, rc, k * rr, 1.0), dpo_loss(pc, pr, rc, rr, 1.0))


PAIRS = [{"prompt": [{"role": "user", "content": f"What is {a} plus {b}?"}],
          "chosen": [{"role": "assistant", "content": f"{a} + {b} = {a + b}"}],
          "rejected": [{"role": "assistant", "content": f"The answer is {a + b + 1}, I think, yes." * (1 + a % 2)}]}
         for a, b in [(1, 2), (3, 4), (5, 1), (2, 2)]]


def _completion_logps(model, batch):
    ids, mask, comp = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    tok_lp = torch.log_softmax(logits, -1).gather(2, ids[:, 1:, None])[..., 0]
    summed = (tok_lp * comp[:, 1:]).sum(1)
    return summed.chunk(2), comp.sum(1).float().chunk(2)


@pytest.mark.parametrize("beta", [10.0])
def test_trl_sigmoid_norm_is_the_papers_loss(tiny_chat_dir, tmp_path, beta):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    require_trl_ln()
    tok = AutoTokenizer.from_pretrained(tiny_chat_dir)
    ref = AutoModelForCausalLM.from_pretrained(tiny_chat_dir)
    policy = copy.deepcopy(ref)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    args = DPOConfig(output_dir=str(tmp_path), beta=beta, loss_type=["sigmoid_norm"], per_device_train_batch_size=4,
                     use_cpu=True, report_to=[], max_length=128, disable_tqdm=True)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(PAIRS),
                         processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
    (pc, pr), (lc, lr) = _completion_logps(trainer.model, batch)
    (rc, rr), _ = _completion_logps(ref, batch)
    assert not torch.equal(lc, lr)  # the lengths differ, so normalisation matters
    ours = float(ln_dpo_loss(pc, pr, rc, rr, lc, lr, beta).mean())
    plain = float(dpo_loss(pc, pr, rc, rr, beta).mean())
    assert trl_loss == pytest.approx(ours, rel=1e-4, abs=1e-5)
    assert abs(trl_loss - plain) > 1e-3  # a check plain DPO would fail


def test_lora_sft_then_dpo_trains_saves_and_resumes(tiny_chat_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_chat_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_chat_dir)
    s = TrainSettings(steps=4, batch_size=2, lr=5e-3, lora_r=4, lora_alpha=8, max_length=96, beta=1.0)
    sft_records = [{"messages": p["prompt"] + p["chosen"]} for p in PAIRS]
    assert sft_to_prompt_completion(sft_records)[0]["completion"][0]["role"] == "assistant"
    sft, log = train_sft(copy.deepcopy(base), tok, sft_records, tmp_path / "sft", s)
    assert (tmp_path / "sft" / "adapter_config.json").exists() and len(log) == 4
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in log)
    changed = any(not torch.allclose(a, b) for a, b in zip(sft.parameters(), base.parameters(), strict=True))
    assert changed  # the merged adapter moved the weights
    dpo, dlog = train_dpo(copy.deepcopy(sft), tok, PAIRS, tmp_path / "dpo", s)
    assert len(dlog) == 4 and "rewards/margins" in dlog[-1]
    for m in (sft, dpo):  # merged: plain models, no LoRA layers left
        assert not any("lora" in n for n, _ in m.named_modules())
    ids = tok("What is 1 plus 2? 1 + 2 = 3", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(dpo(ids).logits, sft(ids).logits, atol=1e-6)  # DPO moved the SFT model
    # a re-run loads the saved adapter (same weights, no training: the log is the saved one)
    again, alog = train_dpo(copy.deepcopy(sft), tok, PAIRS, tmp_path / "dpo", s)
    assert alog == json.loads((tmp_path / "dpo" / "log.json").read_text())
    assert all(torch.allclose(a, b) for a, b in zip(again.parameters(), dpo.parameters(), strict=True))
    with torch.no_grad():
        assert torch.allclose(again(ids).logits, dpo(ids).logits, atol=1e-6)
    answers = greedy_answers(dpo, tok, ["What is 1 plus 2?", "What is 3 plus 3?"], max_new_tokens=6)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
