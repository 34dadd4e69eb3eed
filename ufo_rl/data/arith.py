"""The embedded world: arithmetic chains with graded difficulty and worked solutions.

Why our own generator and not ``reasoning-gym``: its arithmetic tasks (``basic_arithmetic``,
``chain_sum``, ``products``) carry no worked solution, and ``gsm_symbolic`` came out at a single
difficulty level (reasoning-gym 0.1.25: 200 of 200 samples at 1.0). Here difficulty has two
clean knobs, the number of operations and the size of the operands, and the worked solution
falls out of the generation.

A problem is a chain evaluated left to right (no operator precedence)::

    question:  "Left to right: 12+7-3*2"
    solution:  "12+7=19\\n19-3=16\\n16*2=32\\n<answer>32</answer>"
    answer:    "32"

Every intermediate value stays in 0..9999, so the numbers a model has to write stay short.
Generation is a pure function of (level, seed, index): the same seed gives the same problems on
every machine, and the splits (warm start, RL pool, test) draw from disjoint seed streams and are
de-duplicated against each other by question text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ufo_rl.errors import UserError
from ufo_rl.problems import Problem

QUESTION_PREFIX = "Left to right: "
MAX_VALUE = 9999


@dataclass(frozen=True)
class Level:
    """One difficulty level: how many operations, which operators, how many operand digits."""

    n_ops: int
    ops: str
    digits: int
    mul_digits: int = 1


# Level 1 is a chain of three single-digit additions or subtractions; level 6 is three operations
# (with multiplication) on 2-digit numbers. Measured: a tiny model warm-started for a few hundred
# steps learns single-digit chains but barely 2-digit sums, so the easy levels stay on single
# digits and the 2-digit ones make the hard end. The default warm start (3,000 steps on levels
# 1-4, slips on level 2; ufo_rl/tiny_model.py, the shipped build) gives 1.0 / 0.58 / 0.92 /
# 0.23 / 0.01 / 0 greedy on the 500 held-out problems (results/reference/embedded/runs/default/
# */eval.json). Level 4 holds about 12,000 distinct questions, level 1 about 30,000, the others
# more than 100,000.
LEVELS: dict[int, Level] = {
    1: Level(n_ops=3, ops="+-", digits=1),
    2: Level(n_ops=4, ops="+-", digits=1),
    3: Level(n_ops=3, ops="+-*", digits=1),
    4: Level(n_ops=1, ops="+-", digits=2),
    5: Level(n_ops=2, ops="+-", digits=2),
    6: Level(n_ops=3, ops="+-*", digits=2),
}

# Seed offsets keep the three splits on disjoint random streams.
SPLIT_STREAMS = {"warmup": 0, "pool": 1, "test": 2}


def _operand(rng: random.Random, digits: int) -> int:
    return rng.randint(1 if digits == 1 else 2, 10**digits - 1)


def make_chain(rng: random.Random, level: Level) -> tuple[list[int], list[str]]:
    """Draw a start value and ``level.n_ops`` (op, operand) pairs keeping values in 0..MAX_VALUE."""
    while True:
        values = [_operand(rng, level.digits)]
        ops: list[str] = []
        ok = True
        for _ in range(level.n_ops):
            for _attempt in range(50):
                op = rng.choice(level.ops)
                b = _operand(rng, level.mul_digits if op == "*" else level.digits)
                if op == "*" and b < 2:
                    continue
                v = _apply(_evaluate(values, ops), op, b)
                if 0 <= v <= MAX_VALUE:
                    values.append(b)
                    ops.append(op)
                    break
            else:
                ok = False
                break
        if ok:
            return values, ops


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _evaluate(values: list[int], ops: list[str]) -> int:
    acc = values[0]
    for op, b in zip(ops, values[1:]):
        acc = _apply(acc, op, b)
    return acc


def render(values: list[int], ops: list[str]) -> tuple[str, str, str]:
    """Return (question, worked solution, final answer) for a chain."""
    expr = str(values[0]) + "".join(f"{op}{b}" for op, b in zip(ops, values[1:]))
    lines, acc = [], values[0]
    for op, b in zip(ops, values[1:]):
        nxt = _apply(acc, op, b)
        lines.append(f"{acc}{op}{b}={nxt}")
        acc = nxt
    answer = str(acc)
    lines.append(f"<answer>{answer}</answer>")
    return QUESTION_PREFIX + expr, "\n".join(lines), answer


def generate(
    split: str, n: int, seed: int, levels: list[int] | None = None, exclude: set[str] | None = None
) -> list[Problem]:
    """``n`` problems of ``split`` spread evenly over ``levels`` (round robin), deterministic in ``seed``.

    Questions in ``exclude`` (another split's) are skipped, so splits never overlap.
    """
    if split not in SPLIT_STREAMS:
        raise UserError(f"unknown split {split!r}; known: {sorted(SPLIT_STREAMS)}")
    levels = sorted(levels or LEVELS)
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown:
        raise UserError(f"unknown difficulty levels {unknown}; known: {sorted(LEVELS)}")
    if n < 1:
        raise UserError(f"{split}: asked for {n} problems; the size must be at least 1")
    exclude = exclude or set()
    rng = random.Random(f"arith/{seed}/{SPLIT_STREAMS[split]}")
    seen: set[str] = set()
    out: list[Problem] = []
    i = 0
    misses = 0
    while len(out) < n:
        level = levels[i % len(levels)]
        question, solution, answer = render(*make_chain(rng, LEVELS[level]))
        if question in exclude or question in seen:
            misses += 1
            if misses > 100 * n:
                raise UserError(f"{split}: cannot draw {n} distinct problems at levels {levels}")
            continue
        seen.add(question)
        out.append(
            Problem(
                id=f"arith-{split}-{seed}-{len(out):06d}",
                question=question,
                answer=answer,
                solution=solution,
                difficulty=level,
                source="embedded-arith",
            )
        )
        i += 1
    return out


def embedded_splits(
    seed: int, n_pool: int, n_test: int, levels: list[int] | None = None
) -> dict[str, list[Problem]]:
    """The RL pool and the held-out test set, disjoint by question text."""
    test = generate("test", n_test, seed, levels)
    pool = generate("pool", n_pool, seed, levels, exclude={p.question for p in test})
    return {"pool": pool, "test": test}
