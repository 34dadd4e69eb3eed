"""A job killed with SIGKILL in each stage, then rerun with the same command, through the CLI.

The test drives the kill: it polls the run's files for a marker (the first score-cache chunk, a
checkpoint, the final model) and SIGKILLs the job the moment it appears. After each kill nothing
a later run trusts may claim to be finished; the rerun resumes (scoring by chunk, training from
its last complete checkpoint) and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUN = PROJECT_ROOT / "bench" / "run.py"
# a small GRPO budget: 4 steps of 2 prompts x 2 generations, a checkpoint every step
TRAIN = ["stage=all", "dataset.n_pool=100", "trainer.max_steps=4", "trainer.save_steps=1",
         "trainer.num_generations=2", "trainer.per_device_prompts=2", "trainer.max_completion_length=8",
         "eval.k=0"]


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    from helpers import save_random_model

    return save_random_model(tmp_path_factory.mktemp("m") / "micro")


def _args(model: Path, results: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, str(RUN), f"model.name_or_path={model}", f"results_dir={results}",
            f"cache_dir={cache}", "progress=false", *extra]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    r = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r


def _kill_when(args: list[str], log: Path, marker: Callable[[], bool], timeout: float = 300) -> float:
    """Start the job, SIGKILL it as soon as ``marker()`` holds; returns the seconds it ran."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(args, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        while not marker():
            assert proc.poll() is None, f"the job ended (rc {proc.returncode}) before the marker:\n" \
                                        + log.read_text()[-3000:]
            assert time.perf_counter() - t0 < timeout, "the marker never appeared"
            time.sleep(0.01)
        proc.kill()  # SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -9
    return time.perf_counter() - t0


def _run_folder(results: Path) -> Path | None:
    found = sorted((results / "runs" / "default").glob("*-seed0-*"))
    return found[0] if found else None


def _exists(results: Path, relative: str) -> Callable[[], bool]:
    def check() -> bool:
        folder = _run_folder(results)
        return folder is not None and (folder / relative).exists()
    return check


def _assert_nothing_trusted_is_torn(folder: Path | None, cache: Path) -> None:
    """After a kill: no run claims to be done, and every JSON record a rerun reads parses."""
    if folder is not None:
        meta = folder / "meta.json"
        assert not meta.exists() or json.loads(meta.read_text()).get("status") != "done"
        for p in folder.rglob("*.json"):
            if "checkpoints" not in p.relative_to(folder).parts:  # the trainer's own, checked on resume
                json.loads(p.read_text())
    for p in cache.rglob("chunk-*.json"):
        json.loads(p.read_text())


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def _train_steps(folder: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (folder / "train.jsonl").read_text().splitlines() if line.strip()]


def test_sigkill_during_scoring_resumes_by_chunk(tmp_path, micro_model):
    """2,000 prompts are 4 chunks of the score cache; killed after the first, the rerun reuses it."""
    results, cache = tmp_path / "res", tmp_path / "cache"
    args = _args(micro_model, results, cache, "stage=select", "dataset.n_pool=2000", "dataset.n_test=10")
    _kill_when(args, tmp_path / "killed.log", lambda: any(cache.glob("ufo-*/chunk-00000.json")))
    [entry] = cache.glob("ufo-*")
    assert not (entry / "chunk-00003.json").exists(), "the kill came after scoring had finished"
    _assert_nothing_trusted_is_torn(_run_folder(results), cache)

    _run(args)
    folder = _run_folder(results)
    scoring = json.loads((folder / "scoring.json").read_text())
    assert scoring["resumed_chunks"] >= 1 and not scoring["cached"]
    assert json.loads((folder / "meta.json").read_text())["status"] == "done"

    _run(_args(micro_model, tmp_path / "ref", tmp_path / "ref-cache", "stage=select", "dataset.n_pool=2000",
               "dataset.n_test=10"))
    ref = _run_folder(tmp_path / "ref")
    assert ref.name == folder.name
    cols = ["id", "logprob_mean", "confidence", "score", "selected"]
    got, want = (pd.read_parquet(f / "scores.parquet")[cols] for f in (folder, ref))
    assert len(got) == 2000
    pd.testing.assert_frame_equal(got, want, check_exact=True)


