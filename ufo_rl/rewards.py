"""Verifiable rewards for GRPO, as plain TRL-style callables.

A reward takes the decoded ``completions`` and the dataset's ``answer`` column (TRL passes every
dataset column as a keyword argument) and returns one float per completion:

>>> correctness_reward(["2+2=4\\n<answer>4</answer>", "<answer>5</answer>"], answer=["4", "4"])
[1.0, 0.0]
>>> correctness_reward(["<answer>4</answer> and more"], answer=["4"], strict=True)
[0.0]
>>> format_reward(["12+3=15\\n<answer>15</answer>", "15"])
[1.0, 0.0]

Why ``strict``: at higher learning rates a policy learns to keep writing after its answer until
the length cap (seen at lr >= 1e-4 on the tiny model). Paying only completions that stop right at ``</answer>``
(the EOS the model then emits is stripped by the decoder) removes that drift.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ufo_rl.answers import check

ANSWER_CLOSE = "</answer>"


def _text(completion) -> str:
    """TRL passes plain strings for text prompts and message lists for conversational ones."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def correctness_reward(completions: Sequence, answer: Sequence[str], strict: bool = False,
                       **kwargs) -> list[float]:
    """1.0 when :func:`ufo_rl.answers.check` finds the gold answer, else 0.0.

    With ``strict`` the completion must also end at ``</answer>`` (trailing whitespace allowed),
    so text written after the answer earns nothing.
    """
    out = []
    for c, gold in zip(completions, answer):
        text = _text(c)
        if strict and not text.rstrip().endswith(ANSWER_CLOSE):
            out.append(0.0)
            continue
        out.append(1.0 if check(text, str(gold), fallback_last_number=not strict)[1] else 0.0)
    return out


def format_reward(completions: Sequence, **kwargs) -> list[float]:
    """1.0 when the completion ends with a closed ``<answer>...</answer>`` tag, else 0.0."""
    out = []
    for c in completions:
        text = _text(c).rstrip()
        out.append(1.0 if text.endswith(ANSWER_CLOSE) and "<answer>" in text else 0.0)
    return out


def combined_reward(strict: bool = True, format_weight: float = 0.0) -> Callable[..., list[float]]:
    """One reward callable: correctness (strict or not) plus ``format_weight`` x format.

    >>> r = combined_reward(strict=True, format_weight=0.1)
    >>> r(["<answer>4</answer>", "<answer>5</answer>", "4"], answer=["4", "4", "4"])
    [1.1, 0.1, 0.0]
    """

    def reward(completions, answer, **kwargs) -> list[float]:
        r = correctness_reward(completions, answer, strict=strict)
        if format_weight:
            f = format_reward(completions)
            r = [round(a + format_weight * b, 10) for a, b in zip(r, f)]
        return r

    reward.__name__ = "correctness" + ("_strict" if strict else "") + ("_format" if format_weight else "")
    return reward


def zero_advantage_fraction(rewards: Sequence[float], group_size: int) -> float:
    """Share of prompt groups (``group_size`` consecutive rewards) whose rewards all agree.

    Such a group has zero GRPO advantage for every completion and so no gradient.

    >>> zero_advantage_fraction([1, 1, 0, 1, 0, 0], group_size=3)
    0.0
    >>> zero_advantage_fraction([1, 1, 1, 0, 1, 0], group_size=3)
    0.5
    """
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards), group_size)]
    if not groups:
        return 0.0
    return sum(1 for g in groups if max(g) - min(g) < 1e-9) / len(groups)
