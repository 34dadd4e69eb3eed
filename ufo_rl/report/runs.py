"""Finished run folders as Python objects and long frames (``results/README.md``, "A run folder").

Only the files a job writes are read (``meta.json``, ``scoring.json``, ``timing.json``,
``eval.json``, ``scores.parquet``, ``train.jsonl``, ``eval_samples/``), never logs. Nothing here
knows a selector by name: a run's label and rule come from its ``meta.json`` (or, for a folder
written before they were recorded, from the registry, ``ufo_rl/scorers.py``), and the runs that
calibration compares are found by the signals their scores hold (:func:`has_values`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ufo_rl.report.stats import curve_auc
from ufo_rl.scorers import find_scorer, variant_label
from ufo_rl.selection import BIN_RULES

PHASES = ("before", "final", "best")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _read_jsonl(path: Path) -> list[dict]:
    """The records of ``path``, or of ``path.gz`` where only that exists (committed references keep
    their per-sample files gzipped: bench/pack_reference.py); [] when neither does."""
    gz = path.with_name(path.name + ".gz")
    if not path.exists() and gz.exists():
        text = gzip.decompress(gz.read_bytes()).decode()
    elif path.exists():
        text = path.read_text()
    else:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class Run:
    """One finished job folder; ``scores``, ``train_log`` and per-problem results are read on first use."""

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
        if rule := self.meta.get("rule") or self.scoring.get("rule"):
            return rule
        scorer = find_scorer(self.selector)  # a folder that recorded no rule: the selector's own
        return scorer.rule if scorer is not None else "?"

    @property
    def signal(self) -> str | None:
        return self.scoring.get("signal")

    @property
    def fraction(self):
        return self.meta.get("fraction", self.scoring.get("fraction"))

    @property
    def variant(self) -> str:
        """``meta.json`` ``variant``, or the registry's label for a folder written without it;
        a sampling scorer that ran on another backend than Hugging Face's gets its name added
        (``multisample-vllm``): its samples, and so its pass rates, are its own."""
        label = self.meta.get("variant") or variant_label(self.selector, self.rule, self.signal, self.fraction,
                                                          self.selector_config)
        backend = self.scoring.get("generation_backend")
        return label if backend in (None, "hf") else f"{label}-{backend}"

    @property
    def pool_key(self) -> tuple:
        """(dataset fingerprint, model fingerprint) of ``scoring.json``: runs with equal keys
        scored the same pool with the same weights, whatever the folders or names say."""
        return self.scoring.get("dataset_fingerprint"), self.scoring.get("model_fingerprint")

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
            self._cache["train"] = pd.DataFrame(_read_jsonl(self.path / "train.jsonl"))
        return self._cache["train"]

    def correctness(self, phase: str, bench: str) -> pd.Series:
        """Greedy correctness (0/1) per held-out problem id from
        ``eval_samples/<phase>-<bench>.jsonl`` (``mode == greedy``); empty when not written."""
        key = ("correct", phase, bench)
        if key not in self._cache:
            recs = [r for r in _read_jsonl(self.path / "eval_samples" / f"{phase}-{bench}.jsonl")
                    if r.get("mode", "greedy") == "greedy" and r.get("correct") is not None]
            s = pd.Series({str(r["id"]): float(bool(r["correct"])) for r in recs}, dtype=float)
            self._cache[key] = s
        return self._cache[key]


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


def model_name(path: str | None) -> str | None:
    return Path(path).name if path else None


# ---- learning curves ---------------------------------------------------------------------------

def curve_accuracy(c: dict, bench: str) -> float | None:
    """The accuracy of ``bench`` in one ``eval.json`` ``curve`` entry: the flat form the pipeline
    writes (``"<bench>/accuracy"``), or the long / nested forms of older folders."""
    if "benchmark" in c:
        return c.get("accuracy") if c["benchmark"] == bench else None
    if c.get(f"{bench}/accuracy") is not None:
        return c[f"{bench}/accuracy"]
    if isinstance(c.get(bench), dict):
        return c[bench].get("accuracy")
    return None


def accuracy_points(r: Run, bench: str, curve_only: bool = False) -> list[tuple[int, float]]:
    """(optimizer step, held-out greedy accuracy of ``bench``): ``before`` at step 0, the periodic
    evaluations of ``eval.json`` ``curve``, ``final`` at ``final_step``. With ``curve_only``, empty
    when the run made no periodic evaluation (``trainer.eval_every = 0``)."""
    final = (r.eval.get("final") or {}).get(bench) or {}
    if final.get("accuracy") is None:
        return []
    pts = {int(c["step"]): float(a) for c in r.eval.get("curve") or []
           if "step" in c and (a := curve_accuracy(c, bench)) is not None}
    if curve_only and not pts:
        return []
    before = ((r.eval.get("before") or {}).get(bench) or {}).get("accuracy")
    if before is not None:
        pts[0] = float(before)
    step = r.eval.get("final_step") or (r.meta.get("train") or {}).get("steps") or max(pts, default=0) + 1
    pts[int(step)] = float(final["accuracy"])
    return sorted(pts.items())


def training_seconds_at(r: Run, steps) -> np.ndarray:
    """Training wall-clock seconds at each of ``steps``, from ``train.jsonl`` ``wall_seconds``
    minus the periodic evaluations' own seconds (``<bench>/seconds`` in the ``curve``; the
    evaluation at step s runs before step s is logged, ``ufo_rl/train.py``), linear between logged
    steps and 0 at step 0. NaN everywhere when ``train.jsonl`` has no ``wall_seconds``."""
    steps = np.asarray(steps, dtype=float)
    log = r.train_log
    if log.empty or "wall_seconds" not in log or "step" not in log:
        return np.full(len(steps), np.nan)
    log = log[["step", "wall_seconds"]].apply(pd.to_numeric, errors="coerce").dropna().sort_values("step")
    if log.empty:
        return np.full(len(steps), np.nan)
    eval_steps, eval_secs = [], []
    for c in r.eval.get("curve") or []:
        eval_steps.append(c.get("step", 0))
        eval_secs.append(_eval_seconds(c))
    order = np.argsort(eval_steps)
    e_steps, e_cum = np.asarray(eval_steps, float)[order], np.cumsum(np.asarray(eval_secs, float)[order])
    logged, wall = log["step"].to_numpy(float), log["wall_seconds"].to_numpy(float)
    last = r.eval.get("final_step") or (r.meta.get("train") or {}).get("steps")
    if last and last > logged[-1] and r.timing.get("training_seconds"):  # the last step went unlogged
        logged, wall = np.append(logged, float(last)), np.append(wall, float(r.timing["training_seconds"]))
    done = np.searchsorted(e_steps, logged, side="right")  # evaluations made by each logged step
    train = wall - np.concatenate([[0.0], e_cum])[done]
    return np.interp(steps, np.concatenate([[0.0], logged]), np.concatenate([[0.0], train]),
                     right=np.nan)


# ---- frames ------------------------------------------------------------------------------------

def _minus(value, seconds: float):
    return value - seconds if isinstance(value, (int, float)) else value


def _eval_seconds(point: dict) -> float:
    """Seconds of one periodic evaluation: its ``<bench>/seconds`` in the ``curve``, summed."""
    return float(sum(v for k, v in point.items() if k.endswith("/seconds") and isinstance(v, (int, float))))


def periodic_eval_seconds(r: Run) -> float:
    """Seconds the periodic held-out evaluations took inside training (the ``curve`` in
    ``eval.json``; 0 without ``trainer.eval_every``)."""
    return sum(_eval_seconds(c) for c in r.eval.get("curve") or [])


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run: identity, selection, scoring cost, timing, and eval metrics as
    ``<phase>/<benchmark>/<metric>`` columns. ``training_seconds`` and ``end_to_end_seconds``
    leave out the periodic evaluations (``periodic_eval_seconds``), so runs with and without
    ``trainer.eval_every`` compare; ``total_seconds`` is the job's whole wall clock."""
    rows = []
    for r in runs:
        sc, tm, train = r.scoring, r.timing, r.meta.get("train") or {}
        periodic = periodic_eval_seconds(r)
        row = {
            "run": str(r.path), "experiment": r.meta.get("experiment"), "variant": r.variant,
            "selector": r.selector, "rule": r.rule, "signal": r.signal, "seed": r.meta.get("seed"),
            "fraction": r.fraction,
            "bin_index": r.selector_config.get("bin_index") if r.rule in BIN_RULES else None,
            "n_pool": r.meta.get("n_pool"), "n_selected": r.meta.get("n_selected"),
            "budget": r.meta.get("budget"), "stage": r.meta.get("stage"),
            "dataset": r.meta.get("dataset", sc.get("dataset")),
            "dataset_fingerprint": sc.get("dataset_fingerprint"),
            "model": model_name(r.meta.get("model")), "model_fingerprint": sc.get("model_fingerprint"),
            "cache_key": sc.get("cache_key"), "scoring_cached": sc.get("cached"),
            "scoring_seconds": sc.get("scoring_seconds"), "load_seconds": sc.get("load_seconds"),
            "n_prompts": sc.get("n_prompts"), "forward_tokens": sc.get("forward_tokens"),
            "generated_tokens": sc.get("generated_tokens"),
            "tokens_per_second": sc.get("tokens_per_second"), "device": sc.get("device"),
            "device_name": sc.get("device_name"),
            "training_seconds": _minus(tm.get("training_seconds"), periodic), "steps": train.get("steps"),
            "periodic_eval_seconds": periodic,
            "eval_seconds": sum(v for k, v in tm.items() if k.startswith("eval_") and k.endswith("_seconds")
                                and isinstance(v, (int, float))) or None,
            "end_to_end_seconds": _minus(tm.get("end_to_end_seconds"), periodic),
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
    same benchmark's accuracy before training (NaN for the ``before`` phase) and, on ``final``
    rows, ``auc`` = the area under the held-out accuracy curve per step (:func:`curve_auc`; NaN
    when the run made no periodic evaluation)."""
    rows = []
    for r in runs:
        before = r.eval.get("before") or {}
        for phase in PHASES:
            for bench, m in (r.eval.get(phase) or {}).items():
                if not isinstance(m, dict) or m.get("accuracy") is None:
                    continue
                b = (before.get(bench) or {}).get("accuracy")
                pts = accuracy_points(r, bench, curve_only=True) if phase == "final" else []
                rows.append({
                    "experiment": r.meta.get("experiment"), "variant": r.variant, "selector": r.selector,
                    "rule": r.rule, "signal": r.signal, "fraction": r.meta.get("fraction"),
                    "seed": r.meta.get("seed"), "n_selected": r.meta.get("n_selected"),
                    "bin_index": r.selector_config.get("bin_index") if r.rule in BIN_RULES else None,
                    "n_bins": r.selector_config.get("n_bins") if r.rule in BIN_RULES else None,
                    "benchmark": bench, "phase": phase, "accuracy": m["accuracy"],
                    "avg_at_k": m.get("avg_at_k"), "k": m.get("k"), "n": m.get("n"),
                    "gain": m["accuracy"] - b if phase != "before" and b is not None else np.nan,
                    "auc": curve_auc(*zip(*pts)) if pts else np.nan,
                })
    return pd.DataFrame(rows)


# ---- pools scored by two methods -----------------------------------------------------------------
# The calibration tables compare a run whose scores hold a one-pass ``confidence`` (UFO's signal;
# the "ufo" side of their columns) with a run whose scores hold multi-sample ``pass_rate`` values
# (the "multisample" side), whichever selectors wrote them.

def has_values(r: Run, column: str) -> bool:
    """Whether ``r``'s ``scores.parquet`` holds any value in ``column`` (a scorer leaves the
    columns of other signals empty)."""
    return column in r.scores and bool(r.scores[column].notna().any())


def pairs(runs: list[Run]) -> list[tuple[Run, Run]]:
    """(confidence run, pass-rate run) pairs of the same experiment, pool and seed."""
    ufo = [r for r in runs if has_values(r, "confidence")]
    ms = [r for r in runs if has_values(r, "pass_rate")]
    return [(u, m) for u in ufo for m in ms
            if u is not m and u.meta.get("experiment") == m.meta.get("experiment")
            and u.scoring.get("dataset_fingerprint") == m.scoring.get("dataset_fingerprint")
            and u.meta.get("seed") == m.meta.get("seed")]


def joined(u: Run, m: Run) -> pd.DataFrame:
    """``u``'s confidence and ``m``'s pass rate per pool prompt (inner join on ``id``)."""
    a = u.scores[["id", "confidence", "selected"] + (["difficulty"] if "difficulty" in u.scores else [])]
    b = m.scores[["id", "pass_rate", "n_samples", "selected"]]
    return a.merge(b, on="id", suffixes=("_ufo", "_ms")).dropna(subset=["confidence", "pass_rate"])


def pass_rate_scorings(runs: list[Run], by_fingerprint: bool = True) -> dict[tuple, list[Run]]:
    """Runs with pass rates, one per scoring (``cache_key``), by :attr:`Run.pool_key` with the
    largest K first: the pass rates any other run of the same pool and model can be compared with.
    With ``by_fingerprint=False``, every scoring in run order under one key ``None``."""
    out: dict = {}
    seen = set()
    for r in runs:
        if not has_values(r, "pass_rate"):
            continue
        if by_fingerprint and None in r.pool_key:
            continue
        if (key := r.scoring.get("cache_key") or str(r.path)) in seen:
            continue
        seen.add(key)
        out.setdefault(r.pool_key if by_fingerprint else None, []).append(r)
    if by_fingerprint:
        for v in out.values():
            v.sort(key=lambda r: -int(r.selector_config.get("k") or 0))
    return out


def pass_rates_of(r: Run, scorings: dict[tuple, list[Run]]) -> pd.Series:
    """Pass rate per pool id for ``r``'s pool: its own when its scores hold pass rates, else those
    of the largest-K pass-rate scoring of the same pool and model; empty when there is none."""
    src = r if has_values(r, "pass_rate") else next(iter(scorings.get(r.pool_key, [])), None)
    if src is None:
        return pd.Series(dtype=float)
    s = src.scores.dropna(subset=["pass_rate"])
    return pd.Series(s["pass_rate"].to_numpy(float), index=s["id"].astype(str))
