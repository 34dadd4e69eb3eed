"""Selection rules: pure functions from a per-prompt signal to a kept subset.

Every rule takes the signal ``s`` (shape ``(n,)``; UFO confidence or multi-sample pass rate)
and returns ``(keep, score)``: a boolean mask of shape ``(n,)`` and the per-prompt score the rule
ranked by (higher = kept first). Ties are broken by a seeded random permutation, so a fixed seed
gives a fixed subset and no rule leans on the pool's order. A rule may read other columns of the
scores (:data:`RULE_INPUTS`: ``calibrated`` reads ``pass_rate``) and add some
(:data:`RULE_OUTPUTS`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ufo_rl.errors import UserError

RULES: dict[str, Callable] = {}
# the selector settings a rule may read besides the fraction (each rule takes the ones it needs)
RULE_PARAMS = ("band_target", "n_bins", "bin_index", "bin_min_share")
# the rules that keep one bin of the pool (the paper's Figure 1); the run's label names its index
BIN_RULES = ("bin", "value_bin")
# rules that read columns of the scores besides the signal, passed to the rule by column name
RULE_INPUTS: dict[str, tuple[str, ...]] = {"calibrated": ("pass_rate",)}
# rules that add per-prompt columns to the scores: rule -> fn(signal, **inputs) -> {column: values}
RULE_OUTPUTS: dict[str, Callable] = {}


def register(name: str):
    def deco(fn):
        RULES[name] = fn
        return fn

    return deco


def n_keep(n: int, fraction: float) -> int:
    """How many of ``n`` prompts a ``fraction`` keeps (rounded, at least 1)."""
    if not 0 < fraction <= 1:
        raise UserError(f"selector.fraction must be in (0, 1], got {fraction}")
    k = int(round(fraction * n))
    if k < 1:
        raise UserError(
            f"selector.fraction={fraction} of a pool of {n} keeps no prompt; "
            "use a larger pool or fraction"
        )
    return k


def _top(score: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Mask of the k highest scores; ties broken by a seeded permutation."""
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(len(score))
    order = np.lexsort((tiebreak, -score))  # primary key: -score (last key sorts first)
    keep = np.zeros(len(score), dtype=bool)
    keep[order[:k]] = True
    return keep


def _check(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, dtype=float)
    if s.ndim != 1 or len(s) == 0:
        raise UserError("selection needs a non-empty 1-D signal (one value per prompt)")
    if np.isnan(s).any():
        raise UserError(f"the selection signal has {int(np.isnan(s).sum())} missing values")
    return s


@register("top_mid")
def select_top_mid(s: np.ndarray, fraction: float, seed: int = 0, **_) -> tuple[np.ndarray, np.ndarray]:
    """UFO-RL "Top-Mid" (arXiv 2505.12457, Sec. 4): ``mu = mean(s)``, ``Score = 1 - (s - mu)^2``,
    keep the top ``fraction`` by Score, i.e. the prompts whose signal is closest to the pool mean."""
    s = _check(s)
    score = 1.0 - (s - s.mean()) ** 2
    return _top(score, n_keep(len(s), fraction), seed), score


@register("lowest")
def select_lowest(s, fraction, seed=0, **_):
    """The paper's "extreme" baseline: the ``fraction`` with the lowest signal."""
    s = _check(s)
    return _top(-s, n_keep(len(s), fraction), seed), -s


@register("highest")
def select_highest(s, fraction, seed=0, **_):
    """The paper's other "extreme" baseline: the ``fraction`` with the highest signal."""
    s = _check(s)
    return _top(s, n_keep(len(s), fraction), seed), s


@register("band")
def select_band(s, fraction, seed=0, band_target: float = 0.5, **_):
    """The ``fraction`` closest to ``band_target`` (e.g. pass rate 0.5): ``Score = -|s - target|``."""
    s = _check(s)
    score = -np.abs(s - band_target)
    return _top(score, n_keep(len(s), fraction), seed), score


@register("bin")
def select_bin(s, fraction, seed=0, n_bins: int = 10, bin_index: int = 0, **_):
    """Bin ``bin_index`` of ``n_bins`` equal-count bins of the pool sorted by signal (the paper's
    Figure 1 splits GSM8K train into 10 pass-rate bins). Bin 0 holds the lowest signals. Equal
    counts keep every bin's training set the same size; ``fraction`` is not used."""
    s = _check(s)
    if n_bins < 1 or not 0 <= bin_index < n_bins:
        raise UserError(f"selector.bin_index must be in [0, {n_bins}), got {bin_index} (n_bins={n_bins})")
    if len(s) < n_bins:
        raise UserError(f"a pool of {len(s)} cannot be split into {n_bins} bins")
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(len(s)), s))
    bins = np.empty(len(s), dtype=int)
    for i, chunk in enumerate(np.array_split(order, n_bins)):
        bins[chunk] = i
    return bins == bin_index, bins.astype(float)


