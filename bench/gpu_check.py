"""What only a GPU can show: scoring timings at a paper-sized model in bf16, and the whole
pipeline (scoring, GRPO in bf16, evaluation) on CUDA. ``bench/gpu_check.sh`` runs both.

``scoring``: one randomly initialised model of a real architecture (default Qwen2.5-7B's shape,
the paper's concrete pair in arXiv 2505.12457 Table 4) scores the same prompts four ways, each
each running two rounds over all of them in turn (the first warms kernels and caches); the
faster round counts:

- ``ufo_b8``: the project's UFO scorer at the authors' batch of 8 (``ufo_rl/scorers.py``);
- ``ufo_b64``: the same scorer at batch 64, sorted by length;
- ``ufo_b8_unshared``: batch 8 without running the prompts' shared prefix (chat template and
  system prompt) once for all (``selector.share_prefix=false``), to show what that saves;
- ``authors_b8``: the authors' procedure (``bench/authors.py``: the whole set padded to its
  longest prompt, batches of 8, a per-token Python loop), when the tokenizer has a chat template
  that keeps a system prompt;
- ``multisample``: K=8 samples per prompt at temperature 1 (``baselines/multisample.py``).

Random weights are all that an offline machine can hold at this size: the scores mean nothing,
but the arithmetic and memory traffic are a real model's. Sampled from near-uniform logits over
a 152k vocabulary, a sample almost never ends early, so every one runs to ``--max-new-tokens``:
the multisample cost is that of K answers of exactly that length (``generated_tokens`` says).
Useful FLOPs count 2 x parameters per real (unpadded) token of the forward passes, against this
GPU's measured bf16 matmul rate.

``decoding``: K=8 multi-sample scoring of the embedded pool with the shipped tiny model, through
the project's decoding loop (``HFGenerator``, ``ufo_rl/generation.py``) and through
``generate`` itself (``own_loop=False``), each with 1 and with all torch CPU threads, in turn
over ``--rounds`` rounds; the fastest round counts. The loop's savings were measured on CPUs;
this says whether they hold where the kernels are small and launched from Python.

``summarize``: collects the run folders of ``conf/experiment/gpu_check.yaml`` into one JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# architectures by name (the values of their public config.json files); "micro" is for a dry
# run on a CPU
SHAPES = {
    "qwen2.5-7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
    "qwen2.5-1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2.5-0.5b": dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "micro": dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True),
}


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """Measured FLOP/s of a large square matrix product (mean of 10 after 3 warm-ups)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    t0 = _sync(device)
    for _ in range(10):
        a @ b
    return 10 * 2 * n**3 / (_sync(device) - t0)


