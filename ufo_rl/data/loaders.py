"""Problem loaders: one ``DatasetConfig`` in, a validated ``list[Problem]`` out.

Four kinds, chosen by ``cfg.kind``:

- ``embedded``: the arithmetic generator (``ufo_rl.data.arith``), split ``pool`` or ``test``.
- ``jsonl`` / ``parquet``: a local file at ``cfg.path``.
- ``hub``: ``datasets.load_dataset(cfg.path, cfg.hub_config, split=cfg.split)``.

Files and hub sets are mapped by configuration, never by code per dataset: ``question_field``,
``answer_field``, ``solution_field``, ``id_field`` and ``difficulty_field`` name the columns, and
``answer_extraction`` says how the gold final answer is read from the answer column:

- ``field``: the value as is;
- ``gsm8k``: the text after the last ``####``, thousands commas removed;
- ``boxed``: the content of the last ``\\boxed{}``;
- ``number``: the last number in the text, only when it stands alone as one plain number (a
  time such as ``12:50``, a ratio, a list or a part of an expression is a bad answer); a fraction
  is kept as ``p/q`` and e-notation written out (``ufo_rl/data/values.py`` says exactly which).

A gold value that is a number (JSON ``43.0`` or ``7``, a numeric parquet column) is the answer
under every extraction, written without a spurious ``.0`` (43.0 -> "43", 2.5 -> "2.5"). Null,
NaN, Infinity (the JSON tokens Python accepts too) and booleans are never a question or a gold
answer. ``question_template`` (e.g. ``"{body} {question}"``) composes the question from several
fields instead of reading ``question_field``.

With any extraction but ``field`` the whole answer text doubles as the worked solution when no
``solution_field`` is set (GSM8K's answer column *is* its solution). A row whose gold answer
cannot be read stops the load, or with ``on_bad_answer=skip`` is dropped and counted
(:func:`load_problems_with_report`). Every problem a user can fix (missing file, malformed line,
missing column, unknown kind...) is a one-line ``UserError``; :func:`check_dataset_config` finds
the config's mistakes without loading the whole file. The rows come from ``ufo_rl/data/sources.py``,
and cell values, answer extraction and template fields are read by ``ufo_rl/data/values.py``.
"""

from __future__ import annotations

import sys

from ufo_rl.config import DatasetConfig
from ufo_rl.data import arith
from ufo_rl.data.sources import (
    KINDS,
    SOURCES,
    jsonl_lines,
    local_path,
    parquet_file,
    parse_jsonl_line,
    source_name,
)
from ufo_rl.data.values import (
    EXTRACTIONS,
    NotOneNumber,
    as_text,
    is_number,
    not_a_value,
    number_text,
    parse_difficulty,
    template_fields,
)
from ufo_rl.errors import UserError
from ufo_rl.problems import Problem, validate_problems

ON_BAD_ANSWER = ("error", "skip")
EMBEDDED_SPLITS = ("pool", "test")
# how many skipped rows the report and the stderr line name
SKIPPED_SHOWN = 5


class BadAnswerError(UserError):
    """A row whose gold answer cannot be read: an error, or a dropped row with ``on_bad_answer=skip``.

    ``where`` is the row's location and ``reason`` what is wrong with it, without the advice.
    """

    def __init__(self, message: str, where: str, reason: str):
        super().__init__(message)
        self.where = where
        self.reason = reason


def _missing(cfg: DatasetConfig, where: str, row: dict, field: str, key: str) -> UserError:
    fields = ", ".join(sorted(map(str, row))) or "none"
    return UserError(
        f"{cfg.name}: {where}: missing field {field!r} (set dataset.{key}; "
        f"fields present: {fields})"
    )


# --------------------------------------------------------------------------- question template


