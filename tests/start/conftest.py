"""A scripted language model for the tool-loop tests: it continues a prompt with a fixed script and honours
stop strings and max_tokens exactly as a backend does (the stop string is cut off, finish_reason "stop").
The loop, the sandbox and the hints under test are all real."""

from __future__ import annotations

import pytest

from paperlab.core.models import ChatResult, LanguageModel, _truncate_at_stop


class ScriptedLM(LanguageModel):
    """``script(prompt) -> the model's full continuation`` (a function of the text so far)."""

    id = "scripted"

    def __init__(self, script):
        self.script = script
        self.requests: list[tuple[str, object]] = []

    def _complete_one(self, prompt, params):
        self.requests.append((prompt, params))
        full = self.script(prompt)
        words = full.split(" ")
        text = " ".join(words[: params.max_tokens])
        finish = "length" if len(words) > params.max_tokens else "stop"
        cut = _truncate_at_stop(text, params.stop)
        if len(cut) < len(text):
            finish = "stop"
        return ChatResult(cut, finish, len(prompt.split()), len(cut.split()))


@pytest.fixture
def scripted():
    return ScriptedLM


TRAJ_TEXT = ("Let me compute. Wait, maybe using Python here is a good idea.\n```python\nprint(4821 * 377)\n```\n"
             "```output\n1817517\n```\nSo the answer is \\boxed{1817517}.<|im_end|>\n"
             "<|im_start|>user\nWhat is 12 * 34?\nPlease reason step by step.<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory):
    """A random 2-layer transformers Llama whose tokenizer knows the trajectory vocabulary (seconds to build)."""
    from tests_helpers import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("start_tiny_llama"), TRAJ_TEXT * 40, vocab_size=300,
                           intermediate_size=64, max_positions=1024)
