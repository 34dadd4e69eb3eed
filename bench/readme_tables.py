"""Generate the result tables of README.md and docs/*.md from the committed reference results.

    python bench/readme_tables.py            # rewrite the generated blocks of README.md and docs/*.md
    python bench/readme_tables.py --check    # exit 1, with a diff, when a page differs
    python bench/readme_tables.py --readme PAGE.md [--readme ...] --check   # only these pages

A generated block is everything between ``<!-- generated: NAME -->`` and ``<!-- /generated -->``
in a page; every table has exactly one block over README.md and docs/*.md together (pages given
with ``--readme`` are checked alone: a block may then be missing, but not unknown or repeated).
The numbers come only from committed files under ``results/reference/``: ``embedded/tables/``
``scoring_cost.csv``, ``accuracy.csv``, ``training_time.csv`` and ``differences.csv`` (written by
``bench/report.py``), the embedded run folders' ``scoring.json`` (the sampling temperature) and
``meta.json`` (the zero-advantage share of each GRPO run), ``smollm2/tables/scoring_cost.csv`` and
``controls/tables/differences.csv``; the paper's own numbers (arXiv 2505.12457) are the constants
in ``PAPER`` below. Numbers are rounded half up from their shortest decimal form to a fixed number
of decimals per column, so the output is the same on every machine.
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
DOCS = ROOT / "docs"
REFERENCE = ROOT / "results" / "reference" / "embedded"
SMOLLM2 = ROOT / "results" / "reference" / "smollm2"
CONTROLS = ROOT / "results" / "reference" / "controls"
MACHINE = "2-core AMD EPYC CPU"  # where the embedded and SmolLM2 references ran (no GPU)
# the paper's numbers (arXiv 2505.12457: abstract, Table 4, Table 5), quoted, not computed
PAPER = {
    "speedup_pair": ("39x", "Qwen2.5-7B, GSM8K train: 175 s against 6,827 s"),
    "speedup_max": "185x",
    "ufo_accuracy": "92.03",
    "full_accuracy": "91.88",
}
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


def _difference(rows: list[dict], variant: str, baseline: str) -> tuple[str, str]:
    """``+0.023 [+0.007, +0.040]`` and its label (better / worse / inconclusive, as verdict.md)."""
    from ufo_rl.report.verdict import label

    row = next((r for r in rows if r["variant"] == variant and r["baseline"] == baseline), None)
    if row is None:
        raise SystemExit(f"error: differences.csv has no {variant} - {baseline} row")
    lo, hi = float(row["ci_lo"]), float(row["ci_hi"])
    text = f"{fixed(row['difference'], 3, True)} [{fixed(lo, 3, True)}, {fixed(hi, 3, True)}]"
    return text, label(lo, hi)


def _agrees(yes: bool, why: str) -> str:
    return f"{'yes' if yes else 'no'} ({why})"


def paper_vs_suite_table(reference: Path = REFERENCE) -> str:
    """The paper's two headline claims (and the selection claims of its Table 5 and Figure 1)
    beside what the committed references find."""
    cost = {(r["method"], r["target"]): r for r in read_csv(reference / "tables" / "scoring_cost.csv")}
    ufo, multi = cost[("ufo", "answer")], cost[("multisample", "")]
    small = {(r["dataset"], r["target"], r["multisample_backend"]): r
             for r in read_csv(SMOLLM2 / "tables" / "scoring_cost.csv") if r["method"] == "ufo"}
    gsm_hf, gsm_vllm = small[("gsm8k", "answer", "hf")], small[("gsm8k", "answer", "vllm")]
    emb = small[("embedded", "answer", "hf")]
    acc = {(r["variant"], r["phase"]): r for r in read_csv(reference / "tables" / "accuracy.csv")
           if r["experiment"] == EXPERIMENT and r["benchmark"] == BENCHMARK}
    seeds = count(acc[("ufo", "final")]["n_seeds"])
    n = count(acc[("ufo", "final")]["n"])
    diffs = [r for r in read_csv(reference / "tables" / "differences.csv")
             if r["experiment"] == EXPERIMENT and r["benchmark"] == BENCHMARK]
    vs_full, full_label = _difference(diffs, "ufo", "full")
    vs_random, random_label = _difference(diffs, "ufo", "random")
    multi_random, multi_label = _difference(diffs, "multisample", "random")
    control_rows = read_csv(CONTROLS / "tables" / "differences.csv")
    oracle, oracle_label = _difference(control_rows, "multisample-band", "random")
    oracle_seeds = count(next(r["n_seeds"] for r in control_rows if r["variant"] == "multisample-band"))

    def speedup(row: dict) -> str:
        return f"**{fixed(row['speedup'], 1)}x**"

    pair, pair_what = PAPER["speedup_pair"]
    rows = [
        ["Scoring a pool with one teacher-forced pass is much cheaper than K-sample pass rates "
         "(abstract, Table 4)",
         f"{pair} ({pair_what}), up to {PAPER['speedup_max']}",
         f"{speedup(ufo)}: the suite's 3.4M-parameter model, {count(ufo['n_prompts'])} embedded prompts, "
         f"{fixed(ufo['scoring_seconds'], 2)} s against {fixed(multi['scoring_seconds'], 2)} s for "
         f"K={count(multi['k'])} samples ({MACHINE})",
         _agrees(float(ufo["speedup"]) > 1, "smaller: the tiny model's answers are short")],
        ["(the same, on a real chat model)", "",
         f"{speedup(gsm_hf)}: SmolLM2-135M-Instruct, {count(gsm_hf['n_prompts'])} GSM8K train prompts, "
         f"{fixed(gsm_hf['scoring_seconds'], 1)} s against {count(gsm_hf['multisample_seconds'])} s "
         f"(K=8, HF) or {count(gsm_vllm['multisample_seconds'])} s (K=8, vLLM: {speedup(gsm_vllm)}); "
         f"{count(emb['n_prompts'])} embedded prompts: {speedup(emb)} ({MACHINE})",
         _agrees(min(float(r["speedup"]) for r in (gsm_hf, gsm_vllm, emb)) > 1, "near the paper's range")],
        ["Training on the 10% UFO selects matches or beats full data (Table 5)",
         f"Qwen2.5-7B, GSM8K test: {PAPER['ufo_accuracy']} (UFO 10%) against {PAPER['full_accuracy']} (full)",
         f"UFO 10% minus full, held-out accuracy: {vs_full}, 95% CI, {seeds} seeds, {n} problems "
         f"(embedded default)", _agrees(full_label != "worse", f"**{full_label}**")],
        ["UFO's Top-Mid beats random 10% (Table 5)", "Top-Mid above random and the extremes",
         f"UFO 10% minus random 10%: {vs_random}", _agrees(random_label == "better", f"**{random_label}**")],
        ["The prompts of middle pass rate teach GRPO the most (Figure 1)",
         "RL gains largest in the middle pass-rate bins",
         f"Top-Mid on the K=8 pass rate minus random: {multi_random}; the oracle "
         f"(`multisample-band`, {oracle_seeds} seeds) minus random: {oracle}",
         _agrees(multi_label == oracle_label == "better", f"**{multi_label}**, **{oracle_label}**")],
    ]
    return markdown(["claim (arXiv 2505.12457)", "the paper", "this suite (committed references)", "agrees?"],
                    ["l", "l", "l", "l"], rows)


GENERATORS: dict[str, Callable[[Path], str]] = {
    "scoring_cost": scoring_cost_table,
    "accuracy": accuracy_table,
    "paper_vs_suite": paper_vs_suite_table,
}


# ---- pages ----------------------------------------------------------------------------------

def pages() -> list[Path]:
    """The pages whose generated blocks this script maintains: README.md and docs/*.md."""
    return [README] + sorted(DOCS.glob("*.md"))


def generate(reference: Path = REFERENCE) -> dict[str, str]:
    """Every generated block's text, by name."""
    return {name: fn(reference) for name, fn in GENERATORS.items()}


def blocks(text: str) -> dict[str, str]:
    """The generated blocks found in a page's text, by name."""
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def _names(text: str) -> list[str]:
    found = [m["name"] for m in BLOCK.finditer(text)]
    if text.count("<!-- generated:") != len(found) or text.count("<!-- /generated -->") != len(found):
        raise ValueError(f"generated blocks: an opening or closing marker without its pair "
                         f"({text.count('<!-- generated:')} opening, "
                         f"{text.count('<!-- /generated -->')} closing, {len(found)} blocks)")
    return found


def render_pages(texts: dict[Path, str], tables: dict[str, str], complete: bool = True) -> dict[Path, str]:
    """Each page's text with its generated blocks replaced by their tables. A block's name must be
    a known table and appear once over all the pages; with ``complete`` every table must have a
    block somewhere."""
    found = [name for text in texts.values() for name in _names(text)]
    missing = sorted(set(tables) - set(found)) if complete else []
    unknown = sorted(set(found) - set(tables))
    twice = sorted({n for n in found if found.count(n) > 1})
    if missing or unknown or twice:
        raise ValueError(f"generated blocks: missing {missing}, unknown {unknown}, repeated {twice}")
    return {path: BLOCK.sub(lambda m: m.group(1) + tables[m["name"]] + m.group(4), text)
            for path, text in texts.items()}


def render(text: str, tables: dict[str, str]) -> str:
    """``text`` with each generated block replaced by its table; every table must have exactly
    one block in it, and every block a table."""
    return render_pages({Path("page"): text}, tables)[Path("page")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 when a page differs")
    ap.add_argument("--readme", type=Path, action="append", default=None,
                    help="a page to rewrite or check (repeatable; default: README.md and docs/*.md)")
    ap.add_argument("--reference", type=Path, default=REFERENCE,
                    help="the embedded reference results folder (tables/ and runs/)")
    args = ap.parse_args(argv)
    paths = args.readme or pages()
    texts = {path: path.read_text() for path in paths}
    try:
        new = render_pages(texts, generate(args.reference), complete=args.readme is None)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stale = [path for path in paths if new[path] != texts[path]]
    if not stale:
        print(f"{', '.join(str(p) for p in paths)}: generated tables are up to date")
        return 0
    if args.check:
        for path in stale:
            diff = difflib.unified_diff(texts[path].splitlines(keepends=True), new[path].splitlines(keepends=True),
                                        f"{path} (as committed)", f"{path} (generated)")
            sys.stdout.writelines(diff)
            print(f"{path}: generated tables differ from {args.reference}; "
                  f"run python bench/readme_tables.py to rewrite them")
        return 1
    for path in stale:
        path.write_text(new[path])
        print(f"{path}: generated tables rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
