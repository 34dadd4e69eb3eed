"""Tables and figures from finished run folders (``results/README.md`` is the contract).

Reads only the files a job writes (``meta.json``, ``scoring.json``, ``timing.json``,
``eval.json``, ``scores.parquet``, ``train.jsonl``), never logs. A folder whose ``meta.json``
does not say ``status: done`` is unfinished and ignored. Each table is written as CSV (numbers
at full precision) and markdown (rounded, ``mean ± std``); a table or figure whose inputs are
absent is skipped, and a stale copy of it from an earlier report is removed, so what is in
``tables/`` and ``figures/`` always matches the runs.

Runs are grouped by ``variant``: the selector name, plus whatever distinguishes it from that
selector's default (``ufo-lowest``, ``ufo-bin3``, ``multisample-k16``, ``ufo-20%``). Standard
deviations are over seeds with ``ddof=1`` (empty for a single seed).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ufo_rl.errors import UserError

PHASES = ("before", "final", "best")
DEFAULT_RULES = {"ufo": "top_mid", "multisample": "top_mid", "random": "random", "full": "all"}
DEFAULT_SIGNALS = {"ufo": "confidence", "multisample": "pass_rate"}
DEFAULT_FRACTION = 0.1
TABLES = ("scoring_cost", "accuracy", "training_time", "correlation", "confidence_by_pass_rate",
          "pass_rate_distribution", "bin_ablation")
FIGURES = ("confidence_vs_pass_rate", "signal_histograms", "training_curves", "accuracy_bars",
           "bin_ablation")


# ---- loading ---------------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass
class Run:
    """One finished job folder; ``scores`` and ``train_log`` are read on first use."""

    path: Path
    meta: dict
    scoring: dict
    timing: dict
    eval: dict
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def selector(self) -> str:
        return self.meta.get("selector") or self.scoring.get("method", "?")

    @property
    def selector_config(self) -> dict:
        return self.scoring.get("selector_config") or {}

    @property
    def rule(self) -> str:
        return self.meta.get("rule") or self.scoring.get("rule") or DEFAULT_RULES.get(self.selector, "?")

    @property
    def signal(self) -> str | None:
        return self.scoring.get("signal")

    @property
    def variant(self) -> str:
        return variant_label(self.selector, self.rule, self.signal,
                             self.meta.get("fraction", self.scoring.get("fraction")),
                             self.selector_config)

    @property
    def scores(self) -> pd.DataFrame:
        """``scores.parquet`` with the signal columns as floats (empty when absent)."""
        if "scores" not in self._cache:
            path = self.path / "scores.parquet"
            df = pd.read_parquet(path) if path.exists() else pd.DataFrame()
            for col in ("logprob_mean", "confidence", "pass_rate", "n_samples", "score"):
                if col in df:
                    df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
            self._cache["scores"] = df
        return self._cache["scores"]

    @property
    def train_log(self) -> pd.DataFrame:
        if "train" not in self._cache:
            path = self.path / "train.jsonl"
            rows = [json.loads(line) for line in path.read_text().splitlines()
                    if line.strip()] if path.exists() else []
            self._cache["train"] = pd.DataFrame(rows)
        return self._cache["train"]


def variant_label(selector: str, rule: str, signal: str | None, fraction, sel_cfg: dict) -> str:
    """The selector name plus what sets this run apart from the selector's defaults."""
    parts = [selector]
    if rule == "bin":
        parts.append(f"bin{sel_cfg.get('bin_index', '?')}")
    elif rule != DEFAULT_RULES.get(selector, rule):
        parts.append(rule)
    if signal and signal != DEFAULT_SIGNALS.get(selector, signal):
        parts.append(signal)
    if selector == "ufo" and sel_cfg.get("target", "answer") != "answer":
        parts.append(sel_cfg["target"])
    if selector == "multisample" and sel_cfg.get("k", 8) != 8:
        parts.append(f"k{sel_cfg['k']}")
    if rule not in ("all", "bin") and fraction is not None and not math.isclose(fraction, DEFAULT_FRACTION):
        parts.append(f"{fraction:.0%}")
    return "-".join(parts)


