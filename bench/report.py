"""Rebuild the tables and figures from finished run folders.

    python bench/report.py [RUNS_DIR] [--out DIR]     # defaults: results/runs, results/

Reads only the files each job wrote (see results/README.md); unfinished folders are ignored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ufo_rl.errors import UserError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_dir", nargs="?", default="results/runs", type=Path,
                    help="folder searched recursively for finished runs (default: results/runs)")
    ap.add_argument("--out", default="results", type=Path,
                    help="where tables/ and figures/ are written (default: results)")
    args = ap.parse_args(argv)
    from ufo_rl.report import build_report

    try:
        written = build_report(args.runs_dir, args.out)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in written:
        print(p)
    print(f"[ufo-rl] report: {len(written)} files in {args.out / 'tables'} and {args.out / 'figures'}")
    verdict = args.out / "verdict.md"
    if verdict in written:
        print(f"\n{verdict.read_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
