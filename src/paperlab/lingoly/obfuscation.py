"""Section 3 of LINGOLY-TOO: templatised orthographic obfuscation.

A *template* (:class:`Template`) says which graphemes of a problem's language may be exchanged:

- a **table** is a list of columns; every column has the same row shape; a row is a list of
  graphemes (one class of sounds, e.g. the voiceless stops ``p, t, k``). A permutation moves every
  column to another column by a cyclic shift ``sigma`` and, inside each (column, row), rotates the
  row by a non-zero shift: grapheme ``k`` of row ``j`` of column ``c`` becomes grapheme
  ``(k + s_{c,j}) mod n_j`` of row ``j`` of column ``sigma(c)``;
- a **set** is a table with one column and one row (``a, e, i, o, u``): one cyclic shift;
- a **fixed** term maps to itself (names, diacritics that carry no segment, untouched words).

``force_change`` (the paper's choice): every row of >= 2 graphemes gets a non-zero shift and a table
of >= 2 columns a non-zero column shift, so no class stays where it was; a mapping equal to the
identity is rejected. The mappings of a template are enumerated in ``itertools.product`` order and
:func:`sample_mappings` draws ``k`` of them without replacement with ``random.sample`` from a
``random.Random`` the caller owns (the paper: ``random.seed(317)`` once, problems in sorted order).

Applying a mapping (:func:`apply_mapping`): the text is NFD-normalised (glottal-stop variants
U+0294/U+0241 become U+0242 first), lower-cased, and scanned left to right taking the *longest*
key that matches at each position; characters without a key are copied. A replacement whose source
character was upper-case gets its first character upper-cased (case preservation).

The official ``obfuscate.py`` builds the full product list of permutations in memory; we index the
same product lazily, in the same order, and draw indices with ``random.sample(range(N), k)``, which
consumes the generator exactly as ``random.sample(list_of_N, k)`` does: with the same template (same
order of tables, sets and fixed terms) and the same generator state, the same mappings come out. For
tables of three or more columns the official code reuses one inner shift for all columns and can map
two columns onto one (not a bijection); there we give every (row, column) its own shift.
"""

from __future__ import annotations

import json
import math
import random
import unicodedata as ud
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paperlab.core.errors import UserError

#: glottal-stop variants normalised before matching (the fact sheet; the official CHAR_MAP)
GLOTTAL = {"\u0294": "\u0242", "\u0241": "\u0242"}
OBF_MARK, LANG_MARK, CULT_MARK = "@@@", "$$$", "&&&"
NORMAL_FORM = "NFD"


def normalise(text: str) -> str:
    """NFD with the glottal-stop variants U+0294 and U+0241 mapped to U+0242."""
    for k, v in GLOTTAL.items():
        text = text.replace(k, v)
    return ud.normalize(NORMAL_FORM, text)


# ------------------------------------------------------------------ templates


@dataclass
class Template:
    """The orthographic template of one problem (see the module docstring and :func:`load_template`).

    ``tables``: list of tables; a table is a list of columns; a column a list of rows; a row a list of
    graphemes. ``sets``: lists of graphemes. ``fixed``: terms that map to themselves. ``problemese``:
    the target-language words of the problem (used when the problem text has no ``@@@`` markers).
    ``metadata``: terms naming the language, family or region, replaced by ``metadata_placeholder``.
    """

    problem: str = ""
    tables: list[list[list[list[str]]]] = field(default_factory=list)
    sets: list[list[str]] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    problemese: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    metadata_placeholder: str = "Language X"
    note: str = ""

    def normalised(self) -> Template:
        """Every grapheme NFD-normalised (glottal stops standardised); fixed terms lower-cased."""
        n = normalise
        return Template(self.problem, [[[[n(g) for g in row] for row in col] for col in t] for t in self.tables],
                        [[n(g) for g in s] for s in self.sets], [n(f).lower() for f in self.fixed],
                        [n(w) for w in self.problemese], list(self.metadata), self.metadata_placeholder, self.note)

    def classes(self) -> list[list[list[list[str]]]]:
        """Tables, then sets as one-column one-row tables, then fixed terms as 1x1 tables (the official order)."""
        return list(self.tables) + [[[list(s)]] for s in self.sets] + [[[[f]]] for f in self.fixed]

    def graphemes(self) -> list[str]:
        return [g for t in self.classes() for col in t for row in col for g in row]

    def to_json(self) -> dict:
        return {"problem": self.problem, "note": self.note, "tables": self.tables, "sets": self.sets,
                "fixed": self.fixed, "problemese": self.problemese, "metadata": self.metadata,
                "metadata_placeholder": self.metadata_placeholder}