def random_model(shape: str, n_vocab_tok: int, tok, device: torch.device, dtype: torch.dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    spec = dict(SHAPES[shape])
    spec["vocab_size"] = max(spec["vocab_size"], n_vocab_tok)
    cfg = Qwen2Config(**spec, max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen2ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(default)
    return model.eval(), cfg


def load_tok(path: str | None):
    from transformers import AutoTokenizer

    if path:
        tok = AutoTokenizer.from_pretrained(path)
    else:
        from ufo_rl.tiny_model import build_tokenizer

        tok = build_tokenizer()
    tok.pad_token = tok.pad_token or tok.eos_token
    tok.padding_side = "left"
    return tok


def load_prompts(gsm8k: str | None, n: int):
    from ufo_rl.config import DatasetConfig
    from ufo_rl.data.arith import embedded_splits
    from ufo_rl.data.loaders import load_problems

    if gsm8k:
        return load_problems(DatasetConfig(kind="jsonl", name="gsm8k", path=gsm8k, answer_extraction="gsm8k",
                                           limit=n)), "gsm8k"
    return embedded_splits(0, n, 10)["pool"], "embedded"


def timed_rounds(runs: dict, problems, rounds: int, device: torch.device) -> tuple[dict, dict]:
    """Every method of ``runs`` (name -> function of the prompts) runs ``rounds`` times over all
    prompts, the methods taking turns within a round (so clocks, caches and lazily loaded kernels
    favour none). Returns each method's round seconds and its last output."""
    times = {name: [] for name in runs}
    outs = {}
    for r in range(rounds):
        for name, fn in runs.items():
            t = _sync(device)
            outs[name] = fn(problems)
            times[name].append(_sync(device) - t)
            print(f"round {r + 1}/{rounds} {name}: {times[name][-1]:.2f} s, {len(problems)} prompts", flush=True)
    return times, outs


def scoring(args) -> dict:
    from authors import AUTHORS_SYSTEM_PROMPT, authors_conf

    from ufo_rl.config import ModelConfig, SelectorConfig
    from ufo_rl.models import template_keeps_system
    from ufo_rl.scorers import ScoreContext, get_scorer

    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tok = load_tok(args.tokenizer)
    problems, pool = load_prompts(args.gsm8k, args.n)
    chat = template_keeps_system(tok)
    t0 = time.perf_counter()
    model, mcfg_hf = random_model(args.shape, len(tok), tok, device, dtype)
    init_s = _sync(device) - t0
    n_params = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    mcfg = ModelConfig(name_or_path=f"random-{args.shape}", system_prompt=AUTHORS_SYSTEM_PROMPT if chat else None,
                       answer_prefix="<answer> " if chat else "<answer>", max_new_tokens=args.max_new_tokens,
                       stop=["</answer>"])
    peak = matmul_rate(device, dtype)
    methods = {
        "ufo_b8": SelectorConfig(name="ufo", batch_size=8),
        "ufo_b64": SelectorConfig(name="ufo", batch_size=64),
        "ufo_b8_unshared": SelectorConfig(name="ufo", batch_size=8, share_prefix=False),
    }
    if not args.skip_multisample:
        methods["multisample"] = SelectorConfig(name="multisample", k=8, temperature=1.0, batch_size=args.ms_batch)
    def scorer_run(sel):
        scorer, ctx = get_scorer(sel.name), ScoreContext(model, tok, mcfg, sel)
        return lambda ps: scorer.fn(ctx, ps)

    runs = {name: scorer_run(sel) for name, sel in methods.items()}
    if chat:
        runs["authors_b8"] = lambda ps: authors_conf(model, tok, AUTHORS_SYSTEM_PROMPT, ps, 8)

    times, outs = timed_rounds(runs, problems, args.rounds, device)
    profiles = {}
    if args.profile:
        for name in [n for n in ("ufo_b8", "authors_b8") if n in runs]:
            profiles[name] = profile_table(runs[name], problems, device)

    results, confs = {}, {}
    for name, secs_all in times.items():
        secs = min(secs_all)
        results[name] = {"seconds": secs, "round_seconds": secs_all, "prompts_per_second": len(problems) / secs}
        if name in methods:
            chunk = outs[name]
            results[name].update(forward_tokens=chunk.forward_tokens, generated_tokens=chunk.generated_tokens,
                                 batch_size=methods[name].batch_size)
            if methods[name].name == "ufo":
                confs[name] = np.array(chunk.columns["logprob_mean"])
                # useful work: 2 x non-embedding parameters per real (unpadded) token, over the
                # measured matmul rate
                flops = 2 * (n_params - (0 if mcfg_hf.tie_word_embeddings else embed)) * chunk.forward_tokens
                results[name].update(useful_flops=flops, useful_flops_per_second=flops / secs,
                                     share_of_matmul_rate=flops / secs / peak)
        else:
            confs[name] = outs[name]
            results[name]["batch_size"] = 8
    ratios = {f"{name}/ufo_b8": r["seconds"] / results["ufo_b8"]["seconds"]
              for name, r in results.items() if name != "ufo_b8"}
    if "authors_b8" in results:
        ratios["authors_b8/ufo_b64"] = results["authors_b8"]["seconds"] / results["ufo_b64"]["seconds"]
        ratios["max_abs_conf_diff_ufo_b8_vs_authors"] = float(np.abs(confs["ufo_b8"] - confs["authors_b8"]).max())
    return {
        "what": ("scoring timings: each method runs --rounds rounds over all prompts, in turn; the "
                 "fastest round counts (bench/gpu_check.py)"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "model": f"random weights, {args.shape} shape", "n_params": n_params, "init_seconds": init_s,
        "tokenizer": args.tokenizer or "tiny", "chat_template_with_system": chat,
        "pool": pool, "n_prompts": len(problems), "rounds": args.rounds,
        "max_new_tokens": args.max_new_tokens, "k": 8,
        "matmul_flops_per_second": peak, "methods": results, "ratios": ratios, "profiles": profiles,
        "versions": versions(),
    }


def decoding(args) -> dict:
    from ufo_rl.config import ModelConfig, SelectorConfig
    from ufo_rl.data.arith import embedded_splits
    from ufo_rl.generation import HFGenerator
    from ufo_rl.models import load_model
    from ufo_rl.scorers import ScoreContext, get_scorer

    mcfg = ModelConfig(name_or_path="tiny", device="cpu" if args.cpu else "auto")
    model, tok, info = load_model(mcfg, progress=False)
    device = next(model.parameters()).device
    problems = embedded_splits(0, args.n, 10)["pool"]
    sel = SelectorConfig(name="multisample", k=8, temperature=1.0, batch_size=args.ms_batch)
    scorer = get_scorer("multisample")
    all_threads = max(1, len(os.sched_getaffinity(0)))
    variants = {f"{'loop' if own else 'generate'}_t{t}": (own, t)
                for own in (True, False) for t in sorted({1, all_threads})}

    def run(own: bool, threads: int):
        def fn(ps):
            torch.set_num_threads(threads)
            gen = HFGenerator(model, tok, batch_size=args.ms_batch, own_loop=own)
            return scorer.fn(ScoreContext(model, tok, mcfg, sel, generator=gen), ps)
        return fn

    times, outs = timed_rounds({name: run(*v) for name, v in variants.items()}, problems, args.rounds, device)
    tokens = {name: chunk.generated_tokens for name, chunk in outs.items()}
    results = {name: {"seconds": min(ts), "round_seconds": ts, "own_loop": variants[name][0],
                      "torch_threads": variants[name][1], "generated_tokens": tokens[name],
                      "generated_tokens_per_second": tokens[name] / min(ts)}
               for name, ts in times.items()}
    best_loop = min((n for n in results if results[n]["own_loop"]), key=lambda n: results[n]["seconds"])
    best_gen = min((n for n in results if not results[n]["own_loop"]), key=lambda n: results[n]["seconds"])
    return {
        "what": ("K=8 multisample scoring of the embedded pool with the shipped tiny model: the "
                 "project's decoding loop against generate, 1 and all CPU threads; fastest of "
                 "--rounds rounds (bench/gpu_check.py)"),
        "device": info["device_name"], "dtype": info["dtype"], "model": info["model"],
        "n_prompts": len(problems), "k": 8, "batch_size": args.ms_batch, "rounds": args.rounds,
        "methods": results,
        "ratios": {"generate/loop (best of each)": results[best_gen]["seconds"] / results[best_loop]["seconds"]},
        "versions": versions(),
    }


def profile_table(fn, problems, device: torch.device, rows: int = 25) -> str:
    """The operators that take the time in one more round of ``fn`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        fn(problems)
        _sync(device)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.version.cuda if torch.cuda.is_available() else None}
    for name in ("transformers", "trl", "accelerate", "datasets", "hydra-core", "math-verify"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def summarize(args) -> dict:
    """One record per run folder of the pipeline sweep: device, dtypes, costs, accuracies."""
    runs = {}
    for meta_path in sorted(Path(args.runs).glob("*/meta.json")):
        folder = meta_path.parent
        meta = json.loads(meta_path.read_text())
        rec = {"status": meta.get("status"), "selector": meta.get("selector"), "train": meta.get("train"),
               "machine": meta.get("provenance", {}).get("machine")}
        for name in ("scoring.json", "eval.json", "timing.json"):
            if (folder / name).exists():
                rec[name.removesuffix(".json")] = json.loads((folder / name).read_text())
        if (folder / "train.jsonl").exists():
            rec["train_log"] = [json.loads(x) for x in (folder / "train.jsonl").read_text().splitlines() if x]
        runs[folder.name] = rec
    if not runs:
        raise SystemExit(f"no run folders with meta.json under {args.runs}")
    return {"what": "conf/experiment/gpu_check.yaml run on this machine (bench/gpu_check.sh)",
            "versions": versions(), "runs": runs}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scoring", help="time UFO, the authors' procedure and K=8 multisample")
    s.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-7b")
    s.add_argument("--tokenizer", help="a Hugging Face tokenizer folder (default: the tiny model's)")
    s.add_argument("--gsm8k", help="a GSM8K-style JSONL file (question, answer with ####); default: embedded pool")
    s.add_argument("--n", type=int, default=128, help="prompts")
    s.add_argument("--rounds", type=int, default=2, help="rounds over all prompts per method; the fastest counts")
    s.add_argument("--profile", action="store_true", help="add a torch.profiler table of one more round")
    s.add_argument("--max-new-tokens", type=int, default=256)
    s.add_argument("--ms-batch", type=int, default=256, help="sequences per generate call")
    s.add_argument("--skip-multisample", action="store_true")
    s.add_argument("--cpu", action="store_true", help="run on the CPU (a dry run of the script)")
    s.add_argument("--out", required=True, help="the JSON file to write")
    d = sub.add_parser("decoding", help="the project's decoding loop against generate, on the tiny model")
    d.add_argument("--n", type=int, default=160, help="prompts of the embedded pool")
    d.add_argument("--rounds", type=int, default=2)
    d.add_argument("--ms-batch", type=int, default=256, help="sequences per batch")
    d.add_argument("--cpu", action="store_true", help="run on the CPU (a dry run of the script)")
    d.add_argument("--out", required=True, help="the JSON file to write")
    m = sub.add_parser("summarize", help="collect the pipeline run folders into one JSON")
    m.add_argument("runs", help="the sweep folder, e.g. results/gpu_check/runs/gpu_check")
    m.add_argument("--out", required=True)
    args = p.parse_args(argv)
    result = {"scoring": scoring, "decoding": decoding, "summarize": summarize}[args.cmd](args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    if args.cmd in ("scoring", "decoding"):
        print(json.dumps(result["ratios"], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
