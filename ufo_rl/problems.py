"""The one record type every loader produces and every stage consumes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from ufo_rl.errors import UserError


@dataclass(frozen=True)
class Problem:
    """A verifiable problem.

    ``answer`` is the gold final answer as text (``"42"``, ``"\\frac{1}{2}"``); ``solution``
    is a worked step-by-step solution when the source has one; ``difficulty`` is a level
    (1 = easiest) when the source grades its problems; ``source`` names the dataset.
    """

    id: str
    question: str
    answer: str
    solution: str | None = None
    difficulty: int | None = None
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def validate_problems(
    problems: Sequence[Problem], name: str, where: str | None = None
) -> list[Problem]:
    """Check a loaded set: not empty, ids unique, question and answer present.

    ``where`` names the source (a file path, a split) in the message of an empty set.
    """
    problems = list(problems)
    if not problems:
        source = where or "the dataset"
        raise UserError(f"{name}: {source} holds no rows (check the path, split and filters)")
    dupes = [pid for pid, n in Counter(p.id for p in problems).items() if n > 1]
    if dupes:
        raise UserError(
            f"{name}: duplicate ids {dupes[:3]} ({len(dupes)} in all); "
            "ids must be unique (set dataset.id_field to a unique column or leave it empty)"
        )
    for p in problems:
        if not p.question.strip():
            raise UserError(f"{name}: problem {p.id!r} has an empty question")
        if not p.answer.strip():
            raise UserError(f"{name}: problem {p.id!r} has an empty answer")
    return problems


def fingerprint_problems(problems: Iterable[Problem]) -> str:
    """A content hash of a problem set (order matters), for caches and provenance."""
    h = hashlib.sha256()
    for p in problems:
        h.update(json.dumps(p.to_dict(), sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