TEMPLATE_KEYS = {"problem", "note", "tables", "sets", "fixed", "problemese", "metadata", "metadata_placeholder"}


def _strings(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise UserError(f"template: {where} must be a list of strings", "see `paperlab lingoly validate --help`")
    return list(value)


def template_from_json(obj) -> Template:
    """A :class:`Template` from a parsed JSON object, checking its shape (one-line errors)."""
    if not isinstance(obj, dict):
        raise UserError("template: the file must hold one JSON object", "see the format in paperlab.lingoly")
    unknown = set(obj) - TEMPLATE_KEYS
    if unknown:
        raise UserError(f"template: unknown key(s) {', '.join(sorted(unknown))}",
                        f"use only {', '.join(sorted(TEMPLATE_KEYS))}")
    tables = obj.get("tables", [])
    if not isinstance(tables, list):
        raise UserError("template: tables must be a list of tables", "a table is a list of columns of rows")
    out_tables = []
    for ti, t in enumerate(tables):
        if not isinstance(t, list) or not t:
            raise UserError(f"template: table {ti} must be a non-empty list of columns", "e.g. [[[\"p\",\"t\"]]]")
        cols = []
        for ci, col in enumerate(t):
            if not isinstance(col, list) or not col:
                raise UserError(f"template: table {ti} column {ci} must be a non-empty list of rows",
                                "e.g. [[\"p\",\"t\"],[\"m\",\"n\"]]")
            cols.append([_strings(row, f"table {ti} column {ci} row {ri}") for ri, row in enumerate(col)])
        out_tables.append(cols)
    sets = obj.get("sets", [])
    if not isinstance(sets, list):
        raise UserError("template: sets must be a list of lists of graphemes", "e.g. [[\"a\",\"e\",\"i\"]]")
    sets = [_strings(s, f"set {i}") for i, s in enumerate(sets)]
    placeholder = obj.get("metadata_placeholder", "Language X")
    if not isinstance(placeholder, str):
        raise UserError("template: metadata_placeholder must be a string", "e.g. \"Language X\"")
    return Template(str(obj.get("problem", "")), out_tables, sets, _strings(obj.get("fixed", []), "fixed"),
                    _strings(obj.get("problemese", []), "problemese"), _strings(obj.get("metadata", []), "metadata"),
                    placeholder, str(obj.get("note", "")))


def read_json_file(path: Path | str, what: str):
    """Parse a JSON file; a missing file or broken JSON is a one-line :class:`UserError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} {p} does not exist", "check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {what} {p}: {e.__class__.__name__}", "pass a readable UTF-8 JSON file") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        line = getattr(e, "lineno", "?")
        raise UserError(f"{what} {p} is not valid JSON (line {line})", "fix the file's JSON syntax") from None


def load_template(path: Path | str, check: bool = True) -> Template:
    """Read a template file (JSON; the format is :class:`Template`'s fields) and, unless ``check=False``,
    refuse one with ambiguities (:func:`validate_template`) in one line."""
    tpl = template_from_json(read_json_file(path, "template"))
    if check:
        problems = [p for p in validate_template(tpl) if p.severity == "error"]
        if problems:
            raise UserError(f"template {path}: {problems[0].message}" +
                            (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                            "run `paperlab lingoly validate --template FILE` for the full list")
    return tpl


# ------------------------------------------------------------------ validation


@dataclass(frozen=True)
class Issue:
    severity: str   # "error" (obfuscation would be ambiguous or not a bijection) | "warning"
    kind: str
    message: str


def validate_template(tpl: Template, texts: Iterable[str] = ()) -> list[Issue]:
    """Ambiguities of a template: errors make the obfuscation ill-defined, warnings only lossy.

    Errors: a grapheme listed twice (in two classes, or twice in one), an empty grapheme, a table
    whose columns differ in row shape, a key with upper-case letters (matching is on lower-cased
    text), a template with no mapping other than the identity. Warnings: graphemes where one is a
    prefix of another (greedy longest match decides: ``n`` vs ``ng``), two readings of one string
    (``rn`` + ``y`` vs. ``r`` + ``ny``: the scan takes the left one), graphemes without an upper-case
    form, and, when ``texts`` (the Problemese) are given, letters of those texts that no grapheme
    matches (copied unchanged) and graphemes that never occur.
    """
    tpl = tpl.normalised()
    issues: list[Issue] = []
    seen: dict[str, str] = {}
    for ti, t in enumerate(tpl.tables):
        shape = [len(r) for r in t[0]]
        for ci, col in enumerate(t):
            if [len(r) for r in col] != shape:
                issues.append(Issue("error", "shape", f"table {ti}: column {ci} has row lengths "
                                    f"{[len(r) for r in col]}, column 0 has {shape}"))
    places = ([(f"table {ti}", g) for ti, t in enumerate(tpl.tables) for col in t for row in col for g in row]
              + [(f"set {si}", g) for si, s in enumerate(tpl.sets) for g in s] + [("fixed", f) for f in tpl.fixed])
    for where, g in places:
        if not g:
            issues.append(Issue("error", "empty", f"{where} lists an empty grapheme"))
            continue
        if g != g.lower():
            issues.append(Issue("error", "case", f"{where}: grapheme {g!r} has upper-case letters "
                                "(matching is on lower-cased text)"))
        if g in seen:
            issues.append(Issue("error", "overlap", f"grapheme {g!r} is listed in {seen[g]} and in {where}"))
        else:
            seen[g] = where
    keys = sorted(seen)
    keyset = set(keys)
    for a in keys:
        for b in keys:
            if a != b and b.startswith(a):
                issues.append(Issue("warning", "prefix", f"grapheme {a!r} is a prefix of {b!r} "
                                    "(the longer one wins where both match)"))
            # a's tail is b's head and both readings are graphemes: a + rest = head + b
            for i in range(1, len(a)):
                tail = a[i:]
                if a != b and len(b) > len(tail) and b.startswith(tail) and a[:i] in keyset \
                        and b[len(tail):] in keyset:
                    issues.append(Issue("warning", "straddle", f"{a[:i] + b!r} reads as {a!r}+{b[len(tail):]!r} "
                                        f"or {a[:i]!r}+{b!r} (the scan takes {a!r} first)"))
    movable = {g for t in tpl.classes() if len(t) >= 2 or any(len(r) >= 2 for c in t for r in c)
               for c in t for r in c for g in r}
    for g in sorted(movable):
        if g and ud.category(g[0])[0] == "L" and g[0].upper() == g[0]:
            issues.append(Issue("warning", "caseless", f"grapheme {g!r} has no upper-case form: a capitalised "
                                "word mapped onto it loses its capital"))
    if tpl.classes() and count_mappings(tpl) == 0:
        issues.append(Issue("error", "identity", "the template allows no mapping other than the identity "
                            "(every row has one grapheme)"))
    texts = [normalise(t).lower() for t in texts]
    if texts:
        uncovered = {piece for t in texts for key, piece in scan(t, set(seen))
                     if key is None and ud.category(piece)[0] in "LM"}
        for c in sorted(uncovered):
            issues.append(Issue("warning", "unmapped", f"character {c!r} (U+{ord(c):04X}) of the Problemese "
                                "is in no grapheme: it is copied unchanged"))
        used = set()
        for t in texts:
            used |= {k for k, _ in scan(t, set(seen)) if k is not None}
        for g in keys:
            if g not in used:
                issues.append(Issue("warning", "unused", f"grapheme {g!r} never occurs in the Problemese"))
    return issues


# ------------------------------------------------------------------ permutations


def _cycle_options(n: int) -> int:
    """Non-zero cyclic shifts of n items (force_change): n - 1, or 1 (the identity) for n <= 1."""
    return n - 1 if n >= 2 else 1


def _factors(tpl: Template) -> list[int]:
    """The mixed radix of the permutation product, in the official ``itertools.product`` order (last
    factor fastest): per table the column shift, then per row one shift per column."""
    out = []
    for t in tpl.classes():
        out.append(_cycle_options(len(t)))
        out += [_cycle_options(len(row)) for row in t[0] for _ in t]
    return out


def count_mappings(tpl: Template) -> int:
    """How many distinct non-identity mappings the template allows (0 when only the identity)."""
    f = _factors(tpl)
    movable = any(len(t) >= 2 or any(len(r) >= 2 for col in t for r in col) for t in tpl.classes())
    return math.prod(f) if movable else 0


def mapping_at(tpl: Template, index: int) -> dict[str, str]:
    """The ``index``-th mapping in product order (index in ``[0, count_mappings)``).

    With increments ``inc = digit + 1`` (a cyclic shift ``p(k) = (k + inc) mod n``): one column,
    ``g_k -> g_{p(k)}``; two columns A, B (swapped), the official result of its two passes,
    ``A_m -> B_{p_1^{-1}(m)}`` and ``B_k -> A_{p_0(k)}`` (``p_0, p_1``: the row's two shifts); three or
    more columns, column ``c`` -> column ``(c + o) mod C`` with the shift of (row, column ``c``) — the
    official code reuses one shift there and can map two columns onto one, which we do not copy.
    """
    tpl = tpl.normalised()
    radix = _factors(tpl)
    digits = []
    for r in reversed(radix):
        index, d = divmod(index, r)
        digits.append(d)
    digits.reverse()
    mapping: dict[str, str] = {}
    pos = 0
    for t in tpl.classes():
        n_col = len(t)
        offset = digits[pos] + 1 if n_col >= 2 else 0
        pos += 1
        for ri in range(len(t[0])):
            n = len(t[0][ri])
            inc = [(digits[pos + c] + 1 if n >= 2 else 0) for c in range(n_col)]
            pos += n_col
            for ci, col in enumerate(t):
                target = t[(ci + offset) % n_col][ri]
                for k, g in enumerate(col[ri]):
                    if n_col == 2 and ci == 0:
                        mapping[g] = target[(k - inc[1]) % n]       # A_m -> B_{p1^-1(m)}
                    elif n_col == 2:
                        mapping[g] = target[(k + inc[0]) % n]       # B_k -> A_{p0(k)}
                    else:
                        mapping[g] = target[(k + inc[ci]) % n]      # column c, row j: rotate by its own shift
    return mapping


def sample_mappings(tpl: Template, k: int, rng: random.Random) -> list[dict[str, str]]:
    """``k`` distinct mappings (fewer when fewer exist) drawn without replacement by ``rng.sample``."""
    total = count_mappings(tpl)
    if total == 0:
        raise UserError(f"template {tpl.problem or ''}: no non-identity mapping exists".replace("  ", " "),
                        "give some set or table row at least two graphemes")
    picks = rng.sample(range(total), min(k, total))
    maps = [mapping_at(tpl, i) for i in picks]
    if any(all(a == b for a, b in m.items()) for m in maps):  # the paper's not_identical check
        raise AssertionError("an identity mapping was generated")
    return maps


def invert(mapping: Mapping[str, str]) -> dict[str, str]:
    """The inverse mapping (the template's mappings are bijections on its graphemes)."""
    inv = {v: k for k, v in mapping.items()}
    if len(inv) != len(mapping):
        raise ValueError("mapping is not injective")
    return inv


# ------------------------------------------------------------------ applying a mapping


def scan(text: str, keys: Iterable[str]) -> list[tuple[str | None, str]]:
    """Greedy left-to-right longest-match segmentation of ``text`` into (key, piece); ``None`` for
    characters no key matches (each such character is its own piece)."""
    keyset = set(keys)
    if not keyset:
        return [(None, c) for c in text]
    longest = max(len(k) for k in keyset)
    out: list[tuple[str | None, str]] = []
    i = 0
    while i < len(text):
        for n in range(min(longest, len(text) - i), 0, -1):
            piece = text[i:i + n]
            if piece in keyset:
                out.append((piece, piece))
                i += n
                break
        else:
            out.append((None, text[i]))
            i += 1
    return out


def apply_mapping(text: str, mapping: Mapping[str, str]) -> str:
    """Obfuscate one span of Problemese: NFD, lower-case scan, longest match first, case restored on
    the first character of each replacement; unmapped characters are copied as they were."""
    text = normalise(text)
    lower = text.lower()
    if len(lower) != len(text):  # a character whose lower case has another length (rare): scan per char
        return "".join(apply_mapping(c, mapping) for c in text)
    out = []
    i = 0
    for key, piece in scan(lower, mapping):
        src = text[i:i + len(piece)]
        if key is None:
            out.append(src)
        else:
            rep = mapping[key]
            if rep and src[0].isupper():
                rep = rep[0].upper() + rep[1:]
            out.append(rep)
        i += len(piece)
    return "".join(out)


# ------------------------------------------------------------------ regions of a problem


def is_word_char(c: str, extra: frozenset[str] = frozenset()) -> bool:
    """A character that belongs to a word: a letter, a combining mark, or one of ``extra``."""
    return ud.category(c)[0] in "LM" or c in extra


def words(text: str, extra: frozenset[str] = frozenset()) -> list[tuple[int, int]]:
    """Spans of maximal runs of word characters."""
    spans, start = [], None
    for i, c in enumerate(text):
        if is_word_char(c, extra):
            start = i if start is None else start
        elif start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(text)))
    return spans


def word_extra(tpl: Template) -> frozenset[str]:
    """Non-letter characters that the template's graphemes use (e.g. ``:`` for length): part of words."""
    return frozenset(c for g in tpl.normalised().graphemes() for c in g if not is_word_char(c))


def obfuscate_text(text: str, mapping: Mapping[str, str], tpl: Template, keep_marks: bool = False) -> str:
    """Obfuscate the Problemese of one field. With ``@@@`` markers, exactly the marked spans (the
    official annotation); without, every word listed in ``tpl.problemese``. Then the ``@@@``, ``$$$``
    and ``&&&`` markers are removed, their text kept; ``keep_marks`` keeps ``@@@`` around the mapped
    spans, so that :func:`apply_mapping` with the inverse mapping can undo exactly those spans."""
    marked = mark_problemese(normalise(text), tpl)
    parts = marked.split(OBF_MARK)
    if len(parts) % 2 == 0:
        raise UserError("an @@@ marker is unpaired", "mark each Problemese span as @@@text@@@")
    wrap = OBF_MARK if keep_marks else ""
    out = "".join(wrap + apply_mapping(p, mapping) + wrap if i % 2 else p for i, p in enumerate(parts))
    for m in (LANG_MARK, CULT_MARK):
        out = out.replace(m, "")
    return out


def mark_problemese(text: str, tpl: Template) -> str:
    """``text`` with its Problemese inside ``@@@`` markers: as given when it has markers, else every
    word of ``tpl.problemese`` marked."""
    if OBF_MARK in text:
        return text
    vocab = {normalise(w) for w in tpl.problemese}
    out, last = [], 0
    for a, b in words(text, word_extra(tpl)):
        if text[a:b] in vocab:
            out += [text[last:a], OBF_MARK, text[a:b], OBF_MARK]
            last = b
    return "".join(out) + text[last:]


def strip_markers(text: str) -> str:
    """Remove the annotation markers ``@@@`` (Problemese), ``$$$`` (language name), ``&&&`` (cultural term)."""
    for m in (OBF_MARK, LANG_MARK, CULT_MARK):
        text = text.replace(m, "")
    return text


def remove_metadata(text: str, terms: Sequence[str], placeholder: str = "Language X") -> str:
    """Replace every whole-word occurrence of a metadata term (language name, family, region) by
    ``placeholder`` (case-insensitive, longest terms first so "Old Norse" wins over "Norse")."""
    import re

    for term in sorted({t for t in terms if t.strip()}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(term)}(?!\w)", placeholder, text, flags=re.IGNORECASE)
    return text
