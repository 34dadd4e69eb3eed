"""The progress lines (ufo_rl/progress.py): their format, the ETA arithmetic, throttling, and that
a job and a sweep print them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import save_random_model
from omegaconf import OmegaConf

from ufo_rl.progress import (
    EVERY_SECONDS,
    JobProgress,
    Sweep,
    format_duration,
    format_eta,
    rate_eta,
    sweep_eta,
    trainer_callback,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def job(clock, *, index=2, count=4, periodic=True, sweep=None, name="multisample-top_mid-seed0"):
    lines: list[str] = []
    p = JobProgress(name, index, count, periodic=periodic, sweep=sweep or Sweep(), clock=clock, write=lines.append)
    return p, lines


def test_durations_read_as_elapsed_and_remaining_times():
    assert [format_duration(s) for s in (0, 44.6, 72, 3599, 3600 + 5 * 60 + 59)] == \
        ["0s", "45s", "1m12s", "59m59s", "1h05m"]
    # remaining times are coarse and rounded up: the last minute never reads 0m
    assert [format_eta(s) for s in (0.2, 40, 89.5, 90, 150, 3600 + 64 * 60 + 1)] == \
        ["1s", "40s", "90s", "2m", "3m", "2h05m"]


def test_eta_arithmetic():
    assert rate_eta(done=12, total=60, elapsed=36.0) == pytest.approx(144.0)  # 3 s a step, 48 left
    assert rate_eta(done=30, total=60, elapsed=10.0, done_before=20) == pytest.approx(30.0)
    assert rate_eta(done=20, total=60, elapsed=10.0, done_before=20) is None  # nothing timed yet
    assert rate_eta(done=5, total=None, elapsed=10.0) is None
    assert rate_eta(done=60, total=60, elapsed=10.0) == 0.0
    assert sweep_eta([], jobs_after=3, job_elapsed=0.0) is None
    assert sweep_eta([100.0, 140.0], jobs_after=2, job_elapsed=30.0) == pytest.approx(90 + 240)
    assert sweep_eta([100.0], jobs_after=1, job_elapsed=250.0) == pytest.approx(100.0)  # overran: 0 left here


def test_line_format_and_stage_eta():
    clock = Clock()
    p, lines = job(clock)
    clock.t += 30
    p.stage("train", total=60)
    clock.t += 36
    p.update(12, 60)  # 12 steps in 36 s: 48 to go at 3 s each
    clock.t += 6
    assert p.line() == "[ufo-rl] job 2/4 multisample-top_mid-seed0 | train 12/60 | 1m12s elapsed | ETA 3m"
    assert lines == ["[ufo-rl] job 2/4 multisample-top_mid-seed0 | train 0/60 | 30s elapsed",
                     "[ufo-rl] job 2/4 multisample-top_mid-seed0 | train 12/60 | 1m06s elapsed | ETA 3m"]
    # a single run has no place in a sweep
    single, _ = job(Clock(), index=None, count=None, name="ufo-top_mid-seed0")
    single.stage("load")
    assert single.line() == "[ufo-rl] ufo-top_mid-seed0 | load | 0s elapsed"


def test_periodic_lines_are_throttled_and_boundaries_are_not():
    clock = Clock()
    p, lines = job(clock)
    p.stage("score", total=100)
    for i in range(1, 41):  # one update a second for 40 s
        clock.t += 1
        p.update(i, 100)
    assert len(lines) == 1 + 40 // int(EVERY_SECONDS)  # the boundary, then one line per 15 s
    assert [line.split(" | ")[1] for line in lines] == ["score 0/100", "score 15/100", "score 30/100"]
    p.stage("select")  # a boundary is printed at once, however recent the last line
    assert lines[-1].split(" | ")[1] == "select" and len(lines) == 4


def test_without_progress_bars_only_the_boundaries_are_printed():
    clock = Clock()
    p, lines = job(clock, periodic=False)
    p.stage("train", total=60)
    for step in range(1, 61):
        clock.t += 20
        p.update(step, 60)
    p.finish()
    assert [line.split(" | ")[1] for line in lines] == ["train 0/60", "done"]
    silent = JobProgress("x", enabled=False, write=lambda line: pytest.fail(f"printed {line!r}"))
    silent.stage("score", total=3)
    silent.update(3, 3)
    silent.finish()


def test_work_found_done_does_not_count_as_speed():
    clock = Clock()
    p, _ = job(clock)
    p.stage("score", total=2048)
    clock.t += 0.1
    p.update(1024, fresh=False)  # two chunks read from the cache in a blink
    clock.t += 60
    p.update(1536)  # one chunk scored in a minute: one more to go
    assert p.eta() == pytest.approx(60.0)


def test_sweep_eta_from_finished_jobs():
    sweep = Sweep()
    sweep.start(3, now=0.0)
    clock = Clock(0.0)
    first, lines = job(clock, index=1, count=3, sweep=sweep)
    first.stage("load")
    assert "ETA" not in lines[-1]  # nothing to go by yet
    clock.t = 120.0
    first.finish()
    assert sweep.durations == [120.0]
    assert lines[-1] == "[ufo-rl] job 1/3 multisample-top_mid-seed0 | done | 2m00s elapsed | sweep ETA 4m"
    second, lines = job(clock, index=2, count=3, sweep=sweep)
    clock.t += 30
    second.stage("eval before")  # no count of its own: the job's ETA comes from the finished job
    assert lines[-1].endswith("| eval before | 30s elapsed | ETA 2m | sweep ETA 4m")  # 90 s, then 90 + 120 s
    clock.t += 150
    third, lines = job(clock, index=3, count=3, sweep=sweep)
    second.finish()
    assert lines == [] and "sweep ETA" in second.line()
    third.finish()
    assert "sweep ETA" not in lines[-1]  # the last job: nothing left to estimate


def test_trainer_callback_counts_optimizer_steps_and_not_the_restored_ones():
    clock = Clock()
    p, lines = job(clock)
    p.stage("train")
    callback = trainer_callback(p)
    state = SimpleNamespace(global_step=20, max_steps=60)
    clock.t += 5
    callback.on_train_begin(None, state, None)  # resumed from checkpoint-20
    for step in range(21, 31):
        clock.t += 2
        state.global_step = step
        callback.on_step_end(None, state, None)
    assert p.done == 30 and p.total == 60 and p.eta() == pytest.approx(60.0)  # 2 s a step, 30 to go
    assert [line.split(" | ")[1] for line in lines] == ["train", "train 25/60"]


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("m") / "micro")


def test_a_job_prints_its_stage_lines(tmp_path, micro_model, capsys):
    from ufo_rl.config import DatasetConfig, ModelConfig, RunConfig, SelectorConfig
    from ufo_rl.pipeline import Job

    cfg = RunConfig(model=ModelConfig(name_or_path=str(micro_model)),
                    dataset=DatasetConfig(kind="embedded", n_pool=40, n_test=10),
                    selector=SelectorConfig(name="ufo", batch_size=64), stage="select",
                    cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"), progress=False)
    Job(cfg).run()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[ufo-rl] ufo-")]
    assert [line.split(" | ")[:2] for line in lines] == [
        ["[ufo-rl] ufo-top_mid-seed0", "load"], ["[ufo-rl] ufo-top_mid-seed0", "score 0/40"],
        ["[ufo-rl] ufo-top_mid-seed0", "select"], ["[ufo-rl] ufo-top_mid-seed0", "done"]]
    assert all(line.split(" | ")[2].endswith("s elapsed") for line in lines)


def test_a_sweep_numbers_its_jobs(tmp_path):
    # selector=random needs no model: two cheap jobs through Hydra's basic launcher
    r = subprocess.run(
        [sys.executable, "bench/run.py", "-m", "selector=random,full", "stage=select", "dataset.n_pool=60",
         "dataset.n_test=10", f"results_dir={tmp_path}", "progress=false"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line for line in r.stdout.splitlines() if line.startswith("[ufo-rl] job ")]
    assert lines[0].startswith("[ufo-rl] job 1/2 random-random-seed0 | load | ")
    assert lines[-1].startswith("[ufo-rl] job 2/2 full-all-seed0 | done | ")
    # the second job's lines estimate the sweep from the first
    assert all("sweep ETA" in line for line in lines if line.startswith("[ufo-rl] job 2/2") and "| done |" not in line)
    assert "[ufo-rl] sweep of 2 jobs | report | " in r.stdout


def test_sweep_size_counts_what_the_basic_sweeper_expands():
    from hydra import compose, initialize_config_dir

    from ufo_rl.hydra_callbacks import sweep_size
    from ufo_rl.hydra_conf import register_configs

    register_configs()
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=ci_smoke"], return_hydra_config=True)
    assert sweep_size(cfg) == 4  # selector: ufo,multisample,random,oracle (the experiment's sweeper.params)
    # the command line of `-m experiment=ci_smoke seed=0,1` (compose itself refuses a sweep)
    OmegaConf.set_readonly(cfg, False)
    cfg.hydra.overrides.task = ["experiment=ci_smoke", "seed=0,1"]
    assert sweep_size(cfg) == 4 * 2
    cfg.hydra.overrides.task = ["selector=ufo,random", "seed=0,1,2"]  # the command line wins for selector
    assert sweep_size(cfg) == 2 * 3
    cfg.hydra.sweeper._target_ = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweep_size(cfg) is None
