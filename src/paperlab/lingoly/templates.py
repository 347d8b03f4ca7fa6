"""Templates for the six released human-evaluation problems, derived from the released obfuscations.

The official templates (spreadsheets of Table/Set/Fixed columns) and the ``@@@``-annotated problems
are not in the released data (the creation zips are Git-LFS stubs). Each problem is released as the
original plus two obfuscations that carry their ``mapping``; :func:`derive_template` recovers a
template from them, reproducibly:

1. **Rows from the mappings' key order.** The official generator fills a mapping row by row, so the
   keys of a released mapping list each row's graphemes contiguously and in order. Cutting the key
   sequence into the shortest consecutive segments that every released mapping maps onto themselves
   *as a non-zero cyclic shift* gives the rows; a one-key segment that maps to itself is a fixed term.
   Each row becomes a ``set`` (two samples cannot tell a two-column table from a set).
2. **Problemese words from the text diff.** A word (maximal run of letters, combining marks and the
   template's non-letter grapheme characters, e.g. ``:``) of the original is Problemese when the
   aligned word of some released obfuscation differs. Words unchanged by both obfuscations either
   are not Problemese or consist only of fixed/unmapped graphemes, which no mapping changes.
3. **Metadata** from the UKLO metadata sheet (language name and family), to neutralise if present.

Characters of the Problemese that no released mapping lists (``f``, ``m`` of problem 88) are not in
the official template either: they are copied unchanged, and ``validate`` reports them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from paperlab.lingoly.obfuscation import Template, normalise, word_extra, words
from paperlab.lingoly.problems import iter_fields


def mapping_rows(mappings: Sequence[dict[str, str]]) -> tuple[list[list[str]], list[str]]:
    """Rows (cyclically shifted by every mapping) and fixed terms recovered from released mappings."""
    maps = [{normalise(k): normalise(v) for k, v in m.items()} for m in mappings]
    keys = list(maps[0])
    for m in maps[1:]:
        if list(m) != keys:
            raise ValueError("the released mappings list different keys")
    rows: list[list[str]] = []
    fixed: list[str] = []
    i = 0
    while i < len(keys):
        for j in range(i + 1, len(keys) + 1):
            seg = keys[i:j]
            if all(_is_cyclic_shift(seg, m) for m in maps):
                break
        else:
            raise ValueError(f"keys from {keys[i]!r} on do not split into cyclic rows")
        if len(seg) == 1:
            fixed.append(seg[0])
        else:
            rows.append(seg)
        i = j
    return rows, fixed


def _is_cyclic_shift(seg: list[str], m: dict[str, str]) -> bool:
    n = len(seg)
    if n == 1:
        return m[seg[0]] == seg[0]
    if m[seg[0]] not in seg:
        return False
    s = seg.index(m[seg[0]])
    return s != 0 and all(m[g] == seg[(k + s) % n] for k, g in enumerate(seg))


def problemese_words(original: dict, obfuscations: Sequence[dict], extra: frozenset[str]) -> list[str]:
    """Words of the original that some released obfuscation changes (first-occurrence order)."""
    changed: dict[str, None] = {}
    orig_fields = dict(iter_fields(original))
    for obf in obfuscations:
        for name, text in iter_fields(obf):
            a, b = normalise(orig_fields[name]), normalise(text)
            wa, wb = words(a, extra), words(b, extra)
            if len(wa) != len(wb):
                raise ValueError(f"field {name}: word counts differ ({len(wa)} vs {len(wb)})")
            for (s, e), (s2, e2) in zip(wa, wb, strict=False):
                if a[s:e] != b[s2:e2]:
                    changed.setdefault(a[s:e])
    return list(changed)


def derive_template(pid: str, original: dict, obfuscations: Sequence[dict], metadata: Sequence[str] = ()) -> Template:
    rows, fixed = mapping_rows([o["mapping"] for o in obfuscations])
    tpl = Template(problem=pid, sets=rows, fixed=fixed)
    tpl.problemese = problemese_words(original, obfuscations, word_extra(tpl))
    tpl.metadata = list(metadata)
    tpl.note = ("derived by paperlab.lingoly.templates.derive_template from the released mappings "
                f"(obf_num {', '.join(str(o['obf_num']) for o in obfuscations)}) and the original/obfuscated text diff")
    return tpl


def write_template(tpl: Template, path: Path | str) -> None:
    Path(path).write_text(json.dumps(tpl.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