def value_bins(s: np.ndarray, min_count: int) -> np.ndarray:
    """The bin of each prompt when the pool is binned by signal *value* (K samples give the K+1
    pass rates 0/K .. K/K, the paper's Figure 1 bins): values taken from lowest to highest, a bin
    closed once it holds ``min_count`` prompts, a short remainder joined to the last bin.

    >>> value_bins(np.array([0, 0, 0, .5, 1, 1]), 2).tolist()
    [0, 0, 0, 1, 1, 1]
    >>> value_bins(np.array([0, .25, .25, .5, .75, 1]), 2).tolist()
    [0, 0, 0, 1, 1, 1]
    """
    values, inverse, counts = np.unique(np.round(s, 9), return_inverse=True, return_counts=True)
    group = np.empty(len(values), dtype=int)
    g = filled = 0
    for i, c in enumerate(counts):
        group[i] = g
        filled += c
        if filled >= min_count:
            g, filled = g + 1, 0
    if filled and g > 0:  # a short remainder joins the last full bin
        group[group == g] = g - 1
    return group[inverse.ravel()]


def min_bin_count(n: int, min_share: float = 0.05, min_prompts: int = 20) -> int:
    """The fewest prompts a value bin of a pool of ``n`` may hold: ``min_share`` of the pool and
    at least ``min_prompts``.

    >>> min_bin_count(2000), min_bin_count(100)
    (100, 20)
    """
    return max(int(min_prompts), int(np.ceil(min_share * n)))


@register("value_bin")
def select_value_bin(s, fraction, seed=0, bin_index: int = 0, bin_min_share: float = 0.05, **_):
    """Bin ``bin_index`` of the pool binned by signal value (:func:`value_bins`), each bin holding
    at least ``bin_min_share`` of the pool (and 20 prompts): the paper's Figure 1, which bins GSM8K
    train by pass rate and trains on each bin alone. ``fraction`` is not used; the bins differ in
    size, as the paper's do."""
    s = _check(s)
    if not 0 < bin_min_share <= 1:
        raise UserError(f"selector.bin_min_share must be in (0, 1], got {bin_min_share}")
    bins = value_bins(s, min_bin_count(len(s), bin_min_share))
    n = int(bins.max()) + 1
    if not 0 <= bin_index < n:
        raise UserError(f"selector.bin_index={bin_index}, but this pool has {n} value bins "
                        f"(0..{n - 1}); sweep selector.bin_index=range(0,{n})")
    return bins == bin_index, bins.astype(float)


@register("dapo")
def select_dapo(s, fraction, seed=0, **_):
    """DAPO-style filter: drop prompts with pass rate exactly 0 or 1, then a random ``fraction``
    of the pool from the rest (all of the rest when fewer remain)."""
    s = _check(s)
    k = n_keep(len(s), fraction)
    mixed = (s > 0) & (s < 1)
    if not mixed.any():
        raise UserError("dapo: every prompt has pass rate 0 or 1; nothing is left to select")
    score = np.where(mixed, np.random.default_rng(seed).random(len(s)), -np.inf)
    return _top(score, min(k, int(mixed.sum())), seed), score


