"""Hydra callback: after a sweep (or a single run), rebuild the tables and figures."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class ReportCallback(Callback):
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
