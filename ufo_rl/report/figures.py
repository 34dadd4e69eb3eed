"""Figures of the report (matplotlib, Agg backend), drawn from loaded runs and report tables
(``results/README.md``, "Figures")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ufo_rl.report.runs import Run, accuracy_points, joined, pairs, training_seconds_at


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    return path


def _first_seed(runs: list[Run]) -> list[Run]:
    """One run per (experiment, variant, pool): the lowest seed (scores are seed-free)."""
    best: dict = {}
    for r in runs:
        key = (r.meta.get("experiment"), r.variant, r.scoring.get("dataset_fingerprint"))
        if key not in best or (r.meta.get("seed") or 0) < (best[key].meta.get("seed") or 0):
            best[key] = r
    return list(best.values())


def fig_confidence_vs_pass_rate(runs: list[Run], path: Path) -> Path | None:
    both = [(u, m) for u, m in pairs(runs) if u.rule == "top_mid" and m.rule == "top_mid"] or pairs(runs)
    seen, chosen = set(), []
    for u, m in sorted(both, key=lambda p: p[0].meta.get("seed") or 0):
        key = (u.meta.get("experiment"), u.scoring.get("dataset_fingerprint"), u.variant, m.variant)
        if key not in seen:
            seen.add(key)
            chosen.append((u, m))
    chosen = chosen[:4]
    if not chosen:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(chosen), figsize=(6 * len(chosen), 4.8), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (u, m) in zip(axes[0], chosen):
        j = joined(u, m)
        k = max(1.0, float(j["n_samples"].max())) if j["n_samples"].notna().any() else 8.0
        y = j["pass_rate"] + rng.uniform(-0.3, 0.3, len(j)) / k  # jitter: pass rates are j/K
        a, b = j["selected_ufo"].astype(bool), j["selected_ms"].astype(bool)
        for mask, color, lab in [(~a & ~b, "0.75", "not selected"),
                                 (a & ~b, "tab:blue", f"{u.variant} only"),
                                 (~a & b, "tab:orange", f"{m.variant} only"),
                                 (a & b, "tab:green", "both")]:
            ax.scatter(j["confidence"][mask], y[mask], s=8, color=color, label=f"{lab} ({int(mask.sum())})",
                       alpha=0.7 if color != "0.75" else 0.4, linewidths=0)
        if a.any():
            ax.axvspan(j["confidence"][a].min(), j["confidence"][a].max(), color="tab:blue", alpha=0.08)
        if b.any():
            ax.axhspan(j["pass_rate"][b].min() - 0.5 / k, j["pass_rate"][b].max() + 0.5 / k,
                       color="tab:orange", alpha=0.08)
        rho = j[["confidence", "pass_rate"]].corr(method="spearman").iloc[0, 1]
        ax.set_title(f"{u.meta.get('dataset')}: Spearman {rho:.2f} (n={len(j)}, seed {u.meta.get('seed')})")
        ax.set_xlabel("UFO confidence s = exp(mean token log-prob)")
        ax.set_ylabel(f"multi-sample pass rate (K={int(k)}, jittered)")
        ax.legend(fontsize=8, loc="upper left", markerscale=2)
    return _save(fig, path)


def fig_signal_histograms(runs: list[Run], path: Path) -> Path | None:
    panels: dict = {}
    for r in sorted(_first_seed(runs), key=lambda r: r.rule != "top_mid"):  # prefer Top-Mid's shading
        s = r.scores
        if r.signal and r.signal in s and s[r.signal].notna().any():
            panels.setdefault((r.meta.get("dataset"), r.signal), r)
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, ((dataset, signal), r) in zip(axes[0], panels.items()):
        v = r.scores[signal].to_numpy(dtype=float)
        sel = r.scores["selected"].astype(bool).to_numpy()
        u = np.unique(v[~np.isnan(v)])
        discrete = len(u) <= 20
        if discrete:  # a discrete signal (pass rate j/K): one bar per value
            mid = (u[1:] + u[:-1]) / 2
            step = np.diff(u).min() if len(u) > 1 else 1.0
            bins = np.concatenate([[u[0] - step / 2], mid, [u[-1] + step / 2]])
        else:
            bins = np.histogram_bin_edges(u, bins=40)
        rw = 0.8 if discrete else None
        ax.hist(v, bins=bins, rwidth=rw, color="0.6", label=f"pool (n={len(v)})")
        ax.hist(v[sel], bins=bins, rwidth=rw, color="tab:blue",
                label=f"selected by {r.variant} (n={int(sel.sum())})")
        if sel.any():
            ax.axvspan(np.nanmin(v[sel]), np.nanmax(v[sel]), color="tab:blue", alpha=0.12)
        if r.rule == "top_mid":
            ax.axvline(np.nanmean(v), color="k", ls="--", lw=1, label="pool mean (Top-Mid centre)")
        ax.set_title(f"{dataset}: {signal}")
        ax.set_xlabel(signal)
        ax.set_ylabel("prompts")
        ax.legend(fontsize=8)
    return _save(fig, path)


def fig_training_curves(runs: list[Run], path: Path) -> Path | None:
    trained = [r for r in runs if not r.train_log.empty or r.eval.get("final")]
    if not trained:
        return None
    exps = sorted({r.meta.get("experiment") for r in trained})
    plt = _plt()
    fig, axes = plt.subplots(len(exps), 2, figsize=(12, 4 * len(exps)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (ax_r, ax_a), exp in zip(axes, exps):
        group = [r for r in trained if r.meta.get("experiment") == exp]
        variants = sorted({r.variant for r in group})
        for i, var in enumerate(variants):
            color = colors[i % len(colors)]
            for n, r in enumerate(x for x in group if x.variant == var):
                log = r.train_log
                lab = var if n == 0 else None
                if not log.empty and "reward_mean" in log:
                    y = pd.to_numeric(log["reward_mean"], errors="coerce")
                    w = max(1, len(y) // 20)
                    ax_r.plot(log["step"], y.rolling(w, min_periods=1).mean(), color=color, lw=1.2,
                              alpha=0.85, label=lab)
                pts = _accuracy_curve(r)
                if pts:
                    xs, ys = zip(*pts)
                    ax_a.plot(xs, ys, "-o", color=color, ms=3, lw=1.2, alpha=0.85, label=lab)
        bench = next((b for r in group for b in (r.eval.get("final") or {})), "")
        ax_r.set_title(f"{exp}: training reward (rolling mean, 5% of steps)")
        ax_r.set_xlabel("optimizer step")
        ax_r.set_ylabel("reward mean")
        ax_a.set_title(f"{exp}: held-out greedy accuracy ({bench}); one line per seed")
        ax_a.set_xlabel("optimizer step")
        ax_a.set_ylabel("accuracy")
        for ax in (ax_r, ax_a):
            if ax.lines:
                ax.legend(fontsize=8)
    return _save(fig, path)


def _accuracy_curve(r: Run) -> list[tuple[int, float]]:
    """(step, accuracy) on the first benchmark: before at step 0, the periodic curve, final."""
    final = r.eval.get("final") or {}
    return accuracy_points(r, next(iter(final))) if final else []


def fig_accuracy_bars(acc: pd.DataFrame, ev: pd.DataFrame, path: Path) -> Path | None:
    if acc.empty or not (acc["phase"] == "final").any():
        return None
    final = acc[acc["phase"] == "final"]
    panels = list(final.groupby(["experiment", "benchmark"], sort=True).groups)[:6]
    widths = [max(4.0, 1.1 * final[(final["experiment"] == e) & (final["benchmark"] == b)]["variant"].nunique()
                  + 1.5) for e, b in panels]
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(widths), 4.5), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, (exp, bench) in zip(axes[0], panels):
        d = final[(final["experiment"] == exp) & (final["benchmark"] == bench)].sort_values("variant")
        x = np.arange(len(d))
        ax.bar(x, d["accuracy_mean"], yerr=d["accuracy_std"].fillna(0), capsize=4, color="tab:blue", alpha=0.75,
               label="final (mean ± std over seeds)")
        pts = ev[(ev["experiment"] == exp) & (ev["benchmark"] == bench) & (ev["phase"] == "final")]
        for i, var in enumerate(d["variant"]):
            ys = pts.loc[pts["variant"] == var, "accuracy"]
            ax.scatter(np.full(len(ys), i), ys, color="k", s=12, zorder=3, label="seeds" if i == 0 else None)
        before = acc[(acc["experiment"] == exp) & (acc["benchmark"] == bench) & (acc["phase"] == "before")]
        if not before.empty:
            ax.axhline(before["accuracy_mean"].mean(), color="tab:red", ls="--", label="before training")
        ax.set_xticks(x, [f"{v}\n(n={n})" for v, n in zip(d["variant"], d["n_seeds"])], fontsize=8)
        ax.set_ylabel("greedy accuracy")
        ax.set_title(f"{exp}: {bench}")
        ax.legend(fontsize=8)
    return _save(fig, path)


def fig_bin_ablation(table: pd.DataFrame, path: Path) -> Path | None:
    """Paper Figure 1: gain per bin, each tick labelled by the bin's pass-rate range."""
    if table.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.8 * table["bin_index"].nunique() + 3), 4.5))
    for (exp, sel, sig, bench), d in table.groupby(["experiment", "selector", "signal", "benchmark"], dropna=False):
        ax.errorbar(d["bin_index"], d["gain_mean"], yerr=d["gain_std"].fillna(0), marker="o", capsize=3,
                    label=f"{exp}: {sel} / {sig} on {bench}")
    ax.axhline(0, color="0.5", lw=1)
    ticks = sorted(table["bin_index"].dropna().astype(int).unique())
    labels = []
    for i in ticks:
        ranges = {x for x in table.loc[table["bin_index"] == i, "pass_rate_range"].dropna() if x} \
            if "pass_rate_range" in table else set()
        labels.append(f"{i}\n{ranges.pop()}" if len(ranges) == 1 else str(i))
    ax.set_xticks(ticks, labels, fontsize=8)
    by = ", ".join(sorted(str(b) for b in table["bin_by"].dropna().unique())) if "bin_by" in table else "count"
    ax.set_xlabel(f"bin: index and pass-rate range of its prompts (bins by {by})")
    ax.set_ylabel("accuracy gain (final - before)")
    ax.set_title("RL gain when training on one bin of the pool")
    ax.legend(fontsize=8)
    return _save(fig, path)


