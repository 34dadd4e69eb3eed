"""The report and the CI check on synthetic run folders: numbers, figures, exit codes."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import load_bench_script
from scipy.stats import spearmanr

from ufo_rl.report import (
    build_report,
    correlation_table,
    load_runs,
    pass_rate_distribution_table,
    selection_hash,
    to_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
N, K, KEEP = 200, 8, 20
SECONDS = {"ufo": 2.0, "multisample": 50.0}
# final greedy accuracy per selector and seed; before training every run starts at 0.40
FINAL = {("ufo", 0): 0.60, ("ufo", 1): 0.64, ("multisample", 0): 0.55, ("multisample", 1): 0.51}
TRAIN_SECONDS = {("ufo", 0): 100.0, ("ufo", 1): 110.0, ("multisample", 0): 90.0, ("multisample", 1): 96.0}


def pool_signals() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ability = rng.uniform(0, 1, N)
    return pd.DataFrame({
        "id": [f"q{i:03d}" for i in range(N)],
        "difficulty": pd.array(rng.integers(1, 4, N), dtype="Int64"),
        "confidence": np.clip(ability + rng.normal(0, 0.15, N), 0.01, 1),
        "pass_rate": np.rint(np.clip(ability + rng.normal(0, 0.2, N), 0, 1) * K) / K,
    })


def top_mid(s: np.ndarray, seed: int) -> np.ndarray:
    """Independent Top-Mid: the KEEP values closest to the mean, ties by a seeded order."""
    tie = np.random.default_rng(seed).permutation(len(s))
    order = np.lexsort((tie, np.abs(s - s.mean())))
    keep = np.zeros(len(s), dtype=bool)
    keep[order[:KEEP]] = True
    return keep


def write_run(root: Path, selector: str, seed: int, experiment: str = "exp", rule: str = "top_mid",
              bin_index: int = 0, final: float | None = None, status: str = "done") -> Path:
    d = root / experiment / (f"{selector}-{rule}{bin_index}-seed{seed}" if rule == "bin" else f"{selector}-seed{seed}")
    d.mkdir(parents=True)
    pool = pool_signals()
    signal = "confidence" if selector == "ufo" else "pass_rate"
    s = pool[signal].to_numpy()
    if rule == "bin":
        keep = np.zeros(N, dtype=bool)
        keep[np.argsort(s, kind="stable")[bin_index * KEEP:(bin_index + 1) * KEEP]] = True
    else:
        keep = top_mid(s, seed)
    scores = pd.DataFrame({
        "id": pool["id"], "prompt": "p", "target": "t",
        "logprob_mean": np.log(pool["confidence"]) if selector == "ufo" else None,
        "confidence": pool["confidence"] if selector == "ufo" else None,
        "pass_rate": pool["pass_rate"] if selector == "multisample" else None,
        "n_samples": K if selector == "multisample" else None,
        "score": 1 - (s - s.mean()) ** 2, "selected": keep, "difficulty": pool["difficulty"],
        "selector": selector})
    scores.to_parquet(d / "scores.parquet", index=False)
    cfg = {"name": selector, "fraction": 0.1, "rule": rule, "target": "answer", "k": K, "n_bins": 10,
           "bin_index": bin_index, "signal": None}
    secs = SECONDS[selector]
    gen = 40000 if selector == "multisample" else 0
    (d / "scoring.json").write_text(json.dumps({
        "method": selector, "scoring_seconds": secs, "load_seconds": 0.5, "n_prompts": N,
        "forward_tokens": 10000, "generated_tokens": gen, "tokens_per_second": (10000 + gen) / secs,
        "prompts_per_second": N / secs, "cached": seed > 0, "cache_key": f"key-{selector}",
        "device": "cpu", "device_name": "cpu", "dtype": "float32", "batch_size": 64,
        "model": "/cache/models/tiny-abc", "model_fingerprint": "mfp", "dataset": "embedded",
        "dataset_fingerprint": "dfp", "rule": rule, "signal": signal, "fraction": 0.1,
        "n_selected": int(keep.sum()), "selector_config": cfg}))
    acc = FINAL.get((selector, seed), 0.5) if final is None else final
    bench = {"n": 100, "k": 4, "per_level": {}}
    (d / "eval.json").write_text(json.dumps({
        "before": {"test": {**bench, "accuracy": 0.40, "avg_at_k": 0.30}},
        "final": {"test": {**bench, "accuracy": acc, "avg_at_k": acc - 0.1}},
        "best": {"test": {**bench, "accuracy": acc + 0.01, "avg_at_k": acc - 0.1}},
        "best_step": 5, "final_step": 10,
        "curve": [{"step": 5, "test/accuracy": (0.40 + acc) / 2, "test/n": 100}]}))
    train = TRAIN_SECONDS.get((selector, seed), 50.0)
    (d / "timing.json").write_text(json.dumps({
        "scoring_seconds": secs, "training_seconds": train, "end_to_end_seconds": secs + train,
        "total_seconds": secs + train + 5}))
    with open(d / "train.jsonl", "w") as f:
        f.writelines(json.dumps({"step": step, "reward_mean": 0.3 + 0.02 * step, "reward_std": 0.1}) + "\n"
                     for step in range(1, 11))
    (d / "meta.json").write_text(json.dumps({
        "experiment": experiment, "selector": selector, "seed": seed, "rule": rule, "fraction": 0.1,
        "n_pool": N, "n_selected": int(keep.sum()), "budget": "steps", "stage": "all",
        "model": "/cache/models/tiny-abc", "dataset": "embedded", "train": {"steps": 10},
        "status": status}))
    return d


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    for sel in ("ufo", "multisample"):
        for seed in (0, 1):
            write_run(root, sel, seed)
    # an unfinished job with absurd numbers: it must not move any table
    write_run(root, "ufo", 7, final=0.0, status="running")
    (root / "exp" / "ufo-seed7" / "scoring.json").write_text(json.dumps({
        "method": "ufo", "scoring_seconds": 1e-3, "n_prompts": N, "cache_key": "other"}))
    # a folder a job never finished writing: no meta.json at all
    (root / "exp" / "crashed-seed0").mkdir()
    return root


def test_unfinished_runs_are_ignored(runs):
    loaded = load_runs(runs)
    assert sorted((r.selector, r.meta["seed"]) for r in loaded) == [
        ("multisample", 0), ("multisample", 1), ("ufo", 0), ("ufo", 1)]


def test_tables(runs, tmp_path):
    out = tmp_path / "out"
    written = build_report(runs, out)
    assert out / "tables" / "accuracy.md" in written

    cost = pd.read_csv(out / "tables" / "scoring_cost.csv")
    assert len(cost) == 2  # two seeds share one scoring each: deduplicated by cache key
    ufo = cost[cost["method"] == "ufo"].iloc[0]
    assert ufo["speedup"] == pytest.approx(SECONDS["multisample"] / SECONDS["ufo"])
    assert cost.loc[cost["method"] == "multisample", "speedup"].iloc[0] == pytest.approx(1.0)

    acc = pd.read_csv(out / "tables" / "accuracy.csv")
    final = acc[(acc["phase"] == "final")].set_index("variant")
    for sel in ("ufo", "multisample"):
        vals = [FINAL[(sel, 0)], FINAL[(sel, 1)]]
        assert final.loc[sel, "accuracy_mean"] == pytest.approx(np.mean(vals))
        assert final.loc[sel, "accuracy_std"] == pytest.approx(np.std(vals, ddof=1))
        assert final.loc[sel, "gain_mean"] == pytest.approx(np.mean(vals) - 0.40)
        assert final.loc[sel, "n_seeds"] == 2
    assert set(acc["phase"]) == {"before", "final", "best"}
    assert "0.62 ± 0.02828" in (out / "tables" / "accuracy.md").read_text()

    tt = pd.read_csv(out / "tables" / "training_time.csv").set_index("variant")
    assert tt.loc["ufo", "training_seconds_mean"] == pytest.approx(105.0)
    assert tt.loc["ufo", "end_to_end_seconds"] == pytest.approx(105.0 + SECONDS["ufo"])
    assert tt.loc["multisample", "scoring_seconds"] == pytest.approx(SECONDS["multisample"])
    assert tt.loc["ufo", "steps"] == 10


def test_correlation_and_overlap(runs):
    loaded = load_runs(runs)
    corr = correlation_table(loaded)
    assert list(corr["seed"]) == [0, 1]  # paired by seed only, not across seeds
    pool = pool_signals()
    rho = spearmanr(pool["confidence"], pool["pass_rate"]).statistic
    assert corr["spearman"].to_numpy() == pytest.approx([rho, rho])
    for _, row in corr.iterrows():
        a = top_mid(pool["confidence"].to_numpy(), int(row["seed"]))
        b = top_mid(pool["pass_rate"].to_numpy(), int(row["seed"]))
        both = int((a & b).sum())
        assert row["overlap"] == both
        assert row["jaccard"] == pytest.approx(both / int((a | b).sum()))
        assert row["expected_overlap"] == pytest.approx(KEEP * KEEP / N)


def test_pass_rate_distribution(runs):
    dist = pass_rate_distribution_table(load_runs(runs))
    pool = pool_signals()
    whole = dist[dist["level"] == "all"].iloc[0]
    assert whole["n"] == N and whole["k"] == K
    for j in range(K + 1):
        assert whole[f"{j}/{K}"] == pytest.approx(np.mean(np.isclose(pool["pass_rate"], j / K)))
    assert whole["mean_pass_rate"] == pytest.approx(pool["pass_rate"].mean())
    assert whole["mixed"] == pytest.approx(np.mean((pool["pass_rate"] > 0) & (pool["pass_rate"] < 1)))
    assert list(dist["level"]) == ["all", "1", "2", "3"]
    for level in (1, 2, 3):
        row = dist[dist["level"] == str(level)].iloc[0]
        rates = pool.loc[pool["difficulty"] == level, "pass_rate"].to_numpy()
        assert row["n"] == len(rates)
        for j in range(K + 1):
            assert row[f"{j}/{K}"] == pytest.approx(np.mean(np.isclose(rates, j / K))), (level, j)


def test_figures_are_written(runs, tmp_path):
    for b in (0, 1):
        for seed in (0, 1):
            write_run(runs, "ufo", seed, experiment="bins", rule="bin", bin_index=b, final=0.45 + 0.1 * b + 0.01 * seed)
    out = tmp_path / "out"
    build_report(runs, out)
    for name in ("confidence_vs_pass_rate", "signal_histograms", "training_curves", "accuracy_bars",
                 "bin_ablation"):
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name
    bins = pd.read_csv(out / "tables" / "bin_ablation.csv")
    assert bins["gain_mean"].to_numpy() == pytest.approx([0.055, 0.155])
    # bin b trained on the sorted confidences b*KEEP .. (b+1)*KEEP-1: its range is their first and last
    conf = np.sort(pool_signals()["confidence"].to_numpy())
    assert bins["signal_lo"].to_numpy() == pytest.approx([conf[0], conf[KEEP]])
    assert bins["signal_hi"].to_numpy() == pytest.approx([conf[KEEP - 1], conf[2 * KEEP - 1]])


def test_absent_inputs_are_skipped(tmp_path):
    root = tmp_path / "runs"
    d = write_run(root, "ufo", 0)
    (d / "eval.json").unlink()
    (d / "train.jsonl").unlink()
    out = tmp_path / "out"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "accuracy.csv").write_text("stale")  # from an earlier report
    written = {p.name for p in build_report(root, out)}
    assert {"scoring_cost.csv", "signal_histograms.png"} <= written
    assert not written & {"accuracy.csv", "correlation.csv", "accuracy_bars.png", "training_curves.png"}
    assert not (out / "tables" / "accuracy.csv").exists()


def test_markdown_formatter():
    md = to_markdown(pd.DataFrame({"name": ["a|b"], "x_mean": [0.5], "x_std": [np.nan], "n": [3]}))
    assert md.splitlines() == ["| name | x | n |", "| --- | --- | ---: |", "| a\\|b | 0.5 | 3 |"]


def test_selection_hash_depends_on_the_set_only():
    df = pd.DataFrame({"id": ["a", "b", "c"], "selected": [True, False, True]})
    assert selection_hash(df) == selection_hash(df.iloc[::-1])
    assert selection_hash(df) != selection_hash(df.assign(selected=[True, True, False]))


CHECK = load_bench_script("check")


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _check(*args: str, subprocess_run: bool = False) -> Result:
    """bench/check.py in this process (fast), or as a real process to see its exit status."""
    if subprocess_run:
        res = subprocess.run([sys.executable, str(ROOT / "bench" / "check.py"), *args], check=False,
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
        return Result(res.returncode, res.stdout, res.stderr)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = CHECK.main(list(args))
    return Result(rc, out.getvalue(), err.getvalue())


def test_check_passes_on_its_reference_and_fails_on_drift(runs, tmp_path):
    ref = tmp_path / "ref.json"
    res = _check("--runs", str(runs), "--reference", str(ref), "--write-reference")
    assert res.returncode == 0, res.stderr
    data = json.loads(ref.read_text())
    assert {e["variant"] for e in data["accuracy"]} == {"ufo", "multisample"}
    assert data["speedup"][0]["value"] == pytest.approx(25.0)
    assert data["speedup"][0]["floor"] == pytest.approx(0.4 * 25.0)
    std = np.std([0.60, 0.64], ddof=1)
    ufo = next(e for e in data["accuracy"] if e["variant"] == "ufo")
    assert ufo["band"] == pytest.approx(max(0.02, 3 * std * np.sqrt(1 / 1 + 1 / 2)))
    assert len(data["selection"]) == 4 and len(data["signal"]) == 4
    assert all(len(e["ids"]) == KEEP for e in data["selection"])

    res = _check("--runs", str(runs), "--reference", str(ref))
    assert res.returncode == 0, res.stdout + res.stderr
    # 1 speedup, 2 accuracy, 3 gains (2 variants, pooled), and per run: rule, selection, signal
    assert "FAIL" not in res.stdout and res.stdout.count("PASS") == 1 + 2 + 3 + 3 * 4

    # an accuracy moved outside its band
    ev_path = runs / "exp" / "ufo-seed0" / "eval.json"
    ev = json.loads(ev_path.read_text())
    ev["final"]["test"]["accuracy"] = 0.60 + 2 * ufo["band"] * 2  # mean moves by 2 bands
    ev_path.write_text(json.dumps(ev))
    res = _check("--runs", str(runs), "--reference", str(ref), subprocess_run=True)
    assert res.returncode == 1
    fails = [line for line in res.stdout.splitlines() if line.rstrip().endswith("FAIL")]
    assert len(fails) == 1 and "exp/ufo test final accuracy" in fails[0]
    assert "reference" in res.stdout and "tolerance" in res.stdout
    ev["final"]["test"]["accuracy"] = 0.60
    ev_path.write_text(json.dumps(ev))

    # a selection that is not what its rule picks from its own signal (one prompt swapped):
    # the overlap with the reference is still 19/20, so only the rule check catches it
    sc_path = runs / "exp" / "multisample-seed1" / "scores.parquet"
    sc = pd.read_parquet(sc_path)
    first_in, first_out = sc.index[sc["selected"]][0], sc.index[~sc["selected"]][0]
    sc.loc[[first_in, first_out], "selected"] = [False, True]
    sc.to_parquet(sc_path, index=False)
    res = _check("--runs", str(runs), "--reference", str(ref))
    assert res.returncode == 1
    fails = [line for line in res.stdout.splitlines() if line.rstrip().endswith("FAIL")]
    assert len(fails) == 1 and fails[0].startswith("rule") and "exp/multisample seed 1" in fails[0]


def test_check_gain_floor_fails_a_grpo_that_learns_nothing(runs, tmp_path):
    ref = tmp_path / "ref.json"
    assert _check("--runs", str(runs), "--reference", str(ref), "--write-reference").returncode == 0
    gains = {e["variant"]: e for e in json.loads(ref.read_text())["gain"]}
    assert set(gains) == {"ufo", "multisample", "all"}
    ufo = gains["ufo"]  # finals 0.60, 0.64 from 0.40; CI runs one seed
    std = np.std([0.20, 0.24], ddof=1)
    assert ufo["value"] == pytest.approx(0.22) and ufo["floor"] == pytest.approx(0.22 - 3 * std * np.sqrt(1 + 1 / 2))
    pooled = gains["all"]  # four runs; CI runs one seed of each of the two variants
    std = np.std([0.20, 0.24, 0.15, 0.11], ddof=1)
    assert pooled["value"] == pytest.approx(0.175)
    assert pooled["floor"] == pytest.approx(0.175 - 2 * std * np.sqrt(1 / 2 + 1 / 4)) and pooled["floor"] > 0

    for d in (runs / "exp").glob("*/eval.json"):  # GRPO that learned nothing: every final equals before
        d = d.parent
        ev = json.loads((d / "eval.json").read_text())
        ev["final"]["test"]["accuracy"] = ev["before"]["test"]["accuracy"]
        (d / "eval.json").write_text(json.dumps(ev))
    res = _check("--runs", str(runs), "--reference", str(ref))
    assert res.returncode == 1
    fails = [line.split()[0] for line in res.stdout.splitlines() if line.rstrip().endswith("FAIL")]
    assert fails.count("gain") == 3
    # and such runs cannot become a reference: their pooled floor is not above zero
    res = _check("--runs", str(runs), "--reference", str(tmp_path / "flat.json"), "--write-reference")
    assert res.returncode == 2 and "gain floor" in res.stderr and not (tmp_path / "flat.json").exists()


def test_check_margin_floor_fails_when_the_positive_control_stops_beating_random(tmp_path):
    root = tmp_path / "runs"
    finals = {0: (0.60, 0.50), 1: (0.63, 0.51), 2: (0.60, 0.52)}  # (oracle, random) per seed
    for seed, (oracle, rand) in finals.items():
        for selector, variant, final in (("multisample", "multisample-band", oracle), ("ufo", "random", rand)):
            d = write_run(root, selector, seed, final=final)
            meta = json.loads((d / "meta.json").read_text())
            (d / "meta.json").write_text(json.dumps({**meta, "variant": variant}))
    ref = tmp_path / "ref.json"
    assert _check("--runs", str(root), "--reference", str(ref), "--write-reference").returncode == 0
    (margin,) = json.loads(ref.read_text())["margin"]
    diffs = [0.10, 0.12, 0.08]
    assert margin["value"] == pytest.approx(0.10) and margin["n_seeds"] == 3
    assert margin["floor"] == pytest.approx(0.10 - 3 * np.std(diffs, ddof=1) * np.sqrt(1 + 1 / 3))
    res = _check("--runs", str(root), "--reference", str(ref))
    assert res.returncode == 0 and "exp/multisample-band - random test final" in res.stdout

    for d in root.glob("exp/multisample-seed*"):  # the oracle no better than random
        seed = int(d.name[-1])
        ev = json.loads((d / "eval.json").read_text())
        ev["final"]["test"]["accuracy"] = finals[seed][1]
        (d / "eval.json").write_text(json.dumps(ev))
    res = _check("--runs", str(root), "--reference", str(ref))
    assert res.returncode == 1
    fails = [line.split()[0] for line in res.stdout.splitlines() if line.rstrip().endswith("FAIL")]
    assert "margin" in fails
    # and such runs cannot become a reference
    res = _check("--runs", str(root), "--reference", str(tmp_path / "flat.json"), "--write-reference")
    assert res.returncode == 2 and "margin floor" in res.stderr and not (tmp_path / "flat.json").exists()


def _rescore(run_dir: Path, signal: np.ndarray, seed: int) -> None:
    """Give a run a new signal and the Top-Mid selection that goes with it."""
    sc = pd.read_parquet(run_dir / "scores.parquet")
    sc["confidence"] = signal
    sc["selected"] = top_mid(signal, seed)
    sc.to_parquet(run_dir / "scores.parquet", index=False)


def test_check_tolerates_last_bit_noise_and_catches_a_broken_scorer(runs, tmp_path):
    ref = tmp_path / "ref.json"
    assert _check("--runs", str(runs), "--reference", str(ref), "--write-reference").returncode == 0
    conf = pool_signals()["confidence"].to_numpy()

    # what another CPU does: scores move a little, and a near-tie at the edge of the subset flips
    # (noise far larger than rounding, so that the flip happens here)
    noisy = conf + np.random.default_rng(1).normal(0, 5e-3, len(conf))
    assert (top_mid(noisy, 0) & top_mid(conf, 0)).sum() == KEEP - 1
    _rescore(runs / "exp" / "ufo-seed0", noisy, seed=0)
    res = _check("--runs", str(runs), "--reference", str(ref))
    assert res.returncode == 0, res.stdout

    # a broken scorer: the signal is consistent with its selection, but it is another signal
    _rescore(runs / "exp" / "ufo-seed0", np.random.default_rng(2).permutation(conf), seed=0)
    res = _check("--runs", str(runs), "--reference", str(ref))
    assert res.returncode == 1
    fails = [line.split()[0] for line in res.stdout.splitlines() if line.rstrip().endswith("FAIL")]
    assert sorted(fails) == ["selection", "signal"]
    shared = next(line for line in res.stdout.splitlines() if line.startswith("selection") and "FAIL" in line)
    assert "/20 shared" in shared


def test_each_sampling_backend_is_a_speedup_reference_of_its_own(runs, tmp_path):
    """A vLLM multisample run of the same pool, model and device beside the HF one: UFO gets one
    row per reference, each naming the backend it was measured against."""
    import shutil

    for seed in (0, 1):
        src = runs / "exp" / f"multisample-seed{seed}"
        p = src / "scoring.json"
        p.write_text(json.dumps({**json.loads(p.read_text()), "generation_backend": "hf"}))
        dst = runs / "exp" / f"multisample-vllm-seed{seed}"
        shutil.copytree(src, dst)
        sc = json.loads((dst / "scoring.json").read_text())
        sc.update(generation_backend="vllm", scoring_seconds=25.0, cache_key="key-multisample-vllm")
        (dst / "scoring.json").write_text(json.dumps(sc))
    build_report(runs, tmp_path / "out")
    cost = pd.read_csv(tmp_path / "out" / "tables" / "scoring_cost.csv")
    ufo = cost[cost["method"] == "ufo"].set_index("multisample_backend")
    assert sorted(ufo.index) == ["hf", "vllm"] and ufo["backend"].isna().all()
    assert ufo.loc["hf", "speedup"] == pytest.approx(SECONDS["multisample"] / SECONDS["ufo"])
    assert ufo.loc["vllm", "speedup"] == pytest.approx(25.0 / SECONDS["ufo"])
    ms = cost[cost["method"] == "multisample"].set_index("backend")
    assert sorted(ms.index) == ["hf", "vllm"] and (ms["speedup"] == 1).all()
    assert (ms.index == ms["multisample_backend"]).all()  # each its own reference
    # the calibration tables say which sampling each row's pass rates come from
    for name in ("correlation", "pass_rate_distribution", "pass_rate_bins"):
        table = pd.read_csv(tmp_path / "out" / "tables" / f"{name}.csv")
        assert set(table["multisample"]) == {"multisample", "multisample-vllm"}, name


def test_check_speedup_floor_and_bad_input(runs, tmp_path):
    ref = tmp_path / "ref.json"
    assert _check("--runs", str(runs), "--reference", str(ref), "--write-reference").returncode == 0
    for seed in (0, 1):  # multi-sample scoring got 4x faster: speedup 6.25 < floor 10
        p = runs / "exp" / f"multisample-seed{seed}" / "scoring.json"
        sc = json.loads(p.read_text())
        sc["scoring_seconds"] = SECONDS["multisample"] / 4
        p.write_text(json.dumps(sc))
    res = _check("--runs", str(runs), "--reference", str(ref))
    assert res.returncode == 1
    assert "speedup" in next(line for line in res.stdout.splitlines() if line.rstrip().endswith("FAIL"))

    res = _check("--runs", str(tmp_path / "nope"), "--reference", str(ref))
    assert res.returncode == 2 and res.stderr.startswith("error:")
    res = _check("--runs", str(runs), "--reference", str(tmp_path / "missing.json"))
    assert res.returncode == 2 and "--write-reference" in res.stderr


def test_check_records_the_selections_of_the_seeds_ci_runs(runs, tmp_path):
    ref = tmp_path / "ref.json"
    res = _check("--runs", str(runs), "--reference", str(ref), "--write-reference", "--selection-seeds", "0")
    assert res.returncode == 0, res.stderr
    data = json.loads(ref.read_text())
    assert {e["seed"] for e in data["selection"]} == {0} == {e["seed"] for e in data["signal"]}
    assert all(e["n_seeds"] == 2 for e in data["accuracy"])  # the bands still use both seeds
    # CI runs seed 0 only: its checks pass and nothing is missing
    for variant in ("ufo", "multisample"):
        import shutil

        shutil.rmtree(runs / "exp" / f"{variant}-seed1")
    res = _check("--runs", str(runs), "--reference", str(ref))
    assert res.returncode == 0, res.stdout


def test_training_seconds_leave_out_the_periodic_evaluations(tmp_path):
    from ufo_rl.report.runs import runs_frame

    d = write_run(tmp_path / "runs", "ufo", 0)  # training_seconds 100, scoring 2
    ev = json.loads((d / "eval.json").read_text())
    ev["curve"] = [{"step": 5, "test/accuracy": 0.5, "test/n": 100, "test/seconds": 7.0},
                   {"step": 10, "test/accuracy": 0.6, "test/n": 100, "test/seconds": 8.0}]
    (d / "eval.json").write_text(json.dumps(ev))
    row = runs_frame(load_runs(tmp_path / "runs")).iloc[0]
    assert row["periodic_eval_seconds"] == pytest.approx(15.0)
    assert row["training_seconds"] == pytest.approx(85.0) and row["end_to_end_seconds"] == pytest.approx(87.0)
    assert row["total_seconds"] == pytest.approx(107.0)  # the job's whole wall clock is left alone
