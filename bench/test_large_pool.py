"""Large pools: UFO scoring streams the pool in chunks, so memory stays flat and time grows linearly.

Scores an embedded pool of 10k and of 100k prompts with UFO (``stage=select``, the shipped tiny
model), each in a fresh process, one after the other, and compares:

- peak resident memory of the whole job (``ru_maxrss``): the larger pool within 20% of the smaller;
- scoring seconds per prompt (``scoring.json``): within 20% of each other.

The 100k pool leaves out level 4 (one operation on two-digit numbers has about 16k distinct
questions, fewer than a sixth of 100k); both pools use the same five levels, so they differ in
size only. ``UFO_LARGE_POOLS`` (comma-separated sizes, default ``10000,100000``) and
``UFO_BENCH_THREADS`` change the run. The result lands in ``results/bench/large_pool-cpu.json``.

    python -m pytest bench/test_large_pool.py -s -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench" / "large_pool-cpu.json"
LEVELS = "[1,2,3,5,6]"
TOLERANCE = 0.20

# runs bench/run.py in this process and reports the process's peak RSS when it exits
DRIVER = """
import atexit, json, resource, runpy, sys
out = sys.argv.pop(1)
def peak():
    with open(out, "w") as f:
        json.dump({"max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, f)
atexit.register(peak)
sys.argv[0] = "bench/run.py"
runpy.run_path("bench/run.py", run_name="__main__")
"""


def sizes() -> list[int]:
    return [int(n) for n in os.environ.get("UFO_LARGE_POOLS", "10000,100000").split(",")]


def score_pool(n: int, work: Path) -> dict:
    """One fresh process: build the pool, score it with UFO, select; its peak RSS and timings."""
    rss = work / f"rss-{n}.json"
    results = work / f"res-{n}"
    args = [sys.executable, "-c", DRIVER, str(rss), "stage=select", "selector=ufo", f"dataset.n_pool={n}",
            "dataset.n_test=100", f"dataset.levels={LEVELS}", f"results_dir={results}",
            f"cache_dir={work / f'cache-{n}'}", "progress=false", "eval.before=false"]
    threads = os.environ.get("UFO_BENCH_THREADS")
    if threads:
        args.append(f"model.threads={threads}")
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    (folder,) = [p for p in (results / "runs" / "default").iterdir() if p.is_dir() and not p.name.startswith(".")]
    sc = json.loads((folder / "scoring.json").read_text())
    timing = json.loads((folder / "timing.json").read_text())
    return {"n_prompts": sc["n_prompts"], "max_rss_mib": json.loads(rss.read_text())["max_rss_kib"] / 1024,
            "scoring_seconds": sc["scoring_seconds"], "seconds_per_prompt": sc["scoring_seconds"] / sc["n_prompts"],
            "forward_tokens": sc.get("forward_tokens"), "job_seconds": timing.get("total_seconds"),
            "torch_threads": sc.get("torch_threads")}


@pytest.mark.skipif(os.environ.get("UFO_SKIP_LARGE_POOL") == "1", reason="UFO_SKIP_LARGE_POOL=1")
def test_memory_flat_and_time_linear(tmp_path):
    import torch

    from ufo_rl.provenance import cpu_name

    rows = [score_pool(n, tmp_path) for n in sizes()]
    small, large = rows[0], rows[-1]
    rss_ratio = large["max_rss_mib"] / small["max_rss_mib"]
    time_ratio = large["seconds_per_prompt"] / small["seconds_per_prompt"]
    record = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__},
              "levels": LEVELS, "pools": rows, "rss_ratio": rss_ratio, "seconds_per_prompt_ratio": time_ratio,
              "tolerance": TOLERANCE}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    assert abs(rss_ratio - 1) <= TOLERANCE, f"peak RSS grew {rss_ratio:.2f}x from {small['n_prompts']} prompts"
    assert abs(time_ratio - 1) <= TOLERANCE, f"seconds per prompt changed {time_ratio:.2f}x"
