"""Export a selected subset so it can be trained on elsewhere.

- ``subset.jsonl``: TRL / open-r1 style, one row per problem, ``prompt`` as chat messages,
  plus ``answer`` (gold final answer), ``solution``, ``id``, ``difficulty``, ``source``;
- ``subset_verl.parquet``: verl's layout: ``data_source``, ``prompt`` (chat messages),
  ``ability``, ``reward_model`` (``{"style": "rule", "ground_truth": answer}``), ``extra_info``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ufo_rl.io import write_jsonl, write_parquet
from ufo_rl.problems import Problem


def messages(question: str, system_prompt: str | None) -> list[dict]:
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": question}
    ]


def export_subset(problems: Sequence[Problem], folder: Path, system_prompt: str | None = None) -> None:
    write_jsonl(folder / "subset.jsonl", (
        {"id": p.id, "prompt": messages(p.question, system_prompt), "answer": p.answer,
         "solution": p.solution, "difficulty": p.difficulty, "source": p.source} for p in problems))
    write_parquet(folder / "subset_verl.parquet", pd.DataFrame([
        {"data_source": p.source, "prompt": messages(p.question, system_prompt), "ability": "math",
         "reward_model": {"style": "rule", "ground_truth": p.answer},
         "extra_info": {"id": p.id, "index": i, "difficulty": p.difficulty}}
        for i, p in enumerate(problems)
    ]))