@pytest.mark.slow
def test_sigkill_during_training_resumes_from_the_last_checkpoint(tmp_path, micro_model):
    results, cache = tmp_path / "res", tmp_path / "cache"
    args = _args(micro_model, results, cache, *TRAIN, "dataset.n_test=10", "model.max_new_tokens=16")
    _kill_when(args, tmp_path / "killed.log", _exists(results, "checkpoints/checkpoint-2/trainer_state.json"))
    folder = _run_folder(results)
    assert not (folder / "final").exists(), "the kill came after training had finished"
    _assert_nothing_trusted_is_torn(folder, cache)
    # the newest whole checkpoint; the kill may have torn the one it polled for
    ckpts = folder / "checkpoints"
    whole = sorted(int(p.name.split("-")[1]) for p in ckpts.glob("checkpoint-*") if _parses(p / "trainer_state.json"))
    newest = whole[-1]
    if newest < 4:  # what a kill in the middle of the next save leaves: a folder, a torn trainer state
        (ckpts / f"checkpoint-{newest + 1}").mkdir(exist_ok=True)
        (ckpts / f"checkpoint-{newest + 1}" / "trainer_state.json").write_text('{"best_global_step": null, "be')

    _run(args)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "done"
    train = meta["train"]
    assert train["resumed"] is True and train["steps"] == 4
    assert Path(train["resumed_from"]).name == f"checkpoint-{newest}"
    assert _train_steps(folder) == [1, 2, 3, 4]
    # the training time goes on from the kept steps: it counts the steps trained before the kill
    wall = [json.loads(line)["wall_seconds"] for line in (folder / "train.jsonl").read_text().splitlines()]
    assert wall == sorted(wall) and train["training_seconds"] >= wall[-1]
    assert json.loads((folder / "eval.json").read_text())["final_step"] == 4


@pytest.mark.slow
def test_sigkill_during_final_evaluation_does_not_retrain(tmp_path, micro_model):
    """Killed while the trained model is evaluated (200 test problems take seconds), the rerun
    resumes at the last checkpoint, which is the final step: no step is trained again."""
    results, cache = tmp_path / "res", tmp_path / "cache"
    args = _args(micro_model, results, cache, *TRAIN, "dataset.n_test=200", "eval.max_new_tokens=32")
    _kill_when(args, tmp_path / "killed.log",
               lambda: _exists(results, "final/tokenizer.json")() and _exists(results, "final/tokenizer_config.json")())
    folder = _run_folder(results)
    assert not (folder / "eval.json").exists(), "the kill came after the evaluation had finished"
    _assert_nothing_trusted_is_torn(folder, cache)
    log_before = (folder / "train.jsonl").read_text()
    assert _train_steps(folder) == [1, 2, 3, 4]

    _run(args)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "done"
    assert meta["train"]["resumed"] is True and meta["train"]["steps"] == 4
    assert Path(meta["train"]["resumed_from"]).name == "checkpoint-4"
    assert (folder / "train.jsonl").read_text() == log_before  # no step logged (so trained) again
    last_wall = json.loads(log_before.splitlines()[-1])["wall_seconds"]
    assert meta["train"]["training_seconds"] >= last_wall  # the 4 steps' time, not the rerun's alone
    ev = json.loads((folder / "eval.json").read_text())
    assert ev["final_step"] == 4
    for phase in ("before", "final", "best"):
        assert ev[phase]["embedded"]["n"] == 200
    final_rows = (folder / "eval_samples" / "final-embedded.jsonl").read_text().splitlines()
    assert len(final_rows) == 200


def test_a_checkpoint_with_a_torn_or_missing_trainer_state_is_not_resumed_from(tmp_path):
    """The Trainer writes trainer_state.json last and not atomically: a kill during a save leaves
    the newest folder without it or with half of it; the resume takes the newest whole one."""
    from ufo_rl.train import latest_checkpoint

    ckpts = tmp_path / "checkpoints"
    for step, state in ((1, {"global_step": 1}), (2, {"global_step": 2}), (3, None), (4, "torn")):
        (ckpts / f"checkpoint-{step}").mkdir(parents=True)
        if state == "torn":
            (ckpts / f"checkpoint-{step}" / "trainer_state.json").write_text('{"global_step": 4, "log_hi')
        elif state is not None:
            (ckpts / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
    assert latest_checkpoint(ckpts).name == "checkpoint-2"


def test_truncating_the_train_log_drops_later_and_torn_rows(tmp_path):
    from ufo_rl.train import _truncate_log

    log = tmp_path / "train.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 0.1 * s}) + "\n" for s in (1, 2, 3)) + '{"step": 4, "lo')
    _truncate_log(log, 2)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_kill_during_the_first_write_leaves_a_folder_the_rerun_accepts(tmp_path, micro_model):
    """A kill while config.yaml, the run's first file, is being written leaves the run folder with
    nothing but that write's temporary file; the rerun must take the folder, not refuse it."""
    results, cache = tmp_path / "res", tmp_path / "cache"
    args = _args(micro_model, results, cache, "stage=select", "dataset.n_pool=60", "dataset.n_test=10")
    plan = subprocess.run([*args, "stage=plan"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr[-3000:]
    folder = Path(json.loads(plan.stdout[plan.stdout.index("{"):])["run_dir"])
    folder.mkdir(parents=True)
    (folder / ".config.yaml.k1ll3d00.tmp").write_text("# run identity: ")  # what the kill left
    r = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((folder / "meta.json").read_text())["status"] == "done"
