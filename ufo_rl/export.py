"""Export a selected subset so it can be trained on elsewhere.

- ``subset.jsonl``: TRL / open-r1 style, one row per problem, ``prompt`` as chat messages,
  plus ``answer`` (gold final answer), ``solution``, ``id``, ``difficulty``, ``source``;
- ``subset_verl.parquet``: verl's layout: ``data_source``, ``prompt`` (chat messages),
  ``ability``, ``reward_model`` (``{"style": "rule", "ground_truth": answer}``), ``extra_info``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ufo_rl.problems import Problem


def messages(question: str, system_prompt: str | None) -> list[dict]:
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": question}
    ]


def export_subset(problems: Sequence[Problem], folder: Path, system_prompt: str | None = None) -> None:
    with open(folder / "subset.jsonl", "w") as f:
        for p in problems:
            f.write(json.dumps({"id": p.id, "prompt": messages(p.question, system_prompt),
                                "answer": p.answer, "solution": p.solution,
                                "difficulty": p.difficulty, "source": p.source}) + "\n")
    pd.DataFrame([
        {"data_source": p.source, "prompt": messages(p.question, system_prompt), "ability": "math",
         "reward_model": {"style": "rule", "ground_truth": p.answer},
         "extra_info": {"id": p.id, "index": i, "difficulty": p.difficulty}}
        for i, p in enumerate(problems)
    ]).to_parquet(folder / "subset_verl.parquet", index=False)
