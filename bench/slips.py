"""Count the slips in a run's greedy answers: the habit GRPO removes in the embedded world.

A slip is the warm start's noisy ending (``ufo_rl/tiny_model.py``: ``with_slips``): the worked
steps end with ``a op b = c`` but the answer tag repeats ``a``, the value before the last step.
This reads the per-sample outputs a job writes (``eval_samples/<phase>-<benchmark>.jsonl``) and
prints, per run folder and phase, the share of greedy completions that slip and the greedy
accuracy of the same rows::

    python bench/slips.py results/reference/embedded/runs/default/*/
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path

STEP = re.compile(r"^(-?\d+)\s*[-+*]\s*-?\d+\s*=\s*-?\d+$")
TAG = re.compile(r"<answer>\s*(-?\d+)\s*</answer>")


def is_slip(completion: str) -> bool:
    """Whether the answer tag repeats the left operand of the last worked step (and that operand
    is not also the step's result).

    >>> is_slip("7+5=12\\n12-2=10\\n<answer>12</answer>")
    True
    >>> is_slip("7+5=12\\n12-2=10\\n<answer>10</answer>")
    False
    >>> is_slip("3+0=3\\n<answer>3</answer>")
    False
    """
    lines = [ln.strip() for ln in completion.splitlines() if ln.strip()]
    tag = next((TAG.search(ln) for ln in lines if TAG.search(ln)), None)
    steps = [ln for ln in lines if STEP.match(ln)]
    if tag is None or not steps:
        return False
    left = STEP.match(steps[-1]).group(1)
    result = steps[-1].rsplit("=", 1)[1].strip()
    return tag.group(1) == left and left != result


def count(path: Path) -> dict:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    greedy = [r for r in rows if r.get("mode") == "greedy"]
    if not greedy:
        return {}
    return {"n": len(greedy), "slip_share": sum(is_slip(r["completion"]) for r in greedy) / len(greedy),
            "accuracy": sum(bool(r["correct"]) for r in greedy) / len(greedy)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (each with eval_samples/)")
    args = ap.parse_args(argv)
    found = 0
    for run in args.runs:
        for path in sorted([*(run / "eval_samples").glob("*.jsonl"), *(run / "eval_samples").glob("*.jsonl.gz")]):
            c = count(path)
            if c:
                found += 1
                print(f"{run.name}\t{path.name.split('.')[0]}\tn={c['n']}\tslips={c['slip_share']:.3f}\taccuracy={c['accuracy']:.3f}")
    if not found:
        print("error: no greedy eval samples under the given folders; pass run folders that hold "
              "eval_samples/*.jsonl", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
