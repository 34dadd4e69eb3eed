"""Generate the README's result tables from the committed reference results.

    python bench/readme_tables.py            # rewrite the generated blocks of README.md
    python bench/readme_tables.py --check    # exit 1, with a diff, when README.md differs

A generated block is everything between ``<!-- generated: NAME -->`` and ``<!-- /generated -->``
in the README. The numbers come only from committed files under ``results/reference/embedded/``:
``tables/scoring_cost.csv``, ``tables/accuracy.csv`` and ``tables/training_time.csv`` (written by
``bench/report.py``), and the run folders' ``scoring.json`` (the sampling temperature) and
``meta.json`` (the zero-advantage share of each GRPO run). Numbers are rounded half up from their
shortest decimal form to a fixed number of decimals per column, so the output is the same on
every machine.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import math
import re
import sys
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REFERENCE = ROOT / "results" / "reference" / "embedded"
EXPERIMENT = "default"
BENCHMARK = "embedded"
ORDER = ("full", "ufo", "multisample", "random")  # row order of the accuracy table; others follow

BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S)


# ---- formatting ------------------------------------------------------------------------------

def fixed(x, decimals: int, sign: bool = False) -> str:
    """``x`` with exactly ``decimals`` decimals, rounded half up from its shortest repr
    (0.2065 -> 0.207, where binary rounding could give 0.206)."""
    q = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    if q == 0:
        q = abs(q)  # no "-0.000"
    text = f"{q:,f}" if decimals == 0 else f"{q:f}"
    return f"+{text}" if sign and q > 0 else text


def count(x) -> str:
    """An integer with thousands separators."""
    return fixed(x, 0)


def number(row: dict, key: str) -> float | None:
    value = row.get(key, "")
    return float(value) if value not in ("", None) else None


def spread(row: dict, key: str, decimals: int, sign: bool = False) -> str:
    """``mean ± std`` over seeds when the row has more than one seed, else the value alone."""
    mean, std = number(row, f"{key}_mean"), number(row, f"{key}_std")
    if mean is None:
        return ""
    text = fixed(mean, decimals, sign)
    if int(float(row.get("n_seeds") or 1)) > 1 and std is not None:
        text += f" ± {fixed(std, decimals)}"
    return text


def markdown(header: list[str], align: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing; the README tables are built from it")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- tables ----------------------------------------------------------------------------------

def _runs(reference: Path):
    from ufo_rl.report import load_runs

    return [r for r in load_runs(reference / "runs") if r.meta.get("experiment") == EXPERIMENT]


def scoring_cost_table(reference: Path = REFERENCE) -> str:
    """Table 4: scoring seconds, tokens and speedup of each method (``scoring_cost.csv``)."""
    runs = _runs(reference)
    rows = []
    for row in read_csv(reference / "tables" / "scoring_cost.csv"):
        method, seconds = row["method"], float(row["scoring_seconds"])
        if method == "ufo":
            label = f"ufo ({row['target']} target, batch {count(row['batch_size'])})"
        elif method == "multisample":
            temps = {r.selector_config.get("temperature") for r in runs
                     if r.scoring.get("method") == method
                     and math.isclose(float(r.scoring.get("scoring_seconds", math.nan)), seconds)}
            if len(temps) != 1:
                raise SystemExit(f"error: no single sampling temperature for the {method} row ({temps})")
            label = (f"multisample (K={count(row['k'])}, T={fixed(temps.pop(), 1)}, "
                     f"batch {count(row['batch_size'])} sequences)")
        else:
            label = method
        generated = float(row["generated_tokens"])
        gen_cell = count(generated)
        if generated > 0:
            gen_cell += f" ({count(generated / seconds)} tok/s)"
        speedup = f"{fixed(row['speedup'], 1)}x"
        rows.append([label, fixed(seconds, 2), count(row["forward_tokens"]), gen_cell,
                     f"**{speedup}**" if method == "ufo" else speedup])
    return markdown(["method", "scoring seconds", "forward tokens", "generated tokens", "speedup"],
                    ["l", "r", "r", "r", "r"], rows)


def _label(row: dict) -> str:
    variant, rule = row["variant"], row["rule"]
    if rule == "all":
        return f"{variant} ({count(row['n_selected'])} prompts)"
    share = f"{float(row['fraction']) * 100:g}%"
    if rule == variant:
        return f"{variant} ({share})"
    return f"{variant} ({'Top-Mid' if rule == 'top_mid' else rule}, {share})"


def accuracy_table(reference: Path = REFERENCE) -> str:
    """Table 5: held-out greedy accuracy (avg@k in brackets) before and after GRPO, the gain,
    the training seconds and the zero-advantage share, per variant (mean ± std over seeds)."""
    acc = [r for r in read_csv(reference / "tables" / "accuracy.csv")
           if r["experiment"] == EXPERIMENT and r["benchmark"] == BENCHMARK]
    by = {(r["variant"], r["phase"]): r for r in acc}
    timing = {r["variant"]: r for r in read_csv(reference / "tables" / "training_time.csv")
              if r["experiment"] == EXPERIMENT}
    zero: dict[str, list[float]] = {}
    for run in _runs(reference):
        value = (run.meta.get("train") or {}).get("zero_adv_frac_mean")
        if value is not None:
            zero.setdefault(run.variant, []).append(float(value))
    variants = sorted({v for v, _ in by}, key=lambda v: (ORDER.index(v) if v in ORDER else len(ORDER), v))
    rows = []
    for v in variants:
        before, final = by[(v, "before")], by[(v, "final")]
        t = timing.get(v, {})
        z = zero.get(v, [])
        z_row = {"n_seeds": len(z)}
        if z:
            z_row["z_mean"] = sum(z) / len(z)
            if len(z) > 1:
                z_row["z_std"] = math.sqrt(sum((x - z_row["z_mean"]) ** 2 for x in z) / (len(z) - 1))
        rows.append([
            _label(final),
            f"{spread(before, 'accuracy', 3)} ({spread(before, 'avg_at_k', 3)})",
            f"{spread(final, 'accuracy', 3)} ({spread(final, 'avg_at_k', 3)})",
            spread(final, "gain", 3, sign=True),
            spread(t, "training_seconds", 0),
            spread(z_row, "z", 2),
        ])
    return markdown(["selector", "before", "after", "gain", "training s", "zero-advantage share"],
                    ["l", "r", "r", "r", "r", "r"], rows)


GENERATORS: dict[str, Callable[[Path], str]] = {
    "scoring_cost": scoring_cost_table,
    "accuracy": accuracy_table,
}


# ---- README ----------------------------------------------------------------------------------

def generate(reference: Path = REFERENCE) -> dict[str, str]:
    """Every generated block's text, by name."""
    return {name: fn(reference) for name, fn in GENERATORS.items()}