def calibration_map(confidence, pass_rate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A monotone (non-decreasing) map from confidence to pass rate, fitted on the rows whose
    ``pass_rate`` is not NaN (the calibration share) and applied to every row.

    The calibration rows are sorted by confidence (rows of equal confidence averaged, weighted by
    their count) and fitted by isotonic regression (``scipy.optimize.isotonic_regression``); each
    row's predicted pass rate is ``np.interp`` over the fitted knots: linear between them, clamped
    at the lowest and highest calibration confidence. Returns ``(predicted, knots, fitted)``;
    fewer than 2 calibration rows is an error.

    >>> calibration_map([.1, .2, .3, .4], [0, np.nan, 1, np.nan])[0].tolist()
    [0.0, 0.5, 1.0, 1.0]
    """
    from scipy.optimize import isotonic_regression

    c = _check(confidence)
    y = np.full(len(c), np.nan) if pass_rate is None else np.asarray(pass_rate, dtype=float)
    if y.shape != c.shape:
        raise UserError(f"rule calibrated: {len(y)} pass rates for {len(c)} confidences")
    cal = ~np.isnan(y)
    if int(cal.sum()) < 2:
        raise UserError(f"rule calibrated needs the pass rates of at least 2 prompts of the pool to fit its "
                        f"confidence -> pass rate map, got {int(cal.sum())} of {len(c)}; raise "
                        "selector.calibration_share (selector=ufo_calibrated) or the pool")
    knots, inverse, counts = np.unique(c[cal], return_inverse=True, return_counts=True)
    means = np.bincount(inverse.ravel(), weights=y[cal], minlength=len(knots)) / counts
    fitted = np.asarray(isotonic_regression(means, weights=counts.astype(float), increasing=True).x)
    return np.interp(c, knots, fitted), knots, fitted


@register("calibrated")
def select_calibrated(s, fraction, seed=0, band_target: float = 0.5, pass_rate=None, **_):
    """Calibrated single pass: this suite's extension of UFO-RL, not the paper's rule.

    ``s`` is UFO's confidence (arXiv 2505.12457, Sec. 3: the mean log-probability of the target
    under one teacher-forced forward pass, ``s = exp(Conf)``); ``pass_rate`` holds K-sample pass
    rates for a small calibration share of the pool and NaN elsewhere. A monotone map from
    confidence to pass rate is fitted on that share (:func:`calibration_map`), and the
    ``fraction`` of the pool whose predicted pass rate is nearest ``band_target`` (0.5: where a
    GRPO group is most often mixed) is kept: ``Score = -|predicted - band_target|``.

    Ties (isotonic regression fits plateaus, so many rows share a predicted value) go to the row
    whose confidence is nearest the middle of the target zone: the midpoint of the lowest and
    highest calibration confidence whose fitted pass rate is nearest ``band_target``; remaining
    ties by the seeded permutation of the other rules. Returns ``(keep, score)``; the predicted
    pass rate is the column ``predicted_pass_rate`` (:data:`RULE_OUTPUTS`).
    """
    c = _check(s)
    predicted, knots, fitted = calibration_map(c, pass_rate)
    gap = np.abs(fitted - band_target)
    zone = knots[np.isclose(gap, gap.min(), rtol=0, atol=1e-12)]
    middle = (zone.min() + zone.max()) / 2
    score = -np.abs(predicted - band_target)
    tiebreak = np.random.default_rng(seed).permutation(len(c))
    order = np.lexsort((tiebreak, np.abs(c - middle), -np.round(score, 12)))
    keep = np.zeros(len(c), dtype=bool)
    keep[order[: n_keep(len(c), fraction)]] = True
    return keep, score


RULE_OUTPUTS["calibrated"] = lambda s, pass_rate=None, **_: {
    "predicted_pass_rate": calibration_map(s, pass_rate)[0]}


@register("random")
def select_random(s, fraction, seed=0, **_):
    """A seeded random ``fraction`` (the signal is ignored)."""
    n = len(np.asarray(s))
    score = np.random.default_rng(seed).random(n)
    return _top(score, n_keep(n, fraction), seed), score


@register("all")
def select_all(s, fraction=1.0, seed=0, **_):
    """Every prompt (the full-data baseline)."""
    n = len(np.asarray(s))
    return np.ones(n, dtype=bool), np.ones(n)


def select(rule: str, s: np.ndarray, fraction: float, seed: int = 0, **params):
    """Look up ``rule`` and apply it; unknown names list the known ones."""
    if rule not in RULES:
        raise UserError(f"unknown selection rule {rule!r}; known: {', '.join(sorted(RULES))}")
    return RULES[rule](s, fraction, seed=seed, **params)


def apply_rule(scorer, selector, df, pool, seed: int):
    """The rule of ``selector`` (its config) applied to the signal column of ``df`` (the scores of
    ``pool`` by ``scorer``, a :class:`ufo_rl.scorers.Scorer`).

    Returns ``(df, signal_name, rule)``; ``df`` gains the columns ``score`` (what the rule ranked,
    NaN for a rule without one), ``selected``, ``difficulty`` and ``selector``, and those the rule
    adds (:data:`RULE_OUTPUTS`: ``predicted_pass_rate`` for ``calibrated``); a rule of
    :data:`RULE_INPUTS` also reads those columns of ``df``. A scorer without
    a signal (random, full) applies its own rule (:meth:`ufo_rl.scorers.Scorer.resolve_rule`).
    """
    import pandas as pd

    signal_name = selector.signal or scorer.signal
    rule = scorer.resolve_rule(selector.rule)
    if signal_name is None:
        signal = np.zeros(len(pool))
    elif signal_name not in df or df[signal_name].isna().all():
        raise UserError(f"selector {scorer.name} produces no {signal_name!r} signal; "
                        f"set selector.signal to one it has (confidence, logprob_mean, pass_rate)")
    else:
        signal = df[signal_name].to_numpy(dtype=float)
    inputs = {c: df[c].to_numpy(dtype=float) if c in df else None for c in RULE_INPUTS.get(rule, ())}
    keep, score = select(rule, signal, selector.fraction, seed=seed,
                         **{k: getattr(selector, k) for k in RULE_PARAMS}, **inputs)
    if rule in RULE_OUTPUTS:
        for column, values in RULE_OUTPUTS[rule](signal, **inputs).items():
            df[column] = values
    df["score"] = score if signal_name is not None or rule == "random" else np.nan
    df["selected"] = keep
    df["difficulty"] = pd.array([p.difficulty for p in pool], dtype="Int64")
    df["selector"] = scorer.name
    return df, signal_name, rule
