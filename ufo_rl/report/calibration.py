"""Tables from the scores alone (no training): how UFO's one-pass confidence relates to the
multi-sample pass rate (arXiv 2505.12457, Sec. 4 and Tables 1-2), and the pass-rate bins of
Figure 1. The two sides are found by the signals the runs' scores hold (``runs.pairs``), whatever
selectors wrote them; the ``ufo`` / ``multisample`` columns name the variants on each side."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ufo_rl.report.runs import Run, has_values, joined, model_name, pairs, pass_rate_scorings
from ufo_rl.report.stats import min_bin_count, pass_rate_value_bins

BAND_TARGET = 0.5  # the oracle band: the prompts whose pass rate is closest to 0.5


def correlation_table(runs: list[Run]) -> pd.DataFrame:
    """Does the one-pass confidence rank prompts like the multi-sample pass rate? Spearman over
    the pool, and the overlap of the two selected sets against the overlap expected by chance
    for independent subsets of the same sizes (``|A| |B| / N``)."""
    from scipy.stats import spearmanr

    rows = []
    for u, m in pairs(runs):
        j = joined(u, m)
        if len(j) < 3:
            continue
        rho, p = spearmanr(j["confidence"], j["pass_rate"])
        a, b = j["selected_ufo"].astype(bool), j["selected_ms"].astype(bool)
        n, na, nb, both = len(j), int(a.sum()), int(b.sum()), int((a & b).sum())
        expected = na * nb / n
        rows.append({
            "experiment": u.meta.get("experiment"), "dataset": u.meta.get("dataset"),
            "ufo": u.variant, "multisample": m.variant, "seed": u.meta.get("seed"), "n_pool": n,
            "spearman": rho, "spearman_p": p, "n_ufo": na, "n_multisample": nb, "overlap": both,
            "jaccard": both / (na + nb - both) if na + nb - both else np.nan,
            "expected_overlap": expected,
            "expected_jaccard": expected / (na + nb - expected) if na + nb - expected else np.nan,
            "overlap_vs_chance": both / expected if expected else np.nan,
        })
    return pd.DataFrame(rows)


def confidence_by_pass_rate_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Table 2: the distribution of UFO confidence at each multi-sample pass rate (one
    block per distinct pair of scorings)."""
    out, seen = [], set()
    for u, m in pairs(runs):
        ident = (u.scoring.get("cache_key"), m.scoring.get("cache_key"))
        if ident in seen:
            continue
        seen.add(ident)
        j = joined(u, m)
        if j.empty:
            continue
        g = j.groupby("pass_rate")["confidence"].agg(["size", "mean", "std", "min", "median", "max"])
        g = g.rename(columns={"size": "n"}).reset_index()
        g.insert(0, "multisample", m.variant)
        g.insert(0, "ufo", u.variant)
        g.insert(0, "dataset", u.meta.get("dataset"))
        g.insert(0, "experiment", u.meta.get("experiment"))
        g["share"] = g["n"] / len(j)
        out.append(g)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _k(r: Run, df: pd.DataFrame) -> int:
    if "n_samples" in df and df["n_samples"].notna().any():
        return int(df["n_samples"].max())
    return int(r.selector_config.get("k", 8))


def pass_rate_distribution_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Table 1: share of the pool at each multi-sample pass rate j/K, over the whole pool
    (``level = all``) and per difficulty level when known; ``mixed`` = share with 0 < p < 1
    (the prompts DAPO keeps)."""
    rows = []
    for r in [r for rs in pass_rate_scorings(runs, by_fingerprint=False).values() for r in rs]:
        df = r.scores.dropna(subset=["pass_rate"])
        if df.empty:
            continue
        k = _k(r, df)
        j = np.rint(df["pass_rate"].to_numpy() * k).astype(int)
        groups = [("all", np.ones(len(df), dtype=bool))]
        if "difficulty" in df and df["difficulty"].notna().any():
            lv = df["difficulty"]
            groups += [(str(int(v)), (lv == v).fillna(False).to_numpy()) for v in sorted(lv.dropna().unique())]
        for level, mask in groups:
            row = {"dataset": r.meta.get("dataset"), "model": model_name(r.meta.get("model")),
                   "multisample": r.variant, "k": k,
                   "level": level, "n": int(mask.sum()),
                   "mean_pass_rate": float(df["pass_rate"].to_numpy()[mask].mean()),
                   "mixed": float(((j > 0) & (j < k))[mask].mean())}
            for i in range(k + 1):
                row[f"{i}/{k}"] = float((j[mask] == i).mean())
            rows.append(row)
    return pd.DataFrame(rows)


def pass_rate_bins_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Figure 1's bins of each multisample pool by pass-rate value (``stats.
    pass_rate_value_bins``): neighbouring values merged until a bin holds ``min_count`` =
    max(20, 5% of the pool) prompts; ``label`` is the bin's pass-rate range."""
    out = []
    for r in [r for rs in pass_rate_scorings(runs, by_fingerprint=False).values() for r in rs]:
        p = r.scores["pass_rate"].dropna().to_numpy(float)
        if not len(p):
            continue
        bins = pass_rate_value_bins(p, min_count := min_bin_count(len(p)))
        bins.insert(0, "min_count", min_count)
        bins.insert(0, "k", _k(r, r.scores))
        bins.insert(0, "multisample", r.variant)
        bins.insert(0, "model", model_name(r.meta.get("model")))
        bins.insert(0, "dataset", r.meta.get("dataset"))
        bins["share"] = bins["n"] / len(p)
        out.append(bins)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _subset_facts(rates: np.ndarray, keep: np.ndarray) -> dict:
    """Share of a subset whose pass rate is 0 or 1 (all K rewards agree: zero GRPO advantage)."""
    r = rates[keep]
    return {"mean_pass_rate": float(r.mean()), "pass0_share": float((r == 0).mean()),
            "pass1_share": float((r == 1).mean()), "zero_adv_share": float(((r == 0) | (r == 1)).mean())}


