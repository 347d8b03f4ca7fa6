"""Rule-based answer checking (START scores Hint-infer trajectories with rule-based checks; CoRT uses
``math_verify``).

- :func:`extract_answer` — the last ``\\boxed{...}`` (balanced braces), else "the answer is X", else
  the last number of the text (lenient, as common GSM8K harnesses; the rule used is returned).
- :func:`is_equivalent` — ``math_verify.verify`` when the package is installed; otherwise a documented
  fallback: normalise LaTeX (``\\frac``, ``\\sqrt``, ``\\pi``, ``^``, ``\\cdot``, thousands separators,
  ``\\text{}``, ``$``, a trailing unit word or ``%``), compare integers exactly and other numbers to a relative 1e-9, then as
  sympy expressions (``simplify(a - b) == 0`` on short inputs), then as normalised strings.

math-verify is not a project dependency yet; the fallback covers integers, decimals, fractions, simple
radicals and symbolic expressions (enough for GSM8K, AMC/AIME integers and most MATH-500 answers; tuples,
intervals and sets are compared as normalised strings only).
"""

from __future__ import annotations

import functools
import math
import re

_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces, or None."""
    best = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            best = text[m.end(): i - 1]
    return best.strip() if best is not None else None


def extract_answer(text: str) -> tuple[str | None, str]:
    """``(answer, rule)``: rule is ``"boxed"``, ``"answer_is"``, ``"last_number"`` or ``"none"``."""
    b = last_boxed(text)
    if b is not None:
        return b, "boxed"
    m = list(re.finditer(r"answer is[:\s]*\$?([^\n$]+)", text, flags=re.IGNORECASE))
    if m:
        nums = _NUM.findall(m[-1].group(1))
        if nums:
            return nums[0], "answer_is"
    nums = _NUM.findall(text)
    if nums:
        return nums[-1], "last_number"
    return None, "none"


def normalise(ans: str) -> str:
    """A canonical string form of a LaTeX/plain answer (see the module docstring)."""
    s = str(ans).strip().strip("$").strip()
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s)
    s = re.sub(r"\\(?:mathrm|mathbf|textbf)\{([^}]*)\}", r"\1", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("\\!", "").replace("\\,", "").replace("\\ ", "").replace("^\\circ", "").replace("^{\\circ}", "")
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "")
    s = re.sub(r"(\d),(\d{3})(?!\d)", r"\1\2", s)
    s = re.sub(r"(\d),(\d{3})(?!\d)", r"\1\2", s)
    s = re.sub(r"\s*(dollars?|cents?|units?|meters?|miles?|hours?|minutes?|degrees?|cm|km|kg|m)\s*$", "", s)
    s = s.rstrip(".").strip()
    return s.replace(" ", "")


def _to_number(s: str) -> float | None:
    t = s
    m = re.fullmatch(r"\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", t) or re.fullmatch(r"(-?[\d.]+)/(-?[\d.]+)", t)
    try:
        if m:
            return float(m.group(1)) / float(m.group(2))
        return float(t)
    except (ValueError, ZeroDivisionError):
        return None


def _latex_to_sympy_text(s: str) -> str:
    t = s
    for _ in range(3):
        t = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", t)
        t = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", t)
    t = re.sub(r"\\sqrt(\d+)", r"sqrt(\1)", t)
    t = t.replace("\\pi", "pi").replace("\\cdot", "*").replace("\\times", "*").replace("^", "**")
    t = t.replace("{", "(").replace("}", ")")
    return t


@functools.lru_cache(maxsize=4096)
def _sympy_equal(a: str, b: str) -> bool:
    if len(a) > 80 or len(b) > 80 or "\\" in a + b:
        return False
    try:
        import sympy
        from sympy.parsing.sympy_parser import (
            implicit_multiplication_application,
            parse_expr,
            standard_transformations,
        )
    except ImportError:  # the string comparison stays
        return False
    tr = (*standard_transformations, implicit_multiplication_application)
    try:
        ea, eb = parse_expr(a, transformations=tr, evaluate=True), parse_expr(b, transformations=tr, evaluate=True)
        return bool(sympy.simplify(ea - eb) == 0)
    except Exception:  # noqa: BLE001 - any parse/simplify failure means "not shown equal"
        return False


def _fallback_equal(pred: str, gold: str) -> bool:
    a, b = normalise(pred), normalise(gold)
    if not a or not b:
        return False
    if a == b:
        return True
    if re.fullmatch(r"-?\d+", a) and re.fullmatch(r"-?\d+", b):
        return int(a) == int(b)  # exact: floats would call 999999 and 1000000 close
    x, y = _to_number(a), _to_number(b)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    return _sympy_equal(_latex_to_sympy_text(a), _latex_to_sympy_text(b))


def checker_name() -> str:
    """Which checker :func:`is_equivalent` uses here (recorded with results)."""
    try:
        import math_verify  # noqa: F401
    except ImportError:
        return "fallback (normalised LaTeX, numeric, sympy)"
    return "math_verify"


def is_equivalent(pred: str | None, gold: str) -> bool:
    """Is the predicted answer mathematically equal to the gold one?"""
    if pred is None or not str(pred).strip():
        return False
    try:
        from math_verify import parse, verify
    except ImportError:
        return _fallback_equal(str(pred), str(gold))
    try:
        g, p = parse(f"${gold}$"), parse(f"${pred}$")
        return bool(verify(g, p)) or _fallback_equal(str(pred), str(gold))
    except Exception:  # noqa: BLE001 - math_verify raises on odd input; fall back
        return _fallback_equal(str(pred), str(gold))
