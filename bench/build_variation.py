"""How far the tiny model, its scores and its Top-Mid subset move with the CPU's kernels.

Builds the tiny model several times on this machine, each in a fresh process under different
settings (thread count, ATen's kernel dispatch ``ATEN_CPU_CAPABILITY``), scores the embedded pool
with UFO (answer target) under each, and compares every build with the first one: weights,
greedy accuracy per level, confidences, and the overlap of the Top-Mid subsets. This is what a
different CPU (Intel or AMD, with or without AVX-512) does to a build, measured on one machine.

    python bench/build_variation.py                                  # the default recipe
    python bench/build_variation.py --sft-steps 60 --tag short       # a quick look
    python bench/build_variation.py --variants default:2 default:1 avx2:2

A variant is ``<dispatch>:<threads>``: ``default`` leaves ATen's dispatch alone, anything else is
passed as ``ATEN_CPU_CAPABILITY``. The result lands in ``results/bench/build_variation-<tag>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench"


def child(out: Path, sft_steps: int | None, n_pool: int) -> None:
    """Build, score and save (runs in a fresh process so that the environment takes effect)."""
    import hashlib

    import numpy as np
    import torch
    from safetensors.torch import save_file

    from ufo_rl.config import ModelConfig, SelectorConfig, TinyConfig
    from ufo_rl.data.arith import embedded_splits
    from ufo_rl.scorers import ScoreContext, get_scorer
    from ufo_rl.selection import select
    from ufo_rl.tiny_model import train_tiny

    torch.set_num_threads(int(os.environ["UFO_VARIATION_THREADS"]))
    recipe = TinyConfig() if sft_steps is None else replace(TinyConfig(), sft_steps=sft_steps)
    model, tok, info = train_tiny(recipe, progress=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(out / "weights.safetensors"))
    digest = hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()[:16]
    pool = embedded_splits(0, n_pool, 10)["pool"]
    sel = SelectorConfig(name="ufo")
    chunk = get_scorer("ufo").fn(ScoreContext(model, tok, ModelConfig(), sel), pool)
    conf = np.asarray(chunk.columns["confidence"], dtype=float)
    keep, _ = select("top_mid", conf, sel.fraction, seed=0)
    (out / "result.json").write_text(json.dumps({
        "weights_sha256": digest, "final_sft_loss": info["final_sft_loss"],
        "greedy_accuracy_per_level": info["greedy_accuracy_per_level"], "train_seconds": info["train_seconds"],
        "ids": [p.id for p in pool], "confidence": conf.tolist(),
        "top_mid": sorted(p.id for p, k in zip(pool, keep) if k),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
    }))


def compare(base: dict, other: dict, wa, wb) -> dict:
    import numpy as np
    from scipy.stats import spearmanr

    max_dw = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    rel_dw = max(float((wa[k] - wb[k]).norm() / wa[k].norm()) for k in wa)
    ca, cb = np.asarray(base["confidence"]), np.asarray(other["confidence"])
    shared = len(set(base["top_mid"]) & set(other["top_mid"]))
    return {
        "same_weights": base["weights_sha256"] == other["weights_sha256"],
        "max_abs_weight_diff": max_dw, "max_relative_weight_diff": rel_dw,
        "max_abs_confidence_diff": float(np.abs(ca - cb).max()),
        "mean_abs_confidence_diff": float(np.abs(ca - cb).mean()),
        "spearman_confidence": float(spearmanr(ca, cb).statistic),
        "top_mid_overlap": f"{shared}/{len(base['top_mid'])}",
        "top_mid_overlap_share": shared / len(base["top_mid"]),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["default:2", "default:1", "avx2:2"])
    ap.add_argument("--sft-steps", type=int, default=None, help="warm-start steps (default: the recipe's)")
    ap.add_argument("--n-pool", type=int, default=400, help="embedded pool prompts to score (the CI pool's size)")
    ap.add_argument("--tag", default="default")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.sft_steps, args.n_pool)
        return 0
    from safetensors.torch import load_file

    from ufo_rl.provenance import cpu_name

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for v in args.variants:
            dispatch, threads = v.split(":")
            out = Path(tmp) / v.replace(":", "-")
            out.mkdir()
            env = {**os.environ, "UFO_VARIATION_THREADS": threads}
            env.pop("ATEN_CPU_CAPABILITY", None)
            if dispatch != "default":
                env["ATEN_CPU_CAPABILITY"] = dispatch
            cmd = [sys.executable, __file__, "--child", str(out), "--n-pool", str(args.n_pool)]
            if args.sft_steps is not None:
                cmd += ["--sft-steps", str(args.sft_steps)]
            print(f"[variation] building {v} ...", flush=True)
            subprocess.run(cmd, env=env, check=True, cwd=ROOT)
            runs.append((v, json.loads((out / "result.json").read_text()), load_file(str(out / "weights.safetensors"))))
        base_name, base, wa = runs[0]
        report = {"recipe_sft_steps": args.sft_steps, "n_pool": args.n_pool, "baseline": base_name,
                  "cpu": cpu_name(), "builds": {}}
        for name, res, w in runs:
            entry = {k: res[k] for k in ("weights_sha256", "final_sft_loss", "greedy_accuracy_per_level",
                                         "train_seconds", "cpu_capability", "threads")}
            if name != base_name:
                entry["vs_baseline"] = compare(base, res, wa, w)
            report["builds"][name] = entry
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"build_variation-{args.tag}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
