"""The cost record of a scoring run (``scoring.json``): what it cost, on what, with what.

The figures are those of the run that actually scored the cache entry (its ``first_cost.json``),
so a job that found the scores cached reports the original cost, with ``cached: true``; the
paper's speedup table (arXiv 2505.12457, Table 4) compares these records across methods.
"""

from __future__ import annotations

from dataclasses import asdict


def scoring_record(scorer, cfg, original: dict, status: dict, *, n_pool: int, cache_key: str, model,
                   model_fingerprint, dataset_fingerprint: str) -> dict:
    """``scoring.json`` of a job, less the selection's fields (rule, signal, fraction, count).

    ``original`` is the cost of the run that scored (seconds, tokens, device, and the model's load
    and CUDA warm-up seconds); ``status`` says whether the scores came from the cache and how many
    chunks were resumed or repaired."""
    n_prompts = n_pool if scorer.needs_model else 0
    secs = original.get("scoring_seconds", 0.0)
    generated = original.get("generated_tokens", 0)
    toks = original.get("forward_tokens", 0) + generated
    return {
        "method": scorer.name,
        # how samples were drawn (hf generate or vllm); null for a scorer that samples nothing
        "generation_backend": cfg.model.generation_backend if scorer.samples else None,
        "scoring_seconds": secs,
        "load_seconds": original.get("load_seconds", 0.0),
        # CUDA only: the untimed warm-up batch before the timed scoring
        "warmup_seconds": original.get("warmup_seconds"),
        "n_prompts": n_prompts,
        "forward_tokens": original.get("forward_tokens", 0),
        "generated_tokens": generated,
        "tokens_per_second": toks / secs if secs > 0 else None,
        "generated_tokens_per_second": generated / secs if secs > 0 else None,
        "prompts_per_second": n_prompts / secs if secs > 0 else None,
        "cached": status["cached"],
        "resumed_chunks": status["resumed_chunks"],
        "repaired_chunks": status["repaired_chunks"],
        "cache_key": cache_key,
        "device": original.get("device"),
        "device_name": original.get("device_name"),
        "dtype": original.get("dtype"),
        "torch_threads": original.get("torch_threads"),
        "batch_size": cfg.selector.batch_size,
        "model": model,
        "model_fingerprint": model_fingerprint,
        "dataset": cfg.dataset.name,
        "dataset_fingerprint": dataset_fingerprint,
        "selector_config": asdict(cfg.selector),
    }