def _question(cfg: DatasetConfig, where: str, row: dict) -> str:
    """The row's question: ``question_field`` as is, or the template filled from the row."""
    if cfg.question_template is None:
        field = cfg.question_field
        if field not in row:
            raise _missing(cfg, where, row, field, "question_field")
        why = not_a_value(row[field])
        if why:
            raise UserError(
                f"{cfg.name}: {where}: field {field!r} {why}; a question must be text (fix the "
                "row or set dataset.question_field to another column)"
            )
        question = number_text(row[field]) if is_number(row[field]) else str(row[field])
    else:
        values = {}
        for field in template_fields(cfg):
            if field not in row:
                fields = ", ".join(sorted(map(str, row))) or "none"
                raise UserError(
                    f"{cfg.name}: {where}: missing field {field!r} named in "
                    f"dataset.question_template (fields present: {fields})"
                )
            why = not_a_value(row[field])
            if why:
                raise UserError(
                    f"{cfg.name}: {where}: field {field!r} named in dataset.question_template "
                    f"{why}; fix the row or change the template"
                )
            value = row[field]
            values[field] = number_text(value) if is_number(value) else str(value)
        question = cfg.question_template.format_map(values)
    if not question.strip():
        source = "dataset.question_template" if cfg.question_template else repr(cfg.question_field)
        raise UserError(f"{cfg.name}: {where}: the question ({source}) is empty; fix the row")
    return question


# --------------------------------------------------------------------------- mapping


def _gold(cfg: DatasetConfig, where: str, row: dict) -> tuple[str, str | None]:
    """(gold answer, worked solution taken from the answer text or None); BadAnswerError."""
    field = cfg.answer_field
    if field not in row:
        raise _missing(cfg, where, row, field, "answer_field")
    value = row[field]
    extract, expected = EXTRACTIONS[cfg.answer_extraction]
    skip = "or set dataset.on_bad_answer=skip to drop such rows"
    why = not_a_value(value)
    if why:
        reason = f"field {field!r} {why}"
        raise BadAnswerError(
            f"{cfg.name}: {where}: {reason}, not a gold answer (fix the row, set "
            f"dataset.answer_field to another column, {skip})",
            where,
            reason,
        )
    if is_number(value):  # a number is the answer whatever the extraction
        return number_text(value), None
    try:
        answer = extract(value)
    except NotOneNumber as e:  # answer_extraction=number: the last number is part of more
        reason = f"field {field!r}: {e}"
        raise BadAnswerError(
            f"{cfg.name}: {where}: {reason} (answer_extraction={cfg.answer_extraction} takes the "
            f"last number only when it stands alone; fix the row, set dataset.answer_extraction "
            f"to one of {sorted(EXTRACTIONS)} or dataset.answer_field to another column, {skip})",
            where,
            reason,
        ) from e
    if answer is None:
        reason = f"field {field!r} has no {expected}"
        raise BadAnswerError(
            f"{cfg.name}: {where}: {reason} (answer_extraction={cfg.answer_extraction}; set "
            f"dataset.answer_extraction to one of {sorted(EXTRACTIONS)} or dataset.answer_field "
            f"to another column, {skip})",
            where,
            reason,
        )
    if not answer.strip():
        reason = f"field {field!r} gives an empty answer"
        raise BadAnswerError(
            f"{cfg.name}: {where}: {reason} (answer_extraction={cfg.answer_extraction}; fix the "
            f"row, {skip})",
            where,
            reason,
        )
    solution = None if cfg.answer_extraction == "field" else str(value)
    return answer, solution


def row_to_problem(cfg: DatasetConfig, where: str, index: int, row: dict) -> Problem:
    """Map one source row to a :class:`Problem` by the config's field names.

    Raises :class:`BadAnswerError` (a ``UserError``) when the gold answer cannot be read, and
    ``UserError`` for every other problem of the row.
    """
    question = _question(cfg, where, row)
    answer, solution = _gold(cfg, where, row)

    if cfg.solution_field:
        field = cfg.solution_field
        if field not in row:
            raise _missing(cfg, where, row, field, "solution_field")
        value = row[field]
        why = not_a_value(value)
        if value is None or why == "is NaN":  # a missing solution (pandas writes NaN)
            solution = None
        elif why:
            raise UserError(
                f"{cfg.name}: {where}: field {field!r} {why}; a worked solution must be text "
                "(fix the row or set dataset.solution_field to another column or null)"
            )
        else:
            solution = str(value)

    if cfg.id_field:
        field = cfg.id_field
        if field not in row:
            raise _missing(cfg, where, row, field, "id_field")
        why = not_a_value(row[field])
        if why:
            raise UserError(
                f"{cfg.name}: {where}: field {field!r} {why}; an id must be text or a number "
                "(fix the row, or set dataset.id_field to another column or null)"
            )
        pid = as_text(row[field])
    else:
        pid = f"{cfg.name}-{index}"

    difficulty = None
    if cfg.difficulty_field:
        if cfg.difficulty_field not in row:
            raise _missing(cfg, where, row, cfg.difficulty_field, "difficulty_field")
        difficulty = parse_difficulty(row[cfg.difficulty_field])

    return Problem(
        id=pid,
        question=question,
        answer=answer,
        solution=solution,
        difficulty=difficulty,
        source=cfg.name,
    )


