"""Final-answer extraction and checking.

Extraction looks, in order, for ``<answer>...</answer>`` (the R1 format the paper trains
with), ``\\boxed{...}`` (MATH), ``#### ...`` (GSM8K), and, only when ``fallback_last_number`` is
on, the last number in the text. Each rule takes the *last* match, since models restate the
question before answering.

Checking reads both answers as numbers when it can and compares them by the numeric rule below,
without math-verify; anything that is not one number on both sides (``\\sqrt{2}``, ``\\pi``,
``90^\\circ``, tuples, sets, text) goes to ``math-verify`` (symbolic equality of LaTeX or
expressions, whose own numeric comparison rounds to 6 decimal places).

Numbers read (:func:`read_number`), each read *exactly* as a rational (``fractions.Fraction``
through ``decimal.Decimal``, never through a float):

- a plain number with an optional sign, thousands commas (``1,234``, strict groups of three:
  ``1,23`` is not a number), ``$`` / ``\\$``, ``%`` (``18%`` reads 18) and one trailing unit
  word of two or more letters (``18 dollars``, ``5.4 cm``, ``500kg``); a single letter is a
  variable, not a unit, and a function name is not one either (``5x``, ``2i``, ``3k``, ``3pi``
  are not numbers);
- e-notation: ``2.5e3``, ``4.5E-7``;
- a power of ten: ``4.5 \\times 10^{33}``, ``4.5 \\cdot 10^{33}``, ``4.5 x 10^33``, ``4.5*10^33``;
- a fraction of integers: ``5/2``, ``-(1/3)``, ``\\frac{5}{2}``, ``\\dfrac{5}{2}``,
  ``\\tfrac{5}{2}``, ``\\frac52``, ``-\\frac{1}{3}``.

Exponents beyond +-1000 are not read here (math-verify, with its time limit, decides).

**The numeric rule.** Two numbers are equal when they are the same rational number; in addition,
a decimal written with ``d >= 1`` digits after the point (for e-notation, of the number it
writes: ``1.67e-1`` has 3) and at least 3 significant digits equals a value that cannot be
written exactly with 6 or fewer digits after the point (a repeating fraction such as 1/6, or a
decimal that is itself rounded, such as 0.1666666667) when it is that value rounded half away
from zero to ``d`` digits. Before comparing, a decimal written with digits after the point and
more than 15 significant digits is read at 15 (the precision of a binary double: ``0.1 + 0.2``
prints as ``0.30000000000000004``).

Why: an exact answer has to be given exactly (``73`` is not ``72.6``, ``12.3`` is not
``12.25``, ``0`` is not ``0.4``, ``0.0156`` is not ``1/64 = 0.015625``), while a value that has no
short decimal form can only be written rounded, and then a correct rounding with a useful
precision is right (``0.1667``, ``0.167`` and ``0.166667`` are 1/6 and 0.1666666667) and an
incorrect or coarse one is not (``0.1666`` truncates, ``0.17`` and ``0.2`` keep fewer than 3
significant digits). Integers (``d = 0``) are never roundings. The 6 digits follow math-verify's
default ``float_rounding=6``, the precision at which it already treats a number as rounded; the
symbolic fallback itself compares numbers at 6 decimal places, so there ``0.1667`` does not
match ``\\frac{\\sqrt{3}}{3} \\cdot \\frac{1}{\\sqrt{12}}`` while ``0.166667`` does.
"""

from __future__ import annotations

import math
import re
import string
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction
from functools import lru_cache

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# the rest of the line after "####" (a model may keep writing after its answer line)
GSM8K_MARK = re.compile(r"####[ \t]*([^\n]*)")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")

# An unsigned decimal: strict thousands groups, or plain digits, with an optional fraction.
_DECIMAL = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
# One number in any of the forms the module docstring lists; the named groups say which.
NUMBER_FORM = re.compile(
    r"(?P<sign>[+-]?)(?:"
    r"\\[dt]?frac\s*(?:\{\s*(?P<fn>[+-]?\d+)\s*\}|(?P<fn1>\d))"
    r"\s*(?:\{\s*(?P<fd>[+-]?\d+)\s*\}|(?P<fd1>\d))"
    r"|\(\s*(?P<pn>[+-]?\d+)\s*/\s*(?P<pd>\d+)\s*\)"
    r"|(?P<sn>\d+)/(?P<sd>\d+)"
    rf"|(?P<mant>{_DECIMAL})(?:"
    r"\s*(?:\\times|\\cdot|×|·|\*|x)\s*10\s*\^\s*(?:\{\s*(?P<texp>[+-]?\d+)\s*\}|(?P<texp1>[+-]?\d+))"
    r"|[eE](?P<eexp>[+-]?\d+))?"
    r")"
)
# words that are mathematics, not units, after a number: "3pi" is not 3
NOT_UNITS = {"pi", "sqrt", "ln", "log", "exp", "sin", "cos", "tan", "cot", "sec", "csc", "mod"}
MAX_EXPONENT = 1000
# a rounded decimal must keep this many significant digits; the value it rounds must need more
# than ROUNDED_PLACES digits after the point; decimals beyond FLOAT_DIGITS significant digits are
# float output (see the module docstring)
MIN_SIGNIFICANT = 3
ROUNDED_PLACES = 6
FLOAT_DIGITS = 15


