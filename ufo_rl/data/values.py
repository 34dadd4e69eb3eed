"""Cell values and gold answers of a dataset row: what a question, an answer or a difficulty may
be, how ``answer_extraction`` (field | gsm8k | boxed | number) reads the gold final answer, and
which fields a ``question_template`` names (ufo_rl/data/loaders.py maps rows with these)."""

from __future__ import annotations

import json
import math
import numbers
import re
import string
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from ufo_rl.answers import NUMBER, last_boxed
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


def _extract_number(value: Any) -> str | None:
    if is_number(value):
        return number_text(value)
    nums = NUMBER.findall(str(value))
    return nums[-1].replace(",", "") if nums else None


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
