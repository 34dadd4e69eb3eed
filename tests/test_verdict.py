"""The verdict block (ufo_rl/report/verdict.py): labels from CIs, one seed honest, reproduction of
the committed reference judged against chance, and `make run` ends with it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from ufo_rl.report import verdict as V

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = ROOT / "results" / "reference" / "embedded"


def _tables(n_seeds=1, ufo_acc=0.49, std=float("nan")):
    acc = pd.DataFrame([
        {"experiment": "default", "benchmark": "embedded", "variant": v, "phase": ph, "n_seeds": n_seeds, "n": 500,
         "accuracy_mean": a if ph == "final" else 0.458, "accuracy_std": std}
        for v, a in (("full", 0.51), ("random", 0.50), ("ufo", ufo_acc)) for ph in ("before", "final")])
    diffs = pd.DataFrame([
        {"experiment": "default", "benchmark": "embedded", "variant": "ufo", "baseline": "random",
         "difference": ufo_acc - 0.50, "ci_lo": -0.05, "ci_hi": 0.03},
        {"experiment": "default", "benchmark": "embedded", "variant": "ufo", "baseline": "full",
         "difference": ufo_acc - 0.51, "ci_lo": -0.04, "ci_hi": -0.001},
        {"experiment": "default", "benchmark": "embedded", "variant": "full", "baseline": "random",
         "difference": 0.01, "ci_lo": 0.002, "ci_hi": 0.02}])
    cost = pd.DataFrame([{"method": "ufo", "target": "answer", "n_prompts": 2000, "scoring_seconds": 8.0,
                          "multisample_seconds": 160.0, "multisample_k": 8.0, "multisample_backend": "hf",
                          "speedup": 20.0},
                         {"method": "multisample", "target": None, "n_prompts": 2000, "scoring_seconds": 160.0,
                          "multisample_seconds": 160.0, "multisample_k": 8.0, "multisample_backend": "hf",
                          "speedup": 1.0}])
    runs = pd.DataFrame([{"experiment": "default", "model": "tiny-x", "dataset_fingerprint": "abc"}])
    return {"accuracy": acc, "differences": diffs, "scoring_cost": cost}, runs


def test_labels_follow_the_ci_and_one_seed_says_so(tmp_path):
    tables, runs = _tables()
    text = "\n".join(V.verdict_lines(tables, runs, tmp_path, references_root=tmp_path / "none"))
    assert "| ufo | 0.490 | -0.010 [-0.050, +0.030] **inconclusive** | -0.020 [-0.040, -0.001] **worse** |" in text
    assert "| full | 0.510 | +0.010 [+0.002, +0.020] **better** |  |" in text
    assert "One seed per selector: these CIs cover the held-out problems only" in text and "make run SEEDS=3" in text
    assert "between seeds in the committed reference" not in text  # no reference, no spread claimed
    assert "**20.0x** faster" in text and "K=8" in text
    assert "committed reference" not in text  # none matches


def _reference(root: Path, acc_ufo: float, std: float, n: int, model="tiny-x") -> Path:
    t = root / "ref" / "tables"
    t.mkdir(parents=True)
    pd.DataFrame([{"experiment": "default", "benchmark": "embedded", "variant": "ufo", "phase": "final",
                   "n_seeds": n, "accuracy_mean": acc_ufo, "accuracy_std": std}]).to_csv(
        t / "accuracy.csv", index=False)
    pd.DataFrame([{"experiment": "default", "model": model, "dataset_fingerprint": "abc"}]).to_csv(
        t / "runs.csv", index=False)
    return root / "ref"


@pytest.mark.parametrize(("ref_acc", "word"), [(0.481, "reproduces"), (0.40, "does NOT reproduce")])
def test_reproduction_is_judged_against_chance(tmp_path, ref_acc, word):
    tables, runs = _tables(ufo_acc=0.488)
    ref = _reference(tmp_path, ref_acc, 0.005, 3)
    lines = V.verdict_lines(tables, runs, tmp_path / "out", references_root=tmp_path)
    line = next(x for x in lines if x.startswith("- ufo:"))
    tol = V.reproduction_tolerance(0.005, 3, 1, 0.488, 500)
    assert f"{word} (difference {0.488 - ref_acc:+.3f}, chance alone allows ±{tol:.3f})" in line
    assert f"0.488 here, {ref_acc:.3f} ± 0.005 over 3 seeds in `{ref}`" in line
    assert any("(±0.005 between seeds in the committed reference)" in x for x in lines)


def test_a_reference_of_another_model_is_not_used(tmp_path):
    tables, runs = _tables()
    _reference(tmp_path, 0.48, 0.005, 3, model="smollm2")
    assert not any(x.startswith("- ufo:") for x in V.verdict_lines(tables, runs, tmp_path / "o", tmp_path))


def test_tolerance_grows_with_noise():
    one = V.reproduction_tolerance(0.005, 3, 1, 0.5, 500)
    assert V.reproduction_tolerance(0.010, 3, 1, 0.5, 500) > one > V.reproduction_tolerance(0.005, 3, 3, 0.5, 500)
    assert V.reproduction_tolerance(float("nan"), 1, 1, 0.5, 500) == pytest.approx(1.96 * (0.25 / 500) ** 0.5)


def test_the_embedded_reference_verdict(tmp_path):
    """Rebuilt from the committed main sweep (3 seeds): multi-sample beats random, UFO is worse than
    full, and every selector reproduces the reference it was made from."""
    from ufo_rl.report.build import build_report

    runs = tmp_path / "runs"
    shutil.copytree(EMBEDDED / "runs", runs, symlinks=False)
    written = build_report(runs, tmp_path)
    text = (tmp_path / "verdict.md").read_text()
    assert tmp_path / "verdict.md" in written
    assert "| multisample | 0.521 ± 0.004 | +0.023 [+0.007, +0.040] **better** |" in text
    assert ("| ufo | 0.481 ± 0.005 | -0.017 [-0.036, +0.003] **inconclusive** | -0.027 [-0.044, -0.012] **worse** |"
            in text)
    assert text.count(": reproduces (difference +0.000") == 4
    assert "**20.1x** faster" in text


def test_make_run_takes_seeds():
    make = (ROOT / "Makefile").read_text()
    assert "SEEDS ?= 1" in make and "seed=$(SEED_LIST)" in make
