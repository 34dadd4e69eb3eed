"""Make result folders fit to commit: small, portable, and each file stored once.

Run it on a reference folder before committing it (``python bench/pack_reference.py
results/reference/<name>``; with no argument, on everything under ``results/``). It

1. drops the subset exports (``subset.jsonl``, ``subset_open_r1/``, ``subset_verl.parquet``): a run
   rewrites them from ``scores.parquet``, and the report never reads them;
2. gzips the per-sample records (``eval_samples/*.jsonl``, ``samples.jsonl``) reproducibly (no
   time stamp, level 9): about 16x smaller; the report reads ``.jsonl.gz`` as it reads ``.jsonl``;
3. rewrites absolute paths of the machine that made the files (``/tmp/...``, ``/root/...``) in the
   text records (JSON, YAML, CSV, logs): into the repository (``ufo_rl/assets/models/...``,
   ``results/reference/<name>/runs/...``), a run folder (``final``), a cache (``<cache>/...``,
   ``<models>/...``), or ``<elsewhere>/<last parts>`` for a folder that was not kept;
4. gives each ``meta.json`` whose code revision is ``-dirty`` and says nothing of why a
   ``git_dirty_note`` (runs made since record the files that differed, ufo_rl/provenance.py);
5. stores identical files of 16 KiB or more once: the later copies (in path order) become relative
   symbolic links to the first.

Every step is idempotent; ``--check`` changes nothing and exits 1 when a step would change a file
(tests/test_repo_size.py runs it over ``results/``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPORTS = ("subset.jsonl", "subset_open_r1", "subset_verl.parquet")
TEXT = {".json", ".yaml", ".csv", ".log", ".md", ".txt"}
MIN_DEDUP = 16 * 1024
RUN_FOLDER = re.compile(r".+-seed\d+-[0-9a-f]{8}$")
# an absolute path of a machine: a top-level folder of the usual kinds, up to a quote, space or comma
ABS_PATH = re.compile(r"(?<![\w.<>~/-])/(?:tmp|root|home|work|Users|mnt|opt|data|var|srv|scratch)/[^\s\"',]*")
DIRTY_NOTE = ("made from a working tree with uncommitted changes, before run records named the changed "
              "files; the changes were not recorded")


def _ref_root(path: Path) -> Path:
    """The reference a file belongs to: ``results/reference/<name>`` or the folder under ``results``."""
    rel = path.resolve().relative_to(ROOT)
    parts = rel.parts
    depth = 3 if parts[:2] == ("results", "reference") and len(parts) > 3 else 2
    return ROOT.joinpath(*parts[:depth])


def _run_folder(path: Path) -> Path | None:
    return next((p for p in path.parents if RUN_FOLDER.match(p.name)), None)


def portable_text_path(abs_path: str, file: Path) -> str:
    """Where ``abs_path``, found in ``file``, points, in terms that hold on any machine."""
    for marker, repl in (("/ufo_rl/assets/models/", "ufo_rl/assets/models/"),
                         ("/.cache/ufo_rl/models/", "<models>/"), ("/shared/data/", "../shared/data/")):
        if marker in abs_path:
            return repl + abs_path.split(marker, 1)[1]
    parts = abs_path.strip("/").split("/")
    for i, part in enumerate(parts):
        if part.endswith("cache"):
            return "/".join(["<cache>", *parts[i + 1:]])
    run = _run_folder(file)
    if run is not None and run.name in parts:
        rest = parts[parts.index(run.name) + 1:]
        return "/".join(rest) or "."
    ref = _ref_root(file)
    for i in range(1, len(parts)):
        tail = Path(*parts[i:])
        if (ref / tail).exists():
            return (ref / tail).relative_to(ROOT).as_posix()
    if len(parts) <= 3:  # a results folder: the reference now holds what it held
        return ref.relative_to(ROOT).as_posix()
    return "/".join(["<elsewhere>", *parts[-3:]])


def rewrite_paths(text: str, file: Path) -> str:
    return ABS_PATH.sub(lambda m: portable_text_path(m.group(0), file), text)


def gzip_bytes(data: bytes) -> bytes:
    """gzip without a time stamp or file name: the same bytes for the same input."""
    import io

    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def plan(folder: Path) -> list[tuple[str, Path, object]]:
    """The changes packing ``folder`` makes: (kind, path, payload)."""
    changes: list[tuple[str, Path, object]] = []
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    for p in files:
        if p.name in EXPORTS or any(part in EXPORTS for part in p.relative_to(folder).parts[:-1]):
            changes.append(("remove", p, None))
        elif p.suffix == ".jsonl" and (p.parent.name == "eval_samples" or p.name == "samples.jsonl"):
            changes.append(("gzip", p, None))
        elif p.suffix in TEXT:
            text = p.read_text()
            new = rewrite_paths(text, p)
            if p.name == "meta.json":
                meta = json.loads(new)
                prov = meta.get("provenance") or {}
                if str(prov.get("git", "")).endswith("-dirty") and not (
                        prov.get("git_dirty_files") or prov.get("git_dirty_note")):
                    prov["git_dirty_note"] = DIRTY_NOTE
                    new = json.dumps(meta, indent=2) + "\n"
            if new != text:
                changes.append(("write", p, new))
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() and not p.exists():
            changes.append(("broken link", p, None))
    return changes


def dedup_plan(folder: Path, removed: set[Path]) -> list[tuple[Path, Path]]:
    """(copy, first) pairs of identical files of at least MIN_DEDUP bytes, the first in path order.
    Files a gzip step will replace are compared as their .gz."""
    first: dict[str, Path] = {}
    pairs = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.is_symlink() or p in removed or p.stat().st_size < MIN_DEDUP:
            continue
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if digest in first:
            pairs.append((p, first[digest]))
        else:
            first[digest] = p
    return pairs


def apply(folder: Path) -> int:
    changes = plan(folder)
    for kind, p, payload in changes:
        if kind == "remove":
            shutil.rmtree(p.parent) if p.parent.name in EXPORTS else p.unlink()
        elif kind == "gzip":
            Path(str(p) + ".gz").write_bytes(gzip_bytes(p.read_bytes()))
            p.unlink()
        elif kind == "write":
            p.write_text(payload)
        elif kind == "broken link":
            raise SystemExit(f"pack_reference: {p} is a link to a missing file; restore it from git")
    pairs = dedup_plan(folder, set())
    for copy, original in pairs:
        copy.unlink()
        copy.symlink_to(os.path.relpath(original, copy.parent))
    return len(changes) + len(pairs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("folders", nargs="*", type=Path, default=[ROOT / "results"])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything would change")
    args = ap.parse_args(argv)
    todo = 0
    for folder in args.folders:
        folder = folder.resolve()
        if not folder.is_dir():
            print(f"pack_reference: {folder} is not a folder", file=sys.stderr)
            return 2
        if args.check:
            found = [(k, p.relative_to(ROOT)) for k, p, _ in plan(folder)]
            found += [("duplicate", c.relative_to(ROOT)) for c, _ in dedup_plan(folder, set())]
            for kind, p in found[:20]:
                print(f"{kind}: {p}")
            todo += len(found)
        else:
            todo += apply(folder)
    if args.check and todo:
        print(f"pack_reference: {todo} change(s) to make; run python bench/pack_reference.py", file=sys.stderr)
        return 1
    print(f"pack_reference: {'clean' if args.check else f'{todo} change(s) made'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
