"""Tables of trained runs: scoring cost, accuracy, training time, the bin ablation and the
differences between selectors (arXiv 2505.12457, Tables 4-6 and Figure 1).

What a selector is comes from the registry (``ufo_rl/scorers.py``: its knobs, whether it samples,
whether it is a baseline) and from each run's files, never from its name."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ufo_rl.report.runs import (
    PHASES,
    Run,
    accuracy_points,
    eval_frame,
    model_name,
    pass_rate_scorings,
    pass_rates_of,
    runs_frame,
)
from ufo_rl.report.stats import (
    bootstrap_difference,
    curve_auc,
    paired_t,
    range_label,
    seed_z,
    significant,
    t_halfwidth,
    welch_t,
)
from ufo_rl.scorers import baselines, find_scorer
from ufo_rl.selection import BIN_RULES


def _agg(df: pd.DataFrame, keys: list[str], cols: list[str], extra: dict | None = None) -> pd.DataFrame:
    """Per group of ``keys``: ``n_seeds`` (rows), mean and std (ddof=1) of each of ``cols``, and
    the named ``extra`` aggregations ``{name: (column, func)}``. Rows with NaN keys are kept."""
    d = df.copy()
    d["_one"] = 1
    named = {"n_seeds": ("_one", "size")}
    for c in cols:
        d[c] = pd.to_numeric(d[c], errors="coerce")
        named[f"{c}_mean"] = (c, "mean")
        named[f"{c}_std"] = (c, "std")
    for name, (col, fn) in (extra or {}).items():
        if fn in ("mean", "min", "max"):
            d[col] = pd.to_numeric(d[col], errors="coerce")
        named[name] = (col, fn)
    return d.groupby(keys, dropna=False, sort=False).agg(**named).reset_index()


def scoring_cost_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Table 4: data-evaluation cost per scoring method, one row per distinct scoring
    (deduplicated by cache key: every seed and rule of a sweep reuses one scoring, and
    ``scoring.json`` keeps the original, uncached cost). ``speedup`` = seconds of the
    multi-sample scoring (a scorer that samples, ``Scorer.samples``) of the same pool, model and
    device / this method's seconds, one row per such reference (Hugging Face and vLLM sampling
    each give one). ``target`` and ``k``: the method's knobs of those names (``Scorer.knobs``),
    blank for a method without them; ``backend`` (``multisample_backend`` for the reference):
    the generation backend of a method that samples (hf, vllm)."""
    rows, seen = [], set()
    for r in runs:
        sc = r.scoring
        if not sc or not sc.get("n_prompts") or not sc.get("scoring_seconds"):
            continue  # random / full: no model, no cost
        ident = (sc.get("cache_key"), sc.get("scoring_seconds"))
        if ident in seen:
            continue
        seen.add(ident)
        cfg, scorer = r.selector_config, find_scorer(sc.get("method"))
        knobs = scorer.knobs if scorer is not None else {}
        rows.append({
            "method": sc.get("method"), "target": cfg.get("target") if "target" in knobs else None,
            "k": cfg.get("k") if "k" in knobs else None, "backend": sc.get("generation_backend"),
            "dataset": sc.get("dataset"), "model": model_name(sc.get("model")),
            "device": sc.get("device_name") or sc.get("device"), "dtype": sc.get("dtype"),
            "batch_size": sc.get("batch_size"), "n_prompts": sc.get("n_prompts"),
            "scoring_seconds": sc.get("scoring_seconds"), "load_seconds": sc.get("load_seconds"),
            "forward_tokens": sc.get("forward_tokens"), "generated_tokens": sc.get("generated_tokens"),
            "tokens_per_second": sc.get("tokens_per_second"),
            "prompts_per_second": sc.get("prompts_per_second"),
            "_group": (sc.get("dataset_fingerprint"), sc.get("model_fingerprint"),
                       sc.get("device_name") or sc.get("device")),
            "_samples": scorer is not None and scorer.samples,
        })
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    out = []
    for _, row in df.iterrows():
        refs = df[df["_samples"] & (df["_group"] == pd.Series([row["_group"]] * len(df), index=df.index))]
        if row["_samples"]:
            refs = refs[refs.index == row.name]
        if refs.empty:
            out.append({**row, "multisample_k": np.nan, "multisample_backend": None, "multisample_seconds": np.nan,
                        "speedup": np.nan})
        for _, ref in refs.iterrows():
            out.append({**row, "multisample_k": ref["k"], "multisample_backend": ref["backend"],
                        "multisample_seconds": ref["scoring_seconds"],
                        "speedup": ref["scoring_seconds"] / row["scoring_seconds"]})
    out = pd.DataFrame(out).drop(columns=["_group", "_samples"])
    return out.sort_values(["dataset", "model", "device", "scoring_seconds"], kind="stable").reset_index(drop=True)