def calibration_row(u: Run, m: Run) -> dict:
    """One UFO scoring against the pass rates of one multisample scoring of the same pool and
    model: rank agreement over the pool, and how UFO's subset compares with the oracle subsets of
    the same size chosen from the pass rates (Top-Mid, and the band closest to 0.5)."""
    from scipy.stats import kendalltau, spearmanr

    from ufo_rl.selection import select

    j = joined(u, m)
    rates, keep = j["pass_rate"].to_numpy(float), j["selected_ufo"].astype(bool).to_numpy()
    n, na = len(j), int(keep.sum())
    rho, rho_p = spearmanr(j["confidence"], rates)
    tau, tau_p = kendalltau(j["confidence"], rates)
    seed = int(u.meta.get("seed") or 0)
    row = {"dataset": u.meta.get("dataset"), "model": model_name(u.meta.get("model")), "ufo": u.variant,
           "target": u.selector_config.get("target", "answer"), "rule": u.rule, "seed": u.meta.get("seed"),
           "multisample": m.variant, "k": _k(m, m.scores), "n_pool": n, "n_selected": na,
           "spearman": rho, "spearman_p": rho_p, "kendall_tau": tau, "kendall_p": tau_p}
    row.update({f"ufo_{k}": v for k, v in _subset_facts(rates, keep).items()})
    row["pool_zero_adv_share"] = _subset_facts(rates, np.ones(n, dtype=bool))["zero_adv_share"]
    if na:
        for name, rule, params in (("top_mid", "top_mid", {}), ("band", "band", {"band_target": BAND_TARGET})):
            oracle, _ = select(rule, rates, na / n, seed=seed, **params)
            row[f"overlap_{name}"] = int((keep & oracle).sum())
            row[f"overlap_{name}_share"] = row[f"overlap_{name}"] / na
            row[f"oracle_{name}_zero_adv_share"] = _subset_facts(rates, oracle)["zero_adv_share"]
        row["overlap_chance_share"] = na / n
    return row


def calibration_table(runs: list[Run]) -> pd.DataFrame:
    """Calibration of UFO against multi-sample pass rates, from the scores alone: one row per UFO
    scoring x selection (rule, fraction; the lowest seed) x multisample scoring of the same pool
    and model (paired by ``dataset_fingerprint`` and ``model_fingerprint`` in ``scoring.json``,
    not by names). Columns: ``target`` (answer | solution | greedy), ``spearman`` and
    ``kendall_tau`` of confidence with pass rate over the pool; ``overlap_top_mid[_share]`` and
    ``overlap_band[_share]``: UFO's subset in common with the pass-rate Top-Mid subset and with
    the subset closest to pass rate 0.5 (same size; share of UFO's subset; ``overlap_chance_share``
    is what a random subset would share); ``ufo_zero_adv_share``: share of UFO's subset with pass
    rate 0 or 1, whose GRPO groups get no advantage (``pool_`` / ``oracle_*_`` for comparison)."""
    scorings = pass_rate_scorings(runs)
    rows, seen = [], set()
    for u in sorted(runs, key=lambda r: str(r.meta.get("seed"))):
        if not has_values(u, "confidence") or "selected" not in u.scores:
            continue
        for m in scorings.get(u.pool_key, []):
            ident = (u.scoring.get("cache_key"), u.rule, u.fraction, u.selector_config.get("bin_index"),
                     m.scoring.get("cache_key"))
            if m is not u and ident not in seen and len(joined(u, m)) >= 3:
                seen.add(ident)
                rows.append(calibration_row(u, m))
    return pd.DataFrame(rows)
