"""Many writers, many jobs, one tree: what runs at the same time must not tear or duplicate.

- torn writes: several processes rewrite one JSON file through ``ufo_rl.io.write_json`` while a
  reader parses it in a loop; the old way (one fixed temporary name, then rename) is the control;
- two identical jobs started at the same moment end in one folder with the serial run's scores;
- two jobs that share one score-cache entry but not a folder (seeds 0 and 1) score it together;
- a whole-job sweep under ``hydra/launcher=parallel`` (joblib, two workers) and under
  ``submitit_local`` (every job at once) ends with the serial sweep's folders, scores and tables.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ufo_rl.io import write_json

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUN = PROJECT_ROOT / "bench" / "run.py"
# the columns a scorer or the selection computes (the rest are copied from the pool)
SCORE_COLUMNS = ["id", "logprob_mean", "confidence", "pass_rate", "n_samples", "score", "selected", "difficulty"]

N_WRITERS, N_WRITES = 4, 200


# ---- torn writes -------------------------------------------------------------------------------

def _payload(writer: int, i: int) -> dict:
    n = 200 + (writer * 7919 + i * 104729) % 20000  # sizes vary, so a torn file is short or mixed
    return {"writer": writer, "i": i, "n": n, "pad": "x" * n}


def _old_write_json(path: Path, obj) -> None:
    """The approach ``atomic_write`` replaced: one fixed temporary name per target, then rename."""
    tmp = path.parent / f".{path.name}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _writer(path: str, writer: int, old: bool, start, failures) -> None:
    start.wait()
    for i in range(N_WRITES):
        try:
            (_old_write_json if old else write_json)(Path(path), _payload(writer, i))
        except Exception:
            with failures.get_lock():
                failures.value += 1


def _reader(path: str, stop, reads, torn) -> None:
    p = Path(path)
    while not stop.is_set():
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
            ok = isinstance(obj, dict) and obj.get("n") == len(obj.get("pad", ""))
        except FileNotFoundError:
            continue
        except ValueError:
            ok = False
        with reads.get_lock():
            reads.value += 1
        if not ok:
            with torn.get_lock():
                torn.value += 1


def _hammer(folder: Path, old: bool) -> dict:
    """N_WRITERS processes x N_WRITES rewrites of one file, one reader parsing it throughout."""
    ctx = mp.get_context("fork")
    target = folder / "state.json"
    write_json(target, _payload(99, 0))  # the reader always has a file to read
    start, stop = ctx.Event(), ctx.Event()
    failures, reads, torn = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Value("i", 0)
    reader = ctx.Process(target=_reader, args=(str(target), stop, reads, torn))
    writers = [ctx.Process(target=_writer, args=(str(target), w, old, start, failures)) for w in range(N_WRITERS)]
    reader.start()
    for w in writers:
        w.start()
    start.set()
    for w in writers:
        w.join(120)
    stop.set()
    reader.join(30)
    assert all(w.exitcode == 0 for w in writers) and reader.exitcode == 0
    return {"failures": failures.value, "reads": reads.value, "torn": torn.value,
            "leftovers": sorted(p.name for p in folder.iterdir() if p.name != target.name),
            "final": json.loads(target.read_text())}


def test_concurrent_write_json_never_tears_and_leaves_no_temp_files(tmp_path):
    out = _hammer(tmp_path, old=False)
    assert out["failures"] == 0, out
    assert out["torn"] == 0 and out["reads"] > 0, out
    assert out["leftovers"] == [], "temporary files were left behind"
    final = out["final"]
    assert final["i"] == N_WRITES - 1 and final["n"] == len(final["pad"])  # some writer's last write


def test_control_fixed_temp_name_does_fail_under_the_same_load(tmp_path):
    """Shows that the test above can fail: with one shared temporary name, writers rename each
    other's half-written files (a reader sees them torn) and then find their own gone."""
    out = _hammer(tmp_path, old=True)
    assert out["failures"] > 0 and out["torn"] > 0, out


# ---- jobs through the CLI ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    from helpers import save_random_model

    return save_random_model(tmp_path_factory.mktemp("m") / "micro")


def _args(model: Path, results: Path, cache: Path, *extra: str, multirun: bool = False) -> list[str]:
    return [sys.executable, str(RUN), *(["-m"] if multirun else []), "stage=select", f"model.name_or_path={model}",
            "dataset.n_pool=120", "dataset.n_test=10", f"results_dir={results}", f"cache_dir={cache}",
            "progress=false", *extra]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(args, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)


