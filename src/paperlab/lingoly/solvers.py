"""Two reference solvers that separate memorisation from reasoning (the paper's M_og vs. M_obf idea).

- :class:`MemorisingSolver` has *seen the original problems with their answers* (a contaminated
  model): it recognises a sub-question by its identity (problem, question, part) and returns the
  remembered original answer. Perfect on originals; on an obfuscation it is right only where the
  obfuscation leaves the answer unchanged (English answers, letters, "Irregular").
- :class:`RuleInducingSolver` sees only the problem sheet. It treats every Problemese string as an
  opaque sequence of symbols and induces correspondences from the Rosetta-stone lines of the
  context: word-for-word substitution between the nearest example sentence and the query (word
  associations by Dice co-occurrence), and for single words the suffix rewrite of the example that
  shares the longest ending with the query (``wati -> wati+ngka``). Ties are broken by majority then
  by first occurrence in the sheet, never by alphabetical order, so a consistent renaming of the
  symbols (an obfuscation) renames its answers and leaves its score unchanged, up to multi-character
  graphemes changing suffix lengths. Its absolute score is low; its *invariance* is the point.

Both implement ``answer(problem, pid) -> {sub-question key: answer}``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from paperlab.lingoly.problems import SubQuestion, subquestions

GAP = re.compile(r"_*\(([a-z]|[ivx]+|\d+)\)_*", re.IGNORECASE)
NUMBERING = re.compile(r"^\s*\d+[.)]?\s*$")
WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|[\u0300-\u036f'’:-])*", re.UNICODE)


class MemorisingSolver:
    """Answers from a memory of the original problems' answers (keyed by sub-question identity)."""

    name = "memorising"

    def __init__(self, originals: dict[str, dict]):
        self.memory = {sq.key: first_alternative(sq.answer)
                       for pid, prob in originals.items() for sq in subquestions(prob, pid, 0)}

    def answer(self, problem: dict, pid: str) -> dict[str, str]:
        return {sq.key: self.memory.get(sq.key, "") for sq in subquestions(problem, pid, 0)}


def first_alternative(reference: str) -> str:
    """What a solver that remembers a reference writes: its first alternative when it is a list."""
    from paperlab.lingoly.scoring import reference_alternatives

    alts, _ = reference_alternatives(reference)
    return alts if isinstance(alts, str) else (alts[0] if alts else "")


def cells(line: str) -> list[str]:
    """A context line split into cells (tabs or runs of >= 2 spaces), numbering cells dropped."""
    parts = [c.strip() for c in re.split(r"\t|\s{2,}", line.strip())]
    return [c for c in parts if c and not NUMBERING.match(c)]


