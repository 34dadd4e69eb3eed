"""UFO single-pass scoring against K=8 multi-sample pass rates, timed side by side.

Run: ``make bench`` (or ``pytest bench/ -s``). The two methods score the same
prompts with the same loaded model, dtype and batch policy; model loading is outside the timed
region, as in the paper. The ratio is printed and written to ``results/bench/scoring_speed-<UFO_BENCH_TAG>.json``.
Sizes: ``UFO_BENCH_N`` prompts of the embedded pool (default 256), and the first
``UFO_BENCH_GSM8K_N`` GSM8K train prompts (default 64) when ../shared/data is present.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ufo_rl.config import SelectorConfig
from ufo_rl.data.arith import embedded_splits
from ufo_rl.scorers import ScoreContext, get_scorer

N_EMBEDDED = int(os.environ.get("UFO_BENCH_N", "256"))
N_GSM8K = int(os.environ.get("UFO_BENCH_GSM8K_N", "64"))
# Reference speedups per machine class ("<device>-<model>"), measured by this file and recorded in
# bench/reference_speedups.json; a run must reach REFERENCE_FRACTION of its class's reference. A
# class with no reference is measured and written, not asserted.
REFERENCES = Path(__file__).with_name("reference_speedups.json")
REFERENCE_FRACTION = 0.5
ROUNDS = int(os.environ.get("UFO_BENCH_ROUNDS", "2"))  # the same warm-up and rounds for both sides
RESULTS: dict[str, dict] = {}
OUT = Path(__file__).resolve().parents[1] / "results" / "bench"
SHARED_DATA = Path(os.environ.get("UFO_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
UFO_BATCH = int(os.environ.get("UFO_BENCH_UFO_BATCH", "64"))
MS_BATCH = int(os.environ.get("UFO_BENCH_MS_BATCH", "256"))  # sequences per generate call


def _gsm8k_problems(n):
    from ufo_rl.config import DatasetConfig
    from ufo_rl.data.loaders import load_problems

    path = SHARED_DATA / "gsm8k" / "train.jsonl"
    if not path.exists():
        pytest.skip("../shared/data/gsm8k is absent")
    return load_problems(DatasetConfig(kind="jsonl", name="gsm8k", path=str(path),
                                       answer_extraction="gsm8k", limit=n))


def _problems(pool: str):
    return embedded_splits(0, N_EMBEDDED, 10)["pool"] if pool == "embedded" else _gsm8k_problems(N_GSM8K)


def _run(benchmark, default_model, pool, method, rounds, max_new_tokens=None):
    from dataclasses import replace

    model, tok, mcfg, info = default_model
    if max_new_tokens:
        mcfg = replace(mcfg, max_new_tokens=max_new_tokens)
    problems = _problems(pool)
    sel = SelectorConfig(name=method, k=8, temperature=1.0, batch_size=UFO_BATCH if method == "ufo" else MS_BATCH)
    scorer = get_scorer(method)
    ctx = ScoreContext(model, tok, mcfg, sel)
    out = {}

    def once():
        t0 = time.perf_counter()
        out["chunk"] = scorer.fn(ctx, problems)
        return time.perf_counter() - t0

    benchmark.pedantic(once, rounds=rounds, iterations=1, warmup_rounds=1)
    chunk = out["chunk"]
    RESULTS[f"{pool}/{method}"] = {
        "seconds": benchmark.stats.stats.min, "n_prompts": len(problems),
        "forward_tokens": chunk.forward_tokens, "generated_tokens": chunk.generated_tokens,
        "generated_tokens_per_second": chunk.generated_tokens / benchmark.stats.stats.min,
        "device": info["device"], "device_name": info["device_name"], "dtype": info["dtype"],
        "torch_threads": info["torch_threads"], "model": info["bench_model"],
        "ufo_batch_size": UFO_BATCH, "multisample_batch_size": MS_BATCH, "max_new_tokens": mcfg.max_new_tokens,
    }


@pytest.mark.parametrize("method", ["ufo", "multisample"])
def test_embedded_scoring(benchmark, default_model, method):
    benchmark.group = "embedded pool"
    _run(benchmark, default_model, "embedded", method, ROUNDS)


@pytest.mark.parametrize("method", ["ufo", "multisample"])
def test_gsm8k_scoring(benchmark, default_model, method):
    benchmark.group = "gsm8k train prompts"
    _run(benchmark, default_model, "gsm8k", method, ROUNDS, max_new_tokens=256)


def machine_class(result: dict) -> str:
    """``cpu-tiny``, ``cuda-random-0.5b``, ...: what a reference ratio is comparable within."""
    return f"{'cuda' if str(result['device']).startswith('cuda') else 'cpu'}-{result['model']}"


def test_speedup_ratio():
    """The ratio of the two timings above, measured in this run; written to results/bench/."""
    if "embedded/ufo" not in RESULTS or "embedded/multisample" not in RESULTS:
        pytest.skip("run together with test_embedded_scoring")
    report = {}
    for pool in ("embedded", "gsm8k"):
        if f"{pool}/ufo" in RESULTS and f"{pool}/multisample" in RESULTS:
            u, m = RESULTS[f"{pool}/ufo"], RESULTS[f"{pool}/multisample"]
            report[pool] = {"ufo": u, "multisample": m, "speedup": m["seconds"] / u["seconds"]}
            print(f"\n{pool}: ufo {u['seconds']:.2f}s, multisample K=8 {m['seconds']:.2f}s "
                  f"({m['generated_tokens_per_second']:.0f} generated tok/s): "
                  f"speedup {report[pool]['speedup']:.1f}x")
    out = Path(os.environ.get("UFO_BENCH_OUT", OUT))
    out.mkdir(parents=True, exist_ok=True)
    tag = os.environ.get("UFO_BENCH_TAG", "cpu")
    cls = machine_class(RESULTS["embedded/ufo"])
    report["machine_class"] = cls
    (out / f"scoring_speed-{tag}.json").write_text(json.dumps(report, indent=2))
    reference = json.loads(REFERENCES.read_text()).get(cls, {})
    if not reference:
        pytest.skip(f"no reference speedup for machine class {cls}; measured {report['embedded']['speedup']:.1f}x "
                    f"(record it in {REFERENCES.name} from a quiet run)")
    for pool, ref in reference.items():
        if pool in report:
            assert report[pool]["speedup"] >= REFERENCE_FRACTION * ref["speedup"], (pool, report[pool]["speedup"], ref)
