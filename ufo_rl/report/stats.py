"""Statistics of the report: intervals over seeds, differences between selectors, curve areas and
the pass-rate value bins of the paper's Figure 1 (arXiv 2505.12457, Sec. 3). Pure functions of
arrays; no run folder is read here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ufo_rl.selection import min_bin_count, value_bins  # noqa: F401  (min_bin_count: re-exported for the report)

LEVEL = 0.95
N_BOOT = 2000
BOOT_SEED = 0


def t_halfwidth(std, n, level: float = LEVEL):
    """Half width of the t-interval of a mean, ``t_{(1+level)/2, n-1} * std / sqrt(n)``,
    elementwise; NaN where ``n < 2`` (one seed says nothing about the spread).

    >>> round(float(t_halfwidth(1.0, 4)), 4)
    1.5912
    >>> bool(np.isnan(t_halfwidth(0.0, 1)))
    True
    """
    from scipy.stats import t

    std, n = np.asarray(std, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = t.ppf((1 + level) / 2, n - 1) * std / np.sqrt(n)
    return np.where(n >= 2, h, np.nan)


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float, float]:
    """(mean, sd with ddof=1, CI low, CI high) of ``values``; sd and CI are NaN for one value."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean()) if len(v) else math.nan
    sd = float(v.std(ddof=1)) if len(v) > 1 else math.nan
    h = float(t_halfwidth(sd, len(v), level))
    return mean, sd, mean - h, mean + h


def _t_p(estimate: float, se: float, df: float) -> float:
    from scipy.stats import t

    if se == 0:
        return 1.0 if estimate == 0 else 0.0
    return float(2 * t.sf(abs(estimate / se), df))


def paired_t(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> dict:
    """Difference ``mean(a - b)`` over paired seeds (``a[i]`` and ``b[i]`` share seed i): the
    t-interval of the per-seed differences and its two-sided p-value. CI NaN below two seeds."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean, sd, lo, hi = t_interval(d, level)
    p = _t_p(mean, sd / math.sqrt(len(d)), len(d) - 1) if len(d) > 1 else math.nan
    return {"difference": mean, "ci_lo": lo, "ci_hi": hi, "p_value": p}


def welch_t(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> dict:
    """Difference of means of two independent groups of seeds, Welch's t-interval (unequal
    variances, Welch-Satterthwaite degrees of freedom). CI NaN unless both have two seeds."""
    from scipy.stats import t

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return {"difference": diff, "ci_lo": math.nan, "ci_hi": math.nan, "p_value": math.nan}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"difference": diff, "ci_lo": diff, "ci_hi": diff, "p_value": _t_p(diff, 0.0, 1)}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    h = float(t.ppf((1 + level) / 2, df) * se)
    return {"difference": diff, "ci_lo": diff - h, "ci_hi": diff + h, "p_value": _t_p(diff, se, df)}


def seed_z(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(standard error, difference / standard error) of ``mean(a) - mean(b)`` over independent
    seeds, ``sqrt(var(a)/n_a + var(b)/n_b)`` (the Welch standard error): how many standard errors
    of the difference the seeds put between two selectors. NaN below two seeds a side.

    >>> [round(v, 4) for v in seed_z([0.30, 0.32, 0.34], [0.20, 0.22, 0.24])]
    [0.0163, 6.1237]
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    diff = float(a.mean() - b.mean())
    return se, (diff / se if se > 0 else math.copysign(math.inf, diff) if diff else math.nan)


def bootstrap_difference(a: np.ndarray, b: np.ndarray, paired_seeds: bool, n_boot: int = N_BOOT,
                         seed: int = BOOT_SEED, level: float = LEVEL) -> dict:
    """Difference in accuracy of two selectors from per-problem greedy correctness, ``a`` of shape
    (seeds of A, problems) and ``b`` (seeds of B, the same problems in the same order).

    Each replicate resamples the held-out problems (the same draw for both sides: the benchmark is
    shared) and, within each side, the seeds (one joint draw when ``paired_seeds``: row i of ``a``
    and of ``b`` share a seed). Percentile interval; two-sided p = 2 x the smaller tail share at 0,
    at least ``1 / n_boot`` (the resolution of ``n_boot`` replicates).
    A side with one seed contributes no seed-to-seed spread, so the interval then covers the
    held-out sampling noise only. Seeded: the same inputs give the same interval.
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    rng = np.random.default_rng(seed)
    n_problems = a.shape[1]
    out = []
    for size in [min(250, n_boot - i) for i in range(0, n_boot, 250)]:  # chunks bound the memory
        wa = rng.multinomial(a.shape[0], np.full(a.shape[0], 1 / a.shape[0]), size=size) / a.shape[0]
        wb = wa if paired_seeds else \
            rng.multinomial(b.shape[0], np.full(b.shape[0], 1 / b.shape[0]), size=size) / b.shape[0]
        per_problem = wa @ a - wb @ b  # (size, problems)
        counts = rng.multinomial(n_problems, np.full(n_problems, 1 / n_problems), size=size)
        out.append((per_problem * counts).sum(axis=1) / n_problems)
    d = np.concatenate(out)
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, max(1 / n_boot, 2 * min(float((d <= 0).mean()), float((d >= 0).mean()))))
    return {"difference": float(a.mean() - b.mean()), "ci_lo": float(lo), "ci_hi": float(hi), "p_value": p}


