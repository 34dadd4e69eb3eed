"""The plan of a job: everything about its config that can be checked without loading a model.

``stage=plan`` stops here (ufo_rl/pipeline.py): it validates the stage, the budget, the selector
and its rule, every numeric range, the model folder, the dataset configs and the cache folder,
and prints what would run. :func:`check_sizes` checks that the rule keeps a non-empty subset of
the loaded pool.
"""

from __future__ import annotations

from pathlib import Path

from ufo_rl.config import BUDGETS, RunConfig
from ufo_rl.errors import UserError
from ufo_rl.problems import Problem
from ufo_rl.scorers import default_rule
from ufo_rl.selection import BIN_RULES, RULES, n_keep

STAGES = ("plan", "select", "train", "all")


# (value, name, lowest allowed, strict): numeric settings and their ranges, checked by the plan
def _ranges(cfg: RunConfig) -> list[tuple[float, str, float, bool]]:
    t, s, e, m = cfg.trainer, cfg.selector, cfg.eval, cfg.model
    return [
        (cfg.seed, "seed", 0, False), (s.k, "selector.k", 1, False), (s.batch_size, "selector.batch_size", 1, False),
        (s.temperature, "selector.temperature", 0, False), (s.n_bins, "selector.n_bins", 1, False),
        (t.num_generations, "trainer.num_generations", 2, False), (t.max_steps, "trainer.max_steps", 1, False),
        (t.epochs, "trainer.epochs", 0, True), (t.learning_rate, "trainer.learning_rate", 0, False),
        (t.per_device_prompts, "trainer.per_device_prompts", 1, False),
        (t.gradient_accumulation_steps, "trainer.gradient_accumulation_steps", 1, False),
        (t.max_completion_length, "trainer.max_completion_length", 1, False),
        (t.max_prompt_length, "trainer.max_prompt_length", 0, False), (t.temperature, "trainer.temperature", 0, True),
        (t.eval_every, "trainer.eval_every", 0, False), (t.save_steps, "trainer.save_steps", 1, False),
        (e.k, "eval.k", 0, False), (e.batch_size, "eval.batch_size", 1, False),
        (e.temperature, "eval.temperature", 0, False),
        (m.max_new_tokens, "model.max_new_tokens", 1, False),
    ]


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _check_model_folder(cfg: RunConfig) -> None:
    """A local model folder must hold a config and a tokenizer (a hub id is checked when loaded)."""
    name = cfg.model.name_or_path
    if name == "tiny":
        return
    p = Path(name).expanduser()
    if not p.exists():
        if name.startswith(("/", ".", "~")):
            raise UserError(f"model folder {name} does not exist; check model.name_or_path")
        return
    if not p.is_dir():
        raise UserError(f"model.name_or_path {name} is a file; give the Hugging Face checkpoint folder")
    if not (p / "config.json").is_file():
        raise UserError(f"model folder {p} has no config.json; point model.name_or_path at a "
                        "Hugging Face checkpoint folder")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"model folder {p} has no tokenizer ({', '.join(TOKENIZER_FILES)}); "
                        "save the tokenizer into it (tokenizer.save_pretrained)")


def _check_writable(path: Path, what: str) -> None:
    from ufo_rl.io import output_folder_problem

    problem = output_folder_problem(path)
    if problem:
        raise UserError(f"{what}: {problem}")


