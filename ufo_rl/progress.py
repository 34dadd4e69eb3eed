"""One line per job and stage above the progress bars, so that a long sweep never looks hung::

    [ufo-rl] job 2/4 multisample-top_mid-seed0 | train 12/60 | 1m12s elapsed | ETA 3m | sweep ETA 9m

- ``job i/n``: the job's place in a Hydra multirun (``hydra.job.num``) and the number of jobs the
  sweep holds (counted by :class:`ufo_rl.hydra_callbacks.ProgressCallback` at the sweep's start);
  left out for a single run. The name is the run folder's without its identity hash
  (``ufo_rl/identity.py``).
- the stage (``load``, ``score``, ``select``, ``eval before``, ``train``, ``eval final``, ``done``)
  and, where the stage counts its work, how far it is (prompts scored, optimizer steps).
- ``elapsed``: since the job started.
- ``ETA``: the stage's remaining time at the rate of the work done in this process so far
  (chunks read from the score cache and steps restored from a checkpoint do not count as
  speed); where the stage cannot say, the job's remaining time from the mean duration of the
  sweep's finished jobs.
- ``sweep ETA``: this job's remaining time plus the mean job duration for each job not yet
  started; only once a job of the sweep has finished in this process.

Lines go through ``tqdm.write``, which lifts the bars and puts them back, so neither is broken.
A line is printed at every stage boundary; in between, the stages that count their work (the
score cache per chunk, GRPO per optimizer step) print at most one line per
:data:`EVERY_SECONDS`. ``progress=false`` (no bars) keeps the boundary lines, a few per job, which
is what a log file wants, and drops the periodic ones. Only the main process of a multi-process
launch prints (``ufo_rl/dist.py``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "[ufo-rl]"
# the least time between two periodic lines of one job
EVERY_SECONDS = 15.0
# the sweep's job count, handed from the Hydra callback to jobs that a launcher runs elsewhere
SWEEP_JOBS_ENV = "UFO_RL_SWEEP_JOBS"


def format_duration(seconds: float) -> str:
    """``45s``, ``1m12s``, ``2h05m``: an elapsed time, to the second below an hour."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_eta(seconds: float) -> str:
    """``40s``, ``3m``, ``1h05m``: a remaining time, to the minute from 90 s up (rounded up, so
    that the last minute never reads ``0m``)."""
    s = max(0.0, seconds)
    if s < 90:
        return f"{int(math.ceil(s))}s"
    if s < 3600:
        return f"{int(math.ceil(s / 60))}m"
    m = int(math.ceil(s / 60))
    return f"{m // 60}h{m % 60:02d}m"


def rate_eta(done: int, total: int | None, elapsed: float, done_before: int = 0) -> float | None:
    """Seconds left for ``total - done`` items at the rate of the ``done - done_before`` items
    that took ``elapsed`` seconds; None while no item has been timed or the total is unknown.

    >>> rate_eta(done=30, total=60, elapsed=60.0)       # 2 s per item, 30 to go
    60.0
    >>> rate_eta(done=30, total=60, elapsed=10.0, done_before=20)  # 20 came from a checkpoint
    30.0
    """
    timed = done - done_before
    if total is None or timed <= 0 or elapsed <= 0:
        return None
    return elapsed / timed * max(0, total - done)


def sweep_eta(finished: list[float], jobs_after: int, job_elapsed: float) -> float | None:
    """Seconds until a sweep ends: the current job's remaining time (the mean finished job's
    duration less what this one has run, at least 0) plus ``jobs_after`` mean jobs; None before
    any job has finished.

    >>> sweep_eta([100.0, 140.0], jobs_after=2, job_elapsed=30.0)  # 90 left here + 2 x 120
    330.0
    """
    if not finished:
        return None
    mean = sum(finished) / len(finished)
    return max(0.0, mean - job_elapsed) + jobs_after * mean


