"""The report's statistics on synthetic run folders: intervals over seeds, differences against the
random and full baselines, learning curves and their area, pass-rate bins (arXiv 2505.12457,
Figure 1) and the calibration of UFO confidence against pass rates. No model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from ufo_rl.report import (
    accuracy_table,
    bin_ablation_table,
    build_report,
    calibration_table,
    differences_table,
    load_runs,
    pass_rate_bins_table,
    to_markdown,
)
from ufo_rl.report.runs import training_seconds_at
from ufo_rl.report.stats import (
    bootstrap_difference,
    curve_auc,
    paired_t,
    pass_rate_value_bins,
    value_bin_index,
    welch_t,
)

N, K, P = 200, 8, 120  # pool prompts, samples per prompt, held-out problems
BENCH = "test"


def pool() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ability = rng.uniform(0, 1, N)
    return pd.DataFrame({
        "id": [f"q{i:03d}" for i in range(N)],
        "confidence": np.clip(ability + rng.normal(0, 0.2, N), 0.01, 1),
        "pass_rate": np.rint(np.clip(ability ** 2 + rng.normal(0, 0.1, N), 0, 1) * K) / K,
    })


def closest(s: np.ndarray, centre: float, seed: int, n: int = 20) -> np.ndarray:
    """The n values closest to ``centre``, ties by a seeded order (Top-Mid when ``centre`` is the
    mean; written here apart from ``ufo_rl/selection.py``)."""
    order = np.lexsort((np.random.default_rng(seed).permutation(len(s)), np.abs(s - centre)))
    keep = np.zeros(len(s), dtype=bool)
    keep[order[:n]] = True
    return keep


def correctness(p: float, seed: int, shift: int = 0) -> np.ndarray:
    """P problems of which round(p * P) are right; ``shift`` moves which ones."""
    right = np.zeros(P, dtype=bool)
    right[np.random.default_rng(seed + 100 * shift).permutation(P)[:round(p * P)]] = True
    return right


def write_run(root: Path, selector: str, seed: int, *, experiment: str = "exp", rule: str | None = None,
              fraction: float = 0.1, final: float = 0.5, correct: np.ndarray | None = None,
              curve: list[tuple[int, float]] | None = None, wall: list[float] | None = None,
              keep: np.ndarray | None = None, model_fp: str = "mfp", target: str = "answer",
              bin_index: int = 0) -> Path:
    rule = rule or {"ufo": "top_mid", "multisample": "top_mid", "random": "random", "full": "all"}[selector]
    d = root / experiment / f"{selector}-{rule}{bin_index}-{target}-{model_fp}-{fraction}-seed{seed}"
    d.mkdir(parents=True)
    p = pool()
    signal = {"ufo": "confidence", "multisample": "pass_rate"}.get(selector)
    keep = np.arange(N) < round(fraction * N) if keep is None else keep
    pd.DataFrame({
        "id": p["id"], "confidence": p["confidence"] if selector == "ufo" else None,
        "pass_rate": p["pass_rate"] if selector == "multisample" else None,
        "n_samples": K if selector == "multisample" else None, "selected": keep, "selector": selector,
    }).to_parquet(d / "scores.parquet", index=False)
    cfg = {"name": selector, "fraction": fraction, "rule": rule, "target": target, "k": K, "n_bins": 10,
           "bin_index": bin_index}
    (d / "scoring.json").write_text(json.dumps({
        "method": selector, "cache_key": f"{selector}-{target}-{model_fp}", "dataset": "embedded",
        "dataset_fingerprint": "dfp", "model_fingerprint": model_fp if signal else None, "rule": rule,
        "signal": signal, "fraction": fraction, "selector_config": cfg}))
    if correct is not None:
        final = float(correct.mean())
        (d / "eval_samples").mkdir()
        with open(d / "eval_samples" / f"final-{BENCH}.jsonl", "w") as f:
            for i, c in enumerate(correct):
                f.write(json.dumps({"id": f"t{i:03d}", "mode": "greedy", "sample": 0, "correct": bool(c)}) + "\n")
                f.write(json.dumps({"id": f"t{i:03d}", "mode": "sample", "sample": 0, "correct": True}) + "\n")
    steps = 10
    (d / "eval.json").write_text(json.dumps({
        "before": {BENCH: {"n": P, "accuracy": 0.4}}, "final": {BENCH: {"n": P, "accuracy": final}},
        "best": {BENCH: {"n": P, "accuracy": final}}, "best_step": steps, "final_step": steps,
        "curve": [{"step": s, f"{BENCH}/accuracy": a, f"{BENCH}/seconds": 2.0} for s, a in curve or []]}))
    (d / "timing.json").write_text(json.dumps({"training_seconds": 100.0}))
    with open(d / "train.jsonl", "w") as f:
        for s in range(1, steps + 1):
            row = {"step": s, "reward_mean": 0.3}
            if wall is not None:
                row["wall_seconds"] = wall[s - 1]
            f.write(json.dumps(row) + "\n")
    (d / "meta.json").write_text(json.dumps({
        "experiment": experiment, "selector": selector, "seed": seed, "rule": rule, "fraction": fraction,
        "n_pool": N, "n_selected": int(keep.sum()), "budget": "steps", "model": "/m/tiny", "dataset": "embedded",
        "train": {"steps": steps}, "status": "done"}))
    return d


# ---- pure statistics ---------------------------------------------------------------------------

def test_paired_and_welch_intervals_match_scipy():
    a, b = [0.61, 0.64, 0.60, 0.66], [0.55, 0.60, 0.58, 0.57]
    res = paired_t(a, b)
    ci = st.ttest_rel(a, b).confidence_interval(0.95)
    assert (res["ci_lo"], res["ci_hi"]) == pytest.approx((ci.low, ci.high))
    assert res["p_value"] == pytest.approx(st.ttest_rel(a, b).pvalue)
    res = welch_t(a, b[:3])
    ci = st.ttest_ind(a, b[:3], equal_var=False).confidence_interval(0.95)
    assert (res["ci_lo"], res["ci_hi"]) == pytest.approx((ci.low, ci.high))
    assert res["p_value"] == pytest.approx(st.ttest_ind(a, b[:3], equal_var=False).pvalue)
    assert np.isnan(welch_t(a, [0.5])["ci_lo"]) and np.isnan(paired_t([0.6], [0.5])["ci_lo"])


def test_bootstrap_is_seeded_and_close_to_the_normal_interval():
    a, b = correctness(0.6, 0)[None], correctness(0.5, 1)[None]
    res = bootstrap_difference(a, b, paired_seeds=True)
    assert res == bootstrap_difference(a, b, paired_seeds=True)  # deterministic
    d = (a[0].astype(float) - b[0])
    half = 1.96 * d.std(ddof=1) / np.sqrt(P)
    assert res["difference"] == pytest.approx(0.1)
    assert res["ci_lo"] == pytest.approx(0.1 - half, abs=0.25 * half)
    assert res["ci_hi"] == pytest.approx(0.1 + half, abs=0.25 * half)
    same = bootstrap_difference(a, a, paired_seeds=True)
    assert (same["ci_lo"], same["ci_hi"], same["p_value"]) == (0.0, 0.0, 1.0)
    # seeds add spread: three seeds that disagree widen the interval against one seed
    seeds = np.stack([correctness(p, s) for s, p in enumerate((0.45, 0.6, 0.75))])
    wide = bootstrap_difference(seeds, np.repeat(b, 3, axis=0), paired_seeds=True)
    assert wide["ci_hi"] - wide["ci_lo"] > res["ci_hi"] - res["ci_lo"]


def test_curve_area_and_value_bins():
    assert curve_auc([0, 5, 10], [0.4, 0.6, 0.6]) == pytest.approx((0.5 * 5 + 0.6 * 5) / 10)
    assert curve_auc([0, 10], [0.4, 0.6]) == pytest.approx(0.5)
    assert np.isnan(curve_auc([5, 10], [0.5, 0.6])) and np.isnan(curve_auc([0], [0.4]))
    # K=8: 9 values; 4/8 (5 prompts) joins 5/8, and the short tail 6/8..8/8 joins the last bin
    counts = {0: 50, 1: 30, 2: 20, 3: 25, 4: 5, 5: 18, 6: 3, 7: 2, 8: 1}
    rates = np.repeat([j / K for j in counts], list(counts.values()))
    bins = pass_rate_value_bins(rates, min_count=20)
    assert bins["label"].tolist() == ["0.00", "0.12", "0.25", "0.38", "0.50–1.00"]
    assert bins["n"].tolist() == [50, 30, 20, 25, 29] and bins["n"].sum() == len(rates)
    assert np.bincount(value_bin_index(rates, 20)).tolist() == [50, 30, 20, 25, 29]


# ---- tables from run folders -------------------------------------------------------------------

ACC = {"random": (0.50, 0.52, 0.48), "full": (0.56, 0.57, 0.58), "ufo": (0.60, 0.64, 0.62), "multisample": (0.55, 0.51)}


@pytest.fixture
def seed_runs(tmp_path) -> Path:
    """Final accuracies only (no per-problem records): the intervals come from the seeds."""
    root = tmp_path / "runs"
    for sel, accs in ACC.items():
        for seed, acc in enumerate(accs):
            write_run(root, sel, seed if sel != "multisample" else seed + 5, final=acc,
                      fraction=1.0 if sel == "full" else 0.1)
    return root


def test_accuracy_rows_have_a_t_interval_over_seeds(seed_runs, tmp_path):
    acc = accuracy_table(load_runs(seed_runs)).set_index(["variant", "phase"])
    row = acc.loc[("ufo", "final")]
    half = st.t.ppf(0.975, 2) * np.std(ACC["ufo"], ddof=1) / np.sqrt(3)
    assert row["n_seeds"] == 3
    assert (row["accuracy_ci_lo"], row["accuracy_ci_hi"]) == pytest.approx((0.62 - half, 0.62 + half))
    write_run(seed_runs, "ufo", 0, fraction=0.2, final=0.7)  # one seed: no interval
    acc = accuracy_table(load_runs(seed_runs)).set_index(["variant", "phase"])
    assert np.isnan(acc.loc[("ufo-20%", "final"), "accuracy_ci_lo"])
    md = to_markdown(acc.reset_index())
    assert "accuracy 95% CI" in md.splitlines()[0]
    assert f"[{0.62 - half:.4g}, {0.62 + half:.4g}]" in md
    line = next(x for x in md.splitlines() if "| ufo-20% |" in x and "| final |" in x)
    assert "| 0.7 |  |" in line  # mean without ± and a blank interval


def test_differences_over_seeds(seed_runs):
    diff = differences_table(load_runs(seed_runs)).set_index(["variant", "baseline"])
    assert set(diff.index) == {("ufo", "random"), ("ufo", "full"), ("multisample", "random"),
                               ("multisample", "full"), ("full", "random"), ("random", "full")}
    row = diff.loc[("ufo", "random")]  # seeds 0, 1, 2 on both sides: paired
    ci = st.ttest_rel(ACC["ufo"], ACC["random"]).confidence_interval(0.95)
    assert row["method"] == "paired t over seeds" and bool(row["paired_seeds"])
    assert row["difference"] == pytest.approx(0.12)
    assert (row["ci_lo"], row["ci_hi"]) == pytest.approx((ci.low, ci.high))
    assert row["significant"] == (ci.low > 0 or ci.high < 0)
    row = diff.loc[("multisample", "full")]  # seeds 5, 6 against 0, 1, 2: independent groups
    ci = st.ttest_ind(ACC["multisample"], ACC["full"], equal_var=False).confidence_interval(0.95)
    assert row["method"] == "Welch t over seeds" and not row["paired_seeds"]
    assert (row["ci_lo"], row["ci_hi"]) == pytest.approx((ci.low, ci.high))
    assert np.isnan(row["n_problems"])
    # the positive-control yardstick: the difference in seed standard errors of the difference
    se = np.sqrt(np.var(ACC["multisample"], ddof=1) / 2 + np.var(ACC["full"], ddof=1) / 3)
    assert row["seed_se"] == pytest.approx(se)
    assert row["seed_z"] == pytest.approx((np.mean(ACC["multisample"]) - 0.57) / se)


def test_differences_bootstrap_over_problems(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root, "random", seed, correct=correctness(0.50, seed))
        write_run(root, "ufo", seed, correct=correctness(0.70, seed, shift=1))
        write_run(root, "full", seed, fraction=1.0, correct=correctness(0.55, seed, shift=2))
    stale = write_run(root, "ufo", 0, fraction=0.2, correct=correctness(0.5, 0))
    ev = json.loads((stale / "eval.json").read_text())
    ev["final"][BENCH]["accuracy"] = 0.52  # the records no longer give eval.json's accuracy
    (stale / "eval.json").write_text(json.dumps(ev))
    runs = load_runs(root)
    diff = differences_table(runs).set_index(["variant", "baseline"])
    row = diff.loc[("ufo", "random")]
    assert row["method"] == "bootstrap problems x seeds" and row["n_problems"] == P
    assert row["difference"] == pytest.approx(0.20) and bool(row["significant"])
    a = np.stack([correctness(0.70, s, shift=1) for s in (0, 1)])
    b = np.stack([correctness(0.50, s) for s in (0, 1)])
    expected = bootstrap_difference(a, b, paired_seeds=True)
    assert (row["ci_lo"], row["ci_hi"]) == pytest.approx((expected["ci_lo"], expected["ci_hi"]))
    assert differences_table(runs).equals(differences_table(load_runs(root)))  # seeded
    row = diff.loc[("ufo-20%", "random")]  # stale records: back to the seeds (one: no interval)
    assert row["method"].startswith("none") and np.isnan(row["ci_lo"]) and pd.isna(row["significant"])
    assert row["difference"] == pytest.approx(0.52 - 0.50)


def test_baselines_are_found_by_selector_not_by_name(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "random", 0, final=0.5)
    write_run(root, "random", 0, fraction=0.2, final=0.55)  # variant "random-20%"
    write_run(root, "ufo", 0, final=0.6)
    write_run(root, "ufo", 0, fraction=0.2, final=0.62)
    diff = differences_table(load_runs(root)).set_index("variant")
    assert diff.loc["ufo", "baseline"] == "random" and diff.loc["ufo", "difference"] == pytest.approx(0.1)
    assert diff.loc["ufo-20%", "baseline"] == "random-20%"  # the random subset of the same size
    assert diff.loc["ufo-20%", "difference"] == pytest.approx(0.07)
    assert sorted(diff.index) == ["ufo", "ufo-20%"]  # each random variant is its own fraction's baseline


def test_learning_curves_area_and_seconds(tmp_path):
    root = tmp_path / "runs"
    wall = [10.0 * s + 2.0 * (s >= 5) + 2.0 * (s >= 10) for s in range(1, 11)]  # evals of 2 s at 5 and 10
    for seed, mid in ((0, 0.55), (1, 0.65)):
        write_run(root, "ufo", seed, final=0.7, curve=[(5, mid), (10, 0.69)], wall=wall)
    write_run(root, "random", 0, final=0.7)  # no curve: no area
    runs = load_runs(root)
    ufo = next(r for r in runs if r.selector == "ufo")
    assert training_seconds_at(ufo, [0, 5, 7.5, 10]) == pytest.approx([0, 50, 75, 100])
    acc = accuracy_table(runs).set_index(["variant", "phase"])
    aucs = [((0.4 + mid) / 2 * 5 + (mid + 0.7) / 2 * 5) / 10 for mid in (0.55, 0.65)]
    assert acc.loc[("ufo", "final"), "auc_mean"] == pytest.approx(np.mean(aucs))
    assert acc.loc[("ufo", "final"), "auc_std"] == pytest.approx(np.std(aucs, ddof=1))
    assert np.isnan(acc.loc[("random", "final"), "auc_mean"]) and np.isnan(acc.loc[("ufo", "before"), "auc_mean"])

    out = tmp_path / "out"
    written = {p.name for p in build_report(root, out)}
    assert "learning_curves.png" in written
    assert (out / "figures" / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    for d in root.glob("exp/ufo-*"):
        d.joinpath("meta.json").write_text(d.joinpath("meta.json").read_text().replace('"done"', '"running"'))
    assert "learning_curves.png" not in {p.name for p in build_report(root, out)}
    assert not (out / "figures" / "learning_curves.png").exists()  # stale copy removed


def test_differences_compare_curve_areas_in_seed_standard_errors(tmp_path):
    root = tmp_path / "runs"
    for seed, mid in ((0, 0.55), (1, 0.65)):
        write_run(root, "ufo", seed, final=0.7, curve=[(5, mid), (10, 0.69)])
    for seed, mid in ((1, 0.45), (2, 0.50)):
        write_run(root, "random", seed, final=0.6, curve=[(5, mid), (10, 0.6)])
    write_run(root, "random", 0, final=0.6)  # no curve: left out of the areas
    row = differences_table(load_runs(root)).set_index(["variant", "baseline"]).loc[("ufo", "random")]
    ufo = [((0.4 + mid) / 2 * 5 + (mid + 0.7) / 2 * 5) / 10 for mid in (0.55, 0.65)]
    rand = [((0.4 + mid) / 2 * 5 + (mid + 0.6) / 2 * 5) / 10 for mid in (0.45, 0.50)]
    se = np.sqrt(np.var(ufo, ddof=1) / 2 + np.var(rand, ddof=1) / 2)
    assert row["auc_difference"] == pytest.approx(np.mean(ufo) - np.mean(rand))
    assert (row["auc_seed_se"], row["auc_seed_z"]) == pytest.approx((se, (np.mean(ufo) - np.mean(rand)) / se))


def test_bins_are_labelled_by_pass_rate_range(tmp_path):
    root = tmp_path / "runs"
    p = pool()
    write_run(root, "multisample", 0, experiment="scores")  # the pass rates of the pool, model "mfp"
    order = np.argsort(p["confidence"].to_numpy(), kind="stable")
    for b in (0, 1):
        keep = np.zeros(N, dtype=bool)
        keep[order[b * 20:(b + 1) * 20]] = True
        write_run(root, "ufo", 0, experiment="bins", rule="bin", bin_index=b, keep=keep, final=0.45 + 0.1 * b)
    table = bin_ablation_table(load_runs(root))
    for b, row in table.iterrows():
        rates = p["pass_rate"].to_numpy()[order[b * 20:(b + 1) * 20]]
        assert (row["pass_rate_lo"], row["pass_rate_hi"]) == (rates.min(), rates.max())
        label = f"{rates.min():.2f}" if rates.min() == rates.max() else f"{rates.min():.2f}–{rates.max():.2f}"
        assert row["pass_rate_range"] == label and row["bin_by"] == "count" and row["n_prompts"] == 20

    bins = pass_rate_bins_table(load_runs(root))
    assert bins["min_count"].iloc[0] == 20 and bins["n"].sum() == N and (bins["n"] >= 20).all()
    assert bins["share"].sum() == pytest.approx(1.0)


def test_calibration_pairs_by_fingerprint(tmp_path):
    root = tmp_path / "runs"
    p = pool()
    keep = np.zeros(N, dtype=bool)
    keep[np.argsort(np.abs(p["confidence"] - p["confidence"].mean()).to_numpy(), kind="stable")[:20]] = True
    write_run(root, "ufo", 0, experiment="a", keep=keep)
    write_run(root, "ufo", 0, experiment="a", keep=keep, target="solution")
    write_run(root, "multisample", 3, experiment="b")  # another experiment and seed, same pool and model
    write_run(root, "ufo", 0, experiment="a", keep=keep, target="greedy", model_fp="other")  # another model
    cal = calibration_table(load_runs(root))
    assert sorted(cal["target"]) == ["answer", "solution"]
    row = cal.iloc[0]
    assert row["spearman"] == pytest.approx(st.spearmanr(p["confidence"], p["pass_rate"]).statistic)
    assert row["kendall_tau"] == pytest.approx(st.kendalltau(p["confidence"], p["pass_rate"]).statistic)
    rates = p["pass_rate"].to_numpy()
    assert row["ufo_zero_adv_share"] == pytest.approx(np.mean((rates[keep] == 0) | (rates[keep] == 1)))
    assert row["pool_zero_adv_share"] == pytest.approx(np.mean((rates == 0) | (rates == 1)))
    for name, centre in (("top_mid", rates.mean()), ("band", 0.5)):
        oracle = closest(rates, centre, seed=0)
        assert row[f"overlap_{name}"] == int((keep & oracle).sum()), name
        assert row[f"overlap_{name}_share"] == pytest.approx(row[f"overlap_{name}"] / 20)
        zero = (rates[oracle] == 0) | (rates[oracle] == 1)
        assert row[f"oracle_{name}_zero_adv_share"] == pytest.approx(zero.mean())
    assert row["overlap_chance_share"] == pytest.approx(0.1) and row["n_selected"] == 20