def tokens(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def _gap_id(text: str) -> str | None:
    m = GAP.fullmatch(text.strip().rstrip("."))
    return m.group(1).lower() if m else None


class RuleInducingSolver:
    """Induces answers from the problem's own data only (see the module docstring)."""

    name = "rule-inducing"

    def answer(self, problem: dict, pid: str) -> dict[str, str]:
        rows = [cells(line) for line in problem.get("context", "").splitlines()]
        rows = [r for r in rows if len(r) >= 2]
        return {sq.key: self.solve(sq, rows) for sq in subquestions(problem, pid, 0)}

    # -------------------------------------------------------------- one sub-question

    def solve(self, sq: SubQuestion, rows: list[list[str]]) -> str:
        gap = _gap_id(sq.question) or (_gap_id(sq.part) if not sq.question.strip() else None)
        if gap is not None:
            return self._fill_gap(gap, rows)
        q = sq.question.strip()
        if not q:
            return ""
        return self._translate(q, rows)

    def _fill_gap(self, gap: str, rows: list[list[str]]) -> str:
        for row in rows:
            for col, cell in enumerate(row):
                if _gap_id(cell) == gap:
                    complete = [r for r in rows if len(r) == len(row) and not any(_gap_id(c) for c in r)]
                    sources = [c for c in range(len(row)) if c != col and _gap_id(row[c]) is None]
                    if not sources:
                        return ""
                    src = _best_source(sources, col, complete)
                    return analogy(row[src], [(r[src], r[col]) for r in complete])[0]
        return ""

    def _translate(self, q: str, rows: list[list[str]]) -> str:
        qt = set(tokens(q))
        best, best_key = None, (-1, 0)
        for r in rows:
            for src, cell in enumerate(r):
                overlap = len(qt & set(tokens(cell)))
                key = (overlap, -abs(len(tokens(cell)) - len(qt)))
                if overlap and key > best_key:
                    best, best_key = (src, len(r)), key
        if best is None:
            return ""
        src, width = best
        complete = [r for r in rows if len(r) == width and not any(_gap_id(c) for c in r)]
        targets = [c for c in range(width) if c != src]
        # the target column the source predicts best on the examples (ties: the nearest, then the first)
        tgt = max(targets, key=lambda c: (_loo_accuracy(src, c, complete), -abs(c - src), -c))
        return analogy(q, [(r[src], r[tgt]) for r in complete])[0]


def _loo_accuracy(src: int, tgt: int, rows: list[list[str]]) -> int:
    """How many example rows the analogy predicts from the others (column src -> column tgt)."""
    hits = 0
    for i, r in enumerate(rows):
        others = [(o[src], o[tgt]) for j, o in enumerate(rows) if j != i]
        hits += tokens(analogy(r[src], others)[0]) == tokens(r[tgt])
    return hits


def _best_source(sources: list[int], tgt: int, rows: list[list[str]]) -> int:
    """The source column whose analogy best predicts the target column on the examples (leave one
    out); ties go to the nearest column, then the first."""
    return max(sources, key=lambda c: (_loo_accuracy(c, tgt, rows), -abs(c - tgt), -c))


def analogy(query: str, pairs: Sequence[tuple[str, str]]) -> tuple[str, float]:
    """Solve ``source : target :: query : ?`` from example pairs; returns (answer, confidence)."""
    if not pairs:
        return "", -1.0
    same = [t for s, t in pairs if s.strip().lower() == query.strip().lower()]
    if same and len({t.strip().lower() for t in same}) == 1:   # a consistent example: copy it
        return same[0], float("inf")
    if len(tokens(query)) <= 1 and all(len(tokens(s)) <= 1 for s, _ in pairs):
        return suffix_analogy(query.strip(), pairs)
    return substitution_analogy(query, pairs)


def suffix_analogy(query: str, pairs: Sequence[tuple[str, str]]) -> tuple[str, float]:
    """Rewrite the query's ending as the example with the longest shared ending rewrites its own
    (``s = P + a``, ``t = P + b`` with ``P`` their longest common prefix); majority then first wins."""
    q = query.lower()
    rules = []
    for s, t in pairs:
        s, t = s.strip().lower(), t.strip().lower()
        n = 0
        while n < min(len(s), len(t)) and s[n] == t[n]:
            n += 1
        a, b = s[n:], t[n:]
        if not q.endswith(a):
            continue
        shared = 0
        while shared < min(len(q), len(s)) and q[-1 - shared] == s[-1 - shared]:
            shared += 1
        rules.append((shared, a, b))
    if not rules:
        return "", -1.0
    top = max(r[0] for r in rules)
    votes = Counter((a, b) for sh, a, b in rules if sh == top)
    order = [(a, b) for sh, a, b in rules if sh == top]
    (a, b) = max(order, key=lambda ab: (votes[ab], -order.index(ab)))
    return q[: len(q) - len(a)] + b, float(top)


def substitution_analogy(query: str, pairs: Sequence[tuple[str, str]]) -> tuple[str, float]:
    """Take the example whose source words overlap the query most and swap, in its target, the word
    aligned to each source word the query lacks for the word aligned to the query's new word."""
    qt = tokens(query)
    src_tok = [tokens(s) for s, _ in pairs]
    tgt_tok = [tokens(t) for _, t in pairs]
    best = max(range(len(pairs)), key=lambda i: (len(set(qt) & set(src_tok[i])) - len(set(src_tok[i]) - set(qt)), -i))
    out = list(tgt_tok[best])
    removed = [w for w in src_tok[best] if w not in qt]
    added = [w for w in qt if w not in src_tok[best]]
    align = _dice(src_tok, tgt_tok)
    for old, new in zip(removed, added, strict=False):
        x_old, x_new = align.get(old), align.get(new)
        if x_old in out and x_new is not None:
            out[out.index(x_old)] = x_new
    overlap = len(set(qt) & set(src_tok[best]))
    return " ".join(out), float(overlap)


def _dice(src: list[list[str]], tgt: list[list[str]]) -> dict[str, str]:
    """For each source word, the target word with the highest Dice co-occurrence over the examples
    (ties: the first target word met)."""
    cs, ct, cst = Counter(), Counter(), Counter()
    first: dict[str, int] = {}
    for s, t in zip(src, tgt, strict=False):
        for w in set(t):
            first.setdefault(w, len(first))
        cs.update(set(s))
        ct.update(set(t))
        cst.update((a, b) for a in set(s) for b in set(t))
    out = {}
    for a in cs:
        cands = [(2 * cst[(a, b)] / (cs[a] + ct[b]), -first[b], b) for b in ct if cst[(a, b)]]
        if cands:
            out[a] = max(cands)[2]
    return out