@dataclass
class Sweep:
    """What this process knows of its sweep: the number of jobs and how long the finished ones
    took (Hydra's basic launcher runs every job in the process that started the sweep)."""

    count: int | None = None
    durations: list[float] = field(default_factory=list)
    started: float | None = None

    def start(self, count: int | None, now: float | None = None) -> None:
        self.count, self.durations, self.started = count, [], time.monotonic() if now is None else now


SWEEP = Sweep()


def _tqdm_write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line)


class JobProgress:
    """The progress lines of one job (see the module docstring for their format).

    ``periodic`` allows the throttled lines between boundaries; ``enabled=False`` prints nothing.
    ``clock`` and ``write`` are there for tests.
    """

    def __init__(self, name: str, index: int | None = None, count: int | None = None, *, periodic: bool = True,
                 enabled: bool = True, every: float = EVERY_SECONDS, sweep: Sweep | None = None,
                 clock: Callable[[], float] = time.monotonic, write: Callable[[str], None] = _tqdm_write):
        self.name, self.index, self.count = name, index, count
        self.periodic, self.enabled, self.every = periodic, enabled, every
        self.sweep = SWEEP if sweep is None else sweep
        self.clock, self.write = clock, write
        self.started = clock()
        self.stage_name: str | None = None
        self.done = 0
        self.total: int | None = None
        self._base_done = 0  # items found done (cache, checkpoint): not timed
        self._base_time = self.started
        self._last_line = -math.inf

    # ---- what the job says ----------------------------------------------------------------
    def stage(self, name: str, total: int | None = None, done: int = 0) -> None:
        """A stage boundary: always printed (when enabled)."""
        now = self.clock()
        self.stage_name, self.total, self.done = name, total, done
        self._base_done, self._base_time = done, now
        self._emit(now)

    def update(self, done: int, total: int | None = None, fresh: bool = True) -> None:
        """``done`` of ``total`` items of the current stage. ``fresh=False``: the items since the
        last call were found done (read from a cache or restored from a checkpoint), not made
        now, so they do not count towards the rate. Printed at most once per ``every`` seconds,
        and only when ``periodic``."""
        now = self.clock()
        if total is not None:
            self.total = total
        if not fresh:
            self._base_done += done - self.done
            self._base_time = now
        self.done = done
        if self.periodic and now - self._last_line >= self.every:
            self._emit(now)

    def finish(self) -> None:
        """The job is done: its line, and its duration for the sweep's ETA."""
        now = self.clock()
        if self.enabled:  # one duration per job of the sweep, from the process that prints
            self.sweep.durations.append(now - self.started)
        self.stage_name, self.total, self.done = "done", None, 0
        self._emit(now)

    # ---- the line -------------------------------------------------------------------------
    def eta(self, now: float | None = None) -> float | None:
        """Seconds left in the current stage, else in the job (from the sweep's finished jobs)."""
        now = self.clock() if now is None else now
        left = rate_eta(self.done, self.total, now - self._base_time, self._base_done)
        if left is None and self.stage_name != "done" and self.sweep.durations:
            mean = sum(self.sweep.durations) / len(self.sweep.durations)
            left = max(0.0, mean - (now - self.started))
        return left

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = now - self.started
        who = self.name
        if self.index is not None:
            who = f"job {self.index}/{self.count} {who}" if self.count else f"job {self.index} {who}"
        stage = self.stage_name or "start"
        if self.total is not None:
            stage += f" {self.done}/{self.total}"
        parts = [f"{PREFIX} {who}", stage, f"{format_duration(elapsed)} elapsed"]
        left = self.eta(now)
        if left is not None:
            parts.append(f"ETA {format_eta(left)}")
        if self.index is not None and self.count:
            after = max(0, self.count - self.index)
            finished = self.stage_name == "done"
            # a finished job has nothing left of its own: an infinite elapsed time leaves 0
            total = sweep_eta(self.sweep.durations, after, math.inf if finished else elapsed)
            if total is not None and not (finished and after == 0):
                parts.append(f"sweep ETA {format_eta(total)}")
        return " | ".join(parts)

    def _emit(self, now: float) -> None:
        if not self.enabled:
            return
        self._last_line = now
        self.write(self.line(now))


