"""Hydra callbacks: check the output folder before Hydra creates it; rebuild the report after;
count a sweep's jobs for the progress lines (ufo_rl/progress.py).

The report after a sweep reads the folders the sweep wrote: ``<results_dir>/runs`` (every
experiment there, into ``<results_dir>/tables`` and ``figures``) when the sweep folder lies inside
it, as it does by default (``conf/config.yaml``); else the sweep folder itself, whose tables and
figures then go into that folder, so that a sweep elsewhere never replaces the report of
``<results_dir>``."""

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

        self._check_results_dir(config)
        self._check(config.hydra.run.dir)
        # Hydra creates the folder next; note which of its folders are new, so that a job failing
        # on bad input removes them also when hydra.run.dir is given (the resolver did not name it)
        note_existing(os.fspath(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check_results_dir(config)
        self._check(config.hydra.sweep.dir)

    @staticmethod
    def _check_results_dir(config: DictConfig) -> None:
        """An empty ``results_dir`` is refused before Hydra creates ``/runs/...`` from it."""
        from ufo_rl.config import results_dir_problem

        problem = results_dir_problem(config.get("results_dir"))
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)

    @staticmethod
    def _check(folder) -> None:
        problem = output_folder_problem(os.fspath(folder))
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self._report(config, Path(config.hydra.sweep.dir), sweep=True)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        if config.get("stage") in ("train", "all"):
            self._report(config, Path(config.hydra.run.dir), sweep=False)

    @staticmethod
    def _report(config: DictConfig, written_to: Path, sweep: bool) -> None:
        """Rebuild the report from the runs of ``written_to`` (the sweep folder, or a single
        run's folder), read where :func:`report_folders` says."""
        if not config.get("report", True) or config.get("stage") == "plan":
            return
        from ufo_rl import dist

        if not dist.is_main_process():  # one report per launch, by rank 0 (ufo_rl/dist.py)
            return
        from ufo_rl.progress import sweep_line
        from ufo_rl.report import build_report

        folders = report_folders(Path(config.results_dir), written_to, sweep)
        if folders is None:  # one run outside <results_dir>/runs: its report would not hold it
            print(f"[ufo-rl] report: not rebuilt, {written_to} is outside {Path(config.results_dir) / 'runs'}; "
                  f"build one with: python bench/report.py {written_to} --out <folder>")
            return
        runs, out = folders
        sweep_line("report")
        try:
            written = build_report(runs, out)
        except Exception as e:  # the runs are safe on disk; say how to rebuild the report
            print(f"[ufo-rl] report failed ({e}); rerun: python bench/report.py {runs} --out {out}",
                  file=sys.stderr)
            return
        print(f"[ufo-rl] report: {len(written)} files in {out}/tables and {out}/figures")
        verdict = Path(out) / "verdict.md"
        if verdict in written:
            print(f"\n{verdict.read_text()}\n[ufo-rl] the verdict above is in {verdict}")


def report_folders(results_dir: Path, written_to: Path, sweep: bool) -> tuple[Path, Path] | None:
    """(runs folder the report reads, folder its tables and figures go to) for jobs written to
    ``written_to``: ``<results_dir>/runs`` into ``results_dir`` when ``written_to`` lies inside
    it; else, for a sweep, the sweep folder into itself; else (one run elsewhere) None."""
    runs = results_dir / "runs"
    if _inside(written_to, runs):
        return runs, results_dir
    return (written_to, written_to) if sweep else None


def _inside(path: Path, folder: Path) -> bool:
    path, folder = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return path == folder or folder in path.parents


class ProgressCallback(Callback):
    """Counts a sweep's jobs when it starts, for the ``job i/n`` of the progress lines. The count
    reaches jobs run in this process through :data:`ufo_rl.progress.SWEEP`, and jobs that a
    launcher runs in other processes (submitit) through the environment they inherit."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from ufo_rl.progress import SWEEP, SWEEP_JOBS_ENV

        count = sweep_size(config)
        SWEEP.start(count)
        if count:
            os.environ[SWEEP_JOBS_ENV] = str(count)
        else:
            os.environ.pop(SWEEP_JOBS_ENV, None)


def sweep_size(config: DictConfig) -> int | None:
    """How many jobs Hydra's basic sweeper makes of ``config``: the product of the value counts of
    ``hydra.sweeper.params`` and the command line's overrides, as the sweeper itself expands them.
    None for another sweeper, or a sweep that cannot be expanded without the config loader (glob)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = config.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith(".BasicSweeper"):
        return None
    params = sweeper.get("params") or {}
    args = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    try:
        parsed = OverridesParser.create().parse_overrides(args)
        return len(BasicSweeper.split_arguments(parsed, None)[0])
    except Exception:  # e.g. glob(), which needs the config loader: the lines go without the count
        return None
