"""Score user-given chains: ``paperlab telephone score --original FILE --generations FILE``.

Inputs are JSONL. Originals: ``{"id": ..., "text": ...}``. Generations: either one record per
generation ``{"id": ..., "iteration": t, "text": ...}``, or the paper's stored per-passage records
``{"id": ..., "0_en": ..., "2_fr": ..., "2_en": ...}`` (only the English ``{t}_en`` texts are scored).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from paperlab.core.data import read_jsonl
from paperlab.core.errors import UserError
from paperlab.core.stats import bootstrap_ci
from paperlab.telephone.metrics import METRICS, score_pairs, signatures

_GEN_KEY = re.compile(r"^(\d+)_en$")


def _originals(path: Path) -> dict[str, str]:
    out = {}
    for i, r in enumerate(read_jsonl(path), 1):
        if "text" not in r or not str(r["text"]).strip():
            raise UserError(f"{path} record {i} has no non-empty 'text'", "write {\"id\": ..., \"text\": ...} per line")
        out[str(r.get("id", i - 1))] = str(r["text"])
    return out


def _iteration(value, path: Path, i: int) -> int:
    """The ``iteration`` field of record ``i``: a whole number >= 0 (``3``, ``3.0`` or ``"3"``)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return int(value.strip())
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value and value >= 0 \
            and value != float("inf") and int(value) == value:
        return int(value)
    raise UserError(f"{path} record {i}: 'iteration' is {value!r}, not a whole number >= 0",
                    'write e.g. {"id": "p1", "iteration": 3, "text": "..."}')


def _generations(path: Path) -> list[tuple[str, int, str]]:
    out = []
    for i, r in enumerate(read_jsonl(path), 1):
        pid = str(r.get("id", i - 1))
        if "iteration" in r and "text" in r:
            out.append((pid, _iteration(r["iteration"], path, i), str(r["text"])))
            continue
        keyed = [(int(m.group(1)), str(v)) for k, v in r.items() if (m := _GEN_KEY.match(k))]
        if not keyed:
            raise UserError(f"{path} record {i} has neither iteration+text nor '<t>_en' keys",
                            "see `paperlab telephone score --help` for the formats")
        out += [(pid, t, v) for t, v in keyed]
    return out


def score_files(original: Path, generations: Path, compat: str = "standard", judge: str = "lexical") -> dict:
    originals = _originals(original)
    gens = _generations(generations)
    missing = sorted({pid for pid, _, _ in gens if pid not in originals})
    if missing:
        raise UserError(f"generations refer to ids without an original: {missing[:5]}", "give every id an original")
    scores = score_pairs([originals[p] for p, _, _ in gens], [g for _, _, g in gens], compat=compat)
    names = list(METRICS)
    if judge != "none":
        from paperlab.telephone.factscore import LexicalFactJudge, LLMFactJudge

        if judge == "lexical":
            j = LexicalFactJudge()
        else:
            from paperlab.core.models import load_lm

            j = LLMFactJudge(load_lm(judge))
        fr = j.score_pairs([originals[p] for p, _, _ in gens], [g for _, _, g in gens])
        scores["factscore"] = [r.score for r in fr]          # the paper's direction: the generation's facts
        scores["fact_recall"] = [r.recall for r in fr]       # the original's facts found in the generation
        scores["facts_per_response"] = [float(r.n_facts) for r in fr]
        names += ["factscore", "fact_recall", "facts_per_response"]
    rows = [{"id": p, "iteration": t, **{m: scores[m][k] for m in names}} for k, (p, t, _) in enumerate(gens)]
    by_t: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for m in names:
            by_t[r["iteration"]][m].append(r[m])
    # percentile bootstrap over passages: the interval stays inside a metric's range (a t-interval need not);
    # one generation at an iteration has no interval: ci_lo/ci_hi are null there
    cis = {t: {m: bootstrap_ci(v, n_boot=1000).as_dict() for m, v in ms.items()} for t, ms in sorted(by_t.items())}
    summary = {str(t): {m: {"mean": e["value"], "ci_lo": e["lo"], "ci_hi": e["hi"], "n": e["n"]} for m, e in es.items()}
               for t, es in cis.items()}
    return {"compat": compat, "signatures": signatures(compat), "judge": judge,
            "per_generation": rows, "by_iteration": summary}