def for_job(cfg) -> JobProgress:
    """The progress lines of the job ``cfg`` (a RunConfig), placed in its Hydra sweep if any."""
    from ufo_rl import dist
    from ufo_rl.identity import job_name

    index = count = None
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            index = int(HydraConfig.get().job.num) + 1
            count = SWEEP.count or int(os.environ.get(SWEEP_JOBS_ENV, "0")) or None
    except (ImportError, ValueError):
        pass
    name = job_name(cfg).rsplit("-", 1)[0]  # without the identity hash
    return JobProgress(name, index, count, periodic=cfg.progress, enabled=dist.is_main_process())


def side_by_side() -> bool:
    """True in a job that a launcher runs beside others on this machine (``hydra/launcher=parallel``
    with more than one worker): their bars would interleave on one console, so such a job shows
    its job lines alone (:func:`bars`)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
            return False
        launcher = HydraConfig.get().launcher
        n_jobs = launcher.get("n_jobs", 1)
        return "joblib" in str(launcher.get("_target_", "")).lower() and (n_jobs is None or int(n_jobs) != 1)
    except (ImportError, ValueError, TypeError):
        return False


def bars(progress: bool) -> bool:
    """Whether a job draws progress bars (its own, TRL's, transformers' weight loading): with
    ``progress`` on, unless it runs side by side with other jobs (:func:`side_by_side`)."""
    return bool(progress) and not side_by_side()


JOB_LOG = "job.log"
# what a job's log file takes: the package's own records (TRL's per-step metrics among them,
# ufo_rl/train.py) and the warnings of the libraries it drives
LOGGERS = ("ufo_rl", "transformers", "trl")


@contextmanager
def job_log(folder: Path | None, bars_on: bool = True):
    """While the job runs: ``<run folder>/job.log`` receives the loggers of :data:`LOGGERS` (the
    file is made on the first record, and a resumed run appends); without bars, transformers'
    weight-loading bars are off too. ``folder=None`` (a rank other than 0) only does the latter."""
    from transformers.utils import logging as hf_logging

    bars_were = hf_logging.is_progress_bar_enabled()
    if not bars_on:
        hf_logging.disable_progress_bar()
    handler = None
    levels = {}
    if folder is not None:
        handler = logging.FileHandler(Path(folder) / JOB_LOG, encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in LOGGERS:
            logger = logging.getLogger(name)
            levels[name] = logger.level
            logger.addHandler(handler)
        logging.getLogger("ufo_rl").setLevel(logging.INFO)
    try:
        yield
    finally:
        if handler is not None:
            for name in LOGGERS:
                logging.getLogger(name).removeHandler(handler)
                logging.getLogger(name).setLevel(levels[name])
            handler.close()
        if bars_were and not bars_on:
            hf_logging.enable_progress_bar()


def sweep_line(stage: str, write: Callable[[str], None] = _tqdm_write, now: float | None = None) -> None:
    """A line for the sweep as a whole (``report``): its job count and the time since it started;
    after a single run, the stage alone."""
    now = time.monotonic() if now is None else now
    if SWEEP.count is None or SWEEP.started is None:
        write(f"{PREFIX} {stage}")
        return
    write(f"{PREFIX} sweep of {SWEEP.count} jobs | {stage} | {format_duration(now - SWEEP.started)} elapsed")


def trainer_callback(progress: JobProgress):
    """A ``transformers.TrainerCallback`` that reports optimizer steps to ``progress``: the step
    a resumed run starts from counts as done, not as speed."""
    from transformers import TrainerCallback

    class TrainProgress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            progress.update(state.global_step, state.max_steps, fresh=False)

        def on_step_end(self, args, state, control, **kw):
            progress.update(state.global_step, state.max_steps)

    return TrainProgress()
