"""Problem loaders: one ``DatasetConfig`` in, a validated ``list[Problem]`` out.

Four kinds, chosen by ``cfg.kind``:

- ``embedded``: the arithmetic generator (``ufo_rl.data.arith``), split ``pool`` or ``test``.
- ``jsonl`` / ``parquet``: a local file at ``cfg.path``.
- ``hub``: ``datasets.load_dataset(cfg.path, cfg.hub_config, split=cfg.split)``.

Files and hub sets are mapped by configuration, never by code per dataset: ``question_field``,
``answer_field``, ``solution_field``, ``id_field`` and ``difficulty_field`` name the columns, and
``answer_extraction`` says how the gold final answer is read from the answer column:

- ``field``: the value as is (a number is written without a spurious ``.0``: 23.0 -> "23");
- ``gsm8k``: the text after the last ``####``, thousands commas removed;
- ``boxed``: the content of the last ``\\boxed{}``;
- ``number``: the last number in the text.

With any extraction but ``field`` the whole answer text doubles as the worked solution when no
``solution_field`` is set (GSM8K's answer column *is* its solution). Every problem a user can fix
(missing file, malformed line, missing column, unknown kind...) is a one-line ``UserError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ufo_rl.answers import NUMBER, last_boxed
from ufo_rl.config import DatasetConfig
from ufo_rl.data import arith
from ufo_rl.errors import UserError
from ufo_rl.problems import Problem, validate_problems

# A row of a source with a human-readable location ("train.jsonl line 7") for error messages.
Row = tuple[str, dict[str, Any]]


def _missing(cfg: DatasetConfig, where: str, row: dict, field: str, key: str) -> UserError:
    fields = ", ".join(sorted(map(str, row))) or "none"
    return UserError(
        f"{cfg.name}: {where}: missing field {field!r} (set dataset.{key}; "
        f"fields present: {fields})"
    )


# --------------------------------------------------------------------------- gold answers


def _as_text(value: Any) -> str:
    """A cell as text; integral floats lose their ``.0`` (AMC stores 27.0 for 27)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _extract_field(value: Any) -> str | None:
    return _as_text(value)


def _extract_gsm8k(value: Any) -> str | None:
    text = str(value)
    if "####" not in text:
        return None
    return text.rsplit("####", 1)[1].strip().replace(",", "")


def _extract_boxed(value: Any) -> str | None:
    boxed = last_boxed(str(value))
    return None if boxed is None else boxed.strip()


