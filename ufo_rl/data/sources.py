"""Where a dataset's rows come from: a local JSON-lines or parquet file, or a hub dataset, each
row with a human-readable location ("train.jsonl line 7") for error messages
(ufo_rl/data/loaders.py maps the rows to problems). Every problem a user can fix (missing file, a
folder, a file of another format, a malformed line) is a one-line ``UserError``."""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ufo_rl.config import DatasetConfig
from ufo_rl.errors import UserError

# A row of a source with a human-readable location ("train.jsonl line 7") for error messages.
Row = tuple[str, dict[str, Any]]


# --------------------------------------------------------------------------- row sources


def source_name(cfg: DatasetConfig) -> str:
    if cfg.kind == "hub":
        return f"hub dataset {cfg.path!r} (config {cfg.hub_config}, split {cfg.split!r})"
    return str(Path(cfg.path).expanduser()) if cfg.path else "dataset.path"


def local_path(cfg: DatasetConfig) -> Path:
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
    if path.exists() and not path.is_file():
        raise UserError(
            f"{cfg.name}: {path} is not a regular file (it is {_file_kind(path)}); set dataset.path "
            f"to a .{cfg.kind} file"
        )
    if not path.is_file():
        raise UserError(
            f"{cfg.name}: file not found: {cfg.path} (resolved to {path.resolve()}); "
            f"set dataset.path to an existing .{cfg.kind} file"
        )
    return path


def _file_kind(path: Path) -> str:
    """What a path that exists but is neither a file nor a folder is (``/dev/null``: a device)."""
    import stat

    mode = path.stat().st_mode
    for test, kind in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "neither a file nor a folder"


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


def jsonl_lines(cfg: DatasetConfig, path: Path) -> Iterator[tuple[int, str]]:
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


def parse_jsonl_line(cfg: DatasetConfig, path: Path, lineno: int, line: str) -> Row:
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
    path = local_path(cfg)
    for lineno, line in jsonl_lines(cfg, path):
        yield parse_jsonl_line(cfg, path, lineno, line)


def parquet_file(cfg: DatasetConfig, path: Path):
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

    path = local_path(cfg)
    pf = parquet_file(cfg, path)
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