# --------------------------------------------------------------------------- checks


def _check_config(cfg: DatasetConfig) -> None:
    """Checks of the config alone (no file is opened)."""
    if cfg.kind not in KINDS:
        raise UserError(f"{cfg.name}: unknown dataset.kind {cfg.kind!r}; known: {', '.join(KINDS)}")
    if cfg.answer_extraction not in EXTRACTIONS:
        raise UserError(
            f"{cfg.name}: unknown dataset.answer_extraction {cfg.answer_extraction!r}; "
            f"known: {', '.join(EXTRACTIONS)}"
        )
    if cfg.on_bad_answer not in ON_BAD_ANSWER:
        raise UserError(
            f"{cfg.name}: unknown dataset.on_bad_answer {cfg.on_bad_answer!r}; "
            f"known: {', '.join(ON_BAD_ANSWER)}"
        )
    if cfg.limit is not None and cfg.limit < 1:
        raise UserError(
            f"{cfg.name}: dataset.limit={cfg.limit} keeps no rows; set a positive number or null"
        )
    template_fields(cfg)


def _configured_fields(cfg: DatasetConfig) -> list[tuple[str, str]]:
    """(field, config key) of every column the config reads."""
    if cfg.question_template is not None:
        fields = [(f, "question_template") for f in template_fields(cfg)]
    else:
        fields = [(cfg.question_field, "question_field")]
    fields.append((cfg.answer_field, "answer_field"))
    for key in ("solution_field", "id_field", "difficulty_field"):
        if getattr(cfg, key):
            fields.append((getattr(cfg, key), key))
    return fields


def _check_fields(cfg: DatasetConfig, where: str, present: dict) -> None:
    for field, key in _configured_fields(cfg):
        if field in present:
            continue
        if key == "question_template":
            fields = ", ".join(sorted(map(str, present))) or "none"
            raise UserError(
                f"{cfg.name}: {where}: missing field {field!r} named in "
                f"dataset.question_template (fields present: {fields})"
            )
        raise _missing(cfg, where, present, field, key)


def _no_rows(cfg: DatasetConfig) -> UserError:
    hint = {
        "jsonl": "give a file with one JSON object per line",
        "parquet": "give a parquet file with at least one row",
        "hub": "check dataset.split and dataset.hub_config",
    }[cfg.kind]
    return UserError(f"{cfg.name}: {source_name(cfg)} holds no rows; {hint}")


def check_dataset_config(cfg: DatasetConfig) -> None:
    """Validate ``cfg`` without loading the data; a one-line ``UserError`` on the first mistake.

    Checks that ``kind``, ``answer_extraction`` and ``on_bad_answer`` are known, ``limit`` is
    positive and ``question_template`` is valid; for ``embedded`` that the split is known and not
    empty; for ``hub`` that a name is set (the hub itself is not contacted); for ``jsonl`` /
    ``parquet`` that ``path`` is set and is an existing file (not a folder) of that kind, holding
    at least one row whose fields include every column the config reads (question or template
    fields, answer, and solution / id / difficulty when set). Only the first non-blank line of
    a JSONL file is read, and only the schema of a parquet file.
    """
    _check_config(cfg)
    if cfg.kind == "embedded":
        if cfg.split not in EMBEDDED_SPLITS:
            raise UserError(
                f"{cfg.name}: unknown embedded split {cfg.split!r}; known: "
                f"{', '.join(EMBEDDED_SPLITS)}"
            )
        key = "n_pool" if cfg.split == "pool" else "n_test"
        if getattr(cfg, key) < 1:
            raise UserError(
                f"{cfg.name}: dataset.{key}={getattr(cfg, key)} makes the embedded "
                f"{cfg.split!r} split empty; set a positive number"
            )
        return
    if cfg.kind == "hub":
        if not cfg.path:
            raise UserError(
                f"{cfg.name}: dataset.path is not set (kind=hub needs a hub dataset name)"
            )
        return
    path = local_path(cfg)
    if cfg.kind == "jsonl":
        first = next(jsonl_lines(cfg, path), None)
        if first is None:
            raise _no_rows(cfg)
        where, row = parse_jsonl_line(cfg, path, *first)
        _check_fields(cfg, where, row)
    else:
        pf = parquet_file(cfg, path)
        if pf.metadata.num_rows == 0:
            raise _no_rows(cfg)
        _check_fields(cfg, f"{path} schema", dict.fromkeys(pf.schema_arrow.names))