def accuracy_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Table 5: greedy accuracy, avg@k and gain over the starting model, mean ± std over
    seeds, per experiment x variant x benchmark x phase. ``accuracy_ci_lo`` / ``_hi``: 95%
    t-interval of the mean accuracy over seeds (blank for one seed). ``auc`` (``final`` rows):
    area under the held-out accuracy curve per optimizer step (``stats.curve_auc``; blank without
    periodic evaluations)."""
    ev = eval_frame(runs)
    if ev.empty:
        return ev
    keys = ["experiment", "variant", "selector", "rule", "signal", "fraction", "benchmark", "phase"]
    out = _agg(ev, keys, ["accuracy", "avg_at_k", "gain", "auc"],
               {"n_selected": ("n_selected", "mean"), "k": ("k", "first"), "n": ("n", "first")})
    h = t_halfwidth(out["accuracy_std"], out["n_seeds"])
    at = out.columns.get_loc("accuracy_std") + 1
    out.insert(at, "accuracy_ci_lo", out["accuracy_mean"] - h)
    out.insert(at + 1, "accuracy_ci_hi", out["accuracy_mean"] + h)
    out["phase"] = pd.Categorical(out["phase"], PHASES, ordered=True)
    out = out.sort_values(["experiment", "benchmark", "phase", "variant"], kind="stable")
    out["phase"] = out["phase"].astype(str)
    return out.reset_index(drop=True)


def training_time_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Table 6: training and end-to-end (scoring + training) seconds per variant, mean over
    seeds; ``training_speedup_vs_full`` / ``speedup_vs_full`` = the training / end-to-end seconds
    of the first variant that trained on the whole pool (rule ``all``; same experiment and budget)
    over this variant's."""
    rf = runs_frame(runs)
    if rf.empty or rf["training_seconds"].isna().all():
        return pd.DataFrame()
    rf = rf[rf["training_seconds"].notna()].copy()
    rf["end_to_end_seconds"] = rf["end_to_end_seconds"].fillna(
        rf["scoring_seconds"].fillna(0) + rf["training_seconds"])
    rf["seconds_per_step"] = rf["training_seconds"] / pd.to_numeric(rf["steps"], errors="coerce")
    keys = ["experiment", "variant", "selector", "rule", "fraction", "budget"]
    out = _agg(rf, keys, ["training_seconds"], {
        "steps": ("steps", "mean"), "n_selected": ("n_selected", "mean"),
        "seconds_per_step": ("seconds_per_step", "mean"),
        "scoring_seconds": ("scoring_seconds", "mean"), "end_to_end_seconds": ("end_to_end_seconds", "mean")})
    full = out[out["rule"] == "all"].drop_duplicates(["experiment", "budget"]).set_index(["experiment", "budget"])
    for col, name in (("training_seconds_mean", "training_speedup_vs_full"), ("end_to_end_seconds", "speedup_vs_full")):
        out[name] = [full[col].get((e, b), np.nan) / s if s else np.nan
                     for e, b, s in zip(out["experiment"], out["budget"], out[col])]
    return out


def _bin_facts(r: Run, scorings: dict) -> dict:
    """What one bin run trained on: its signal range and the pass rates of its prompts (its own,
    or those of a multisample scoring of the same pool and model)."""
    s = r.scores
    if s.empty or "selected" not in s:
        return {}
    sel = s["selected"].astype(bool)
    facts = {"bin_by": "value" if r.rule == "value_bin" else "count", "n_prompts": int(sel.sum())}
    if r.signal and r.signal in s:
        facts.update(signal_lo=s.loc[sel, r.signal].min(), signal_hi=s.loc[sel, r.signal].max())
    rates = pass_rates_of(r, scorings).reindex(s.loc[sel, "id"].astype(str)).dropna()
    if len(rates):
        facts.update(pass_rate_lo=rates.min(), pass_rate_hi=rates.max(), pass_rate_mean=rates.mean())
    return facts


