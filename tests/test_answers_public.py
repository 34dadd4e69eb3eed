"""The numeric rule and the ``number`` extraction on the public benchmarks' own gold answers.

The gold answers come from the local copies in ../shared/data, read through the configs in
conf/dataset (the ``shared_problems`` / ``shared_data`` fixtures of tests/conftest.py); every test
here skips when that folder is absent. Values are compared as ``fractions.Fraction``, never as
floats, so nothing depends on floating-point last bits.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from fractions import Fraction

import pytest

from ufo_rl.answers import check, is_equivalent, read_number
from ufo_rl.data.loaders import load_problems_with_report
from ufo_rl.data.values import _extract_gsm8k, _extract_number
from ufo_rl.export import boxed

logging.getLogger("math_verify").setLevel(logging.ERROR)

# the `number` extraction before it refused anything: the last run of digits, commas removed
OLD_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
NUMERIC = ["gsm8k", "gsm8k_test", "math500", "aime24", "amc23"]


def _old_number(text: str) -> str | None:
    nums = OLD_NUMBER.findall(text)
    return nums[-1].replace(",", "") if nums else None


def _rows(path):
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- written forms


def _terminates(v: Fraction) -> bool:
    d = v.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def _decimal(v: Fraction) -> Decimal:
    """A terminating value as an exact Decimal."""
    places = 0
    while (v * 10**places).denominator != 1:
        places += 1
    return Decimal(int(v * 10**places)).scaleb(-places)


def _rounded(v: Fraction, places: int, truncate: bool = False) -> str:
    """``v`` written with ``places`` digits after the point, rounded half away from zero or cut."""
    scaled = abs(v) * 10**places
    n = int(scaled) if truncate else int(scaled + Fraction(1, 2))
    digits = str(n).rjust(places + 1, "0")
    return ("-" if v < 0 else "") + digits[:-places] + "." + digits[-places:]


def equivalent_forms(v: Fraction) -> list[str]:
    """``v`` written in the other forms the checker reads: fractions, e-notation, powers of ten,
    and for a value with no short decimal form its correct rounding to 6 and 4 digits."""
    p, q = v.numerator, v.denominator
    forms = [f"{p}/{q}", f"\\frac{{{p}}}{{{q}}}", f"\\dfrac{{{p}}}{{{q}}}"] if q != 1 else [f"{p}/1"]
    if _terminates(v):
        mantissa, exponent = format(_decimal(v).normalize(), "e").split("e")
        forms += [f"{mantissa}e{exponent}", f"{mantissa} \\times 10^{{{int(exponent)}}}",
                  f"{mantissa}E{exponent}"]
    elif abs(v) >= Fraction(1, 10):  # 0.0xyz rounded to 4 digits would keep < 3 significant
        forms += [_rounded(v, 6), _rounded(v, 4)]
    return forms


def wrong_forms(v: Fraction) -> list[str]:
    """Near misses: off by one, ten times larger, and for a value with no short decimal form a
    truncation and a rounding that keeps too few significant digits."""
    forms = []
    for w in (v + 1, v * 10 if v else Fraction(1)):
        forms.append(f"{w.numerator}/{w.denominator}")
        if _terminates(w):
            mantissa, exponent = format(_decimal(w).normalize(), "e").split("e")
            forms.append(f"{mantissa} \\times 10^{{{int(exponent)}}}")
    if not _terminates(v):
        cut, near = _rounded(v, 6, truncate=True), _rounded(v, 6)
        if cut != near:
            forms.append(cut)
        if Fraction(1, 10) <= abs(v) < 1:
            forms.append(_rounded(v, 1))  # one significant digit
    return forms


@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_golds_in_equivalent_forms(name, shared_problems):
    """Every gold answer that is one number checks equal to itself written as a fraction, in
    e-notation, as a power of ten, or correctly rounded; near misses do not."""
    numeric = [(p.id, p.answer, read_number(p.answer).value) for p in shared_problems(name)
               if read_number(p.answer) is not None]
    assert len(numeric) >= {"math500": 300}.get(name, len(shared_problems(name)))
    misses = [(pid, gold, form) for pid, gold, v in numeric for form in equivalent_forms(v)
              if not is_equivalent(form, gold)]
    assert not misses, misses[:10]
    false = [(pid, gold, form) for pid, gold, v in numeric for form in wrong_forms(v)
             if is_equivalent(form, gold)]
    assert not false, false[:10]


def test_equivalent_forms_cover_the_rule():
    """The form writers above produce what they promise (so the test above tests something)."""
    assert equivalent_forms(Fraction(5, 2)) == ["5/2", "\\frac{5}{2}", "\\dfrac{5}{2}", "2.5e+0",
                                                "2.5 \\times 10^{0}", "2.5E+0"]
    assert equivalent_forms(Fraction(1, 6))[-2:] == ["0.166667", "0.1667"]
    assert wrong_forms(Fraction(1, 6))[-2:] == ["0.166666", "0.2"]
    assert equivalent_forms(Fraction(4500))[-3] == "4.5e+3"


# --------------------------------------------------------------------------- MATH-500


def test_math500_golds_check_against_themselves_and_their_export(shared_problems):
    """Each gold equals itself and the ``\\boxed{}`` the exports write for it (ufo_rl/export.py)."""
    failures = [(p.id, p.answer) for p in shared_problems("math500")
                if not is_equivalent(p.answer, p.answer) or not check(boxed(p.answer), p.answer)[1]]
    assert not failures, failures[:10]


def test_number_extraction_on_math500_answers(shared_data, shared_problems, dataset_config):
    """MATH-500's answer column read by ``number``: what it keeps is right, the rest is refused.

    Before, the last run of digits was taken from every answer, silently wrong for 152 of them
    (``\\frac{14}{3}`` -> 3, ``3\\sqrt{13}`` -> 13, ``(3, 4]`` -> 4); now 397 are read (each equal
    to the gold) and 103 are skipped and counted: 92 whose last number does not stand alone and
    11 with no digit at all (``\\pi``, ``\\text{Evelyn}``).
    """
    path = shared_data / "math500" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"reference file not found: {path}")
    gold = {p.id: p.answer for p in shared_problems("math500")}
    cfg = dataset_config("math500", kind="jsonl", path=str(path), answer_extraction="number",
                         on_bad_answer="skip")
    problems, report = load_problems_with_report(cfg)
    wrong = [(p.id, p.answer, gold[p.id]) for p in problems if not is_equivalent(p.answer, gold[p.id])]
    assert not wrong, wrong[:10]
    assert (len(problems), report["skipped_bad_answer"]) == (397, 103)
    before = [r["answer"] for r in _rows(path)]
    misread = [a for a in before if _old_number(a) is not None and not is_equivalent(_old_number(a), a)]
    assert len(misread) == 152


# --------------------------------------------------------------------------- GSM8K


@pytest.mark.parametrize("name", ["gsm8k", "gsm8k_test"])
def test_gsm8k_golds_are_one_plain_number(name, shared_problems):
    """Every GSM8K gold (``gsm8k`` extraction) is one plain decimal number, standing alone."""
    bad = [(p.id, p.answer) for p in shared_problems(name)
           if (n := read_number(p.answer)) is None or n.decimal is None or _extract_number(p.answer) != p.answer]
    assert not bad, bad[:10]


@pytest.mark.parametrize("split", ["train", "test"])
def test_number_extraction_on_gsm8k_answers(split, shared_data):
    """GSM8K's answer column read by ``number`` gives the ``####`` answer for every row: none is
    refused now, and none was misread before (its last line is always ``#### <number>``)."""
    path = shared_data / "gsm8k" / f"{split}.jsonl"
    if not path.is_file():
        pytest.skip(f"reference file not found: {path}")
    texts = [r["answer"] for r in _rows(path)]
    gold = [_extract_gsm8k(t) for t in texts]
    refused = []
    for t, g in zip(texts, gold):
        try:
            if _extract_number(t) != g:
                refused.append((t[-40:], g))
        except ValueError as e:
            refused.append((t[-40:], str(e)))
    assert not refused, refused[:10]
    assert sum(_old_number(t) != g for t, g in zip(texts, gold)) == 0