def curve_frame(runs: list[Run]) -> pd.DataFrame:
    """Long learning curves: one row per run x benchmark x evaluated step (runs with periodic
    evaluations only), with the training seconds at that step (``runs.training_seconds_at``)."""
    rows = []
    for r in runs:
        for bench in r.eval.get("final") or {}:
            pts = accuracy_points(r, bench, curve_only=True)
            if not pts:
                continue
            steps, acc = zip(*pts)
            for s, a, t in zip(steps, acc, training_seconds_at(r, steps)):
                rows.append({"experiment": r.meta.get("experiment"), "benchmark": bench, "variant": r.variant,
                             "seed": r.meta.get("seed"), "step": s, "accuracy": a, "seconds": t})
    return pd.DataFrame(rows)


def fig_learning_curves(runs: list[Run], path: Path) -> Path | None:
    """Held-out greedy accuracy against optimizer step and against training seconds, per
    experiment x benchmark (4 at most): the mean over seeds, a band of ± 1 sd where there are
    several seeds. None when no run made periodic evaluations (``trainer.eval_every = 0``)."""
    df = curve_frame(runs)
    if df.empty:
        return None
    panels = sorted(df.groupby(["experiment", "benchmark"]).groups, key=str)[:4]
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, 4 * len(panels)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (ax_s, ax_t), (exp, bench) in zip(axes, panels):
        d = df[(df["experiment"] == exp) & (df["benchmark"] == bench)]
        for i, (var, g) in enumerate(d.groupby("variant", sort=True)):
            m = g.groupby("step").agg(acc=("accuracy", "mean"), sd=("accuracy", "std"),
                                      secs=("seconds", "mean"), n=("accuracy", "size")).reset_index()
            lab, color = f"{var} ({g['seed'].nunique()} seeds)", colors[i % len(colors)]
            band = m["n"] > 1
            for ax, x in ((ax_s, m["step"]), (ax_t, m["secs"])):
                ok = x.notna().to_numpy()
                ax.plot(x[ok], m["acc"][ok], "-o", ms=3, color=color, label=lab)
                if (band & ok).any():
                    ax.fill_between(x[band & ok], (m["acc"] - m["sd"])[band & ok], (m["acc"] + m["sd"])[band & ok],
                                    color=color, alpha=0.15, lw=0)
        ax_s.set_xlabel("optimizer step")
        ax_t.set_xlabel("training seconds (periodic evaluations excluded)")
        for ax in (ax_s, ax_t):
            ax.set_ylabel(f"{bench} greedy accuracy")
            ax.set_title(f"{exp}: {bench}; mean over seeds, band ± 1 sd")
            if ax.lines:
                ax.legend(fontsize=8)
    return _save(fig, path)
