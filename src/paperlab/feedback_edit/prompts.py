"""The four roles' prompts, as data (one template per role; ``{...}`` fields filled by :func:`fill`).

The paper's dedicated models (Llama-3.3-Nemotron-70B-Feedback / -Edit / -Select) were trained on
HelpSteer3; offline, one small instruct model plays every role, prompted here. What is verified
about the paper's formats (fact sheet) and followed:

- **Feedback**: the chat ``[user: prompt, assistant: response, user: "Evaluate the response to the
  previous prompt in terms of how helpful it is ..."]`` (the model card's usage example; the rest of
  its instruction was not read, so ours is written here). HelpSteer3 feedback starts
  "The response is {not / slightly / partially / mostly / perfectly} helpful", 2-10 sentences: the
  instruction asks for that shape.
- **Edit**: given prompt, response and feedback, write an edited response (format of the Edit model's
  input not verified: the same chat with the feedback in the last user turn).
- **Select**: the paper's Select model is a scaled Bradley-Terry reward model that outputs one float.
  Offline we use a *judge*: the selector LM is asked whether the response is correct and helpful,
  and the reward is ``log P(Yes) - log P(No)`` of its first answer token (:mod:`.pipeline`).
  The selector never sees a reference answer.
"""

from __future__ import annotations

from paperlab.core.models import Message

#: The generator's user turn (math tasks add the answer-format line; open-ended prompts go as they are).
GENERATOR = "{prompt}"

#: The math tasks' instruction appended to the problem so that the final answer can be read off exactly.
MATH_SUFFIX = "\nSolve it in at most three short sentences, then finish with: The answer is <number>."

#: Feedback model: the last user turn after ``[user: prompt, assistant: response]``.
FEEDBACK = ("Evaluate the response to the previous prompt in terms of how helpful it is overall. "
            "Start with \"The response is not / slightly / partially / mostly / perfectly helpful\", "
            "then in 2 to 5 sentences say what is wrong, missing or unclear and how to fix it.")

#: Edit model: the last user turn after ``[user: prompt, assistant: response]``.
EDIT = ("Here is feedback on your response:\n{feedback}\n\n"
        "Rewrite your response to the previous prompt so that it follows the feedback. "
        "Write only the improved response.")

#: Selector (judge): one user turn; the reward is read from the first answer token.
JUDGE = ("Question:\n{prompt}\n\nProposed response:\n{response}\n\n"
         "Is the proposed response correct and helpful? Answer Yes or No.")

#: Words of constructive criticism counted to rank feedbacks (seed digest: "rank feedbacks, e.g. by
#: count of constructive-criticism keywords"; the paper's exact list is not verified).
CRITICISM_KEYWORDS = (
    "incorrect", "wrong", "error", "mistake", "missing", "miss", "lacks", "lack", "should", "instead",
    "however", "improve", "fix", "unclear", "inaccurate", "not", "could", "needs", "fails", "incomplete",
)


def fill(template: str, **fields: str) -> str:
    """A template with its fields filled (``str.format``; the fields' own braces are left alone)."""
    return template.format(**fields)


def generator_chat(prompt: str) -> list[Message]:
    return [{"role": "user", "content": fill(GENERATOR, prompt=prompt)}]


def feedback_chat(prompt: str, response: str) -> list[Message]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response},
            {"role": "user", "content": FEEDBACK}]


def edit_chat(prompt: str, response: str, feedback: str) -> list[Message]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response},
            {"role": "user", "content": fill(EDIT, feedback=feedback)}]


def judge_chat(prompt: str, response: str) -> list[Message]:
    return [{"role": "user", "content": fill(JUDGE, prompt=prompt, response=response)}]
