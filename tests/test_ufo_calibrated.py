"""selector=ufo_calibrated: UFO confidence for the pool, K-sample pass rates for a hashed
calibration share, and the rule ``calibrated`` (isotonic confidence -> pass rate map, keep the
predicted pass rates nearest 0.5)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import save_random_model

from ufo_rl.config import RunConfig, SelectorConfig, config_problem
from ufo_rl.errors import UserError
from ufo_rl.identity import identity_fields
from ufo_rl.problems import Problem
from ufo_rl.scorers import ScoreChunk, ScoreContext, get_scorer
from ufo_rl.selection import apply_rule, calibration_map, select

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def synthetic(n=2000, share=0.05, seed=0):
    """Confidence, the true pass rate (a logistic of it, crossing 0.5 away from the mean
    confidence) and observed K=8 pass rates for a random share (NaN elsewhere)."""
    rng = np.random.default_rng(seed)
    conf = rng.beta(5, 2, n)  # the mean (~0.71) is far from the crossing at 0.45
    true = 1 / (1 + np.exp(-(conf - 0.45) * 25))
    observed = rng.binomial(8, true) / 8
    return conf, true, np.where(rng.random(n) < share, observed, np.nan)


# ---- the rule --------------------------------------------------------------------------------

def test_calibrated_keeps_predicted_pass_rates_nearest_the_target_better_than_top_mid():
    conf, true, rates = synthetic()
    keep, score = select("calibrated", conf, 0.1, seed=0, band_target=0.5, pass_rate=rates)
    assert keep.sum() == 200 and score.shape == conf.shape
    top_mid, _ = select("top_mid", conf, 0.1, seed=0)
    near = np.abs(true[keep] - 0.5).mean()
    assert near < 0.3 < 0.45 < np.abs(true[top_mid] - 0.5).mean()
    mixed = lambda m: ((true[m] > 0.05) & (true[m] < 0.95)).mean()  # noqa: E731
    assert mixed(keep) > 0.9 > mixed(top_mid)
    # the map is monotone and predicts within [0, 1]
    predicted, _, fitted = calibration_map(conf, rates)
    order = np.argsort(conf)
    assert (np.diff(predicted[order]) >= -1e-12).all() and (np.diff(fitted) >= -1e-12).all()
    assert predicted.min() >= 0 and predicted.max() <= 1
    # deterministic, and the target moves the subset
    again, _ = select("calibrated", conf, 0.1, seed=0, band_target=0.5, pass_rate=rates)
    high, _ = select("calibrated", conf, 0.1, seed=0, band_target=0.9, pass_rate=rates)
    assert (again == keep).all() and true[high].mean() > true[keep].mean()


def test_a_constant_map_keeps_the_middle_of_the_calibration_confidences():
    conf = np.linspace(0, 1, 101)
    rates = np.full(101, np.nan)
    rates[[10, 20, 60]] = 0.0  # every calibration prompt fails: the map is 0 everywhere
    predicted, _, _ = calibration_map(conf, rates)
    assert (predicted == 0).all()
    keep, score = select("calibrated", conf, 0.1, seed=3, pass_rate=rates)
    assert keep.sum() == 10 and np.allclose(score, -0.5)
    # ties go to the confidences nearest the middle of the calibration range (0.1 .. 0.6)
    kept = set(np.flatnonzero(keep).tolist())
    assert set(range(31, 40)) <= kept and len(kept - set(range(31, 40))) == 1 and kept - {30, 40} == set(range(31, 40))


def test_duplicate_confidences_are_averaged_and_the_ends_are_clamped():
    predicted, knots, fitted = calibration_map([0.2, 0.2, 0.4, 0.1, 0.9], [0.0, 1.0, 1.0, np.nan, np.nan])
    assert knots.tolist() == [0.2, 0.4] and fitted.tolist() == [0.5, 1.0]
    assert predicted.tolist() == [0.5, 0.5, 1.0, 0.5, 1.0]


@pytest.mark.parametrize("rates", [None, [np.nan] * 5, [0.5, np.nan, np.nan, np.nan, np.nan]])
def test_fewer_than_two_calibration_rows_is_a_clear_error(rates):
    with pytest.raises(UserError, match="at least 2 prompts.*selector.calibration_share"):
        select("calibrated", np.linspace(0, 1, 5), 0.4, pass_rate=rates)


def test_apply_rule_reads_pass_rate_and_writes_the_predicted_pass_rate():
    conf, _, rates = synthetic(200, share=0.2)
    pool = [Problem(str(i), "q", "1") for i in range(200)]
    df = pd.DataFrame({"id": [p.id for p in pool], "confidence": conf, "pass_rate": rates})
    out, signal, rule = apply_rule(get_scorer("ufo_calibrated"), SelectorConfig(name="ufo_calibrated",
                                                                             rule="calibrated"), df, pool, 0)
    assert (signal, rule) == ("confidence", "calibrated") and out["selected"].sum() == 20
    assert np.allclose(out["predicted_pass_rate"], calibration_map(conf, rates)[0])
    assert np.allclose(out["score"], -np.abs(out["predicted_pass_rate"] - 0.5))
    # ufo's scores have no pass rates: the rule says what is missing
    with pytest.raises(UserError, match="at least 2 prompts"):
        apply_rule(get_scorer("ufo"), SelectorConfig(rule="calibrated"),
                   df.assign(pass_rate=None), pool, 0)


# ---- the scorer ------------------------------------------------------------------------------

def test_calibration_share_is_deterministic_and_independent_of_chunking():
    from ufo_rl_baselines.ufo_calibrated import calibration_draw, in_calibration

    ids = [f"p{i}" for i in range(4000)]
    share = [in_calibration(i, 0.05, 0) for i in ids]
    assert 0.04 < np.mean(share) < 0.06
    assert share == [in_calibration(i, 0.05, 0) for i in ids]
    assert share != [in_calibration(i, 0.05, 1) for i in ids]
    assert all(0 <= calibration_draw(i, 0) < 1 for i in ids[:100])
    # a larger share holds the smaller one (the same draw against a higher bar)
    assert all(in_calibration(i, 0.2, 0) for i, s in zip(ids, share) if s)


@pytest.fixture
def fake_parts(monkeypatch):
    """score_ufo and score_multisample replaced by stubs that record what they are given."""
    import ufo_rl_baselines.ufo_calibrated as mod

    calls = {"ufo": [], "multisample": []}

    def fake_ufo(ctx, problems):
        calls["ufo"].append([p.id for p in problems])
        n = len(problems)
        return ScoreChunk({"prompt": ["x"] * n, "target": ["t"] * n, "logprob_mean": [-1.0] * n,
                           "confidence": [0.1 * (int(p.id[1:]) % 10) for p in problems],
                           "pass_rate": [None] * n, "n_samples": [None] * n},
                          forward_tokens=10 * n, generated_tokens=0, seconds=1.0)

    def fake_ms(ctx, problems):
        calls["multisample"].append([p.id for p in problems])
        n = len(problems)
        return ScoreChunk({"pass_rate": [0.25] * n, "n_samples": [ctx.cfg.k] * n},
                          forward_tokens=3 * n, generated_tokens=7 * n, seconds=2.0,
                          samples=[{"id": p.id, "sample": 0} for p in problems])

    monkeypatch.setattr(mod, "score_ufo", fake_ufo)
    monkeypatch.setattr(mod, "score_multisample", fake_ms)
    return calls


def test_scorer_columns_costs_and_chunking(fake_parts):
    from ufo_rl_baselines.ufo_calibrated import in_calibration

    problems = [Problem(f"p{i}", "q", "1") for i in range(300)]
    cfg = SelectorConfig(name="ufo_calibrated", rule="calibrated", calibration_share=0.1, k=4)
    ctx = ScoreContext(None, None, None, cfg)
    fn = get_scorer("ufo_calibrated").fn
    whole = fn(ctx, problems)
    expected = [in_calibration(p.id, 0.1, 0) for p in problems]
    n_cal = sum(expected)
    assert whole.columns["calibrated"] == expected and 10 < n_cal < 60
    assert fake_parts["multisample"] == [[p.id for p, m in zip(problems, expected) if m]]
    rates = np.array(whole.columns["pass_rate"], dtype=float)
    assert (np.isnan(rates) == ~np.array(expected)).all() and (rates[np.array(expected)] == 0.25).all()
    assert [n for n, m in zip(whole.columns["n_samples"], expected) if m] == [4] * n_cal
    # the cost is both parts summed; the calibration samples are kept
    assert whole.forward_tokens == 10 * 300 + 3 * n_cal and whole.generated_tokens == 7 * n_cal
    assert whole.seconds == 3.0 and len(whole.samples) == n_cal
    # chunks of any size put the same prompts in the share
    parts = [fn(ctx, problems[i:i + 64]) for i in range(0, 300, 64)]
    assert sum((c.columns["calibrated"] for c in parts), []) == expected


def test_registry_entry_and_label():
    s = get_scorer("ufo_calibrated")
    assert (s.signal, s.rule, s.fraction, s.samples) == ("confidence", "calibrated", 0.1, False)
    assert {"target", "k", "calibration_share", "calibration_seed"} <= set(s.key_fields)
    cfg = vars(SelectorConfig(name="ufo_calibrated", rule="calibrated"))
    assert s.label("calibrated", "confidence", 0.1, cfg) == "ufo_calibrated"
    assert s.label("calibrated", "confidence", 0.1, {**cfg, "calibration_share": 0.2, "target": "solution"}) \
        == "ufo_calibrated-solution-cal0.2"


def test_config_validates_the_share_and_the_identity_holds_the_knobs():
    base = RunConfig(run_dir="x", selector=SelectorConfig(name="ufo_calibrated", rule="calibrated"))
    assert config_problem(base) is None
    for bad in (0, -0.1, 1.5):
        problem = config_problem(replace(base, selector=replace(base.selector, calibration_share=bad)))
        assert problem.startswith("selector.calibration_share must be in (0, 1]") and str(bad) in problem
    fields = identity_fields(base)
    # at their defaults the new keys leave older run folders' identities unchanged
    assert "selector.calibration_share" not in fields and "selector.calibration_seed" not in fields
    other = identity_fields(replace(base, selector=replace(base.selector, calibration_share=0.1,
                                                           calibration_seed=2)))
    assert other["selector.calibration_share"] == 0.1 and other["selector.calibration_seed"] == 2


# ---- through the front door ------------------------------------------------------------------

@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("m") / "micro")


def test_select_stage_through_bench_run(tmp_path, micro_model):
    r = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "run.py"), "selector=ufo_calibrated",
                        "stage=select", f"model.name_or_path={micro_model}", "model.max_new_tokens=8",
                        "dataset.n_pool=60", "dataset.n_test=10", "selector.k=2",
                        "selector.calibration_share=0.5", f"results_dir={tmp_path}", "progress=false"],
                       capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    [folder] = (tmp_path / "runs" / "default").glob("ufo_calibrated-calibrated-seed0-*")
    df = pd.read_parquet(folder / "scores.parquet")
    assert len(df) == 60 and df["selected"].sum() == 6
    assert {"confidence", "pass_rate", "calibrated", "predicted_pass_rate", "score"} <= set(df.columns)
    cal = df["calibrated"].to_numpy(dtype=bool)
    assert 2 <= cal.sum() < 60 and (df["pass_rate"].notna().to_numpy() == cal).all()
    assert df["predicted_pass_rate"].between(0, 1).all() and df["confidence"].notna().all()
    scoring = json.loads((folder / "scoring.json").read_text())
    assert scoring["method"] == "ufo_calibrated" and scoring["rule"] == "calibrated"
    assert scoring["forward_tokens"] > 0 and scoring["generated_tokens"] > 0 and scoring["scoring_seconds"] > 0
    samples = (folder / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 2 * cal.sum()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "done" and meta["variant"] == "ufo_calibrated-k2-cal0.5"
    # bench/check.py's rule check recomputes the selection from the run's own columns, pass rates included
    from helpers import load_bench_script

    from ufo_rl.report.runs import load_runs

    [run] = load_runs(tmp_path / "runs")
    assert load_bench_script("check")._rule_holds(run, df, df["selected"].to_numpy(dtype=bool))
