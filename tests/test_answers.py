"""Answer extraction and checking, on hand-made cases and on every gold answer of the benchmarks.

The benchmark tests take the gold answers exactly as the loaders produce them (through the
configs in conf/dataset, from the local copies in ../shared/data; skipped when absent) and
require that each one verifies against itself in every answer format a model may use, and that
nearby wrong answers do not.
"""

from __future__ import annotations

import logging
import re

import pytest

from ufo_rl.answers import check, extract_answer, is_equivalent, last_boxed, to_number

# math-verify warns on every call made with its signal-based timeouts turned off
logging.getLogger("math_verify").setLevel(logging.ERROR)

FORMATS = {
    "tag": "<think>some reasoning, 1 + 1 = 2</think> <answer>{}</answer>",
    "boxed": "Adding up, 3 + 4 = 7, so the answer is \\boxed{{{}}}.",
    "gsm8k": "Adding up, 3 + 4 = 7.\n#### {}",
}
BENCHMARKS = ["gsm8k", "gsm8k_test", "math500", "aime24", "amc23"]


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "text, expected",
    [
        # <answer> beats \boxed and ####, and a \boxed inside the tag is unwrapped
        ("\\boxed{1}\n#### 2\n<answer>3</answer>", "3"),
        ("<answer>so \\boxed{\\frac{1}{2}}</answer>", "\\frac{1}{2}"),
        ("<answer>\n  42 \n</answer>", "42"),
        # \boxed beats ####, and the last \boxed wins; braces are balanced
        ("#### 5 and then \\boxed{6}", "6"),
        ("\\boxed{1} no, \\boxed{\\frac{a}{b^{2}}}", "\\frac{a}{b^{2}}"),
        ("\\fbox{9}", "9"),
        # the last tag wins (models restate the format before answering)
        ("use <answer>...</answer> tags. <answer>12</answer>", "12"),
        # the last ####, and only the rest of its line
        ("#### 12\nwait, recount\n#### 13", "13"),
        ("#### 1,234\nThat is the answer.", "1,234"),
        # otherwise the last number
        ("she has 3 apples, then 1,024.5 pears", "1,024.5"),
        ("it is -7", "-7"),
    ],
)
def test_extraction_order(text, expected):
    assert extract_answer(text) == expected


def test_no_fallback_without_a_marker():
    assert extract_answer("it is 7 apples", fallback_last_number=False) is None
    assert extract_answer("no digits here") is None
    assert extract_answer("#### 7", fallback_last_number=False) == "7"
    # an unclosed tag or box is not an answer: fall through to the next rule
    assert extract_answer("<answer>4", fallback_last_number=False) is None
    assert extract_answer("\\boxed{4 and more", fallback_last_number=True) == "4"


def test_last_boxed_balances_braces():
    assert last_boxed("\\boxed{\\left\\{1,2\\right\\}}") == "\\left\\{1,2\\right\\}"
    assert last_boxed("\\boxed{{a}{b}}") == "{a}{b}"
    assert last_boxed("nothing") is None


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("1,234", "1234"),
        ("1234", "1,234"),
        ("$18", "18"),
        ("\\$18", "18"),
        ("\\$32,\\!348", "32348"),  # MATH writes money like this
        ("$ 18.00", "18"),
        ("72.0", "72"),
        ("18.", "18"),
        ("18 dollars", "18"),
        ("18 apples.", "18"),
        ("\\text{18 dollars}", "18"),
        ("18%", "18"),
        ("025", "25"),  # AIME answers are zero-padded
        ("-3", "-3"),
        ("0.5", "\\frac{1}{2}"),
        ("\\frac12", "\\frac{1}{2}"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("90", "90^\\circ"),
        ("Evelyn", "\\text{Evelyn}"),
        ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("-2+7i", "-2 + 7i"),
        ("3,5,7", "3, 5, 7"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
    ],
)
def test_equivalent(pred, gold):
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("73", "72"),
        ("-3", "3"),
        ("12", "12.5"),
        ("1,23", "123"),  # not a thousands grouping
        ("1 234", "1234"),
        ("18 dollars and 5 cents", "18"),
        ("\\frac{1}{3}", "\\frac{1}{2}"),
        ("(3, \\pi)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("Alice", "\\text{Evelyn}"),
        ("", "18"),
        ("   ", "18"),
        (None, "18"),
        ("\\frac{", "\\frac{1}{2}"),  # unparsable: wrong, not an exception
    ],
)
def test_not_equivalent(pred, gold):
    assert not is_equivalent(pred, gold)