# --------------------------------------------------------------------------- loading


def _empty_report() -> dict:
    return {"skipped_bad_answer": 0, "skipped_first": []}


def load_problems_with_report(cfg: DatasetConfig) -> tuple[list[Problem], dict]:
    """Load, map and validate the problems ``cfg`` describes, and say which rows were dropped.

    Returns ``(problems, report)`` with ``report = {"skipped_bad_answer": n, "skipped_first":
    [up to 5 locations such as "train.jsonl line 7"]}`` (0 and [] when nothing was skipped).
    Rows are dropped only with ``cfg.on_bad_answer == "skip"``, and only for a gold answer that
    cannot be read; a dropped row keeps its index, so default ids (``<name>-<row index>``) do not
    move. ``cfg.limit`` keeps the first N problems after skipping, and reading stops there. When
    rows were skipped one line goes to stderr; when every row was skipped it is a ``UserError``.
    """
    _check_config(cfg)
    report = _empty_report()
    if cfg.kind == "embedded":
        splits = arith.embedded_splits(cfg.seed, cfg.n_pool, cfg.n_test, cfg.levels)
        if cfg.split not in splits:
            raise UserError(
                f"{cfg.name}: unknown embedded split {cfg.split!r}; known: {', '.join(splits)}"
            )
        problems = splits[cfg.split]
        if problems and cfg.limit is not None and cfg.limit > len(problems):
            raise UserError(
                f"{cfg.name}: dataset.limit={cfg.limit} is more than the {len(problems)} rows "
                "available; lower it or set it to null"
            )
        problems = problems[: cfg.limit]
        return validate_problems(problems, cfg.name, where=f"the embedded {cfg.split!r} split"), report

    problems: list[Problem] = []
    n_rows = 0
    first_reason = ""
    for index, (where, row) in enumerate(SOURCES[cfg.kind](cfg)):
        n_rows += 1
        try:
            problems.append(row_to_problem(cfg, where, index, row))
        except BadAnswerError as e:
            if cfg.on_bad_answer != "skip":
                raise
            report["skipped_bad_answer"] += 1
            if len(report["skipped_first"]) < SKIPPED_SHOWN:
                report["skipped_first"].append(e.where)
            first_reason = first_reason or e.reason
        if cfg.limit is not None and len(problems) == cfg.limit:
            break

    skipped = report["skipped_bad_answer"]
    first = ", ".join(report["skipped_first"]) + (", ..." if skipped > SKIPPED_SHOWN else "")
    if n_rows == 0:
        raise _no_rows(cfg)
    if not problems:
        raise UserError(
            f"{cfg.name}: no rows left: all {skipped} rows of {source_name(cfg)} were skipped "
            f"by dataset.on_bad_answer=skip (first: {first}; {first_reason}); check "
            "dataset.answer_field and dataset.answer_extraction"
        )
    if cfg.limit is not None and len(problems) < cfg.limit:
        dropped = f" ({skipped} more were skipped by dataset.on_bad_answer=skip)" if skipped else ""
        raise UserError(
            f"{cfg.name}: dataset.limit={cfg.limit} is more than the {len(problems)} rows "
            f"available{dropped}; lower it or set it to null"
        )
    if skipped:
        print(
            f"{cfg.name}: skipped {skipped} row{'s' if skipped > 1 else ''} whose gold answer "
            f"could not be extracted (first: {first}; {first_reason})",
            file=sys.stderr,
        )
    return validate_problems(problems, cfg.name, where=source_name(cfg)), report


def load_problems(cfg: DatasetConfig) -> list[Problem]:
    """Load, map and validate the problems ``cfg`` describes (first ``cfg.limit`` if set)."""
    return load_problems_with_report(cfg)[0]
