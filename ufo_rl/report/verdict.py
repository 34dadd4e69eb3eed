"""The verdict a sweep ends with: what its tables say, in lines a newcomer can read.

For each experiment and benchmark of a report, ``verdict.md`` (and the same lines on the console)
gives:

- each selector's final held-out accuracy against ``random`` and ``full``: the difference with its
  95% CI from the differences table (a bootstrap over problems, and over seeds when a side has
  several; ufo_rl/report/tables.py), labelled **better** (the CI lies above 0), **worse** (below
  0) or **inconclusive** (it spans 0). With one seed the CI covers the problems only, and the
  verdict says so, with the reference's seed spread where one is committed;
- the scoring speedup of each single-pass method over multi-sample scoring (the paper's Table 4,
  arXiv 2505.12457 Sec. 4);
- per selector, whether this run reproduces the committed reference made with the same
  experiment, model and data (``results/reference/*/tables``): its final accuracy is within
  ``1.96 * sqrt(s_ref^2 / n_ref + s_ref^2 / n_run + p(1 - p) / (n_problems * n_run))`` of the
  reference's mean, where ``s_ref`` is the reference's seed standard deviation and the last term
  the run's own problem-level (binomial) noise. Both numbers are printed.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ufo_rl.io import write_text
from ufo_rl.provenance import REPO

REFERENCES = REPO / "results" / "reference"
BASELINES = ("random", "full")


def label(ci_lo: float, ci_hi: float) -> str:
    """better / worse / inconclusive from a 95% CI of a difference.

    >>> label(0.01, 0.03), label(-0.03, -0.001), label(-0.01, 0.02)
    ('better', 'worse', 'inconclusive')
    """
    if ci_lo > 0:
        return "better"
    if ci_hi < 0:
        return "worse"
    return "inconclusive"


def reproduction_tolerance(ref_std: float, n_ref: int, n_run: int, p: float, n_problems: int) -> float:
    """Half-width (95%) of the difference a run may show from a reference mean by chance alone.

    >>> round(reproduction_tolerance(0.005, 3, 1, 0.5, 500), 4)
    0.0453
    """
    s = 0.0 if ref_std is None or math.isnan(ref_std) else ref_std
    var = s * s / max(n_ref, 1) + s * s / max(n_run, 1) + p * (1 - p) / max(n_problems * n_run, 1)
    return 1.96 * math.sqrt(var)


def _finals(accuracy: pd.DataFrame) -> pd.DataFrame:
    return accuracy[accuracy["phase"] == "final"] if not accuracy.empty else accuracy


def _signature(runs: pd.DataFrame) -> dict:
    """What must match for a reference to be this run's: experiment -> (models, data fingerprints)."""
    out = {}
    for exp, g in runs.groupby("experiment"):
        out[exp] = (frozenset(g["model"].dropna()), frozenset(g["dataset_fingerprint"].dropna()))
    return out


def find_references(runs: pd.DataFrame, out_dir: Path, root: Path = REFERENCES) -> list[tuple[Path, pd.DataFrame]]:
    """Committed references with the same experiment, model and data as ``runs`` (not ``out_dir``
    itself), with their accuracy tables, the most seeds first."""
    if not root.is_dir():
        return []
    want = _signature(runs)
    found = []
    for tables in sorted(root.glob("*/tables")):
        ref = tables.parent
        if ref.resolve() == Path(out_dir).resolve() or not (tables / "accuracy.csv").exists():
            continue
        theirs = _signature(pd.read_csv(tables / "runs.csv")) if (tables / "runs.csv").exists() else {}
        if any(exp in theirs and theirs[exp] == sig for exp, sig in want.items()):
            acc = pd.read_csv(tables / "accuracy.csv")
            found.append((ref, _finals(acc)))
    return sorted(found, key=lambda x: -int(x[1]["n_seeds"].max()) if not x[1].empty else 0)


