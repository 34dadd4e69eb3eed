"""Run identity through the CLI: no data loss, no stale results, folder names that say what ran.

Every job here is ``stage=select`` on a random micro model and a 20-prompt embedded pool, except
one whole job with a one-step GRPO budget, so the file runs in a couple of minutes on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import save_random_model
from omegaconf import OmegaConf

from ufo_rl.hydra_conf import to_run_config
from ufo_rl.identity import SHORT, run_identity

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SMALL = ["dataset.n_pool=20", "dataset.n_test=4", "model.max_new_tokens=8", "progress=false", "report=false"]
TINY_TRAINING = ["trainer.max_steps=1", "trainer.num_generations=2", "trainer.per_device_prompts=2",
                 "trainer.max_completion_length=8", "eval.k=0"]


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("m") / "micro")


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "run.py"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def job(tmp: Path, model: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """A small job with its results and cache under ``tmp``; asserts success unless ``ok=False``."""
    flags = [a for a in args if a.startswith("-")]  # Hydra's flags go before the overrides
    r = cli(tmp, *flags, f"model.name_or_path={model}", *SMALL, f"results_dir={tmp / 'res'}",
            f"cache_dir={tmp / 'cache'}", *(a for a in args if a not in flags))
    if ok:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> "dir" or the sha256 of the file's bytes."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def run_folders(tmp: Path) -> list[Path]:
    return sorted(p.parent for p in (tmp / "res" / "runs").rglob("config.yaml"))


def one_folder(tmp: Path) -> Path:
    [folder] = run_folders(tmp)
    return folder


def read(folder: Path, name: str):
    return json.loads((folder / name).read_text())


def check_name_and_identity(folder: Path) -> str:
    """The folder is named <selector>-<rule>-seed<seed>-<identity[:8]> and config.yaml's first
    line records the identity, which is the identity of the config it holds."""
    first, _ = (folder / "config.yaml").read_text().split("\n", 1)
    assert first.startswith("# run identity: ")
    identity = first.removeprefix("# run identity: ")
    assert len(identity) == 64 and int(identity, 16) >= 0
    rc = to_run_config(OmegaConf.load(folder / "config.yaml"))
    assert run_identity(rc) == identity
    meta = read(folder, "meta.json")
    assert meta["identity"] == identity
    assert folder.name == f"{meta['selector']}-{meta['rule']}-seed{meta['seed']}-{identity[:SHORT]}"
    assert folder.name == f"{rc.selector.name}-{meta['rule']}-seed{rc.seed}-{identity[:8]}"
    return identity


# ---- data loss -------------------------------------------------------------------------------


def test_plan_in_the_current_folder_deletes_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pool.jsonl").write_text('{"question": "1+1", "answer": "2"}\n')
    (tmp_path / "empty").mkdir()
    before = snapshot(tmp_path)
    r = cli(tmp_path, "stage=plan", "hydra.run.dir=.", f"results_dir={tmp_path}",
            f"cache_dir={tmp_path / 'cache'}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout[r.stdout.index("{"):])["stage"] == "plan"
    assert snapshot(tmp_path) == before
    # the same with a plan that fails: still nothing deleted
    r = cli(tmp_path, "stage=plan", "hydra.run.dir=.", "seed=-1", f"results_dir={tmp_path}")
    assert r.returncode == 2 and r.stderr.startswith("error: seed")
    assert snapshot(tmp_path) == before


def test_plan_aimed_at_a_running_jobs_folder_deletes_nothing(tmp_path, micro_model):
    # a job in progress: its config and some outputs are written, meta.json (written last) is not
    job(tmp_path, micro_model, "stage=select")
    running = one_folder(tmp_path)
    (running / "meta.json").unlink()
    (running / "timing.json").unlink()
    (running / ".scores.parquet.x1y2.tmp").write_bytes(b"half a parquet file")
    # another job in progress, before it wrote its config
    early = tmp_path / "early"
    early.mkdir()
    (early / ".config.yaml.abc.tmp").write_text("# run identity: ")
    before = snapshot(tmp_path)
    for folder, extra in [(running, []), (running, ["selector.fraction=0.5"]), (early, [])]:
        r = job(tmp_path, micro_model, "stage=plan", f"hydra.run.dir={folder}", *extra)
        assert json.loads(r.stdout[r.stdout.index("{"):])["run_dir"] == str(folder)
        assert snapshot(tmp_path) == before


def test_job_failing_in_a_folder_it_did_not_create_removes_only_what_it_wrote(tmp_path, micro_model):
    # (1) an empty folder made by the user; the job writes its config and the score cache, then
    # stops on bad input (ufo has no pass_rate signal)
    mine = tmp_path / "mine"
    mine.mkdir()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "keep.txt").write_text("the user's\n")
    before = snapshot(tmp_path)
    r = job(tmp_path, micro_model, "stage=select", "selector.signal=pass_rate", f"hydra.run.dir={mine}", ok=False)
    assert r.returncode == 2, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()  # the model was loaded: transformers' loading bar comes first
    assert lines[-1].startswith("error: ") and "'pass_rate' signal" in lines[-1] and "Traceback" not in r.stderr
    assert [ln for ln in lines if "error" in ln] == lines[-1:]
    assert snapshot(tmp_path) == before  # the folder itself stays: the job did not create it

    # (2) a finished stage=select folder, with a file of the user's in it; the whole job goes on
    # in it, evaluates the starting model (eval samples, eval cache), then stops on bad input
    # when training (no prompt fits trainer.max_prompt_length=1)
    args = ["selector.fraction=0.2", "trainer.max_prompt_length=1", *TINY_TRAINING]
    job(tmp_path, micro_model, "stage=select", *args)
    folder = one_folder(tmp_path)
    (folder / "notes.txt").write_text("the user's notes\n")
    before = snapshot(tmp_path)
    r = job(tmp_path, micro_model, "stage=all", *args, ok=False)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "trainer.max_prompt_length=1" in r.stderr and "Traceback" not in r.stderr
    after = snapshot(tmp_path)
    assert set(after) == set(before), "the job left something behind or removed something"
    unchanged = {k for k in before if before[k] == after[k]}
    # going on from select rewrites only config.yaml (its stage) and scoring.json (cached: true)
    rel = folder.relative_to(tmp_path)
    assert set(before) - unchanged <= {str(rel / "config.yaml"), str(rel / "scoring.json")}
    # what the job did not (re)write is byte-identical; meta.json is written last, so the
    # folder is still the finished select stage
    for name in ("notes.txt", "meta.json", "timing.json"):
        assert str(rel / name) in unchanged
    assert read(folder, "meta.json")["stage"] == "select"
    assert all(k in unchanged for k in before if not k.startswith(str(rel)))  # the cache too


# ---- stale results ---------------------------------------------------------------------------


def test_select_then_whole_job_goes_on_to_train_and_reuses_scores(tmp_path, micro_model):
    args = ["selector.fraction=0.1", *TINY_TRAINING]
    job(tmp_path, micro_model, "stage=select", *args)
    folder = one_folder(tmp_path)
    assert not read(folder, "scoring.json")["cached"]
    selected = pd.read_parquet(folder / "scores.parquet")["selected"]
    assert not (folder / "eval.json").exists()

    r = job(tmp_path, micro_model, "stage=all", *args)
    assert "already done" not in r.stdout
    assert run_folders(tmp_path) == [folder], "the whole job went to another folder"
    assert (folder / "eval.json").is_file() and (folder / "train.jsonl").is_file()
    assert read(folder, "scoring.json")["cached"] is True
    meta = read(folder, "meta.json")
    assert meta["status"] == "done" and meta["stage"] == "all" and meta["train"]["steps"] == 1
    pd.testing.assert_series_equal(pd.read_parquet(folder / "scores.parquet")["selected"], selected)
    check_name_and_identity(folder)

    # finished: the same whole job, and a select stage, return at once and change nothing
    before = snapshot(tmp_path)
    for stage in ("all", "select"):
        r = job(tmp_path, micro_model, f"stage={stage}", *args)
        assert "already done" in r.stdout
        assert snapshot(tmp_path) == before


def test_sweep_over_fraction_gives_two_folders_with_different_selections(tmp_path, micro_model):
    job(tmp_path, micro_model, "-m", "stage=select", "selector.fraction=0.1,0.3")
    folders = run_folders(tmp_path)
    assert len(folders) == 2
    metas = {read(f, "meta.json")["fraction"]: f for f in folders}
    assert set(metas) == {0.1, 0.3}
    ids = {frac: set(pd.read_json(f / "subset.jsonl", lines=True)["id"]) for frac, f in metas.items()}
    assert len(ids[0.1]) == 2 and len(ids[0.3]) == 6 and ids[0.1] != ids[0.3]
    assert len({check_name_and_identity(f) for f in folders}) == 2
    # the scores were computed once and shared
    assert read(metas[0.1], "scoring.json")["cache_key"] == read(metas[0.3], "scoring.json")["cache_key"]


def test_target_solution_and_answer_are_different_runs(tmp_path, micro_model):
    job(tmp_path, micro_model, "stage=select", "selector.target=answer")
    job(tmp_path, micro_model, "stage=select", "selector.target=solution")
    folders = run_folders(tmp_path)
    assert len(folders) == 2
    by_target = {to_run_config(OmegaConf.load(f / "config.yaml")).selector.target: f for f in folders}
    assert set(by_target) == {"answer", "solution"}
    a, s = (pd.read_parquet(by_target[t] / "scores.parquet") for t in ("answer", "solution"))
    assert list(a["id"]) == list(s["id"])
    assert (a["target"] != s["target"]).all()
    assert not a["confidence"].equals(s["confidence"])
    sa, ss = (read(by_target[t], "scoring.json") for t in ("answer", "solution"))
    assert sa["cache_key"] != ss["cache_key"] and not ss["cached"]
    assert check_name_and_identity(by_target["answer"]) != check_name_and_identity(by_target["solution"])


def test_rerun_and_non_result_keys_find_the_same_finished_folder(tmp_path, micro_model):
    job(tmp_path, micro_model, "stage=select")
    folder = one_folder(tmp_path)
    identity = check_name_and_identity(folder)
    before = snapshot(tmp_path)
    for extra in ([], ["selector.batch_size=7"], ["progress=true"],
                  ["selector.batch_size=3", "eval.batch_size=5", "model.threads=1"]):
        r = job(tmp_path, micro_model, "stage=select", *extra)
        assert f"{folder} is already done" in r.stdout, (extra, r.stdout)
        assert snapshot(tmp_path) == before, extra
    # a result key is another run, in another folder
    job(tmp_path, micro_model, "stage=select", "seed=1")
    folders = run_folders(tmp_path)
    assert len(folders) == 2
    other = next(f for f in folders if f != folder)
    assert check_name_and_identity(other) != identity and other.name.startswith("ufo-top_mid-seed1-")


def test_options_added_later_keep_the_identity_of_older_folders_at_their_default():
    from dataclasses import replace

    from ufo_rl.config import RunConfig, TinyConfig
    from ufo_rl.identity import ADDED_KEYS, identity_fields

    base = RunConfig()
    old = replace(base, model=replace(base.model, tiny=TinyConfig(slip_levels=None)))
    fields = identity_fields(old)
    assert not set(ADDED_KEYS) & set(fields), "an option at its old behaviour must not enter the identity"
    assert identity_fields(base)["model.tiny.slip_levels"] == [2]  # the default, the skill world
    assert run_identity(base) != run_identity(old)


def test_the_launchs_world_size_is_part_of_the_identity(monkeypatch):
    """Under budget=steps each step's global batch grows with the processes (ufo_rl/budget.py):
    the same config launched on 2 processes is another run; on 1 it keeps its old identity."""
    from ufo_rl import dist
    from ufo_rl.config import RunConfig
    from ufo_rl.identity import identity_fields

    base = RunConfig()
    one = run_identity(base)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert run_identity(base) == one
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "world_size", lambda: 2)  # what accelerate says under the launch
    assert identity_fields(base)["launch.world_size"] == 2
    assert run_identity(base) != one
