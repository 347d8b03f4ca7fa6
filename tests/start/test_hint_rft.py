"""Hint-RFT: scoring, the filter, content modification (loss masks) and real LoRA training on a tiny model."""

import json

from hypothesis import given
from hypothesis import strategies as st

from paperlab.start.hint_rft import (
    LoraSettings,
    _tokenize,
    finetune_lora,
    is_repetitive,
    keep,
    score,
    to_example,
)
from paperlab.start.tool_loop import Step, Trajectory, render_prompt


def traj(answer="1817517", ok=True, repeat=1, stop="end"):
    t = Trajectory(render_prompt("What is 4821 * 377?"))
    t.steps = [Step("model", "Let me compute." * repeat + "\n"), Step("hint", " Wait, maybe using Python here is a good idea.\n"),
               Step("model", "```python\nprint(4821 * 377)\n```\n"), Step("code", "", {"code": "print(4821 * 377)", "ok": ok}),
               Step("output", "```output\n1817517\n```\n"), Step("model", f"So \\boxed{{{answer}}}.")]
    t.stop_reason = stop
    return t


def test_filter_keeps_only_correct_tool_using_clean_finished():
    assert keep(score(traj(), "1817517"))
    assert not keep(score(traj(answer="1817516"), "1817517"))
    assert not keep(score(traj(ok=False), "1817517"))
    assert not keep(score(traj(stop="token_limit"), "1817517"))
    # the ablation drops only the correctness test
    assert keep(score(traj(answer="1817516"), "1817517"), require_correct=False)
    assert not keep(score(traj(ok=False), "1817517"), require_correct=False)


@given(st.text(alphabet="abcdefgh ", min_size=12, max_size=30).filter(lambda s: len(s.strip()) >= 10),
       st.integers(3, 8))
def test_repeated_lines_are_repetitive(line, k):
    assert is_repetitive("\n".join([line] * k))


def test_ordinary_text_is_not_repetitive():
    text = " ".join(f"step {i} multiplies {i * 7} by {i + 3} to get {i * 7 * (i + 3)}." for i in range(30))
    assert not is_repetitive(text)
    assert is_repetitive(" ".join(["the same four words"] * 40))


def test_output_blocks_and_prompt_are_masked(tiny_hf_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_hf_dir)
    ex = to_example(traj())
    assert ex["completion"].endswith("<|im_end|>") and "Wait, maybe using Python" in ex["completion"]
    ids, labels = _tokenize(tok, ex, 10_000)
    trained = tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab != -100])
    masked = tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab == -100])
    assert "print(4821 * 377)" in trained and "Wait, maybe using Python" in trained
    assert "```output" not in trained and "1817517\n```\n" in masked
    assert "What is 4821 * 377?" in masked and "What is 4821 * 377?" not in trained


def test_lora_training_raises_the_likelihood_of_kept_trajectories(tiny_hf_dir, tmp_path):
    from paperlab.core.models import load_lm

    ex = to_example(traj())
    base = load_lm(f"hf:{tiny_hf_dir}", cache=False)
    before = sum(base.score([ex["prompt"]], [ex["completion"]])[0])
    folder, log = finetune_lora(tiny_hf_dir, [ex] * 4, tmp_path, LoraSettings(r=4, epochs=4, lr=5e-3, batch_size=2,
                                                                              target_modules=("q_proj", "v_proj")),
                                log=lambda m: None)
    assert folder.name.startswith("rft-") and (folder / "config.json").exists()
    assert log["steps"] == 8 and log["last_loss"] < log["first_loss"]
    after = sum(load_lm(f"hf:{folder}", cache=False).score([ex["prompt"]], [ex["completion"]])[0])
    assert after > before + 1.0
    json.dumps(log)
