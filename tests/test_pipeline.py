"""The select stage end to end on a micro model, the score cache across jobs, and bad input."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from helpers import save_random_model

from ufo_rl.config import DatasetConfig, EvalConfig, ModelConfig, RunConfig, SelectorConfig
from ufo_rl.pipeline import Job

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCORE_COLUMNS = {"id", "prompt", "target", "logprob_mean", "confidence", "pass_rate", "n_samples",
                 "score", "selected", "difficulty"}
SCORING_KEYS = {"method", "scoring_seconds", "load_seconds", "n_prompts", "forward_tokens",
                "generated_tokens", "cached", "model", "model_fingerprint", "dataset_fingerprint",
                "device", "dtype", "batch_size", "torch_threads"}


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("m") / "micro")


def run_cfg(tmp_path, model_path, name="ufo", seed=0, **sel):
    return RunConfig(
        model=ModelConfig(name_or_path=str(model_path), max_new_tokens=12),
        dataset=DatasetConfig(kind="embedded", n_pool=80, n_test=20),
        selector=SelectorConfig(name=name, k=4, batch_size=64, **sel),
        eval=EvalConfig(benchmarks={"embedded": DatasetConfig(kind="embedded", split="test", n_pool=80, n_test=20)}),
        stage="select", seed=seed, cache_dir=str(tmp_path / "cache"),
        run_dir=str(tmp_path / f"{name}-{sel.get('rule', 'd')}-{seed}"), progress=False,
    )


def test_select_stage_writes_the_contract(tmp_path, micro_model):
    cfg = run_cfg(tmp_path, micro_model)
    meta = Job(cfg).run()
    out = Path(cfg.run_dir)
    df = pd.read_parquet(out / "scores.parquet")
    assert SCORE_COLUMNS <= set(df.columns) and len(df) == 80
    assert df["selected"].sum() == 8 == meta["n_selected"]
    assert df["difficulty"].notna().all() and df["pass_rate"].isna().all()
    scoring = json.loads((out / "scoring.json").read_text())
    assert SCORING_KEYS <= set(scoring) and scoring["method"] == "ufo" and not scoring["cached"]
    assert scoring["n_prompts"] == 80 and scoring["forward_tokens"] > 0 and scoring["generated_tokens"] == 0
    subset = [json.loads(line) for line in (out / "subset.jsonl").read_text().splitlines()]
    assert {r["id"] for r in subset} == set(df.loc[df.selected, "id"])
    assert subset[0]["prompt"][-1]["role"] == "user" and subset[0]["answer"]
    verl = pd.read_parquet(out / "subset_verl.parquet")
    assert len(verl) == 8 and verl["reward_model"][0]["ground_truth"] == subset[0]["answer"]
    assert meta["status"] == "done" and json.loads((out / "meta.json").read_text())["status"] == "done"


def test_score_cache_is_shared_across_seeds_and_reports_original_cost(tmp_path, micro_model):
    first = run_cfg(tmp_path, micro_model, seed=0)
    Job(first).run()
    second = run_cfg(tmp_path, micro_model, seed=1)
    Job(second).run()
    a, b = (json.loads((Path(c.run_dir) / "scoring.json").read_text()) for c in (first, second))
    assert not a["cached"] and b["cached"]
    assert b["scoring_seconds"] == a["scoring_seconds"] and b["cache_key"] == a["cache_key"]
    sa, sb = (pd.read_parquet(Path(c.run_dir) / "scores.parquet") for c in (first, second))
    pd.testing.assert_series_equal(sa["confidence"], sb["confidence"])


def test_multisample_keeps_every_sample_and_random_needs_no_model(tmp_path, micro_model):
    ms = run_cfg(tmp_path, micro_model, name="multisample")
    Job(ms).run()
    df = pd.read_parquet(Path(ms.run_dir) / "scores.parquet")
    samples = [json.loads(line) for line in (Path(ms.run_dir) / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 80 * 4 and set(df["n_samples"]) == {4}
    assert json.loads((Path(ms.run_dir) / "scoring.json").read_text())["generated_tokens"] > 0
    rnd = run_cfg(tmp_path, "/nonexistent/model/never/loaded", name="random", rule="random")
    rnd = replace(rnd, model=replace(rnd.model, name_or_path="/nonexistent/model/never/loaded"))
    Job(rnd).run()
    assert pd.read_parquet(Path(rnd.run_dir) / "scores.parquet")["selected"].sum() == 8


def cli(*args, cwd=PROJECT_ROOT):
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "run.py"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args,message", [
    (["dataset=jsonl", "dataset.path=/nonexistent/pool.jsonl"], "/nonexistent/pool.jsonl"),
    (["selector.fraction=1.5"], "fraction must be in (0, 1]"),
    (["selector.name=oracle"], "unknown selector 'oracle'"),
    (["trainer.budget=forever"], "unknown trainer.budget"),
])
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path, args, message):
    r = cli(*args, f"results_dir={tmp_path}")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert not list(tmp_path.rglob("*-seed0")), "a failed job left its run folder behind"


def test_malformed_pool_names_file_and_line(tmp_path, micro_model):
    bad = tmp_path / "pool.jsonl"
    bad.write_text('{"question": "1+1", "answer": "2"}\n{"question": oops}\n')
    r = cli("dataset=jsonl", f"dataset.path={bad}", f"model.name_or_path={micro_model}", "stage=select",
            f"results_dir={tmp_path / 'res'}")
    assert r.returncode == 2
    assert "pool.jsonl" in r.stderr and "line 2" in r.stderr
    assert not (tmp_path / "res" / "runs" / "default" / "ufo-top_mid-seed0").exists()


def test_plan_validates_without_loading_a_model(tmp_path, micro_model):
    # the folder holds a config and a tokenizer, but its weights are never read by a plan
    (tmp_path / "m").mkdir()
    for f in ("config.json", "tokenizer.json"):
        (tmp_path / "m" / f).write_bytes((micro_model / f).read_bytes())
    r = cli("stage=plan", f"model.name_or_path={tmp_path / 'm'}", "experiment=table5_selection",
            f"results_dir={tmp_path / 'res'}")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout[r.stdout.index("{"):])
    assert plan["experiment"] == "table5_selection" and plan["selector"] == "ufo" and plan["n_pool"] == 2000
    assert not (tmp_path / "res").exists(), "a plan wrote or left something"
    # a model folder that does not exist, or has no tokenizer, fails the plan in one line
    r = cli("stage=plan", "model.name_or_path=/no/such/weights", f"results_dir={tmp_path / 'res'}")
    assert r.returncode == 2 and r.stderr.strip() == ("error: model folder /no/such/weights does not exist; "
                                                       "check model.name_or_path")
    (tmp_path / "m" / "tokenizer.json").unlink()
    r = cli("stage=plan", f"model.name_or_path={tmp_path / 'm'}", f"results_dir={tmp_path / 'res'}")
    assert r.returncode == 2 and "has no tokenizer" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_whole_job_trains_evaluates_and_accounts_time(tmp_path, micro_model):
    from ufo_rl.config import TrainerConfig

    cfg = replace(run_cfg(tmp_path, micro_model), stage="all",
                  trainer=TrainerConfig(max_steps=2, num_generations=2, per_device_prompts=2,
                                        max_completion_length=8, save_steps=1, eval_every=1),
                  eval=EvalConfig(k=2, batch_size=32, max_new_tokens=8, benchmarks={
                      "embedded": DatasetConfig(kind="embedded", split="test", n_pool=80, n_test=12)}))
    meta = Job(cfg).run()
    out = Path(cfg.run_dir)
    ev = json.loads((out / "eval.json").read_text())
    for phase in ("before", "final"):
        m = ev[phase]["embedded"]
        assert m["n"] == 12 and 0 <= m["accuracy"] <= 1 and 0 <= m["avg_at_k"] <= 1 and m["k"] == 2
    # the best checkpoint and the learning curve are greedy accuracy only: no avg@k sampled there
    assert 0 <= ev["best"]["embedded"]["accuracy"] <= 1 and "avg_at_k" not in ev["best"]["embedded"]
    assert [c["step"] for c in ev["curve"]] == [1, 2] and ev["final_step"] == 2
    assert all("embedded/accuracy" in c and "embedded/avg_at_k" not in c for c in ev["curve"])
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert {"reward_mean", "reward_std", "zero_adv_frac", "loss", "learning_rate", "wall_seconds"} <= set(rows[0])
    timing = json.loads((out / "timing.json").read_text())
    assert timing["training_seconds"] > 0 and timing["total_seconds"] >= timing["training_seconds"]
    assert timing["end_to_end_seconds"] == pytest.approx(timing["scoring_seconds"] + timing["training_seconds"])
    assert (out / "eval_samples" / "final-embedded.jsonl").exists()
    assert meta["train"]["steps"] == 2 and meta["status"] == "done"
    # the records hold no path of this machine: the final model is "final", inside the run folder
    written = json.loads((out / "meta.json").read_text())
    assert written["train"]["final_model_path"] == "final" and (out / "final").is_dir()
    for name in ("meta.json", "scoring.json"):
        assert str(tmp_path) not in (out / name).read_text(), name
    # a finished job is not redone
    again = Job(cfg).run()
    assert again["status"] == "done" and json.loads((out / "timing.json").read_text()) == timing


def test_sweep_under_submitit_local_launcher(tmp_path, micro_model):
    r = cli("-m", "selector=ufo,random", "stage=select", "hydra/launcher=submitit_local",
            f"model.name_or_path={micro_model}", "dataset.n_pool=60", "dataset.n_test=10",
            f"results_dir={tmp_path}", "progress=false")
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("ufo-top_mid-seed0", "random-random-seed0"):
        [folder] = (tmp_path / "runs" / "default").glob(f"{name}-*")
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["status"] == "done" and meta["n_selected"] == 6
        assert folder.name == f"{name}-{meta['identity'][:8]}"
