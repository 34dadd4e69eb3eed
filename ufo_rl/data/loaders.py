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
- ``number``: the last number in the text.

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
the config's mistakes without loading the whole file.
"""

from __future__ import annotations

import codecs
import json
import math
import numbers
import re
import string
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ufo_rl.answers import NUMBER, last_boxed
from ufo_rl.config import DatasetConfig
from ufo_rl.data import arith
from ufo_rl.errors import UserError
from ufo_rl.problems import Problem, validate_problems

# A row of a source with a human-readable location ("train.jsonl line 7") for error messages.
Row = tuple[str, dict[str, Any]]

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


# --------------------------------------------------------------------------- cell values


def _not_a_value(value: Any) -> str | None:
    """Why ``value`` cannot be a question or a gold answer ("is null", "is NaN"...), or None.

    Text and finite numbers are values; null, NaN, +-Infinity, booleans (Python's and numpy's)
    and everything else (lists, dicts, bytes...) are not.
    """
    if value is None:
        return "is null"
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):  # numpy's too
        return f"is a boolean ({json.dumps(bool(value))}), not text or a number"
    if isinstance(value, str):
        return None
    if _is_number(value):
        try:
            f = float(value)
        except (ValueError, OverflowError):  # Decimal('sNaN'), a huge Decimal
            return f"is {value}, not a finite number"
        if math.isnan(f):
            return "is NaN"
        if math.isinf(f):
            return "is Infinity" if f > 0 else "is -Infinity"
        return None
    return f"holds a {type(value).__name__}, not text or a number"


def _is_number(value: Any) -> bool:
    """A number (int, float, Decimal, numpy's), booleans excluded."""
    return isinstance(value, (numbers.Real, Decimal)) and not isinstance(value, bool)


def _number_text(value: Any) -> str:
    """A finite number as text: integers as such (43.0 -> "43"), others as written (2.5 -> "2.5")."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        d = Decimal(repr(float(value)))
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")  # 1e-07 -> "0.0000001"


def _as_text(value: Any) -> str:
    """A valid cell as text: numbers by :func:`_number_text`, text stripped."""
    return _number_text(value) if _is_number(value) else str(value).strip()


# --------------------------------------------------------------------------- gold answers


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
    if _is_number(value):
        return _number_text(value)
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


# --------------------------------------------------------------------------- question template


def template_fields(cfg: DatasetConfig) -> list[str]:
    """The field names ``cfg.question_template`` uses, in order ([] when no template is set).

    Only plain ``{name}`` fields are allowed: a positional field (``{}``, ``{0}``), attribute or
    index access (``{a.b}``, ``{a[0]}``), a conversion (``{a!r}``) or a format spec (``{a:>5}``)
    is a one-line ``UserError``, and so is a template that names no field at all.
    """
    template = cfg.question_template
    if template is None:
        return []
    bad = f"{cfg.name}: dataset.question_template={template!r}"
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise UserError(
            f"{bad} is not a valid template ({e}); write fields as {{name}} and literal braces "
            "as {{ and }}"
        ) from e
    fields: list[str] = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if name == "" or name.isdigit():
            raise UserError(
                f"{bad} uses the positional field {shown}; name a row field instead, "
                "e.g. {question}"
            )
        if "." in name or "[" in name:
            raise UserError(
                f"{bad} uses attribute or index access in {shown}; only plain {{name}} fields "
                "are allowed"
            )
        if conversion or spec:
            raise UserError(
                f"{bad} uses a conversion or format spec in {shown}; only plain {{name}} fields "
                "are allowed"
            )
        if name not in fields:
            fields.append(name)
    if not fields:
        raise UserError(
            f"{bad} names no field, so every question would be the same; use e.g. "
            "'{body} {question}' or set it to null"
        )
    return fields


def _question(cfg: DatasetConfig, where: str, row: dict) -> str:
    """The row's question: ``question_field`` as is, or the template filled from the row."""
    if cfg.question_template is None:
        field = cfg.question_field
        if field not in row:
            raise _missing(cfg, where, row, field, "question_field")
        why = _not_a_value(row[field])
        if why:
            raise UserError(
                f"{cfg.name}: {where}: field {field!r} {why}; a question must be text (fix the "
                "row or set dataset.question_field to another column)"
            )
        question = _number_text(row[field]) if _is_number(row[field]) else str(row[field])
    else:
        values = {}
        for field in template_fields(cfg):
            if field not in row:
                fields = ", ".join(sorted(map(str, row))) or "none"
                raise UserError(
                    f"{cfg.name}: {where}: missing field {field!r} named in "
                    f"dataset.question_template (fields present: {fields})"
                )
            why = _not_a_value(row[field])
            if why:
                raise UserError(
                    f"{cfg.name}: {where}: field {field!r} named in dataset.question_template "
                    f"{why}; fix the row or change the template"
                )
            value = row[field]
            values[field] = _number_text(value) if _is_number(value) else str(value)
        question = cfg.question_template.format_map(values)
    if not question.strip():
        source = "dataset.question_template" if cfg.question_template else repr(cfg.question_field)
        raise UserError(f"{cfg.name}: {where}: the question ({source}) is empty; fix the row")
    return question


# --------------------------------------------------------------------------- row sources


def _source_name(cfg: DatasetConfig) -> str:
    if cfg.kind == "hub":
        return f"hub dataset {cfg.path!r} (config {cfg.hub_config}, split {cfg.split!r})"
    return str(Path(cfg.path).expanduser()) if cfg.path else "dataset.path"


def _local_path(cfg: DatasetConfig) -> Path:
    if not cfg.path:
        raise UserError(
            f"{cfg.name}: dataset.path is not set (kind={cfg.kind} needs a local .{cfg.kind} file)"
        )
    path = Path(cfg.path).expanduser()
    if path.is_dir():
        inside = sorted(p.name for p in path.glob(f"*.{cfg.kind}") if p.is_file())[:3]
        holds = f" (it holds {', '.join(inside)})" if inside else ""
        raise UserError(
            f"{cfg.name}: {path} is a folder, not a file{holds}; set dataset.path to a "
            f".{cfg.kind} file"
        )
    if not path.is_file():
        raise UserError(
            f"{cfg.name}: file not found: {cfg.path} (resolved to {path.resolve()}); "
            f"set dataset.path to an existing .{cfg.kind} file"
        )
    return path


def _sniff(head: bytes) -> str | None:
    """What a file's first bytes say it is: parquet, gzip, utf-16, binary, json; None: unknown."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head[:64]:
        return "binary"
    text = head.lstrip(codecs.BOM_UTF8).lstrip()
    if text[:1] in (b"{", b"["):
        return "json"
    return None


def _check_jsonl_head(cfg: DatasetConfig, path: Path, head: bytes) -> None:
    kind = _sniff(head)
    if kind == "parquet":
        raise UserError(
            f"{cfg.name}: {path} does not look like JSONL (it is a binary parquet file); "
            "set dataset.kind=parquet"
        )
    if kind == "gzip":
        raise UserError(
            f"{cfg.name}: {path} does not look like JSONL (it is gzip-compressed); "
            "decompress it (gunzip) and point dataset.path at the .jsonl file"
        )
    if kind == "utf-16":
        raise UserError(
            f"{cfg.name}: {path} is UTF-16 text, not UTF-8; convert the file to UTF-8 "
            "(e.g. iconv -f utf-16 -t utf-8)"
        )
    if kind == "binary":
        raise UserError(
            f"{cfg.name}: {path} does not look like JSONL (binary content); give a text file with "
            "one JSON object per line (a parquet file needs dataset.kind=parquet)"
        )


def _jsonl_lines(cfg: DatasetConfig, path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines; a one-line UserError on non-UTF-8 bytes."""
    with path.open("rb") as f:
        _check_jsonl_head(cfg, path, f.read(512))
        f.seek(0)
        offset = 0
        for lineno, raw in enumerate(f, 1):
            start, offset = offset, offset + len(raw)
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw, start = raw[len(codecs.BOM_UTF8) :], start + len(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(
                    f"{cfg.name}: {path} line {lineno} (byte offset {start + e.start}): not valid "
                    f"UTF-8 (byte 0x{raw[e.start]:02x}); convert the file to UTF-8 "
                    "(e.g. iconv -f <its encoding> -t utf-8)"
                ) from None
            if line.strip():
                yield lineno, line


def _parse_jsonl_line(cfg: DatasetConfig, path: Path, lineno: int, line: str) -> Row:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{cfg.name}: {path} line {lineno}: malformed JSON ({e.msg})") from e
    if not isinstance(row, dict):
        raise UserError(
            f"{cfg.name}: {path} line {lineno}: expected a JSON object, got {type(row).__name__}"
        )
    return f"{path} line {lineno}", row


def _jsonl_rows(cfg: DatasetConfig) -> Iterator[Row]:
    path = _local_path(cfg)
    for lineno, line in _jsonl_lines(cfg, path):
        yield _parse_jsonl_line(cfg, path, lineno, line)


def _parquet_file(cfg: DatasetConfig, path: Path):
    """A ``pyarrow.parquet.ParquetFile``; a one-line UserError when the file is not parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with path.open("rb") as f:
        head = f.read(512)
    if _sniff(head) == "json":
        raise UserError(
            f"{cfg.name}: {path} is not a parquet file (it looks like JSONL text); "
            "set dataset.kind=jsonl"
        )
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{cfg.name}: {path}: not a readable parquet file ({reason})") from e


def _parquet_rows(cfg: DatasetConfig) -> Iterator[Row]:
    import pyarrow as pa

    path = _local_path(cfg)
    pf = _parquet_file(cfg, path)
    try:
        rows = pf.read().to_pylist()
    except (pa.ArrowException, OSError) as e:
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{cfg.name}: {path}: not a readable parquet file ({reason})") from e
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


def _gold(cfg: DatasetConfig, where: str, row: dict) -> tuple[str, str | None]:
    """(gold answer, worked solution taken from the answer text or None); BadAnswerError."""
    field = cfg.answer_field
    if field not in row:
        raise _missing(cfg, where, row, field, "answer_field")
    value = row[field]
    extract, expected = EXTRACTIONS[cfg.answer_extraction]
    skip = "or set dataset.on_bad_answer=skip to drop such rows"
    why = _not_a_value(value)
    if why:
        reason = f"field {field!r} {why}"
        raise BadAnswerError(
            f"{cfg.name}: {where}: {reason}, not a gold answer (fix the row, set "
            f"dataset.answer_field to another column, {skip})",
            where,
            reason,
        )
    if _is_number(value):  # a number is the answer whatever the extraction
        return _number_text(value), None
    answer = extract(value)
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
        why = _not_a_value(value)
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
        why = _not_a_value(row[field])
        if why:
            raise UserError(
                f"{cfg.name}: {where}: field {field!r} {why}; an id must be text or a number "
                "(fix the row, or set dataset.id_field to another column or null)"
            )
        pid = _as_text(row[field])
    else:
        pid = f"{cfg.name}-{index}"

    difficulty = None
    if cfg.difficulty_field:
        if cfg.difficulty_field not in row:
            raise _missing(cfg, where, row, cfg.difficulty_field, "difficulty_field")
        difficulty = _difficulty(row[cfg.difficulty_field])

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
    return UserError(f"{cfg.name}: {_source_name(cfg)} holds no rows; {hint}")


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
    path = _local_path(cfg)
    if cfg.kind == "jsonl":
        first = next(_jsonl_lines(cfg, path), None)
        if first is None:
            raise _no_rows(cfg)
        where, row = _parse_jsonl_line(cfg, path, *first)
        _check_fields(cfg, where, row)
    else:
        pf = _parquet_file(cfg, path)
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
            f"{cfg.name}: no rows left: all {skipped} rows of {_source_name(cfg)} were skipped "
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
    return validate_problems(problems, cfg.name, where=_source_name(cfg)), report


def load_problems(cfg: DatasetConfig) -> list[Problem]:
    """Load, map and validate the problems ``cfg`` describes (first ``cfg.limit`` if set)."""
    return load_problems_with_report(cfg)[0]