def make_plan(cfg: RunConfig) -> dict:
    """Validate everything that can be checked without a model; return a printable plan."""
    from ufo_rl.scorers import get_scorer

    if cfg.stage not in STAGES:
        raise UserError(f"unknown stage {cfg.stage!r}; use one of {', '.join(STAGES)}")
    if cfg.trainer.budget not in BUDGETS:
        raise UserError(f"unknown trainer.budget {cfg.trainer.budget!r}; use steps or epochs")
    scorer = get_scorer(cfg.selector.name)
    rule = default_rule(cfg.selector.name, cfg.selector.rule)
    if rule not in RULES:
        raise UserError(f"unknown selector.rule {rule!r}; known: {', '.join(sorted(RULES))}")
    if not 0 < cfg.selector.fraction <= 1:
        raise UserError(f"selector.fraction must be in (0, 1], got {cfg.selector.fraction}")
    for value, name, low, strict in _ranges(cfg):
        if value < low or (strict and value == low):
            raise UserError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
    if rule == "bin" and not 0 <= cfg.selector.bin_index < cfg.selector.n_bins:
        raise UserError(f"selector.bin_index must be in [0, {cfg.selector.n_bins}), got {cfg.selector.bin_index}")
    if rule == "value_bin":
        # K samples give K+1 pass-rate values, and every bin holds at least bin_min_share
        s = cfg.selector
        if not 0 < s.bin_min_share <= 1:
            raise UserError(f"selector.bin_min_share must be in (0, 1], got {s.bin_min_share}")
        most = min(s.k + 1, int(1 / s.bin_min_share))
        if not 0 <= s.bin_index < most:
            raise UserError(f"selector.bin_index must be in [0, {most}) for K={s.k} samples and bins of at "
                            f"least {s.bin_min_share:.0%} of the pool, got {s.bin_index}")
    from ufo_rl.scorers import TOKENIZATIONS

    if cfg.selector.tokenization not in TOKENIZATIONS:
        raise UserError(f"unknown selector.tokenization {cfg.selector.tokenization!r}; use {', '.join(TOKENIZATIONS)}")
    for key, knob in scorer.knobs.items():
        if knob.choices and getattr(cfg.selector, key) not in knob.choices:
            raise UserError(f"unknown selector.{key} {getattr(cfg.selector, key)!r}; use {', '.join(knob.choices)}")
    if cfg.dataset.on_long_prompt not in ("error", "skip"):
        raise UserError(f"unknown dataset.on_long_prompt {cfg.dataset.on_long_prompt!r}; use error or skip")
    if cfg.dataset.max_prompt_tokens is not None and cfg.dataset.max_prompt_tokens < 1:
        raise UserError(f"dataset.max_prompt_tokens must be >= 1 or null, got {cfg.dataset.max_prompt_tokens}")
    if cfg.model.generation_backend not in ("hf", "vllm"):
        raise UserError(f"unknown model.generation_backend {cfg.model.generation_backend!r}; use hf or vllm")
    import torch

    from ufo_rl.models import resolve_dtype

    resolve_dtype(cfg.model, torch.device("cpu"))  # an unknown dtype name is one line
    if scorer.needs_model or cfg.stage in ("train", "all"):
        _check_model_folder(cfg)
    from ufo_rl.data.loaders import check_dataset_config

    for ds in [cfg.dataset, *cfg.eval.benchmarks.values()]:
        check_dataset_config(ds)
    if cfg.stage != "plan":
        _check_writable(cache_root(cfg), "cache_dir")
    return {
        "experiment": cfg.experiment,
        "stage": cfg.stage,
        "model": cfg.model.name_or_path,
        "dataset": f"{cfg.dataset.name} ({cfg.dataset.kind})",
        "selector": cfg.selector.name,
        "rule": rule,
        "signal": cfg.selector.signal or scorer.signal,
        "fraction": 1.0 if rule == "all" else cfg.selector.fraction,
        "budget": cfg.trainer.budget,
        "benchmarks": sorted(cfg.eval.benchmarks),
        "seed": cfg.seed,
        "run_dir": cfg.run_dir,
    }


def check_sizes(cfg: RunConfig, pool: list[Problem]) -> None:
    """The subset the rule keeps from this pool is not empty (the same rounding as the rules)."""
    rule = default_rule(cfg.selector.name, cfg.selector.rule)
    if rule == "bin":
        if len(pool) < cfg.selector.n_bins:
            raise UserError(f"a pool of {len(pool)} cannot be split into {cfg.selector.n_bins} bins; "
                            "lower selector.n_bins")
    elif rule != "all":
        n_keep(len(pool), cfg.selector.fraction)
    if cfg.stage in ("train", "all") and rule not in ("all", *BIN_RULES):
        # the subset must fill one optimizer step (ufo_rl/budget.py; checked again after the
        # over-long prompts are dropped), found now rather than after an hour of scoring
        from ufo_rl import dist
        from ufo_rl.budget import prompts_per_step

        k, per_step = n_keep(len(pool), cfg.selector.fraction), prompts_per_step(cfg.trainer, dist.world_size())
        if k < per_step:
            raise UserError(f"selector.fraction={cfg.selector.fraction} keeps {k} of {len(pool)} prompts, fewer "
                            f"than one optimizer step takes ({per_step}); raise the pool or the fraction, or "
                            "lower trainer.per_device_prompts")


def cache_root(cfg: RunConfig) -> Path:
    """The score cache's folder: ``cache_dir``, else ``<results_dir>/cache``."""
    return Path(cfg.cache_dir or Path(cfg.results_dir) / "cache").expanduser()


def cap_prompts(pool: list[Problem], tok, system_prompt: str, ds) -> tuple[list[Problem], list[str]]:
    """The pool without the prompts over ``ds.max_prompt_tokens`` (counted with the chat template
    and ``system_prompt``), and the ids of those dropped, when ``ds.on_long_prompt`` is ``skip``;
    with ``error`` a long prompt is bad input."""
    import sys

    from ufo_rl.models import build_prompt

    prompts = [build_prompt(tok, p.question, system_prompt) for p in pool]
    lengths = [len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"]]
    long = [(p, n) for p, n in zip(pool, lengths) if n > ds.max_prompt_tokens]
    if not long:
        return pool, []
    if ds.on_long_prompt != "skip":
        p, n = long[0]
        raise UserError(f"{ds.name}: problem {p.id!r} has a prompt of {n} tokens, over dataset.max_prompt_tokens="
                        f"{ds.max_prompt_tokens} ({len(long)} prompts in all); raise the cap or set "
                        "dataset.on_long_prompt=skip")
    ids = {p.id for p, _ in long}
    kept = [p for p in pool if p.id not in ids]
    if not kept:
        raise UserError(f"{ds.name}: every prompt is over dataset.max_prompt_tokens={ds.max_prompt_tokens}; "
                        "raise the cap")
    dropped = [p.id for p, _ in long]
    print(f"{ds.name}: skipped {len(long)} prompts over {ds.max_prompt_tokens} tokens "
          f"(first: {', '.join(dropped[:5])})", file=sys.stderr)
    return kept, dropped
