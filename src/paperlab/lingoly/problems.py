"""LINGOLY-TOO problem files: reading, validating, sub-questions, and (de-)obfuscating a whole problem.

A problem file is one JSON object (the released format): ``preamble``, ``context`` (the
Rosetta-stone data), ``questions`` — a JSON-encoded *string* holding a list of
``{question_n, prompt, subprompts: [{questionpart_n, question, answer, ...}]}`` — and, for an
obfuscated version, ``obfuscated`` ("True"), ``obf_num`` and the ``mapping`` used.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from paperlab.core.errors import UserError
from paperlab.lingoly.obfuscation import (
    Template,
    invert,
    obfuscate_text,
    read_json_file,
    remove_metadata,
    sample_mappings,
    strip_markers,
)

TEXT_FIELDS = ("preamble", "context")
#: the paper's generator: 6 obfuscations per problem, random.seed(317) once, problems in sorted order
NUM_OBF, SEED = 6, 317


def parse_questions(problem: dict, where: str = "problem") -> list[dict]:
    """The decoded ``questions`` list, checked (one-line error on broken JSON or a missing field)."""
    q = problem.get("questions")
    if isinstance(q, str):
        try:
            q = json.loads(q)
        except (json.JSONDecodeError, RecursionError):
            raise UserError(f"{where}: the 'questions' string is not valid JSON",
                            "it must be a JSON-encoded list of questions") from None
    if not isinstance(q, list) or not q:
        raise UserError(f"{where}: 'questions' must be a non-empty list", "see the format in paperlab.lingoly.problems")
    for i, item in enumerate(q):
        if not isinstance(item, dict) or not isinstance(item.get("subprompts"), list):
            raise UserError(f"{where}: question {i} has no 'subprompts' list", "each question needs subprompts")
        for j, s in enumerate(item["subprompts"]):
            if not isinstance(s, dict) or not all(isinstance(s.get(k), str) for k in ("question", "answer")):
                raise UserError(f"{where}: question {i} subprompt {j} needs string 'question' and 'answer'",
                                "fix the problem file")
    return q


def check_problem(problem, where: str = "problem") -> dict:
    """A problem object with string ``preamble``/``context`` and decodable ``questions``."""
    if not isinstance(problem, dict):
        raise UserError(f"{where} must be one JSON object", "see the format in paperlab.lingoly.problems")
    for k in TEXT_FIELDS:
        if not isinstance(problem.get(k, ""), str):
            raise UserError(f"{where}: '{k}' must be a string", "fix the problem file")
    parse_questions(problem, where)
    return problem


def load_problem(path: Path | str) -> dict:
    return check_problem(read_json_file(path, "problem"), f"problem {path}")


@dataclass(frozen=True)
class SubQuestion:
    """One scored unit: sub-question ``part`` of question ``q_index`` of a problem version."""

    problem: str          # problem id, e.g. "88"
    version: int          # 0 = original, k = obfuscation k
    q_index: int
    s_index: int
    question_n: str
    part: str
    prompt: str
    question: str
    answer: str

    @property
    def key(self) -> str:
        """Identity of the sub-question across versions of a problem."""
        return f"{self.problem}/{self.q_index}/{self.s_index}"


def subquestions(problem: dict, pid: str, version: int) -> list[SubQuestion]:
    out = []
    for qi, q in enumerate(parse_questions(problem)):
        for si, s in enumerate(q["subprompts"]):
            out.append(SubQuestion(pid, version, qi, si, str(q.get("question_n", qi)), str(s.get("questionpart_n", si)),
                                   str(q.get("prompt", "")), s["question"], s["answer"]))
    return out


def map_problem(problem: dict, fn: Callable[[str], str]) -> dict:
    """Apply ``fn`` to every obfuscatable string: preamble, context and, inside ``questions``, each
    question's prompt and each sub-question's question and answer (answers with the same mapping)."""
    out = copy.deepcopy(problem)
    for k in TEXT_FIELDS:
        out[k] = fn(problem.get(k, ""))
    qs = parse_questions(problem)
    for q in qs:
        q["prompt"] = fn(str(q.get("prompt", "")))
        for s in q["subprompts"]:
            s["question"], s["answer"] = fn(s["question"]), fn(s["answer"])
    out["questions"] = json.dumps(qs, ensure_ascii=False)
    return out


def iter_fields(problem: dict) -> Iterator[tuple[str, str]]:
    """(name, text) of every obfuscatable field, in a fixed order."""
    for k in TEXT_FIELDS:
        yield k, problem.get(k, "")
    for qi, q in enumerate(parse_questions(problem)):
        yield f"q{qi}.prompt", str(q.get("prompt", ""))
        for si, s in enumerate(q["subprompts"]):
            yield f"q{qi}.{si}.question", s["question"]
            yield f"q{qi}.{si}.answer", s["answer"]


def obfuscate_problem(problem: dict, mapping: dict[str, str], tpl: Template, obf_num: int,
                      keep_marks: bool = False) -> dict:
    """One obfuscated version: the Problemese of every field mapped, metadata removed, markers
    stripped (``keep_marks``: ``@@@`` kept around the mapped spans, for exact de-obfuscation)."""
    def fn(text: str) -> str:
        return remove_metadata(obfuscate_text(text, mapping, tpl, keep_marks), tpl.metadata, tpl.metadata_placeholder)

    out = map_problem(problem, fn)
    out.update(obfuscated="True", obf_num=str(obf_num), mapping=dict(mapping), json_invalid=False)
    return out


def original_version(problem: dict, tpl: Template) -> dict:
    """Obfuscation 0: the original with markers stripped and metadata removed."""
    out = map_problem(problem, lambda t: remove_metadata(strip_markers(t), tpl.metadata, tpl.metadata_placeholder))
    out.update(obfuscated="False", obf_num="0", mapping=None, json_invalid=False)
    return out


def deobfuscate_problem(obf: dict, tpl: Template | None = None) -> dict:
    """Undo an obfuscation with the inverse of its recorded ``mapping``. Exact on the ``@@@`` spans of
    a problem obfuscated with ``keep_marks``; without markers the Problemese is located by the
    template's words mapped forward, which can also catch a non-Problemese word that happens to equal
    an obfuscated word (reported by the experiment)."""
    from paperlab.lingoly.obfuscation import apply_mapping

    mapping = obf.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise UserError("the problem has no 'mapping'", "pass an obfuscated problem file")
    inv = invert(mapping)
    tpl = tpl or Template()
    obf_tpl = Template(tpl.problem, problemese=[apply_mapping(w, mapping) for w in tpl.problemese],
                       fixed=tpl.fixed, sets=tpl.sets, tables=tpl.tables)
    out = map_problem(obf, lambda t: strip_markers(obfuscate_text(t, inv, obf_tpl)))
    out.update(obfuscated="False", obf_num="0", mapping=None)
    return out


def generate_obfuscations(problems: dict[str, dict], templates: dict[str, Template], k: int = NUM_OBF,
                          seed: int = SEED) -> dict[str, list[dict]]:
    """The paper's generator: ``random.seed(seed)`` once, then per problem in sorted order (numeric
    ids) ``k`` mappings sampled without replacement; version 0 is the original."""
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {}
    for pid in sorted(problems, key=lambda p: (len(p), p)):
        tpl = templates[pid]
        maps = sample_mappings(tpl.normalised(), k, rng)
        out[pid] = [original_version(problems[pid], tpl)] + [
            obfuscate_problem(problems[pid], m, tpl, i + 1) for i, m in enumerate(maps)]
    return out
