"""The report's figures live in :mod:`ufo_rl.report.figures`; this module keeps the old import path."""

from ufo_rl.report.figures import (  # noqa: F401
    fig_accuracy_bars,
    fig_bin_ablation,
    fig_confidence_vs_pass_rate,
    fig_learning_curves,
    fig_signal_histograms,
    fig_training_curves,
)
