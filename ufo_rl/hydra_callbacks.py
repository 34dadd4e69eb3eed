"""Hydra callbacks: check the output folder before Hydra creates it; rebuild the report after."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


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


class ReportCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        from ufo_rl.identity import note_existing

        self._check(config.hydra.run.dir)
        # Hydra creates the folder next; note which of its folders are new, so that a job failing
        # on bad input removes them also when hydra.run.dir is given (the resolver did not name it)
        note_existing(os.fspath(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.sweep.dir)

    @staticmethod
    def _check(folder) -> None:
        problem = output_folder_problem(os.fspath(folder))
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self._report(config)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        if config.get("stage") in ("train", "all"):
            self._report(config)

    @staticmethod
    def _report(config: DictConfig) -> None:
        if not config.get("report", True) or config.get("stage") == "plan":
            return
        from ufo_rl.report import build_report

        results = Path(config.results_dir)
        try:
            written = build_report(results / "runs", results)
        except Exception as e:  # the runs are safe on disk; say how to rebuild the report
            print(f"[ufo-rl] report failed ({e}); rerun: python bench/report.py {results / 'runs'}",
                  file=sys.stderr)
            return
        print(f"[ufo-rl] report: {len(written)} files in {results}/tables and {results}/figures")
