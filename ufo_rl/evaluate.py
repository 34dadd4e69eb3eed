"""Held-out evaluation: greedy accuracy and avg@k, overall and per difficulty level."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from ufo_rl.answers import check
from ufo_rl.config import EvalConfig, ModelConfig
from ufo_rl.generation import HFGenerator, SamplingParams
from ufo_rl.models import build_prompt
from ufo_rl.problems import Problem


def _per_level(problems: Sequence[Problem], values: Sequence[float]) -> dict[str, float]:
    by: dict[int, list[float]] = {}
    for p, v in zip(problems, values):
        if p.difficulty is not None:
            by.setdefault(p.difficulty, []).append(v)
    return {str(lv): sum(v) / len(v) for lv, v in sorted(by.items())}


def evaluate_problems(model, tok, problems: Sequence[Problem], cfg: EvalConfig, model_cfg: ModelConfig,
                      seed: int = 0, progress: bool = False) -> tuple[dict, list[dict]]:
    """Metrics of one benchmark and its per-sample records.

    ``accuracy`` is greedy pass@1; ``avg_at_k`` is the mean correctness of ``k`` samples at
    ``cfg.temperature`` (the quantity GRPO optimises). Both per level when levels are known.
    """
    t0 = time.perf_counter()
    gen = HFGenerator(model, tok, batch_size=cfg.batch_size)
    prompts = [build_prompt(tok, p.question, model_cfg.system_prompt) for p in problems]
    max_new = cfg.max_new_tokens or model_cfg.max_new_tokens
    stop = tuple(model_cfg.stop)
    greedy = gen.generate(prompts, SamplingParams(1, 0.0, max_new_tokens=max_new, stop=stop), progress)
    records, g_ok, s_ok = [], [], []
    for p, outs in zip(problems, greedy):
        pred, ok = check(outs[0].text, p.answer)
        g_ok.append(float(ok))
        records.append({"id": p.id, "difficulty": p.difficulty, "gold": p.answer, "mode": "greedy",
                        "sample": 0, "completion": outs[0].text, "extracted": pred, "correct": ok})
    metrics = {"n": len(problems), "accuracy": sum(g_ok) / len(g_ok),
               "per_level": _per_level(problems, g_ok)}
    if cfg.k > 0:
        sampled = gen.generate(prompts, SamplingParams(cfg.k, cfg.temperature, max_new_tokens=max_new,
                                                       stop=stop, seed=seed), progress)
        for p, outs in zip(problems, sampled):
            right = 0
            for j, c in enumerate(outs):
                pred, ok = check(c.text, p.answer)
                right += ok
                records.append({"id": p.id, "difficulty": p.difficulty, "gold": p.answer,
                                "mode": "sample", "sample": j, "completion": c.text,
                                "extracted": pred, "correct": ok})
            s_ok.append(right / len(outs))
        metrics.update(avg_at_k=sum(s_ok) / len(s_ok), k=cfg.k, temperature=cfg.temperature,
                       per_level_avg_at_k=_per_level(problems, s_ok))
    metrics["seconds"] = time.perf_counter() - t0
    return metrics, records


def evaluate(model, tok, benchmarks: Mapping[str, Sequence[Problem]], cfg: EvalConfig,
             model_cfg: ModelConfig, seed: int = 0, progress: bool = False) -> tuple[dict, dict]:
    """``{benchmark: metrics}`` and ``{benchmark: records}`` for every configured benchmark."""
    metrics, records = {}, {}
    for name, problems in benchmarks.items():
        metrics[name], records[name] = evaluate_problems(model, tok, problems, cfg, model_cfg, seed, progress)
    return metrics, records
