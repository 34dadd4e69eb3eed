"""CI regression check: compare a small sweep's results with committed reference figures.

    python bench/check.py [--runs DIR] [--reference FILE]             # check; exit 1 on any FAIL
    python bench/check.py [--runs DIR] [--reference FILE] --write-reference   # record a reference

The sweep must give the same verdicts on any x86-64 CPU (Intel or AMD, with or without AVX-512),
whose floating-point kernels differ in the last bits. The starting model is the same everywhere
(the tiny model ships as weights, ``ufo_rl/tiny_model.py``), so what still moves between machines
is rounding inside the runs; the checks compare what rounding cannot move by more than their
tolerance, and each still fails when the code is broken. Read from finished run folders, never
from logs:

- ``speedup``: multi-sample scoring seconds / method scoring seconds (Table 4) per dataset and
  method must not fall below ``floor`` = ``speedup_floor_fraction`` x the recorded speedup;
- ``accuracy``: final greedy accuracy, mean over seeds, per experiment x variant x benchmark,
  must lie within ``band`` of the recorded mean, where
  ``band = max(accuracy_min_band, accuracy_sigmas * std * sqrt(1 / accuracy_ci_seeds + 1 / n_seeds))``
  from the seed spread ``std`` over the ``n_seeds`` of the reference: the spread of the difference
  between the mean of the ``accuracy_ci_seeds`` seeds CI runs and the reference's mean;
- ``gain``: the RL gain (final minus before greedy accuracy) per experiment x variant x benchmark,
  and pooled over every run of the experiment (variant ``all``), must not fall below
  ``floor = value - sigmas * std * sqrt(1 / n_ci + 1 / n)`` with ``n_ci`` the runs CI makes
  (``accuracy_ci_seeds``, times the number of variants for the pooled gain) and ``sigmas`` =
  ``gain_sigmas`` per variant, ``pooled_gain_sigmas`` pooled. A reference whose pooled floor is
  not above zero is refused: it could not fail a GRPO that learns nothing. The pooled check is
  the one that guards learning; at 2 standard errors a sound run fails it about once in 40 (less,
  since its spread includes the differences between variants);
- ``margin``: the positive control, the oracle's (``multisample-band``: pass rate nearest 0.5)
  final accuracy minus random 10%'s, paired by seed, per experiment x benchmark, must not fall
  below ``floor = value - margin_sigmas * std * sqrt(1 / accuracy_ci_seeds + 1 / n_seeds)`` with
  ``std`` the spread of the per-seed differences. A reference whose floor is not above zero is
  refused: it could not fail a sweep where selection stopped mattering;
- ``rule``: every run's selected set equals its rule applied again to the run's own signal
  (``scores.parquet``): exact on any machine, since both sides see the same numbers;
- ``selection``: the selected ids share at least ``selection_min_overlap`` of the reference's
  (an exact hash would fail on a near-tie that a last-bit difference flips);
- ``signal``: the per-prompt signal (UFO confidence, pass rate) over the same ids, mean absolute
  difference from the reference at most ``signal_max_mad``.

A check in the reference with no measured counterpart fails (``missing``); measured values with
no reference are listed but do not fail. Exit codes: 0 all pass, 1 a check failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

from ufo_rl.errors import UserError

SCHEMA = 4  # 3: gain checks; 4: the positive-control margin
DEFAULT_REFERENCE = Path("results/reference/ci_reference.json")
DEFAULTS = {"speedup_floor_fraction": 0.4, "accuracy_sigmas": 3.0, "accuracy_min_band": 0.02, "accuracy_ci_seeds": 1,
            "selection_min_overlap": 0.9, "signal_max_mad": 0.01, "gain_sigmas": 3.0, "pooled_gain_sigmas": 2.0,
            "margin_sigmas": 3.0}
POOLED = "all"  # the variant name of the gain pooled over every run of an experiment
POSITIVE, NEGATIVE = "multisample-band", "random"  # the positive control and what it must beat


def _key(kind: str, e: dict) -> str:
    if kind == "speedup":
        return f"{e['dataset']}: {e['method']} vs multisample k={e['multisample_k']}"
    if kind == "accuracy":
        return f"{e['experiment']}/{e['variant']} {e['benchmark']} {e['phase']} {e['metric']}"
    if kind == "gain":
        return f"{e['experiment']}/{e['variant']} {e['benchmark']} final - before"
    if kind == "margin":
        return f"{e['experiment']}/{POSITIVE} - {NEGATIVE} {e['benchmark']} final"
    return f"{e['experiment']}/{e['variant']} seed {e['seed']}"  # rule, selection, signal


def _num(v):
    """A JSON-safe number (NaN and numpy types become None / plain Python)."""
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def measure(runs_dir: Path) -> dict[str, list[dict]]:
    """The values the checks compare, from the finished runs under ``runs_dir``."""
    from ufo_rl.report import accuracy_table, load_runs, scoring_cost_table

    if not runs_dir.is_dir():
        raise UserError(f"runs folder {runs_dir} does not exist; run the CI sweep first")
    runs = load_runs(runs_dir)
    if not runs:
        raise UserError(f"no finished run under {runs_dir} (no meta.json with status done)")

    speed: dict[str, dict] = {}
    cost = scoring_cost_table(runs)
    if not cost.empty:
        for _, r in cost[(cost["method"] != "multisample") & cost["speedup"].notna()].iterrows():
            method = r["method"] + (f"[{r['target']}]" if isinstance(r["target"], str) else "")
            e = {"dataset": r["dataset"], "method": method, "multisample_k": int(r["multisample_k"]),
                 "value": float(r["speedup"]), "method_seconds": float(r["scoring_seconds"]),
                 "multisample_seconds": float(r["multisample_seconds"])}
            k = _key("speedup", e)
            if k not in speed or e["value"] < speed[k]["value"]:  # duplicates: keep the worst
                speed[k] = e

    acc = []
    table = accuracy_table(runs)
    if not table.empty:
        for _, r in table[table["phase"] == "final"].iterrows():
            acc.append({"experiment": r["experiment"], "variant": r["variant"], "benchmark": r["benchmark"],
                        "phase": "final", "metric": "accuracy", "value": float(r["accuracy_mean"]),
                        "std": _num(r["accuracy_std"]), "n_seeds": int(r["n_seeds"])})
    gain = _gains(runs, table)
    margin = _margins(runs)

    sel, rule, sig = [], [], []
    for r in runs:
        df = r.scores
        if df.empty or "selected" not in df:
            continue
        e = {"experiment": r.meta.get("experiment"), "variant": r.variant, "seed": int(r.meta.get("seed", 0))}
        keep = df["selected"].astype(bool).to_numpy()
        ids = [str(i) for i in df["id"]]
        sel.append({**e, "n_selected": int(keep.sum()), "ids": sorted(i for i, k in zip(ids, keep) if k)})
        rule.append({**e, "value": _rule_holds(r, df, keep)})
        if r.signal and r.signal in df and df[r.signal].notna().any():
            sig.append({**e, "signal": r.signal,
                        "values": {i: _num(v) for i, v in zip(ids, df[r.signal].to_numpy(dtype=float))}})
    return {"speedup": list(speed.values()), "accuracy": acc, "gain": gain, "margin": margin, "rule": rule,
            "selection": sel, "signal": sig}


def _gains(runs, table) -> list[dict]:
    """Final minus before accuracy per variant (from the accuracy table) and pooled over all runs."""
    from ufo_rl.report import eval_frame

    out = []
    if table.empty:
        return out
    for _, r in table[(table["phase"] == "final") & table["gain_mean"].notna()].iterrows():
        out.append({"experiment": r["experiment"], "variant": r["variant"], "benchmark": r["benchmark"],
                    "value": float(r["gain_mean"]), "std": _num(r["gain_std"]), "n_seeds": int(r["n_seeds"]),
                    "n_variants": 1})
    ev = eval_frame(runs)
    ev = ev[(ev["phase"] == "final") & ev["gain"].notna()]
    for (exp, bench), g in ev.groupby(["experiment", "benchmark"]):
        if g["variant"].nunique() > 1:
            out.append({"experiment": exp, "variant": POOLED, "benchmark": bench, "value": float(g["gain"].mean()),
                        "std": _num(g["gain"].std(ddof=1)), "n_seeds": int(len(g)),
                        "n_variants": int(g["variant"].nunique())})
    return out

def _margins(runs) -> list[dict]:
    """The positive control's final accuracy minus random's, paired by seed, per experiment x benchmark."""
    from ufo_rl.report import eval_frame

    ev = eval_frame(runs)
    if ev.empty:
        return []
    ev = ev[(ev["phase"] == "final") & ev["variant"].isin([POSITIVE, NEGATIVE])]
    out = []
    for (exp, bench), g in ev.groupby(["experiment", "benchmark"]):
        wide = g.pivot_table(index="seed", columns="variant", values="accuracy").dropna()
        if POSITIVE not in wide or NEGATIVE not in wide or wide.empty:
            continue
        diff = wide[POSITIVE] - wide[NEGATIVE]
        out.append({"experiment": exp, "benchmark": bench, "value": float(diff.mean()),
                    "std": _num(diff.std(ddof=1)) if len(diff) > 1 else None, "n_seeds": int(len(diff))})
    return out


def _rule_holds(run, df, keep) -> bool:
    """Whether the run's selected set is what its rule picks from the run's own signal."""
    import numpy as np

    from ufo_rl.selection import RULE_INPUTS, RULE_PARAMS, select

    cfg = run.selector_config
    if run.signal:
        signal = df[run.signal].to_numpy(dtype=float)
    else:  # random and full read no signal
        signal = np.zeros(len(df))
    # a rule that reads more columns than its signal (calibrated: the calibration share's pass rates)
    inputs = {c: df[c].to_numpy(dtype=float) if c in df else None for c in RULE_INPUTS.get(run.rule, ())}
    expected, _ = select(run.rule, signal, float(cfg.get("fraction", run.meta.get("fraction", 1.0))),
                         seed=int(run.meta.get("seed", 0)), **{k: cfg[k] for k in RULE_PARAMS if k in cfg}, **inputs)
    return bool(np.array_equal(expected, keep))


def make_reference(measured: dict, rules: dict, runs_dir: Path) -> dict:
    """The reference file: measured values plus the tolerance each check allows."""
    from ufo_rl.provenance import git_revision

    speed = [{**e, "floor": rules["speedup_floor_fraction"] * e["value"]} for e in measured["speedup"]]
    acc = []
    for e in measured["accuracy"]:
        scale = math.sqrt(1 / rules["accuracy_ci_seeds"] + 1 / e["n_seeds"])
        spread = rules["accuracy_sigmas"] * e["std"] * scale if e["std"] else 0.0
        acc.append({**e, "band": max(rules["accuracy_min_band"], spread)})
    gain = []
    for e in measured.get("gain", []):
        scale = math.sqrt(1 / (rules["accuracy_ci_seeds"] * e["n_variants"]) + 1 / e["n_seeds"])
        sigmas = rules["pooled_gain_sigmas"] if e["variant"] == POOLED else rules["gain_sigmas"]
        gain.append({**e, "floor": e["value"] - sigmas * (e["std"] or 0.0) * scale})
    weak = [_key("gain", e) for e in gain if e["variant"] == POOLED and e["floor"] <= 0]
    if weak:
        raise UserError(f"the pooled gain floor of {', '.join(weak)} is not above 0, so CI could not tell a GRPO "
                        "that learns nothing; record a sweep that learns more (more steps or seeds)")
    margin = []
    for e in measured.get("margin", []):
        scale = math.sqrt(1 / rules["accuracy_ci_seeds"] + 1 / e["n_seeds"])
        margin.append({**e, "floor": e["value"] - rules["margin_sigmas"] * (e["std"] or 0.0) * scale})
    weak = [_key("margin", e) for e in margin if e["floor"] <= 0 or e["std"] is None]
    if weak:
        raise UserError(f"the margin floor of {', '.join(weak)} is not above 0 (or rests on one seed), so CI "
                        "could not tell a sweep where selection stopped mattering; record more seeds or steps")
    return {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_revision(),
        "runs_dir": str(runs_dir),
        "rules": {**rules, "accuracy_band": "max(accuracy_min_band, accuracy_sigmas * std * "
                                   "sqrt(1 / accuracy_ci_seeds + 1 / n_seeds))",
                  "speedup_floor": "speedup_floor_fraction * value",
                  "gain_floor": "value - (pooled_gain_sigmas if variant == 'all' else gain_sigmas) * std * "
                                "sqrt(1 / (accuracy_ci_seeds * n_variants) + 1 / n_seeds)",
                  "margin_floor": "value - margin_sigmas * std * sqrt(1 / accuracy_ci_seeds + 1 / n_seeds)"},
        "speedup": speed, "accuracy": acc, "gain": gain, "margin": margin, "selection": measured["selection"],
        "signal": measured["signal"],
    }


def compare(reference: dict, measured: dict) -> list[dict]:
    """One row per check: check, key, reference, measured, tolerance, result (PASS/FAIL/NEW)."""
    rules = {**DEFAULTS, **reference.get("rules", {})}
    rows = [_row("rule", _key("rule", m), "rule(signal)", "equal" if m["value"] else "differs", "equal",
                 m["value"]) for m in measured.get("rule", [])]
    for kind in ("speedup", "accuracy", "gain", "margin", "selection", "signal"):
        got = {_key(kind, e): e for e in measured.get(kind, [])}
        for ref in reference.get(kind, []):
            k = _key(kind, ref)
            m = got.pop(k, None)
            if kind == "speedup":
                val = m and m["value"]
                ok = m is not None and val >= ref["floor"]
                rows.append(_row(kind, k, ref["value"], val, f">= {ref['floor']:.3g}", ok))
            elif kind == "accuracy":
                val = m and m["value"]
                ok = m is not None and abs(val - ref["value"]) <= ref["band"] + 1e-12
                rows.append(_row(kind, k, ref["value"], val, f"± {ref['band']:.3g}", ok))
            elif kind in ("gain", "margin"):
                val = m and m["value"]
                ok = m is not None and val >= ref["floor"] - 1e-12
                rows.append(_row(kind, k, ref["value"], val, f">= {ref['floor']:.3g}", ok))
            elif kind == "selection":
                need = rules["selection_min_overlap"]
                shared = len(set(ref["ids"]) & set(m["ids"])) if m else 0
                ok = m is not None and m["n_selected"] == ref["n_selected"] and shared >= need * ref["n_selected"]
                rows.append(_row(kind, k, f"{ref['n_selected']} ids", m and f"{shared}/{m['n_selected']} shared",
                                 f">= {need:.0%} shared", ok))
            else:
                rows.append(_signal_row(k, ref, m, rules["signal_max_mad"]))
        for k, m in got.items():
            shown = m.get("value", len(m.get("ids", m.get("values", []))))
            rows.append({"check": kind, "key": k, "reference": "", "measured": _show(shown),
                         "tolerance": "", "result": "NEW"})
    return rows


def _signal_row(key: str, ref: dict, m: dict | None, max_mad: float) -> dict:
    """Mean absolute difference of the per-prompt signal over the same prompts."""
    tol = f"mean |diff| <= {max_mad:.3g}"
    if m is None or m["signal"] != ref["signal"] or set(m["values"]) != set(ref["values"]):
        why = "missing" if m is None else f"other {'signal' if m['signal'] != ref['signal'] else 'prompts'}"
        return _row("signal", key, ref["signal"], why, tol, False)
    diffs = [abs((m["values"][i] if m["values"][i] is not None else math.inf) - v)
             for i, v in ref["values"].items() if v is not None]
    mad = sum(diffs) / len(diffs) if diffs else 0.0
    return _row("signal", key, ref["signal"], mad, tol, mad <= max_mad)


def _show(v) -> str:
    if v is None:
        return "missing"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _row(kind, key, ref, val, tol, ok) -> dict:
    return {"check": kind, "key": key, "reference": _show(ref), "measured": _show(val), "tolerance": tol,
            "result": "PASS" if ok else "FAIL"}


def format_rows(rows: list[dict]) -> str:
    cols = ["check", "key", "reference", "measured", "tolerance", "result"]
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    def line(r: dict) -> str:
        return "  ".join(str(r[c]).ljust(width[c]) for c in cols).rstrip()

    return "\n".join([line({c: c for c in cols}), "  ".join("-" * width[c] for c in cols),
                      *(line(r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="results/runs", type=Path, help="finished runs (default: results/runs)")
    ap.add_argument("--reference", default=DEFAULT_REFERENCE, type=Path,
                    help=f"reference file (default: {DEFAULT_REFERENCE})")
    ap.add_argument("--write-reference", action="store_true", help="record the runs as the new reference")
    ap.add_argument("--speedup-runs", type=Path, default=None,
                    help="with --write-reference: take the speedup from these runs (scored on a quiet "
                         "machine) instead of --runs")
    ap.add_argument("--selection-seeds", type=int, nargs="+", default=None,
                    help="with --write-reference: record selections and signals of these seeds only (the "
                         "seeds CI runs; default: all); accuracy bands always use every seed")
    for name, val in DEFAULTS.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=float, default=val,
                        help=f"with --write-reference (default: {val})")
    args = ap.parse_args(argv)
    try:
        measured = measure(args.runs)
        if args.write_reference:
            if args.selection_seeds is not None:
                for kind in ("selection", "signal"):
                    measured[kind] = [e for e in measured[kind] if e["seed"] in args.selection_seeds]
            if args.speedup_runs is not None:
                measured["speedup"] = measure(args.speedup_runs)["speedup"]
            ref = make_reference(measured, {n: getattr(args, n) for n in DEFAULTS}, args.runs)
            if args.speedup_runs is not None:
                ref["speedup_runs_dir"] = str(args.speedup_runs)
            args.reference.parent.mkdir(parents=True, exist_ok=True)
            args.reference.write_text(json.dumps(ref, indent=2) + "\n")
            counts = {k: len(ref[k]) for k in ("speedup", "accuracy", "gain", "margin", "selection", "signal")}
            print(f"wrote {args.reference}: " + ", ".join(f"{n} {k}" for k, n in counts.items())
                  + " checks, and a rule check for every run")
            return 0
        if not args.reference.exists():
            raise UserError(f"reference file {args.reference} does not exist; write one with --write-reference")
        reference = json.loads(args.reference.read_text())
        if reference.get("schema") != SCHEMA:
            raise UserError(f"{args.reference} has schema {reference.get('schema')}, expected {SCHEMA}; "
                            "rewrite it with --write-reference")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = compare(reference, measured)
    if not rows:
        print("no checks: the reference and the runs have nothing in common")
        return 1
    print(format_rows(rows))
    failed = sum(r["result"] == "FAIL" for r in rows)
    passed = sum(r["result"] == "PASS" for r in rows)
    print(f"\n{passed} passed, {failed} failed" + (f", {sum(r['result'] == 'NEW' for r in rows)} new (not checked)"
                                                   if any(r["result"] == "NEW" for r in rows) else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