@dataclass(frozen=True)
class Number:
    """A number read exactly: its ``value``, and for a decimal (plain, e-notation or a power of
    ten) the ``decimal`` as written; ``decimal`` is None for a fraction."""

    value: Fraction
    decimal: Decimal | None = None


def form_number(m: re.Match) -> Number | None:
    """The exact value of a :data:`NUMBER_FORM` match; None for a zero denominator or an
    exponent beyond +-``MAX_EXPONENT``."""
    negative = m.group("sign") == "-"
    g = m.groupdict()
    for num, den in (("fn", "fd"), ("pn", "pd"), ("sn", "sd")):
        n = g[num] if g[num] is not None else g.get(num + "1")
        d = g[den] if g[den] is not None else g.get(den + "1")
        if n is not None and d is not None:
            if int(d) == 0:
                return None
            value = Fraction(int(n), int(d))
            return Number(-value if negative else value)
    exp = g["texp"] or g["texp1"] or g["eexp"] or "0"
    if abs(int(exp)) > MAX_EXPONENT:
        return None
    text = ("-" if negative else "") + g["mant"].replace(",", "") + "e" + exp
    try:
        d = Decimal(text)
        return Number(Fraction(d), d)
    except (InvalidOperation, ValueError):  # pragma: no cover (the pattern admits only digits)
        return None


def decimal_text(d: Decimal) -> str:
    """A decimal written out in full, without exponent or trailing zeros: 2.5e3 -> "2500"."""
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def join_digits(text: str) -> str:
    """Undo how LaTeX spaces digits: ``\\!`` (and the spaces after it; MATH writes
    ``11,\\! 111,\\! 100``) and ``\\,`` between digits go, a Unicode minus becomes ``-``."""
    t = re.sub(r"\\!\s*", "", text)
    return re.sub(r"(?<=\d)\\,(?=\d)", "", t).replace("\u2212", "-")


def _clean(text: str) -> str:
    """Drop what only dresses a number: ``$``, ``\\$``, LaTeX digit spacing (:func:`join_digits`),
    ``\\%`` as ``%``, and a ``\\text{...}`` around the whole answer."""
    # "\\$" before "$": removing "$" first would leave a stray backslash ("\\$36" -> "\\36")
    t = join_digits(text.strip().replace("\\$", "").replace("$", "").replace("\\%", "%")).strip()
    return re.sub(r"^\\(?:text|textrm|mathrm|mbox)\{(.*)\}$", r"\1", t).strip()


def read_number(text: str) -> Number | None:
    """``text`` as one number in a form the module docstring lists, exactly; else None.

    >>> read_number("$1,234.00").value, read_number("2.5e3").value, read_number("-(1/3)").value
    (Fraction(1234, 1), Fraction(2500, 1), Fraction(-1, 3))
    >>> read_number("4.5 \\\\times 10^{33}").value == 45 * 10**32, read_number("\\\\dfrac{5}{2}").value
    (True, Fraction(5, 2))
    >>> [read_number(t) for t in ("12:50", "1,23", "5x", "\\\\sqrt{2}", "5/0")]
    [None, None, None, None, None]
    """
    t = _clean(text)
    t = t[:-1].rstrip() if t.endswith(".") else t
    if t[-1:] in ("%", "°"):
        t = t[:-1].rstrip()
    else:  # a trailing unit word, found by a scan from the end (a regex would be quadratic here)
        start = len(t)
        while start and t[start - 1] in string.ascii_letters:
            start -= 1
        unit = t[start:]
        if unit and (len(unit) < 2 or unit.lower() in NOT_UNITS):
            return None
        t = t[:start].rstrip()
    form = NUMBER_FORM.fullmatch(t)
    return form_number(form) if form else None


def to_number(text: str) -> float | None:
    """:func:`read_number` as a float (for display and callers that need one), else None.

    >>> to_number("$1,234.00"), to_number("18 dollars"), to_number("5/2"), to_number("x=5")
    (1234.0, 18.0, 2.5, None)
    """
    n = read_number(text)
    if n is None:
        return None
    try:
        return float(n.value)
    except OverflowError:
        return None


def plain_number(text: str) -> str | None:
    """A number written as a decimal (plain, e-notation, a power of ten), written out exactly
    and plainly ("$1,234.00" -> "1234", "2.5e3" -> "2500", "18.90" -> "18.9"); None for a
    fraction or anything that is not a number.

    >>> plain_number("$1,234.00"), plain_number("2.5e3"), plain_number("5/2"), plain_number("x")
    ('1234', '2500', None, None)
    """
    n = read_number(text)
    return None if n is None or n.decimal is None else decimal_text(n.decimal)


