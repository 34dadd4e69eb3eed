"""Hydra callbacks: check the output folder before Hydra creates it; rebuild the report after."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ufo_rl.io import output_folder_problem


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
        from ufo_rl import dist

        if not dist.is_main_process():  # one report per launch, by rank 0 (ufo_rl/dist.py)
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