def blocks(text: str) -> dict[str, str]:
    """The generated blocks found in a README text, by name."""
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def render(text: str, tables: dict[str, str]) -> str:
    """``text`` with each generated block replaced by its table; every table must have exactly
    one block, and every block a table."""
    found = [m["name"] for m in BLOCK.finditer(text)]
    missing = sorted(set(tables) - set(found))
    unknown = sorted(set(found) - set(tables))
    twice = sorted({n for n in found if found.count(n) > 1})
    if missing or unknown or twice:
        raise ValueError(f"README generated blocks: missing {missing}, unknown {unknown}, repeated {twice}")
    return BLOCK.sub(lambda m: m.group(1) + tables[m["name"]] + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 when the README differs")
    ap.add_argument("--readme", type=Path, default=README, help="the README to rewrite or check")
    ap.add_argument("--reference", type=Path, default=REFERENCE,
                    help="the reference results folder (tables/ and runs/)")
    args = ap.parse_args(argv)
    text = args.readme.read_text()
    try:
        new = render(text, generate(args.reference))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if new == text:
        print(f"{args.readme}: generated tables are up to date")
        return 0
    if args.check:
        diff = difflib.unified_diff(text.splitlines(keepends=True), new.splitlines(keepends=True),
                                    f"{args.readme} (as committed)", f"{args.readme} (generated)")
        sys.stdout.writelines(diff)
        print(f"{args.readme}: generated tables differ from {args.reference}; "
              f"run python bench/readme_tables.py to rewrite them")
        return 1
    args.readme.write_text(new)
    print(f"{args.readme}: generated tables rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
