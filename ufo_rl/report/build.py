"""``build_report``: every table and figure of ``results/README.md`` from a folder of runs."""

from __future__ import annotations

from pathlib import Path

from ufo_rl.errors import UserError
from ufo_rl.report.calibration import (
    calibration_table,
    confidence_by_pass_rate_table,
    correlation_table,
    pass_rate_bins_table,
    pass_rate_distribution_table,
)
from ufo_rl.report.markdown import to_markdown
from ufo_rl.report.runs import eval_frame, load_runs, runs_frame
from ufo_rl.report.tables import (
    accuracy_table,
    bin_ablation_table,
    differences_table,
    scoring_cost_table,
    training_time_table,
)
from ufo_rl.report.verdict import write_verdict

TABLES = ("scoring_cost", "accuracy", "differences", "training_time", "correlation", "calibration",
          "confidence_by_pass_rate", "pass_rate_distribution", "pass_rate_bins", "bin_ablation")
FIGURES = ("confidence_vs_pass_rate", "signal_histograms", "training_curves", "learning_curves",
           "accuracy_bars", "bin_ablation")


def build_report(runs_dir: Path, out_dir: Path) -> list[Path]:
    """Write ``out_dir/tables/*.csv|md``, ``out_dir/figures/*.png`` and ``out_dir/verdict.md``
    (ufo_rl/report/verdict.py) from the finished runs
    under ``runs_dir``; returns the written paths. A table or figure whose inputs are absent is
    not written, and a stale copy of it is removed. Raises :class:`UserError` when there are no
    finished runs."""
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    if not runs_dir.is_dir():
        raise UserError(f"runs folder {runs_dir} does not exist; run a sweep first (bench/run.py)")
    runs = load_runs(runs_dir)
    if not runs:
        raise UserError(f"no finished run under {runs_dir} (no meta.json with status done)")
    tdir, fdir = out_dir / "tables", out_dir / "figures"
    tdir.mkdir(parents=True, exist_ok=True)
    fdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    frame = runs_frame(runs)
    frame.to_csv(tdir / "runs.csv", index=False)
    written.append(tdir / "runs.csv")
    makers = {
        "scoring_cost": scoring_cost_table, "accuracy": accuracy_table, "differences": differences_table,
        "training_time": training_time_table, "correlation": correlation_table,
        "calibration": calibration_table, "confidence_by_pass_rate": confidence_by_pass_rate_table,
        "pass_rate_distribution": pass_rate_distribution_table, "pass_rate_bins": pass_rate_bins_table,
        "bin_ablation": bin_ablation_table,
    }
    tables = {name: makers[name](runs) for name in TABLES}
    for name, df in tables.items():
        paths = [tdir / f"{name}.csv", tdir / f"{name}.md"]
        if df.empty:
            for p in paths:
                p.unlink(missing_ok=True)
            continue
        df.to_csv(paths[0], index=False)
        paths[1].write_text(to_markdown(df))
        written += paths
    verdict = write_verdict(out_dir, tables, frame)
    if verdict is not None:
        written.append(verdict)

    from ufo_rl.report import figures as f

    makers = {
        "confidence_vs_pass_rate": lambda p: f.fig_confidence_vs_pass_rate(runs, p),
        "signal_histograms": lambda p: f.fig_signal_histograms(runs, p),
        "training_curves": lambda p: f.fig_training_curves(runs, p),
        "learning_curves": lambda p: f.fig_learning_curves(runs, p),
        "accuracy_bars": lambda p: f.fig_accuracy_bars(tables["accuracy"], eval_frame(runs), p),
        "bin_ablation": lambda p: f.fig_bin_ablation(tables["bin_ablation"], p),
    }
    for name in FIGURES:
        path = fdir / f"{name}.png"
        if makers[name](path) is None:
            path.unlink(missing_ok=True)
        else:
            written.append(path)
    return written
