"""Tables and figures from finished run folders (``results/README.md`` is the contract).

Reads only the files a job writes (``meta.json``, ``scoring.json``, ``timing.json``,
``eval.json``, ``scores.parquet``, ``train.jsonl``, ``eval_samples/``), never logs. A folder whose
``meta.json`` does not say ``status: done`` is unfinished and ignored. Each table is written as
CSV (numbers at full precision) and markdown (rounded, ``mean ± std``, ``[lo, hi]`` for 95%
intervals); a table or figure whose inputs are absent is skipped, and a stale copy of it from an
earlier report is removed, so what is in ``tables/`` and ``figures/`` always matches the runs.

Runs are grouped by ``variant``: the selector name, plus whatever distinguishes it from that
selector's default (``ufo-lowest``, ``ufo-bin3``, ``multisample-k16``, ``ufo-20%``), as recorded
in ``meta.json`` (the registry's label, ``ufo_rl/scorers.py``, for older folders). Standard
deviations are over seeds with ``ddof=1`` (empty for a single seed).

Modules: ``runs`` (loading, long frames, curves), ``stats`` (intervals, bootstrap, curve area,
pass-rate bins), ``tables`` (trained runs: paper Tables 4-6, Figure 1, differences),
``calibration`` (scores only: Sec. 4, Tables 1-2), ``markdown``, ``figures``, ``build``.
"""

from ufo_rl.report.build import FIGURES, TABLES, build_report
from ufo_rl.report.calibration import (
    calibration_table,
    confidence_by_pass_rate_table,
    correlation_table,
    pass_rate_bins_table,
    pass_rate_distribution_table,
)
from ufo_rl.report.markdown import to_markdown
from ufo_rl.report.runs import (
    PHASES,
    Run,
    eval_frame,
    load_runs,
    runs_frame,
    selection_hash,
    variant_label,
)
from ufo_rl.report.tables import (
    accuracy_table,
    bin_ablation_table,
    differences_table,
    scoring_cost_table,
    training_time_table,
)

__all__ = [
    "FIGURES", "PHASES", "TABLES", "Run",
    "accuracy_table", "bin_ablation_table", "build_report", "calibration_table",
    "confidence_by_pass_rate_table", "correlation_table", "differences_table", "eval_frame", "load_runs",
    "pass_rate_bins_table", "pass_rate_distribution_table", "runs_frame", "scoring_cost_table",
    "selection_hash", "to_markdown", "training_time_table", "variant_label",
]