def _as_compared(n: Number) -> tuple[Fraction, int | None, int]:
    """(value, digits after the point, significant digits) as the numeric rule compares them:
    a decimal with digits after the point beyond ``FLOAT_DIGITS`` significant digits is read at
    that many; a fraction has no digits after the point (None) and no significant digits."""
    d = n.decimal
    if d is None:
        return n.value, None, 0
    _, digits, exponent = d.as_tuple()
    significant = len("".join(map(str, digits)).lstrip("0"))
    if exponent < 0 and significant > FLOAT_DIGITS:
        with localcontext() as ctx:
            ctx.prec = FLOAT_DIGITS
            d = +d
        _, digits, exponent = d.as_tuple()
        significant = len("".join(map(str, digits)).lstrip("0"))
    return Fraction(d), -exponent, significant


def _round_half_away(x: Fraction, places: int) -> Fraction:
    n = math.floor(abs(x) * 10**places + Fraction(1, 2))
    return Fraction(n if x >= 0 else -n, 10**places)


def numbers_equal(a: Number, b: Number) -> bool:
    """The numeric rule of the module docstring, either way round.

    >>> from fractions import Fraction as F
    >>> numbers_equal(Number(F(1, 6)), read_number("0.1667")), numbers_equal(Number(F(1, 6)), read_number("0.17"))
    (True, False)
    """
    va, places_a, sig_a = _as_compared(a)
    vb, places_b, sig_b = _as_compared(b)
    if va == vb:
        return True
    for r, places, sig, x in ((va, places_a, sig_a, vb), (vb, places_b, sig_b, va)):
        if (
            places is not None
            and places >= 1
            and sig >= MIN_SIGNIFICANT
            and (x * 10**ROUNDED_PLACES).denominator != 1
            and _round_half_away(x, places) == r
        ):
            return True
    return False


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def extract_answer(text: str, fallback_last_number: bool = True) -> str | None:
    """The final answer in a completion, or None when there is none.

    >>> extract_answer("<think>2+2</think> <answer> 4 </answer>")
    '4'
    >>> extract_answer("so \\\\boxed{\\\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    >>> extract_answer("She pays 3 * 4 = 12\\n#### 12")
    '12'
    >>> extract_answer("it is 7 apples", fallback_last_number=False) is None
    True
    """
    tags = ANSWER_TAG.findall(text)
    if tags:
        inner = tags[-1].strip()
        boxed = last_boxed(inner)
        return (boxed if boxed is not None else inner).strip()
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    marks = [m.strip() for m in GSM8K_MARK.findall(text) if m.strip()]
    if marks:
        return marks[-1]
    if fallback_last_number:
        nums = NUMBER.findall(text)
        if nums:
            return nums[-1]
    return None


# Seconds math-verify may spend on one parse or comparison. A model can write "10!!" or
# "9^{9^{9}}", which sympy would evaluate for hours. math-verify enforces the limit with
# signal.alarm, which works only on the main thread; elsewhere it runs unbounded (its own advice).
TIMEOUT_SECONDS = 3


def _timeout() -> int | None:
    return TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=65536)
def _math_verify(gold: str, pred: str) -> bool:
    from math_verify import parse, verify

    limit = _timeout()

    def p(s: str):
        s = s.strip()
        parsed = parse(s if "$" in s else f"${s}$", parsing_timeout=limit)
        return parsed or parse(s, parsing_timeout=limit)

    g, a = p(gold), p(pred)
    if not g or not a:
        return False
    return bool(verify(g, a, timeout_seconds=limit))


def is_equivalent(pred: str | None, gold: str) -> bool:
    """True when the predicted final answer equals the gold one.

    When both read as numbers (:func:`read_number`: plain, e-notation, powers of ten, fractions)
    they are compared by the module's numeric rule, without math-verify: equal as rationals, or
    the decimal one (``d >= 1`` digits after the point, at least 3 significant) is the other
    rounded half away from zero to ``d`` digits, where the other cannot be written with 6 or
    fewer digits after the point. Anything else is decided by math-verify; an answer it cannot
    parse is wrong.

    >>> is_equivalent("1,234", "1234"), is_equivalent("72.0", "72"), is_equivalent("73", "72")
    (True, True, False)
    >>> is_equivalent("4.5 \\\\times 10^{33}", "4.5e33"), is_equivalent("\\\\frac{5}{2}", "2.5")
    (True, True)
    >>> is_equivalent("0.1667", "0.1666666667"), is_equivalent("0.17", "1/6"), is_equivalent("0", "0.4")
    (True, False, False)
    """
    if pred is None or not pred.strip():
        return False
    a, b = read_number(pred), read_number(gold)
    if a is not None and b is not None:
        return numbers_equal(a, b)
    try:
        return _math_verify(gold, pred)
    except Exception:  # noqa: BLE001  (math-verify raises on unparsable input: a wrong answer)
        return False


def check(completion: str, gold: str, fallback_last_number: bool = True) -> tuple[str | None, bool]:
    """Extract the answer from ``completion`` and compare it with ``gold``: (extracted, correct)."""
    pred = extract_answer(completion, fallback_last_number)
    return pred, is_equivalent(pred, gold)
