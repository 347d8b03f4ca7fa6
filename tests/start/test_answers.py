"""Answer extraction and rule-based equivalence."""

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.start.answers import extract_answer, is_equivalent, last_boxed, normalise


@settings(deadline=None)  # the first math-verify call parses its grammar (seconds)
@given(st.integers(-10**9, 10**9), st.text(alphabet="abc xyz.,", max_size=30))
def test_last_boxed_integer_roundtrip(n, noise):
    text = f"{noise} \\boxed{{0}} then {noise} \\boxed{{{n}}} {noise}"
    assert last_boxed(text) == str(n)
    assert is_equivalent(extract_answer(text)[0], str(n))
    assert not is_equivalent(extract_answer(text)[0], str(n + 1))


def test_nested_braces_and_rules():
    assert last_boxed("x \\boxed{\\frac{1}{2}} y") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{unclosed") is None
    assert extract_answer("so the answer is 42.") == ("42", "answer_is")
    assert extract_answer("we get 3 and then 17") == ("17", "last_number")
    assert extract_answer("no numbers") == (None, "none")


@settings(deadline=None)  # the first math-verify call parses its grammar (seconds)
@given(st.integers(1, 500), st.integers(1, 500))
def test_fractions_equal_in_every_form(a, b):
    f = Fraction(a, b)
    for form in (f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{a}}}{{{b}}}", f"{a}/{b}", f"{float(f):.12f}"):
        assert is_equivalent(form, f"{f.numerator}/{f.denominator}"), form


def test_latex_and_units():
    assert is_equivalent("1,817,517", "1817517")
    assert is_equivalent("\\$18", "18")
    assert is_equivalent("18 dollars", "18")
    assert is_equivalent("2\\sqrt{2}", "\\sqrt{8}")
    assert is_equivalent("\\text{(B)}", "(B)")
    assert not is_equivalent("19", "18")
    assert not is_equivalent(None, "18")
    assert not is_equivalent("", "18")
    assert normalise(" $ 1,000 $ ") == "1000"