def test_to_number():
    assert to_number("$1,234.00") == 1234.0
    assert to_number("\\$32,\\!348") == 32348.0
    assert to_number("18 dollars") == 18.0
    assert to_number("\\frac{1}{2}") is None
    assert to_number("x=5") is None


def test_check_returns_the_extracted_answer():
    assert check("<answer>1,000</answer>", "1000") == ("1,000", True)
    assert check("I think 7", "8") == ("7", False)
    assert check("I think 8", "8", fallback_last_number=False) == (None, False)


# --------------------------------------------------------------------------- real gold answers


def _plus_one(gold: str) -> str | None:
    n = to_number(gold)
    if n is None:
        return None
    return str(int(n) + 1) if n.is_integer() else str(n + 1)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_gold_answer_verifies_against_itself(name, shared_problems):
    failures = [
        (p.id, fmt, p.answer)
        for p in shared_problems(name)
        for fmt, template in FORMATS.items()
        if not check(template.format(p.answer), p.answer)[1]
    ]
    assert not failures, failures[:10]


def _same_answer(a: str, b: str) -> bool:
    """Equal as written, as numbers ("025" and "25"), or up to a variable name: ``x=5`` and
    ``5`` are the same answer to math-verify (and to a grader)."""
    na, nb = to_number(a), to_number(b)
    if na is not None and na == nb:
        return True
    def strip(s):
        return re.sub(r"^[a-z]\s*=\s*", "", s.replace(" ", ""))

    return strip(a) == strip(b)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_perturbed_gold_answers_fail(name, shared_problems):
    problems = shared_problems(name)
    golds = [p.answer for p in problems]
    failures = []
    for i, gold in enumerate(golds):
        wrong = _plus_one(gold)
        if wrong is None:  # LaTeX answers: an added term changes the value
            wrong = f"{gold}+1"
        if check(FORMATS["tag"].format(wrong), gold)[1]:
            failures.append(("perturbed", gold, wrong))
        # the next different answer in the set
        j = (i + 1) % len(golds)
        while _same_answer(golds[j], gold):
            j = (j + 1) % len(golds)
        if check(FORMATS["boxed"].format(golds[j]), gold)[1]:
            failures.append(("other row", gold, golds[j]))
    assert not failures, failures[:10]


def test_math500_solutions_check_against_their_answers(shared_problems):
    """MATH's worked solutions end in \\boxed{answer}: extraction from real text must agree."""
    failures = [
        (p.id, p.answer) for p in shared_problems("math500") if not check(p.solution, p.answer)[1]
    ]
    assert not failures, failures[:10]


def test_gsm8k_solutions_check_against_their_answers(shared_problems):
    for name in ("gsm8k", "gsm8k_test"):
        failures = [
            (p.id, p.answer) for p in shared_problems(name) if not check(p.solution, p.answer)[1]
        ]
        assert not failures, failures[:10]


def test_runaway_prediction_is_cut_off(monkeypatch):
    """``10!!`` is factorial(3628800): sympy would work for hours without math-verify's limit."""
    import time

    from ufo_rl import answers

    monkeypatch.setattr(answers, "TIMEOUT_SECONDS", 1)
    answers._math_verify.cache_clear()
    start = time.perf_counter()
    assert not is_equivalent("10!!", "\\frac{1}{2}")
    assert time.perf_counter() - start < 8