def load_runs(runs_dir: Path) -> list[Run]:
    """Every folder under ``runs_dir`` whose ``meta.json`` has ``status: done``, in path order."""
    runs = []
    for meta_path in sorted(Path(runs_dir).rglob("meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("status") != "done":
            continue
        d = meta_path.parent
        runs.append(Run(d, meta, _read_json(d / "scoring.json"), _read_json(d / "timing.json"),
                        _read_json(d / "eval.json")))
    return runs


def selection_hash(scores: pd.DataFrame) -> str | None:
    """First 16 hex digits of sha256 over the sorted selected ids, one per line."""
    if scores.empty or "selected" not in scores:
        return None
    ids = sorted(str(i) for i in scores.loc[scores["selected"].astype(bool), "id"])
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _model_name(path: str | None) -> str | None:
    return Path(path).name if path else None


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run: identity, selection, scoring cost, timing, and eval metrics as
    ``<phase>/<benchmark>/<metric>`` columns."""
    rows = []
    for r in runs:
        sc, tm, train = r.scoring, r.timing, r.meta.get("train") or {}
        row = {
            "run": str(r.path), "experiment": r.meta.get("experiment"), "variant": r.variant,
            "selector": r.selector, "rule": r.rule, "signal": r.signal, "seed": r.meta.get("seed"),
            "fraction": r.meta.get("fraction", sc.get("fraction")),
            "bin_index": r.selector_config.get("bin_index") if r.rule == "bin" else None,
            "n_pool": r.meta.get("n_pool"), "n_selected": r.meta.get("n_selected"),
            "budget": r.meta.get("budget"), "stage": r.meta.get("stage"),
            "dataset": r.meta.get("dataset", sc.get("dataset")),
            "dataset_fingerprint": sc.get("dataset_fingerprint"),
            "model": _model_name(r.meta.get("model")), "model_fingerprint": sc.get("model_fingerprint"),
            "cache_key": sc.get("cache_key"), "scoring_cached": sc.get("cached"),
            "scoring_seconds": sc.get("scoring_seconds"), "load_seconds": sc.get("load_seconds"),
            "n_prompts": sc.get("n_prompts"), "forward_tokens": sc.get("forward_tokens"),
            "generated_tokens": sc.get("generated_tokens"),
            "tokens_per_second": sc.get("tokens_per_second"), "device": sc.get("device"),
            "device_name": sc.get("device_name"),
            "training_seconds": tm.get("training_seconds"), "steps": train.get("steps"),
            "eval_seconds": sum(v for k, v in tm.items() if k.startswith("eval_") and k.endswith("_seconds")
                                and isinstance(v, (int, float))) or None,
            "end_to_end_seconds": tm.get("end_to_end_seconds"),
            "total_seconds": tm.get("total_seconds"),
            "selection_hash": selection_hash(r.scores),
        }
        for phase in PHASES:
            for bench, m in (r.eval.get(phase) or {}).items():
                for metric in ("accuracy", "avg_at_k"):
                    if isinstance(m, dict) and m.get(metric) is not None:
                        row[f"{phase}/{bench}/{metric}"] = m[metric]
        rows.append(row)
    return pd.DataFrame(rows)


def eval_frame(runs: list[Run]) -> pd.DataFrame:
    """Long eval metrics: one row per run x phase x benchmark, with ``gain`` = accuracy minus the
    same benchmark's accuracy before training (NaN for the ``before`` phase)."""
    rows = []
    for r in runs:
        before = r.eval.get("before") or {}
        for phase in PHASES:
            for bench, m in (r.eval.get(phase) or {}).items():
                if not isinstance(m, dict) or m.get("accuracy") is None:
                    continue
                b = (before.get(bench) or {}).get("accuracy")
                rows.append({
                    "experiment": r.meta.get("experiment"), "variant": r.variant, "selector": r.selector,
                    "rule": r.rule, "signal": r.signal, "fraction": r.meta.get("fraction"),
                    "seed": r.meta.get("seed"), "n_selected": r.meta.get("n_selected"),
                    "bin_index": r.selector_config.get("bin_index") if r.rule == "bin" else None,
                    "n_bins": r.selector_config.get("n_bins") if r.rule == "bin" else None,
                    "benchmark": bench, "phase": phase, "accuracy": m["accuracy"],
                    "avg_at_k": m.get("avg_at_k"), "k": m.get("k"), "n": m.get("n"),
                    "gain": m["accuracy"] - b if phase != "before" and b is not None else np.nan,
                })
    return pd.DataFrame(rows)


# ---- tables ------------------------------------------------------------------------------------

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
    multi-sample scoring of the same pool, model and device / this method's seconds."""
    rows, seen = [], set()
    for r in runs:
        sc = r.scoring
        if not sc or not sc.get("n_prompts") or not sc.get("scoring_seconds"):
            continue  # random / full: no model, no cost
        ident = (sc.get("cache_key"), sc.get("scoring_seconds"))
        if ident in seen:
            continue
        seen.add(ident)
        cfg = r.selector_config
        rows.append({
            "method": sc.get("method"), "target": cfg.get("target") if sc.get("method") == "ufo" else None,
            "k": cfg.get("k") if sc.get("method") == "multisample" else None,
            "dataset": sc.get("dataset"), "model": _model_name(sc.get("model")),
            "device": sc.get("device_name") or sc.get("device"), "dtype": sc.get("dtype"),
            "batch_size": sc.get("batch_size"), "n_prompts": sc.get("n_prompts"),
            "scoring_seconds": sc.get("scoring_seconds"), "load_seconds": sc.get("load_seconds"),
            "forward_tokens": sc.get("forward_tokens"), "generated_tokens": sc.get("generated_tokens"),
            "tokens_per_second": sc.get("tokens_per_second"),
            "prompts_per_second": sc.get("prompts_per_second"),
            "_group": (sc.get("dataset_fingerprint"), sc.get("model_fingerprint"),
                       sc.get("device_name") or sc.get("device")),
        })
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    out = []
    for _, row in df.iterrows():
        refs = df[(df["method"] == "multisample") & (df["_group"] == pd.Series([row["_group"]] * len(df),
                                                                                index=df.index))]
        if row["method"] == "multisample":
            refs = refs[refs.index == row.name]
        if refs.empty:
            out.append({**row, "multisample_k": np.nan, "multisample_seconds": np.nan, "speedup": np.nan})
        for _, ref in refs.iterrows():
            out.append({**row, "multisample_k": ref["k"], "multisample_seconds": ref["scoring_seconds"],
                        "speedup": ref["scoring_seconds"] / row["scoring_seconds"]})
    out = pd.DataFrame(out).drop(columns="_group")
    return out.sort_values(["dataset", "model", "device", "scoring_seconds"], kind="stable").reset_index(drop=True)


def accuracy_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Table 5: greedy accuracy, avg@k and gain over the starting model, mean ± std over
    seeds, per experiment x variant x benchmark x phase."""
    ev = eval_frame(runs)
    if ev.empty:
        return ev
    keys = ["experiment", "variant", "selector", "rule", "signal", "fraction", "benchmark", "phase"]
    out = _agg(ev, keys, ["accuracy", "avg_at_k", "gain"],
               {"n_selected": ("n_selected", "mean"), "k": ("k", "first"), "n": ("n", "first")})
    out["phase"] = pd.Categorical(out["phase"], PHASES, ordered=True)
    out = out.sort_values(["experiment", "benchmark", "phase", "variant"], kind="stable")
    out["phase"] = out["phase"].astype(str)
    return out.reset_index(drop=True)


def training_time_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Table 6: training and end-to-end (scoring + training) seconds per variant, mean over
    seeds; ``training_speedup_vs_full`` / ``speedup_vs_full`` = the ``full`` variant's training /
    end-to-end seconds (same experiment and budget) over this variant's."""
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
    full = out[out["selector"] == "full"].drop_duplicates(["experiment", "budget"]).set_index(["experiment", "budget"])
    for col, name in (("training_seconds_mean", "training_speedup_vs_full"), ("end_to_end_seconds", "speedup_vs_full")):
        out[name] = [full[col].get((e, b), np.nan) / s if s else np.nan
                     for e, b, s in zip(out["experiment"], out["budget"], out[col])]
    return out


def _pairs(runs: list[Run]) -> list[tuple[Run, Run]]:
    """(ufo run, multisample run) pairs of the same experiment, pool and seed."""
    ufo = [r for r in runs if r.selector == "ufo" and "confidence" in r.scores]
    ms = [r for r in runs if r.selector == "multisample" and "pass_rate" in r.scores]
    return [(u, m) for u in ufo for m in ms
            if u.meta.get("experiment") == m.meta.get("experiment")
            and u.scoring.get("dataset_fingerprint") == m.scoring.get("dataset_fingerprint")
            and u.meta.get("seed") == m.meta.get("seed")]


def _joined(u: Run, m: Run) -> pd.DataFrame:
    a = u.scores[["id", "confidence", "selected"] + (["difficulty"] if "difficulty" in u.scores else [])]
    b = m.scores[["id", "pass_rate", "n_samples", "selected"]]
    return a.merge(b, on="id", suffixes=("_ufo", "_ms")).dropna(subset=["confidence", "pass_rate"])


def correlation_table(runs: list[Run]) -> pd.DataFrame:
    """Does the one-pass confidence rank prompts like the multi-sample pass rate? Spearman over
    the pool, and the overlap of the two selected sets against the overlap expected by chance
    for independent subsets of the same sizes (``|A| |B| / N``)."""
    from scipy.stats import spearmanr

    rows = []
    for u, m in _pairs(runs):
        j = _joined(u, m)
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
    for u, m in _pairs(runs):
        ident = (u.scoring.get("cache_key"), m.scoring.get("cache_key"))
        if ident in seen:
            continue
        seen.add(ident)
        j = _joined(u, m)
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


def pass_rate_distribution_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Table 1: share of the pool at each multi-sample pass rate j/K, over the whole pool
    (``level = all``) and per difficulty level when known; ``mixed`` = share with 0 < p < 1
    (the prompts DAPO keeps)."""
    rows, seen = [], set()
    for r in runs:
        if r.selector != "multisample" or "pass_rate" not in r.scores:
            continue
        key = r.scoring.get("cache_key")
        if key in seen:
            continue
        seen.add(key)
        df = r.scores.dropna(subset=["pass_rate"])
        if df.empty:
            continue
        k = int(df["n_samples"].max()) if "n_samples" in df and df["n_samples"].notna().any() \
            else int(r.selector_config.get("k", 8))
        j = np.rint(df["pass_rate"].to_numpy() * k).astype(int)
        groups = [("all", np.ones(len(df), dtype=bool))]
        if "difficulty" in df and df["difficulty"].notna().any():
            lv = df["difficulty"]
            groups += [(str(int(v)), (lv == v).fillna(False).to_numpy()) for v in sorted(lv.dropna().unique())]
        for level, mask in groups:
            row = {"dataset": r.meta.get("dataset"), "model": _model_name(r.meta.get("model")), "k": k,
                   "level": level, "n": int(mask.sum()),
                   "mean_pass_rate": float(df["pass_rate"].to_numpy()[mask].mean()),
                   "mixed": float(((j > 0) & (j < k))[mask].mean())}
            for i in range(k + 1):
                row[f"{i}/{k}"] = float((j[mask] == i).mean())
            rows.append(row)
    return pd.DataFrame(rows)


def bin_ablation_table(runs: list[Run]) -> pd.DataFrame:
    """Paper Figure 1: RL gain (final minus before accuracy) when training on one signal bin,
    per bin index, with the signal range the bin covered."""
    binned = [r for r in runs if r.rule == "bin"]
    ev = eval_frame(binned)
    if ev.empty:
        return pd.DataFrame()
    ev = ev[ev["phase"] == "final"].copy()
    ranges = {}
    for r in binned:
        s = r.scores
        if r.signal and r.signal in s and "selected" in s:
            v = s.loc[s["selected"].astype(bool), r.signal]
            ranges[(r.variant, r.meta.get("experiment"))] = (v.min(), v.max())
    ev["signal_lo"] = [ranges.get((v, e), (np.nan,))[0] for v, e in zip(ev["variant"], ev["experiment"])]
    ev["signal_hi"] = [ranges.get((v, e), (np.nan, np.nan))[1] for v, e in zip(ev["variant"], ev["experiment"])]
    ev["before"] = ev["accuracy"] - ev["gain"]
    keys = ["experiment", "selector", "signal", "n_bins", "bin_index", "benchmark"]
    out = _agg(ev, keys, ["gain", "accuracy", "before"],
               {"signal_lo": ("signal_lo", "min"), "signal_hi": ("signal_hi", "max")})
    return out.sort_values(["experiment", "selector", "benchmark", "bin_index"]).reset_index(drop=True)


# ---- markdown --------------------------------------------------------------------------------

def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if float(v).is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v).replace("|", "\\|")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table; ``<x>_mean`` / ``<x>_std`` pairs shown as one ``x`` column
    (``mean ± std``). Written here so the report needs no ``tabulate``."""
    df = df.copy()
    for c in [c for c in df.columns if c.endswith("_mean") and c[:-5] + "_std" in df.columns]:
        base = c[:-5]
        df[base] = [(_fmt(m) + (f" ± {_fmt(s)}" if _fmt(s) else "")) if _fmt(m) else ""
                    for m, s in zip(df[c], df[base + "_std"])]
        cols = list(df.columns)
        cols.insert(cols.index(c), cols.pop(cols.index(base)))
        df = df[cols].drop(columns=[c, base + "_std"])
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
               for c in df.columns]
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def build_report(runs_dir: Path, out_dir: Path) -> list[Path]:
    """Write ``out_dir/tables/*.csv|md`` and ``out_dir/figures/*.png`` from the finished runs
    under ``runs_dir``; returns the written paths. Raises :class:`UserError` when there are none."""
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

    rf = runs_frame(runs)
    rf.to_csv(tdir / "runs.csv", index=False)
    written.append(tdir / "runs.csv")
    acc = accuracy_table(runs)
    tables = {
        "scoring_cost": scoring_cost_table(runs), "accuracy": acc,
        "training_time": training_time_table(runs), "correlation": correlation_table(runs),
        "confidence_by_pass_rate": confidence_by_pass_rate_table(runs),
        "pass_rate_distribution": pass_rate_distribution_table(runs),
        "bin_ablation": bin_ablation_table(runs),
    }
    for name, df in tables.items():
        paths = [tdir / f"{name}.csv", tdir / f"{name}.md"]
        if df.empty:
            for p in paths:
                p.unlink(missing_ok=True)
            continue
        df.to_csv(paths[0], index=False)
        paths[1].write_text(to_markdown(df))
        written += paths

    from ufo_rl.figures import (
        fig_accuracy_bars,
        fig_bin_ablation,
        fig_confidence_vs_pass_rate,
        fig_signal_histograms,
        fig_training_curves,
    )

    figures = {
        "confidence_vs_pass_rate": lambda p: fig_confidence_vs_pass_rate(runs, p),
        "signal_histograms": lambda p: fig_signal_histograms(runs, p),
        "training_curves": lambda p: fig_training_curves(runs, p),
        "accuracy_bars": lambda p: fig_accuracy_bars(acc, eval_frame(runs), p),
        "bin_ablation": lambda p: fig_bin_ablation(tables["bin_ablation"], p),
    }
    for name, make in figures.items():
        path = fdir / f"{name}.png"
        if make(path) is None:
            path.unlink(missing_ok=True)
        else:
            written.append(path)
    return written
