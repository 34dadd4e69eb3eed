"""Every file a run writes goes through here: atomic, and recorded so a failed job can take it back.

- :func:`atomic_write` writes to a unique temporary name in the same folder, flushes and fsyncs
  it, then renames it over the target. A reader sees the old file or the new one, never a torn
  one; two writers of one file (two ranks, two jobs) each rename a whole file; a killed write
  leaves only a ``.<name>.*.tmp`` file that nothing reads.
- :data:`LEDGER` remembers the files and folders this process created (not the ones it
  overwrote). When a job stops on bad input, :meth:`Ledger.rollback` removes exactly those, so
  the job leaves nothing behind and never touches what was there before it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path


class Ledger:
    """Paths created by this process since :meth:`reset`, for :meth:`rollback`."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.dirs: list[Path] = []

    def reset(self) -> None:
        self.files, self.dirs = [], []

    def rollback(self) -> None:
        """Remove the files, then the folders (deepest first, only when empty), created here."""
        for f in reversed(self.files):
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        for d in sorted(self.dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except OSError:  # not empty: holds something this process did not write
                pass
        self.reset()


LEDGER = Ledger()


def ensure_dir(path: str | Path) -> Path:
    """``mkdir -p`` that records each folder it creates in the ledger."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    LEDGER.dirs.extend(reversed(missing))
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a unique temporary file, then rename."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        existed = path.exists()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not existed:
        LEDGER.files.append(path)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda t: t.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    return write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def write_parquet(path: str | Path, df) -> Path:
    return atomic_write(path, lambda t: df.to_parquet(t, index=False))


def output_folder_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot hold a run (an existing file, an unwritable parent), or None."""
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        return f"the run folder {path} is an existing file; set results_dir (or hydra.run.dir) to a folder"
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot create {path}: {parent} is a file; set results_dir to a folder"
    try:  # os.access says yes to root even on a read-only mount: try it
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        return f"cannot write under {parent} ({e.strerror}); set results_dir to a writable folder"
    return None


def read_json(path: str | Path, default=None):
    """A JSON file's content, or ``default`` when it is absent or unreadable (torn, not JSON)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


@contextmanager
def folder_lock(lock_path: Path, folder: Path):
    """Hold an exclusive ``flock`` on ``lock_path`` (created and recorded in :data:`LEDGER` when
    new) while one job works in ``folder``; a second job waits, saying so."""
    import fcntl
    import sys

    created = not lock_path.exists()
    with open(lock_path, "a") as fh:
        if created:
            LEDGER.files.append(lock_path)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[ufo-rl] another job is running in {folder}; waiting for it", file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