def bin_ablation_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Figure 1: RL gain (final minus before accuracy) when training on one bin of the pool,
    per bin index, with the signal range the bin covered and its **pass-rate range**
    (``pass_rate_range``, e.g. ``0.25–0.38``: the lowest and highest pass rate of the bin's
    prompts over its seeds; for a bin of another signal, the pass rates of a multi-sample scoring
    of the same pool and model). ``bin_by`` = ``count`` for today's equal-count bins of the
    signal (``ufo_rl/selection.py``, ``select_bin``), so several bins can share one pass-rate
    value on a skewed pool."""
    binned = [r for r in runs if r.rule in BIN_RULES]
    ev = eval_frame(binned)
    if ev.empty:
        return pd.DataFrame()
    ev = ev[ev["phase"] == "final"].copy()
    scorings = pass_rate_scorings(runs)
    facts = {(r.meta.get("experiment"), r.variant, r.meta.get("seed")): _bin_facts(r, scorings) for r in binned}
    cols = ("bin_by", "n_prompts", "signal_lo", "signal_hi", "pass_rate_lo", "pass_rate_hi", "pass_rate_mean")
    for c in cols:
        ev[c] = [facts.get((e, v, s), {}).get(c, np.nan)
                 for e, v, s in zip(ev["experiment"], ev["variant"], ev["seed"])]
    ev["before"] = ev["accuracy"] - ev["gain"]
    keys = ["experiment", "selector", "signal", "bin_by", "n_bins", "bin_index", "benchmark"]
    out = _agg(ev, keys, ["gain", "accuracy", "before"],
               {"n_prompts": ("n_prompts", "mean"), "signal_lo": ("signal_lo", "min"),
                "signal_hi": ("signal_hi", "max"), "pass_rate_lo": ("pass_rate_lo", "min"),
                "pass_rate_hi": ("pass_rate_hi", "max"), "pass_rate_mean": ("pass_rate_mean", "mean")})
    out.insert(out.columns.get_loc("bin_index") + 1, "pass_rate_range",
               [range_label(lo, hi) for lo, hi in zip(out["pass_rate_lo"], out["pass_rate_hi"])])
    return out.sort_values(["experiment", "selector", "benchmark", "bin_index"]).reset_index(drop=True)


# ---- differences between selectors -----------------------------------------------------------

def _final_accuracy(r: Run, bench: str) -> float | None:
    return ((r.eval.get("final") or {}).get(bench) or {}).get("accuracy")


def _correctness_matrix(runs: list[Run], bench: str, ids: list[str]) -> np.ndarray | None:
    """Per-problem final greedy correctness (runs x ``ids``), or None when a run lacks it or its
    records do not give the accuracy in its ``eval.json`` (a stale or partial file)."""
    rows = []
    for r in runs:
        c = r.correctness("final", bench)
        if c.empty or abs(c.mean() - _final_accuracy(r, bench)) > 1e-9 or not set(ids) <= set(c.index):
            return None
        rows.append(c.reindex(ids).to_numpy(float))
    return np.vstack(rows)


def _bootstrap_method(n_a: int, n_b: int) -> str:
    """How the bootstrap row was computed, saying when a side's seed-to-seed spread is missing."""
    if n_a > 1 and n_b > 1:
        return "bootstrap problems x seeds"
    if n_a == 1 and n_b == 1:
        return "bootstrap problems (one seed each: seed spread not in the CI)"
    return "bootstrap problems x seeds (one side has one seed)"


