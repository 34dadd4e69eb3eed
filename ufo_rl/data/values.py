"""Cell values and gold answers of a dataset row: what a question, an answer or a difficulty may
be, how ``answer_extraction`` (field | gsm8k | boxed | number) reads the gold final answer, and
which fields a ``question_template`` names (ufo_rl/data/loaders.py maps rows with these).

``number`` reads the last number of the text, and only when it stands alone as ONE plain
number; otherwise it raises :class:`NotOneNumber` (the loader stops, naming the row, or skips and
counts it with ``on_bad_answer=skip``), never taking a part of something larger. The number may
be written in any form :func:`ufo_rl.answers.read_number` reads, and is kept as follows:

- a plain number as written, thousands commas removed (``1,024`` -> ``1024``, ``18.90`` stays);
- e-notation and powers of ten written out exactly as a plain decimal (``2.5e3`` -> ``2500``,
  ``4.5 \\times 10^{-3}`` -> ``0.0045``), so every reader of the gold (the checker, math-verify
  in the exports) sees the same number;
- a fraction as ``p/q`` with the sign in front, not reduced and not turned into a decimal
  (``5/2``, ``-(1/3)`` -> ``-1/3``, ``\\frac{5}{2}`` -> ``5/2``), so the checker compares it
  exactly (ufo_rl/answers.py) and 1/3 is never stored as a rounded 0.333.

The last number does not stand alone, and the row is refused, when it is part of a time or a
ratio (``12:50``, ``3:2``), of a list (``3, 5, 7``, ``1,23``), of an expression (``6 - 5i``,
``2\\sqrt{2}``, ``x^{2}``, ``52_8``, ``1/2/2020``), follows another number (``137
\\frac{1}{2}``), is glued to a single letter (``5i``, ``2k``) or followed by a function name
(``3pi``, ``3 \\pi``), is the right side of an equation in variables (``5x + 4 = 0``), or is
followed by ``!``. It may stand after ``=`` (``x = 5``, ``3 + 4 = 7``), after a label
(``Answer: 42``), with ``$`` or ``%``, before a unit word with or without a space (``18
dollars``, ``500kg``), with degrees (``90^\\circ``), and inside ``\\boxed{}`` or ``\\text{}``.
GSM8K's calculator annotations (``<<48/2=24>>``) are not part of the text.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import string
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from ufo_rl.answers import NOT_UNITS, NUMBER_FORM, decimal_text, form_number, join_digits, last_boxed
from ufo_rl.config import DatasetConfig
from ufo_rl.errors import UserError

# --------------------------------------------------------------------------- cell values


def not_a_value(value: Any) -> str | None:
    """Why ``value`` cannot be a question or a gold answer ("is null", "is NaN"...), or None.

    Text and finite numbers are values; null, NaN, +-Infinity, booleans (Python's and numpy's)
    and everything else (lists, dicts, bytes...) are not.
    """
    if value is None:
        return "is null"
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):  # numpy's too
        return f"is a boolean ({json.dumps(bool(value))}), not text or a number"
    if isinstance(value, str):
        return None
    if is_number(value):
        try:
            f = float(value)
        except (ValueError, OverflowError):  # Decimal('sNaN'), a huge Decimal
            return f"is {value}, not a finite number"
        if math.isnan(f):
            return "is NaN"
        if math.isinf(f):
            return "is Infinity" if f > 0 else "is -Infinity"
        return None
    return f"holds a {type(value).__name__}, not text or a number"


def is_number(value: Any) -> bool:
    """A number (int, float, Decimal, numpy's), booleans excluded."""
    return isinstance(value, (numbers.Real, Decimal)) and not isinstance(value, bool)


def number_text(value: Any) -> str:
    """A finite number as text: integers as such (43.0 -> "43"), others as written (2.5 -> "2.5")."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        d = Decimal(repr(float(value)))
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")  # 1e-07 -> "0.0000001"


def as_text(value: Any) -> str:
    """A valid cell as text: numbers by :func:`number_text`, text stripped."""
    return number_text(value) if is_number(value) else str(value).strip()


# --------------------------------------------------------------------------- gold answers


def _extract_field(value: Any) -> str | None:
    return as_text(value)


def _extract_gsm8k(value: Any) -> str | None:
    text = str(value)
    if "####" not in text:
        return None
    return text.rsplit("####", 1)[1].strip().replace(",", "")


def _extract_boxed(value: Any) -> str | None:
    boxed = last_boxed(str(value))
    return None if boxed is None else boxed.strip()


class NotOneNumber(ValueError):
    """The ``number`` extraction's last number does not stand alone; ``str()`` says why."""


# GSM8K's calculator annotations: "48/2 = <<48/2=24>>24"
_CALCULATOR = re.compile(r"<<[^<>\n]*>>")
# LaTeX groups a number may sit in, and commands that may stand before or after it
_GROUPS = {"boxed", "fbox", "text", "textrm", "textbf", "textit", "mathrm", "mathbf", "mbox"}
_BEFORE_OK = {"quad", "qquad", "colon", "left"}
_AFTER_OK = {"text", "textrm", "textbf", "textit", "mathrm", "mbox", "quad", "qquad", "right",
             "%", "$", ",", ";", ":", "!", " ", "\\"}
# an equation in variables on the left of "=": a coefficient (5x) or a one-letter variable
# beside an operator (x + y, y^2)
_ALGEBRA = re.compile(r"\d[a-zA-Z]|(?<![a-zA-Z\\])[a-zA-Z]\s*[-+*/^]|[-+*/^]\s*[a-zA-Z](?![a-zA-Z])")


def _ends_in(text: str, chars: str) -> bool:
    return bool(text) and text[-1] in chars


def _before(b: str, gap: bool) -> str | None:
    """Why a number cannot stand after ``b`` (the line before it, trailing spaces removed)."""
    if b.endswith("**") and not b[:-2].rstrip()[-1:].isdigit():  # markdown bold, not a power
        b, gap = b[:-2].rstrip(), True
    if not b:
        return None
    c = b[-1]
    prev = (b[:-2] if b.endswith("\\\\") else b[:-1]).rstrip()
    command = re.search(r"\\([a-zA-Z]+)$", b)
    if command:
        return None if command.group(1) in _BEFORE_OK else f"follows '\\{command.group(1)}'"
    if c.isdigit():
        return "follows another number"
    if c.isalpha():
        return None if gap else "is glued to a letter"
    if c == ":":
        return "is part of a time or ratio" if prev[-1:].isdigit() else None
    if c in ",;&" or b.endswith("\\\\"):
        if prev[-1:].isdigit() or _ends_in(prev, ")]}") or re.search(r"\\[a-zA-Z]+$|(?<![a-zA-Z])[a-zA-Z]$", prev):
            return "is one of a list of numbers (or after a misplaced thousands comma)"
        return None
    if c == "{":
        group = re.search(r"\\([a-zA-Z]+)\s*$", prev)
        if group:
            return None if group.group(1) in _GROUPS else f"is inside '\\{group.group(1)}{{...}}'"
        return "is inside a LaTeX group" if _ends_in(prev, "^_}") or prev[-1:].isalnum() else None
    if c in "([":
        command = re.search(r"\\([a-zA-Z]+)$", prev)
        if command and command.group(1) not in _BEFORE_OK:
            return f"follows '\\{command.group(1)} {c}'"
        if b[-2:-1].isalnum() or _ends_in(b[:-1], ")]}"):
            return f"follows {c!r}"
    if c in ")]}" and not gap:
        return f"follows {c!r}"
    if c in "/^_*×·÷±∓|<>≤≥≠+-":
        return f"follows {c!r}"
    if c == "=":
        left = b[:-1].rsplit("=", 1)[-1]
        return "is the right side of an equation in variables" if _ALGEBRA.search(left) else None
    return None


def _after(a: str, gap: bool) -> str | None:
    """Why a number cannot stand before ``a`` (the line after it, leading spaces removed)."""
    if a.startswith("**"):  # markdown bold
        a, gap = a[2:].lstrip(), True
    if not a:
        return None
    c = a[0]
    if c.isalpha():
        word = re.match(r"[a-zA-Z]+", a)
        if word and word.group().lower() in NOT_UNITS:
            return f"is followed by '{word.group()}'"
        return None if gap or (word and len(word.group()) > 1) else "is glued to a letter"
    if c == "\\":
        command = re.match(r"\\([a-zA-Z]+|.)", a)
        name = command.group(1) if command else ""
        return None if name in _AFTER_OK or not name else f"is followed by '\\{name}'"
    if c == "^":
        return None if re.match(r"\^\s*(?:\{\s*)?\\circ", a) else "is raised to a power"
    if c == "_":
        return "has a subscript"
    if c in "+-":
        rest = a[1:].lstrip()
        if c == "-" and re.match(r"-[a-zA-Z]{2,}", a):  # a compound word: "5-year-old"
            return None
        return f"is followed by {c!r}" if rest[:1].isalnum() or (rest and rest[0] in "\\({") else None
    if c == "!":
        return None if gap else "is followed by '!' (a factorial?)"
    if c in "({" and not gap:
        return f"is followed by {c!r}"
    if c in ",;&":
        rest = a[1:].lstrip()
        if (rest and rest[0] in "\\-+([") or re.match(r"[a-zA-Z](?![a-zA-Z])", rest):
            return "is one of a list"
    if c in "/*×·÷±∓|<>≤≥≠":
        return f"is followed by {c!r}"
    return None


def _extract_number(value: Any) -> str | None:
    """The last number of the text when it stands alone, as the module docstring says; None when
    there is no number, :class:`NotOneNumber` when it does not stand alone.

    >>> _extract_number("so x = 5/2."), _extract_number("2.5e3 apples"), _extract_number("\\\\frac{-1}{3}")
    ('5/2', '2500', '-1/3')
    >>> _extract_number("at 12:50")
    Traceback (most recent call last):
    ...
    ufo_rl.data.values.NotOneNumber: the last number '50' in 'at 12:50' is part of a time or ratio, not one plain number
    """
    if is_number(value):
        return number_text(value)
    text = join_digits(_CALCULATOR.sub(" ", str(value)))
    matches = list(NUMBER_FORM.finditer(text))
    if not matches:
        return None
    m = matches[-1]
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    end = len(text) if end < 0 else end
    # what stands next to the number on its line (200 characters hold every context rule)
    before, after = text[max(start, m.start() - 200) : m.start()], text[m.end() : min(end, m.end() + 200)]
    b, a = before.rstrip(" \t"), after.lstrip(" \t")
    why = _before(b, len(b) < len(before)) or _after(a, len(a) < len(after))
    n = form_number(m)
    if why is None and n is None:
        why = "divides by zero" if "/" in m.group() or "frac" in m.group() else "has too large an exponent"
    if why:
        shown = text[max(start, m.start() - 15) : min(end, m.end() + 15)].strip()
        raise NotOneNumber(f"the last number '{m.group().strip()}' in '{shown}' {why}, not one plain number")
    if n.decimal is None:  # a fraction: p/q, the sign in front, as written
        g = m.groupdict()
        num = next(int(g[k]) for k in ("fn", "fn1", "pn", "sn") if g[k] is not None)
        den = next(int(g[k]) for k in ("fd", "fd1", "pd", "sd") if g[k] is not None)
        sign = "-" if n.value < 0 else ""
        return f"{sign}{abs(num)}/{abs(den)}"
    if any(m.group(k) is not None for k in ("texp", "texp1", "eexp")):
        return decimal_text(n.decimal)
    return ("-" if m.group("sign") == "-" else "") + m.group("mant").replace(",", "")


EXTRACTIONS: dict[str, tuple[Callable[[Any], str | None], str]] = {
    "field": (_extract_field, "value"),
    "gsm8k": (_extract_gsm8k, "'#### <answer>' line"),
    "boxed": (_extract_boxed, "\\boxed{...}"),
    "number": (_extract_number, "number"),
}


def parse_difficulty(value: Any) -> int | None:
    """An integer level when one can be read: 3, 3.0, "3", "Level 3" -> 3; else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    m = re.search(r"-?\d+", str(value))
    return int(m.group()) if m else None


# --------------------------------------------------------------------------- question template


def template_fields(cfg: DatasetConfig) -> list[str]:
    """The field names ``cfg.question_template`` uses, in order ([] when no template is set).

    Only plain ``{name}`` fields are allowed: a positional field (``{}``, ``{0}``), attribute or
    index access (``{a.b}``, ``{a[0]}``), a conversion (``{a!r}``) or a format spec (``{a:>5}``)
    is a one-line ``UserError``, and so is a template that names no field at all.
    """
    template = cfg.question_template
    if template is None:
        return []
    bad = f"{cfg.name}: dataset.question_template={template!r}"
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise UserError(
            f"{bad} is not a valid template ({e}); write fields as {{name}} and literal braces "
            "as {{ and }}"
        ) from e
    fields: list[str] = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if name == "" or name.isdigit():
            raise UserError(
                f"{bad} uses the positional field {shown}; name a row field instead, "
                "e.g. {question}"
            )
        if "." in name or "[" in name:
            raise UserError(
                f"{bad} uses attribute or index access in {shown}; only plain {{name}} fields "
                "are allowed"
            )
        if conversion or spec:
            raise UserError(
                f"{bad} uses a conversion or format spec in {shown}; only plain {{name}} fields "
                "are allowed"
            )
        if name not in fields:
            fields.append(name)
    if not fields:
        raise UserError(
            f"{bad} names no field, so every question would be the same; use e.g. "
            "'{body} {question}' or set it to null"
        )
    return fields