def _fmt(x: float, signed: bool = False) -> str:
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def verdict_lines(tables: dict[str, pd.DataFrame], runs: pd.DataFrame, out_dir: Path,
                  references_root: Path = REFERENCES) -> list[str]:
    """The verdict as Markdown lines (empty when the report has no trained runs)."""
    acc = _finals(tables.get("accuracy", pd.DataFrame()))
    if acc.empty:
        return []
    diffs = tables.get("differences", pd.DataFrame())
    before = tables["accuracy"][tables["accuracy"]["phase"] == "before"]
    refs = find_references(runs, out_dir, references_root)
    lines = ["# Verdict", ""]
    for (exp, bench), g in acc.groupby(["experiment", "benchmark"], sort=False):
        n_seeds = int(g["n_seeds"].max())
        n_problems = int(g["n"].max())
        b = before[(before["experiment"] == exp) & (before["benchmark"] == bench)]
        start = f"; {_fmt(b['accuracy_mean'].iloc[0])} before training" if not b.empty else ""
        lines += [f"## {exp}: held-out `{bench}`, {n_problems} problems, {n_seeds} seed(s) per selector{start}", "",
                  "| selector | final accuracy | vs random (95% CI) | vs full (95% CI) |", "| --- | ---: | --- | --- |"]
        d = diffs[(diffs["experiment"] == exp) & (diffs["benchmark"] == bench)] if not diffs.empty else diffs
        for _, row in g.iterrows():
            v = row["variant"]
            cells = []
            for base in BASELINES:
                m = d[(d["variant"] == v) & (d["baseline"] == base)] if not d.empty else d
                if v == base or m.empty:
                    cells.append("")
                    continue
                r = m.iloc[0]
                cells.append(f"{_fmt(r['difference'], True)} [{_fmt(r['ci_lo'], True)}, {_fmt(r['ci_hi'], True)}] "
                             f"**{label(r['ci_lo'], r['ci_hi'])}**")
            sd = f" ± {row['accuracy_std']:.3f}" if n_seeds > 1 and not pd.isna(row["accuracy_std"]) else ""
            lines.append(f"| {v} | {_fmt(row['accuracy_mean'])}{sd} | {cells[0]} | {cells[1]} |")
        lines.append("")
        if n_seeds == 1:
            spread = _seed_spread(exp, bench, refs)
            known = f" (±{spread:.3f} between seeds in the committed reference)" if spread else ""
            lines += ["One seed per selector: these CIs cover the held-out problems only, not the seed-to-seed "
                      f"variation of training{known}, so a label here can change with the seed; a CI that spans 0 "
                      "says this run cannot rank those two. `make run SEEDS=3` runs three seeds.", ""]
        lines += _reproduction(exp, bench, g, refs, n_problems)
    lines += _speedups(tables.get("scoring_cost", pd.DataFrame()))
    return lines


def _seed_spread(exp: str, bench: str, refs) -> float | None:
    """The largest seed standard deviation of a final accuracy in the matching references."""
    stds = [acc[(acc["experiment"] == exp) & (acc["benchmark"] == bench)]["accuracy_std"].max() for _, acc in refs]
    stds = [s for s in stds if not pd.isna(s)]
    return max(stds) if stds else None


def _reproduction(exp: str, bench: str, g: pd.DataFrame, refs, n_problems: int) -> list[str]:
    out = []
    for _, row in g.iterrows():
        v = row["variant"]
        for ref, acc in refs:
            m = acc[(acc["experiment"] == exp) & (acc["benchmark"] == bench) & (acc["variant"] == v)]
            if m.empty:
                continue
            r = m.iloc[0]
            n_run = int(row["n_seeds"])
            tol = reproduction_tolerance(r["accuracy_std"], int(r["n_seeds"]), n_run, row["accuracy_mean"], n_problems)
            diff = row["accuracy_mean"] - r["accuracy_mean"]
            ok = "reproduces" if abs(diff) <= tol else "does NOT reproduce"
            where = ref.relative_to(REPO) if ref.is_relative_to(REPO) else ref
            sd = f" ± {r['accuracy_std']:.3f}" if not pd.isna(r["accuracy_std"]) else ""
            out.append(f"- {v}: {_fmt(row['accuracy_mean'])} here, {_fmt(r['accuracy_mean'])}{sd} over "
                       f"{int(r['n_seeds'])} seeds in `{where}`: {ok} (difference {_fmt(diff, True)}, "
                       f"chance alone allows ±{tol:.3f})")
            break
    if out:
        out = ["Against the committed reference:", "", *out, ""]
    return out


def _speedups(cost: pd.DataFrame) -> list[str]:
    if cost.empty or "speedup" not in cost:
        return []
    rows = cost[(cost["method"] != "multisample") & cost["speedup"].notna() & (cost["speedup"] != 1.0)]
    if rows.empty:
        return []
    out = ["Scoring cost (one pass against K samples per prompt, same prompts and machine):", ""]
    for _, r in rows.iterrows():
        target = f" ({r['target']} target)" if isinstance(r.get("target"), str) else ""
        k = int(r["multisample_k"]) if not pd.isna(r.get("multisample_k")) else "?"
        out.append(f"- {r['method']}{target}: {r['scoring_seconds']:.1f} s for {int(r['n_prompts'])} prompts against "
                   f"{r['multisample_seconds']:.1f} s for K={k} multi-sample ({r['multisample_backend']}): "
                   f"**{r['speedup']:.1f}x** faster")
    return [*out, ""]


def write_verdict(out_dir: Path, tables: dict[str, pd.DataFrame], runs: pd.DataFrame) -> Path | None:
    """``out_dir/verdict.md`` from the report's tables; removed (None) when there is nothing to judge."""
    path = Path(out_dir) / "verdict.md"
    lines = verdict_lines(tables, runs, out_dir)
    if not lines:
        path.unlink(missing_ok=True)
        return None
    write_text(path, "\n".join(lines).rstrip() + "\n")  # atomic: a reader never sees half a verdict
    return path