def significant(lo: float, hi: float) -> bool | None:
    """The interval excludes 0; None when there is no interval."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return None
    return bool(lo > 0 or hi < 0)


def curve_auc(steps: Sequence[float], accuracy: Sequence[float]) -> float:
    """Area under the held-out accuracy curve from step 0 (the ``before`` accuracy) to the last
    step, by the trapezoid rule, divided by the number of steps: the mean accuracy over training.
    Two selectors that end at the same accuracy get a higher area for the one that got there
    sooner. NaN unless the curve starts at step 0 and has another step.

    >>> curve_auc([0, 5, 10], [0.2, 0.4, 0.4])
    0.35
    """
    s, a = np.asarray(steps, dtype=float), np.asarray(accuracy, dtype=float)
    if len(s) < 2 or s[0] != 0 or s[-1] <= 0:
        return math.nan
    return float(np.sum((a[1:] + a[:-1]) / 2 * np.diff(s)) / s[-1])


# ---- the paper's Figure 1 bins ----------------------------------------------------------------

def pass_rate_value_bins(pass_rate: Sequence[float], min_count: int) -> pd.DataFrame:
    """Bins of a pool by pass-rate *value* (K samples give the K+1 values 0/K .. K/K; the paper's
    Figure 1 trains on each group alone). Values are taken from lowest to highest, and a bin is
    closed once it holds ``min_count`` prompts; a short remainder joins the last bin. Columns:
    ``bin`` (0 = lowest pass rate), ``pass_rate_lo``, ``pass_rate_hi``, ``n``, ``label``.

    >>> pass_rate_value_bins([0, 0, 0, .5, 1, 1], 2)[["pass_rate_lo", "pass_rate_hi", "n"]].values.tolist()
    [[0.0, 0.0, 3.0], [0.5, 1.0, 3.0]]
    """
    p = np.round(np.asarray(pass_rate, dtype=float), 9)
    p = p[~np.isnan(p)]
    bins = value_bins(p, min_count)
    rows = [{"bin": b, "pass_rate_lo": float(p[bins == b].min()), "pass_rate_hi": float(p[bins == b].max()),
             "n": int((bins == b).sum())} for b in np.unique(bins)]
    df = pd.DataFrame(rows, columns=["bin", "pass_rate_lo", "pass_rate_hi", "n"])
    df["label"] = [range_label(lo, hi) for lo, hi in zip(df["pass_rate_lo"], df["pass_rate_hi"])]
    return df


def value_bin_index(pass_rate: Sequence[float], min_count: int) -> np.ndarray:
    """The bin of :func:`pass_rate_value_bins` each prompt falls in (what a selection rule that
    bins by value would keep for one bin index).

    >>> value_bin_index([0, 0, 0, .5, 1, 1], 2).tolist()
    [0, 0, 0, 1, 1, 1]
    """
    return value_bins(np.asarray(pass_rate, dtype=float), min_count)


def range_label(lo: float, hi: float) -> str:
    """``"0.25–0.38"`` (two decimals, en dash); one value when ``lo == hi``; empty when unknown.

    >>> range_label(0.25, 0.375), range_label(0.0, 0.0)
    ('0.25–0.38', '0.00')
    """
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)) or \
            (isinstance(hi, float) and math.isnan(hi)):
        return ""
    return f"{lo:.2f}" if math.isclose(lo, hi) else f"{lo:.2f}–{hi:.2f}"