def _wait(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 300) -> None:
    try:
        rcs = [p.wait(timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rc, log in zip(rcs, logs):
        assert rc == 0, log.read_text()[-3000:]


def _folders(results: Path) -> list[Path]:
    return sorted(p for p in (results / "runs" / "default").iterdir() if p.is_dir() and not p.name.startswith("."))


def _scores(folder: Path) -> pd.DataFrame:
    df = pd.read_parquet(folder / "scores.parquet")
    return df[[c for c in SCORE_COLUMNS if c in df.columns]]


def _cache_entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.is_dir() and p.name != "locks")


def test_two_identical_jobs_at_once_make_one_folder_with_the_serial_scores(tmp_path, micro_model):
    cache, results = tmp_path / "cache", tmp_path / "res"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_start(_args(micro_model, results, cache), log) for log in logs]
    _wait(procs, logs)
    [folder] = _folders(results)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "done"
    text = logs[0].read_text() + logs[1].read_text()
    assert text.count(f"{folder} is already done") == 1, text[-3000:]  # the second found it finished
    assert _cache_entries(cache) == [f"ufo-{json.loads((folder / 'scoring.json').read_text())['cache_key']}"]
    assert not list(folder.rglob(".*.tmp")) and not list(cache.rglob(".*.tmp"))

    serial = tmp_path / "serial"
    r = subprocess.run(_args(micro_model, serial, tmp_path / "serial-cache"), cwd=PROJECT_ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    [ref] = _folders(serial)
    assert ref.name == folder.name
    pd.testing.assert_frame_equal(_scores(folder), _scores(ref), check_exact=True)


@pytest.mark.slow
def test_two_jobs_scoring_one_cache_entry_at_once(tmp_path, micro_model):
    """Seeds 0 and 1 have separate folders (no lock between them) and the same score-cache
    entry: they score it side by side; both finish with the same scores, the entry stays one,
    and a third job reads it whole (no chunk is found damaged and recomputed)."""
    cache = tmp_path / "cache"
    args = [_args(micro_model, tmp_path / f"res{s}", cache, f"seed={s}", "dataset.n_pool=1100") for s in (0, 1)]
    logs = [tmp_path / "s0.log", tmp_path / "s1.log"]
    _wait([_start(a, log) for a, log in zip(args, logs)], logs)
    [f0], [f1] = _folders(tmp_path / "res0"), _folders(tmp_path / "res1")
    cols = ["id", "logprob_mean", "confidence"]
    pd.testing.assert_frame_equal(_scores(f0)[cols], _scores(f1)[cols], check_exact=True)
    assert len(_cache_entries(cache)) == 1
    r = subprocess.run(_args(micro_model, tmp_path / "res2", cache, "seed=2", "dataset.n_pool=1100"),
                       cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "score cache chunk" not in r.stdout + r.stderr, r.stderr[-3000:]
    [f2] = _folders(tmp_path / "res2")
    assert json.loads((f2 / "scoring.json").read_text())["cached"] is True
    pd.testing.assert_frame_equal(_scores(f0)[cols], _scores(f2)[cols], check_exact=True)


# what a sweep's tables may differ in between runs: wall-clock seconds and rates derived from them
TIME_COLUMNS = ("seconds", "per_second", "speedup")


def _tables(results: Path) -> dict[str, pd.DataFrame]:
    """Every CSV table of a results folder, without its time columns, rows in a fixed order."""
    out = {}
    for path in sorted((results / "tables").glob("*.csv")):
        df = pd.read_csv(path)
        df = df[[c for c in df.columns if c != "run" and not any(t in c for t in TIME_COLUMNS)]]
        out[path.name] = df.sort_values(list(df.columns)).reset_index(drop=True) if len(df.columns) else df
    return out


@pytest.fixture(scope="module")
def serial_sweep(tmp_path_factory, micro_model):
    """The whole-job sweep of :func:`test_a_parallel_sweep_ends_with_the_serial_sweeps_tables`,
    run one job after another by Hydra's basic launcher."""
    root = tmp_path_factory.mktemp("serial")
    r = subprocess.run(_args(micro_model, root / "res", root / "cache", *WHOLE_SWEEP, multirun=True),
                       cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return root


# three selectors, each job whole (score, 2 GRPO steps, evaluation), the report at the end
WHOLE_SWEEP = ("selector=ufo,multisample,random", "selector.k=2", "model.max_new_tokens=8", "stage=all",
               "trainer.max_steps=2", "trainer.save_steps=2", "trainer.num_generations=2",
               "trainer.per_device_prompts=2", "trainer.max_completion_length=8", "eval.k=1", "report=true")


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["parallel", "submitit_local"])
def test_a_parallel_sweep_ends_with_the_serial_sweeps_tables(tmp_path, micro_model, serial_sweep, launcher):
    """``hydra/launcher=parallel`` (joblib, 2 workers: what ``make run`` uses) and
    ``submitit_local`` (every job at once) run the same jobs side by side on one cache; their
    folders, scores and every table equal the serial sweep's, up to wall-clock columns."""
    # progress on, as make run has it: side by side, the jobs show their lines and no bars
    extra = ["hydra.launcher.n_jobs=2", "progress=true"] if launcher == "parallel" else []
    par = subprocess.run(_args(micro_model, tmp_path / "res", tmp_path / "cache", *WHOLE_SWEEP,
                               f"hydra/launcher={launcher}", *extra, multirun=True),
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert par.returncode == 0, par.stderr[-3000:]
    if launcher == "parallel":  # a console a person can read (ufo_rl/progress.py: bars, job_log)
        console = par.stdout + par.stderr
        assert "[ufo-rl] job 1/3" in console and "# Verdict" in console
        for noise in ("{'loss'", "'reward'", "generate:", "ufo score", "Loading weights", "it/s]"):
            assert noise not in console, noise
        for folder in _folders(tmp_path / "res"):  # TRL's per-step metrics went to the job's log
            assert "ufo_rl.train: step 2: {" in (folder / "job.log").read_text()
    a, b = _folders(tmp_path / "res"), _folders(serial_sweep / "res")
    assert [f.name for f in a] == [f.name for f in b] and len(a) == 3
    for fa, fb in zip(a, b):
        assert json.loads((fa / "meta.json").read_text())["status"] == "done"
        pd.testing.assert_frame_equal(_scores(fa), _scores(fb), check_exact=True)
    assert _cache_entries(tmp_path / "cache") == _cache_entries(serial_sweep / "cache")
    ours, theirs = _tables(tmp_path / "res"), _tables(serial_sweep / "res")
    assert {"accuracy.csv", "differences.csv", "runs.csv"} <= set(ours) and set(ours) == set(theirs)
    for name in ours:
        pd.testing.assert_frame_equal(ours[name], theirs[name], check_exact=False, rtol=1e-9, obj=name)
