"""A whole job under a two-process launch on the CPU (gloo): score, GRPO, evaluate.

The launch is ``accelerate launch --multi_gpu --num_processes 2``, which starts the processes
through torchrun; ufo_rl/dist.py asks accelerate for the CPU when no GPU is visible, so they
run on gloo. (``accelerate launch --cpu --num_processes 2`` starts one process: accelerate
launches several CPU processes only through ``mpirun`` with ``--mpirun_hostfile``.)

Each process runs bench/run.py through a small driver that records, per rank, every file
written through ufo_rl/io.py, every chunk the scorer scores and every evaluation. The pool of
600 prompts is two chunks of the score cache, so each rank scores one (ufo_rl/cache.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")

JOB = ["dataset.n_pool=600", "dataset.n_test=32", "eval.k=0", "progress=false",
       "trainer.budget=epochs", "trainer.epochs=0.1", "trainer.per_device_prompts=2",
       "trainer.num_generations=2", "trainer.max_completion_length=16", "trainer.save_steps=1"]
# 60 prompts selected; 2 processes x 2 prompts = 4 per step; ceil(0.1 x 60 / 4) = 2 steps
# (one process would take ceil(0.1 x 60 / 2) = 3)
EXPECTED_STEPS = 2

DRIVER = '''
import json, os, runpy, sys
from dataclasses import replace

log = open(os.path.join(sys.argv.pop(1), f"rank{os.environ.get('RANK', '0')}.jsonl"), "a")
def note(*event):
    log.write(json.dumps(event) + "\\n"); log.flush()

import ufo_rl.io as io  # patched before any module takes atomic_write by name
write = io.atomic_write
io.atomic_write = lambda path, fn: (note("write", os.path.abspath(path)), write(path, fn))[1]

import ufo_rl.evaluate as ev
evaluate = ev.evaluate
ev.evaluate = lambda *a, **kw: (note("eval"), evaluate(*a, **kw))[1]

from ufo_rl.scorers import SCORERS, get_scorer
ufo = get_scorer("ufo")
SCORERS["ufo"] = replace(ufo, fn=lambda ctx, chunk: (note("score", len(chunk), chunk[0].id), ufo.fn(ctx, chunk))[1])

sys.argv[0] = os.path.join(os.environ["UFO_RL_ROOT"], "bench", "run.py")
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def _events(logs: Path, rank: int) -> list[list]:
    path = logs / f"rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _run(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "UFO_RL_ROOT": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-5000:])
    return r


@pytest.mark.slow
def test_two_processes_run_one_job_as_one_process_would(tmp_path):
    driver, logs = tmp_path / "driver.py", tmp_path / "logs"
    driver.write_text(DRIVER)
    logs.mkdir()
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, str(PROJECT_ROOT / "bench" / "run.py"), "stage=select", f"results_dir={one}", *JOB],
         tmp_path)
    _run([str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no", str(driver), str(logs),
          f"results_dir={two}", *JOB], tmp_path)

    (run_one,), (run_two,) = ((d / "runs" / "default").iterdir() for d in (one, two))
    # the same job but for its world size, which changes each step's global batch: another folder
    assert run_one.name.rsplit("-", 1)[0] == run_two.name.rsplit("-", 1)[0] and run_one.name != run_two.name

    # scoring: each rank scored one of the two chunks; the scores and the subset are one process's
    scored = {r: [e[1:] for e in _events(logs, r) if e[0] == "score"] for r in (0, 1)}
    assert scored == {0: [[512, "arith-pool-0-000000"]], 1: [[88, "arith-pool-0-000512"]]}
    a, b = (pd.read_parquet(d / "scores.parquet") for d in (run_one, run_two))
    pd.testing.assert_series_equal(a["id"], b["id"])
    pd.testing.assert_series_equal(a["confidence"], b["confidence"], check_exact=True)
    assert list(a["selected"]) == list(b["selected"]) and a["selected"].sum() == 60

    # training: the budget's steps, logged once each
    meta = json.loads((run_two / "meta.json").read_text())
    assert meta["status"] == "done" and meta["train"]["steps"] == EXPECTED_STEPS
    assert (meta["train"]["world_size"], meta["train"]["prompts_per_step"]) == (2, 4)
    rows = [json.loads(line) for line in (run_two / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, EXPECTED_STEPS + 1))
    state = json.loads((run_two / "checkpoints" / f"checkpoint-{EXPECTED_STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == EXPECTED_STEPS

    # evaluation once (before and final, by rank 0), and only rank 0 writes
    assert [e for e in _events(logs, 0) if e[0] == "eval"] == [["eval"], ["eval"]]
    assert [e for e in _events(logs, 1) if e[0] in ("eval", "write")] == []
    written = {Path(e[1]) for e in _events(logs, 0) if e[0] == "write"}
    by_trainer = ("checkpoints", "final", "train.jsonl")  # the Trainer's and the training log's
    for path in (p for p in two.rglob("*") if p.is_file()):
        assert not path.name.endswith(".tmp"), path
        rel = path.relative_to(run_two) if path.is_relative_to(run_two) else None
        if rel is not None and rel.parts[0] in by_trainer:
            continue
        if path.suffix == ".lock" or path.name == "job.log" or path.parent.name in ("tables", "figures"):
            continue  # the job's lock, its log (appended, ufo_rl/progress.py), the report's output
        assert path in written, path
    assert json.loads((run_two / "eval.json").read_text())["final"]


def test_zero2_config_is_a_valid_accelerate_launch_without_a_gpu():
    """conf/accelerate/zero2.yaml read by accelerate's own config class and launch checks (as
    ``accelerate launch --config_file`` does, up to starting the processes): DeepSpeed ZeRO-2,
    bf16, 8 processes on one machine. Neither a GPU nor deepspeed is needed to check it."""
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DistributedType

    path = PROJECT_ROOT / "conf" / "accelerate" / "zero2.yaml"
    cfg = load_config_from_file(str(path))
    assert isinstance(cfg, ClusterConfig) and cfg.distributed_type == DistributedType.DEEPSPEED
    assert cfg.deepspeed_config["zero_stage"] == 2 and cfg.mixed_precision == "bf16"
    assert (cfg.num_processes, cfg.num_machines, cfg.use_cpu) == (8, 1, False)
    args = launch_command_parser().parse_args(["--config_file", str(path), "bench/run.py", "selector=ufo"])
    args, _, _ = _validate_launch_command(args)
    assert args.use_deepspeed and args.zero_stage == 2 and args.mixed_precision == "bf16"
    assert args.num_processes == 8 and not args.cpu and args.training_script_args == ["selector=ufo"]
