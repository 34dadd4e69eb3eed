"""Export a selected subset so it can be trained on elsewhere, in each trainer's own layout.

The paper selects a subset with the UFO score and then trains on it with GRPO (arXiv 2505.12457,
Sec. 3); these files let the subset be trained with TRL, open-r1 or verl as they are.

- ``subset.jsonl`` (TRL's ``GRPOTrainer``, loaded with ``datasets.load_dataset("json", ...)``):
  ``prompt`` as chat messages (optional system, user question), ``problem`` (the question as
  text), ``answer`` (the gold final answer, read by :mod:`ufo_rl.rewards`), ``solution`` (the gold
  answer as ``\\boxed{...}``, the column TRL's and open-r1's ``accuracy_reward`` read and parse
  with math-verify), ``reference_solution`` (the source's worked solution, or null), ``id``,
  ``difficulty``, ``source``. TRL passes every column to a reward function as a keyword argument.
- ``subset_open_r1/train.jsonl``: the same rows in a folder of their own, since open-r1's
  ``get_dataset`` calls ``datasets.load_dataset(dataset_name)``, which takes a folder (its
  ``train`` split is ``train.jsonl``) but not a single file, and the run folder holds other
  ``*.jsonl``. open-r1 builds the chat from the text column ``dataset_prompt_column`` plus its own
  ``system_prompt``, so it is pointed at ``problem``.
- ``subset_verl.parquet`` (verl's ``RLHFDataset``): ``data_source`` (``ufo_rl/<dataset name>``,
  e.g. ``ufo_rl/gsm8k``, see below), ``prompt`` (chat messages), ``ability``, ``reward_model``
  (``{"style": "rule", "ground_truth": answer}``), ``extra_info`` (``id``, ``index``,
  ``difficulty``).

verl's data source: verl's default scorer (``default_compute_score`` in
``verl/utils/reward_score/__init__.py``) picks a scorer from ``data_source`` alone: exact names
(``openai/gsm8k``; ``lighteval/MATH`` and two other MATH sets; ``math``, ``math_dapo``; the
numina, code, geometry3k and searchR1 names) and one prefix, any name that starts with ``aime``.
A bare dataset name would be taken by it silently: ``aime24`` would be scored by its DAPO scorer,
``math`` too, each reading an answer format the completions of this project (the R1 format,
``<answer>...</answer>``, arXiv 2505.12457) do not use. So the export writes
``data_source = "ufo_rl/" + name`` (:data:`DATA_SOURCE_PREFIX`), which matches none of verl's
names nor its ``aime`` prefix: verl's default scorer raises ``NotImplementedError`` for it instead
of paying a wrong reward, and the rows are scored by :func:`ufo_rl.verl_reward.compute_score`,
given to verl as its custom reward (the settings are in :mod:`ufo_rl.verl_reward`'s docstring)::

    data.train_files=<run>/subset_verl.parquet
    reward.custom_reward_function.path=pkg://ufo_rl.verl_reward
    reward.custom_reward_function.name=compute_score

verl also groups its validation metrics by ``data_source`` (``val-core/ufo_rl/gsm8k/...``).
tests/test_export.py encodes verl's dispatch rules and checks every dataset of ``conf/dataset/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ufo_rl.answers import plain_number
from ufo_rl.io import write_jsonl, write_parquet
from ufo_rl.problems import Problem

TRL_FILE = "subset.jsonl"
OPEN_R1_DIR = "subset_open_r1"
VERL_FILE = "subset_verl.parquet"
# prefixed to a dataset's name in verl's data_source, so that verl's default scorer matches none
DATA_SOURCE_PREFIX = "ufo_rl/"


def messages(question: str, system_prompt: str | None) -> list[dict]:
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": question}
    ]


def boxed(answer: str) -> str:
    """The gold answer as ``\\boxed{...}``, which math-verify's ``parse`` reads whole.

    A number written as a decimal is written out plainly and exactly first
    (:func:`ufo_rl.answers.plain_number`), so units, ``$``, thousands commas and e-notation cannot
    turn into symbols or a tuple; a fraction (``5/2``, ``\\\\frac{1}{2}``) is kept as written.

    >>> boxed("1,234"), boxed("$18.00"), boxed("5 dollars"), boxed("0.5"), boxed("\\\\frac{1}{2}")
    ('\\\\boxed{1234}', '\\\\boxed{18}', '\\\\boxed{5}', '\\\\boxed{0.5}', '\\\\boxed{\\\\frac{1}{2}}')
    >>> boxed("2.5e3"), boxed("5/2")
    ('\\\\boxed{2500}', '\\\\boxed{5/2}')
    """
    text = plain_number(answer)
    return f"\\boxed{{{answer.strip() if text is None else text}}}"


def trl_row(p: Problem, system_prompt: str | None) -> dict:
    """One row of ``subset.jsonl`` (and of open-r1's ``train.jsonl``)."""
    return {"id": p.id, "prompt": messages(p.question, system_prompt), "problem": p.question,
            "answer": p.answer, "solution": boxed(p.answer), "reference_solution": p.solution,
            "difficulty": p.difficulty, "source": p.source}


def verl_data_source(source: str) -> str:
    """verl's ``data_source`` of a dataset: its name behind :data:`DATA_SOURCE_PREFIX`.

    >>> verl_data_source("aime24"), verl_data_source("openai/gsm8k"), verl_data_source("")
    ('ufo_rl/aime24', 'ufo_rl/openai/gsm8k', 'ufo_rl/unnamed')
    """
    return DATA_SOURCE_PREFIX + (source or "unnamed")


def verl_row(p: Problem, index: int, system_prompt: str | None) -> dict:
    """One row of ``subset_verl.parquet``."""
    return {"data_source": verl_data_source(p.source), "prompt": messages(p.question, system_prompt), "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": p.answer},
            "extra_info": {"id": p.id, "index": index, "difficulty": p.difficulty}}


def export_subset(problems: Sequence[Problem], folder: Path, system_prompt: str | None = None) -> None:
    """Write the three exports of ``problems`` into ``folder`` (the run folder)."""
    rows = [trl_row(p, system_prompt) for p in problems]
    write_jsonl(folder / TRL_FILE, rows)
    write_jsonl(folder / OPEN_R1_DIR / "train.jsonl", rows)
    write_parquet(folder / VERL_FILE, pd.DataFrame([verl_row(p, i, system_prompt) for i, p in enumerate(problems)]))
