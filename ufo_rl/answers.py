"""Final-answer extraction and checking.

Extraction looks, in order, for ``<answer>...</answer>`` (the R1 format the paper trains
with), ``\\boxed{...}`` (MATH), ``#### ...`` (GSM8K), and, only when ``fallback_last_number`` is
on, the last number in the text. Each rule takes the *last* match, since models restate the
question before answering.

Checking normalises GSM8K-style numbers (thousands commas, ``$``, ``%``, trailing units,
``72.0`` == ``72``) and compares numbers exactly (1e-9 relative); anything that is not a plain
number on both sides goes to ``math-verify`` (symbolic equality of LaTeX or expressions).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# the rest of the line after "####" (a model may keep writing after its answer line)
GSM8K_MARK = re.compile(r"####[ \t]*([^\n]*)")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_UNIT_TAIL = re.compile(r"^(-?[\d,]*\.?\d+)\s*[a-zA-Z%°]*\.?$")


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


def to_number(text: str) -> float | None:
    """Read a GSM8K-style number: ``"$1,234.00"`` -> 1234.0, ``"18 dollars"`` -> 18.0, else None."""
    # "\\$" before "$": removing "$" first would leave a stray backslash ("\\$36" -> "\\36")
    t = text.strip().replace("\\$", "").replace("$", "").replace("\\!", "").strip()
    t = re.sub(r"^\\text\{(.*)\}$", r"\1", t)
    m = _UNIT_TAIL.match(t)
    if not m:
        return None
    raw = m.group(1)
    if "," in raw and not re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", raw):
        return None
    try:
        return float(raw.replace(",", ""))
    except ValueError:
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

    >>> is_equivalent("1,234", "1234"), is_equivalent("72.0", "72"), is_equivalent("73", "72")
    (True, True, False)
    """
    if pred is None or not pred.strip():
        return False
    a, b = to_number(pred), to_number(gold)
    if a is not None and b is not None:
        return abs(a - b) <= 1e-9 * max(1.0, abs(b))
    try:
        return _math_verify(gold, pred)
    except Exception:  # noqa: BLE001  (math-verify raises on unparsable input: a wrong answer)
        return False


def check(completion: str, gold: str, fallback_last_number: bool = True) -> tuple[str | None, bool]:
    """Extract the answer from ``completion`` and compare it with ``gold``: (extracted, correct)."""
    pred = extract_answer(completion, fallback_last_number)
    return pred, is_equivalent(pred, gold)