def compare(a: list[Run], b: list[Run], bench: str) -> dict:
    """Final greedy accuracy of the runs ``a`` minus that of ``b`` on ``bench``, with a 95% CI.

    Per-problem records on both sides (``eval_samples/final-<bench>.jsonl``): a seeded bootstrap
    over held-out problems and seeds (``stats.bootstrap_difference``). Else, over seeds only: a
    paired t-interval when both sides hold the same seeds (two or more), Welch's t-interval when
    both hold two or more, and no interval otherwise.

    Besides, over seeds only: ``seed_se`` and ``seed_z`` (the difference in standard errors of the
    difference, :func:`stats.seed_z`), and the same for the area under the learning curve
    (``auc_difference``, ``auc_seed_se``, ``auc_seed_z``; NaN without periodic evaluations). A
    positive control is held to ``seed_z >= 3`` or ``auc_seed_z >= 3``; the bootstrap interval
    adds the spread of the held-out problems, and is the stricter test."""
    seeds_a, seeds_b = [r.meta.get("seed") for r in a], [r.meta.get("seed") for r in b]
    paired = len(set(seeds_a)) == len(a) and sorted(seeds_a, key=str) == sorted(seeds_b, key=str)
    if paired:
        a, b = sorted(a, key=lambda r: str(r.meta.get("seed"))), sorted(b, key=lambda r: str(r.meta.get("seed")))
    acc_a = [_final_accuracy(r, bench) for r in a]
    acc_b = [_final_accuracy(r, bench) for r in b]
    ids = sorted(set.intersection(*(set(r.correctness("final", bench).index) for r in a + b)))
    ca = _correctness_matrix(a, bench, ids) if ids else None
    cb = _correctness_matrix(b, bench, ids) if ca is not None else None
    if ca is not None and cb is not None:
        res, method = bootstrap_difference(ca, cb, paired), _bootstrap_method(len(a), len(b))
    elif paired and len(a) > 1:
        res, method = paired_t(acc_a, acc_b), "paired t over seeds"
    elif len(a) > 1 and len(b) > 1:
        res, method = welch_t(acc_a, acc_b), "Welch t over seeds"
    else:
        res, method = welch_t(acc_a, acc_b), "none (one seed, no per-problem records)"
    res["difference"] = float(np.mean(acc_a) - np.mean(acc_b))
    res["seed_se"], res["seed_z"] = seed_z(acc_a, acc_b)
    auc_a, auc_b = [_auc(r, bench) for r in a], [_auc(r, bench) for r in b]
    res["auc_difference"] = float(np.nanmean(auc_a) - np.nanmean(auc_b)) \
        if not (np.isnan(auc_a).all() or np.isnan(auc_b).all()) else np.nan
    res["auc_seed_se"], res["auc_seed_z"] = seed_z(auc_a, auc_b)
    return {"n_seeds": len(a), "n_seeds_baseline": len(b), "paired_seeds": paired,
            "n_problems": len(ids) if ca is not None and cb is not None else np.nan, "method": method,
            "accuracy": float(np.mean(acc_a)), "baseline_accuracy": float(np.mean(acc_b)), **res,
            "significant": significant(res["ci_lo"], res["ci_hi"])}


def _auc(r: Run, bench: str) -> float:
    pts = accuracy_points(r, bench, curve_only=True)
    return curve_auc(*zip(*pts)) if pts else np.nan


def _baseline(groups: dict, name: str, fraction) -> str | None:
    """The variant a row is compared with for baseline selector ``name`` (``meta.json``
    ``selector``): one of the same fraction of the pool, else the one named exactly ``name``,
    else the first by name; the variant named ``name`` first among equals."""
    cands = sorted((v for v, rs in groups.items() if rs[0].selector == name), key=lambda v: (v != name, v))
    same = [v for v in cands if groups[v][0].fraction == fraction]
    return (same or cands or [None])[0]


def differences_table(runs: list[Run]) -> pd.DataFrame:
    """Each variant's final held-out greedy accuracy minus that of each baseline selector of the
    same experiment and benchmark (the registry's baselines in their order, ``Scorer.baseline``:
    ``random``, then ``full``; paper Table 5 compares every selector with both), with a 95% CI
    (:func:`compare`) and ``significant`` = the CI excludes 0 (blank without a CI). Variants come
    from ``meta.json``."""
    rows, names = [], baselines()
    trained = [r for r in runs if r.eval.get("final")]
    for exp in sorted({r.meta.get("experiment") for r in trained}, key=str):
        in_exp = [r for r in trained if r.meta.get("experiment") == exp]
        for bench in sorted({b for r in in_exp for b in r.eval["final"]}):
            groups: dict[str, list[Run]] = {}
            for r in in_exp:
                if _final_accuracy(r, bench) is not None:
                    groups.setdefault(r.variant, []).append(r)
            for variant in sorted(groups):
                for name in names:
                    base = _baseline(groups, name, groups[variant][0].fraction)
                    if base is None or base == variant:
                        continue
                    rows.append({"experiment": exp, "benchmark": bench, "variant": variant, "baseline": base,
                                 **compare(groups[variant], groups[base], bench)})
    return pd.DataFrame(rows)