def _extract_number(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _as_text(value)
    nums = NUMBER.findall(str(value))
    return nums[-1].replace(",", "") if nums else None


EXTRACTIONS: dict[str, tuple[Callable[[Any], str | None], str]] = {
    "field": (_extract_field, "value"),
    "gsm8k": (_extract_gsm8k, "'#### <answer>' line"),
    "boxed": (_extract_boxed, "\\boxed{...}"),
    "number": (_extract_number, "number"),
}


def _difficulty(value: Any) -> int | None:
    """An integer level when one can be read: 3, 3.0, "3", "Level 3" -> 3; else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    m = re.search(r"-?\d+", str(value))
    return int(m.group()) if m else None


# --------------------------------------------------------------------------- row sources


def _local_path(cfg: DatasetConfig) -> Path:
    if not cfg.path:
        raise UserError(
            f"{cfg.name}: dataset.path is not set (kind={cfg.kind} needs a local .{cfg.kind} file)"
        )
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise UserError(
            f"{cfg.name}: file not found: {cfg.path} (resolved to {path.resolve()}); "
            f"set dataset.path to an existing .{cfg.kind} file"
        )
    return path


def _jsonl_rows(cfg: DatasetConfig) -> Iterator[Row]:
    path = _local_path(cfg)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(
                    f"{cfg.name}: {path} line {lineno}: malformed JSON ({e.msg})"
                ) from e
            if not isinstance(row, dict):
                raise UserError(
                    f"{cfg.name}: {path} line {lineno}: expected a JSON object, "
                    f"got {type(row).__name__}"
                )
            yield where, row


def _parquet_rows(cfg: DatasetConfig) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _local_path(cfg)
    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{cfg.name}: {path}: not a readable parquet file ({e})") from e
    for i, row in enumerate(rows):
        yield f"{path} row {i}", row


def _hub_rows(cfg: DatasetConfig) -> Iterator[Row]:
    if not cfg.path:
        raise UserError(f"{cfg.name}: dataset.path is not set (kind=hub needs a hub dataset name)")
    import datasets

    try:
        ds = datasets.load_dataset(cfg.path, cfg.hub_config, split=cfg.split)
    except Exception as e:  # offline, unknown name, unknown split: all fixable by the user
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(
            f"{cfg.name}: cannot load hub dataset {cfg.path!r} (config {cfg.hub_config}, "
            f"split {cfg.split!r}): {type(e).__name__}: {reason}; without hub access set "
            "dataset.kind=jsonl (or parquet) and dataset.path to a local file"
        ) from e
    for i, row in enumerate(ds):
        yield f"{cfg.path}[{cfg.split}] row {i}", dict(row)


SOURCES: dict[str, Callable[[DatasetConfig], Iterator[Row]]] = {
    "jsonl": _jsonl_rows,
    "parquet": _parquet_rows,
    "hub": _hub_rows,
}
KINDS = ("embedded", *SOURCES)


# --------------------------------------------------------------------------- mapping


def row_to_problem(cfg: DatasetConfig, where: str, index: int, row: dict) -> Problem:
    """Map one source row to a :class:`Problem` by the config's field names."""
    if cfg.question_field not in row or row[cfg.question_field] is None:
        raise _missing(cfg, where, row, cfg.question_field, "question_field")
    if cfg.answer_field not in row or row[cfg.answer_field] is None:
        raise _missing(cfg, where, row, cfg.answer_field, "answer_field")
    raw_answer = row[cfg.answer_field]
    extract, expected = EXTRACTIONS[cfg.answer_extraction]
    answer = extract(raw_answer)
    if answer is None:
        raise UserError(
            f"{cfg.name}: {where}: field {cfg.answer_field!r} has no {expected} "
            f"(answer_extraction={cfg.answer_extraction}; set dataset.answer_extraction to one "
            f"of {sorted(EXTRACTIONS)} or dataset.answer_field to another column)"
        )

    solution = None
    if cfg.solution_field:
        if cfg.solution_field not in row:
            raise _missing(cfg, where, row, cfg.solution_field, "solution_field")
        value = row[cfg.solution_field]
        solution = None if value is None else str(value)
    elif cfg.answer_extraction != "field":
        solution = str(raw_answer)

    if cfg.id_field:
        if cfg.id_field not in row or row[cfg.id_field] is None:
            raise _missing(cfg, where, row, cfg.id_field, "id_field")
        pid = _as_text(row[cfg.id_field])
    else:
        pid = f"{cfg.name}-{index}"

    difficulty = None
    if cfg.difficulty_field:
        if cfg.difficulty_field not in row:
            raise _missing(cfg, where, row, cfg.difficulty_field, "difficulty_field")
        difficulty = _difficulty(row[cfg.difficulty_field])

    return Problem(
        id=pid,
        question=str(row[cfg.question_field]),
        answer=answer,
        solution=solution,
        difficulty=difficulty,
        source=cfg.name,
    )


def _check_config(cfg: DatasetConfig) -> None:
    if cfg.kind not in KINDS:
        raise UserError(f"{cfg.name}: unknown dataset.kind {cfg.kind!r}; known: {', '.join(KINDS)}")
    if cfg.answer_extraction not in EXTRACTIONS:
        raise UserError(
            f"{cfg.name}: unknown dataset.answer_extraction {cfg.answer_extraction!r}; "
            f"known: {', '.join(EXTRACTIONS)}"
        )
    if cfg.limit is not None and cfg.limit < 1:
        raise UserError(
            f"{cfg.name}: dataset.limit={cfg.limit} keeps no rows; set a positive number or null"
        )


def _apply_limit(cfg: DatasetConfig, n_rows: int) -> int:
    if cfg.limit is None:
        return n_rows
    if cfg.limit > n_rows:
        raise UserError(
            f"{cfg.name}: dataset.limit={cfg.limit} is more than the {n_rows} rows available; "
            "lower it or set it to null"
        )
    return cfg.limit


def load_problems(cfg: DatasetConfig) -> list[Problem]:
    """Load, map and validate the problems ``cfg`` describes (first ``cfg.limit`` if set)."""
    _check_config(cfg)
    if cfg.kind == "embedded":
        splits = arith.embedded_splits(cfg.seed, cfg.n_pool, cfg.n_test, cfg.levels)
        if cfg.split not in splits:
            raise UserError(
                f"{cfg.name}: unknown embedded split {cfg.split!r}; known: {', '.join(splits)}"
            )
        problems = splits[cfg.split]
        return validate_problems(problems[: _apply_limit(cfg, len(problems))], cfg.name)

    rows = list(SOURCES[cfg.kind](cfg))
    if not rows:
        return validate_problems([], cfg.name)
    rows = rows[: _apply_limit(cfg, len(rows))]
    problems = [row_to_problem(cfg, where, i, row) for i, (where, row) in enumerate(rows)]
    return validate_problems(problems, cfg.name)
