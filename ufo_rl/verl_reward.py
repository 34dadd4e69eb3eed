"""verl's reward for ``subset_verl.parquet``: the same correctness check the project's own GRPO pays.

verl's default scorer (``default_compute_score`` in ``verl/utils/reward_score/__init__.py``)
picks a scorer by ``data_source`` from a fixed list and raises ``NotImplementedError`` for any
other name; its GSM8K scorer (``data_source="openai/gsm8k"``) reads only ``#### <number>`` and its
MATH scorers read ``\\boxed{}``. The completions this project trains (the R1 format of the paper,
arXiv 2505.12457) put the answer in ``<answer>...</answer>``, so the export writes
``data_source = "ufo_rl/<dataset name>"`` (``ufo_rl/export.py``), a name verl's default scorer
cannot take for one of its own (it raises instead of scoring with the wrong reader), and verl is
given this module's :func:`compute_score` instead, through its custom reward hook
(``verl/trainer/ppo/reward.py``, ``get_custom_reward_fn``)::

    data.train_files=<run>/subset_verl.parquet
    reward.custom_reward_function.path=pkg://ufo_rl.verl_reward
    reward.custom_reward_function.name=compute_score

That is verl 0.9 (read in 0.9.1), where ``pkg://`` imports the installed package. Older releases
take a file under the top-level key, ``custom_reward_function.path=$(python -c "import
ufo_rl.verl_reward as m; print(m.__file__)")`` with ``custom_reward_function.name=compute_score``;
verl 0.9 accepts that file path as well. Either way ``ufo_rl`` must be importable where verl's
reward workers run. To pay an answer that more text follows (not strict):
``+reward.custom_reward_function.reward_kwargs.strict=false``.
"""

from __future__ import annotations

from ufo_rl.rewards import correctness_reward


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None,
                  strict: bool = True, **kwargs) -> float:
    """1.0 when ``solution_str`` (the decoded response) holds the gold ``ground_truth``, else 0.0.

    The same check as the project's own GRPO reward (:func:`ufo_rl.rewards.correctness_reward`,
    strict by default: the response must stop at ``</answer>``). verl calls it with keywords, plus
    any ``reward_kwargs`` of its config. It does not dispatch on ``data_source`` (every dataset
    of the export, ``ufo_rl/<name>``, is checked alike) and does not read ``extra_info``.

    >>> compute_score("ufo_rl/gsm8k", "<think>3*6=18</think>\\n<answer>18</answer>", "18")
    1.0
    >>> compute_score("ufo_rl/aime24", "<answer>17</answer>", "18")
    0.0
    >>> compute_score("ufo_rl/gsm8k", "<answer>18</answer> more", "18")
    0.0
    """
    return correctness_reward([solution_str], [str(ground_truth)], strict=strict)[0]
