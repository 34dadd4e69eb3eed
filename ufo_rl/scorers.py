"""Scorers by name: each turns a pool of problems into per-prompt columns and a cost record.

``ufo`` lives here; ``multisample``, ``random`` and ``full`` live in ``baselines/`` and register
themselves on import. The name is the same string everywhere: the YAML file in
``conf/selector/``, the registry key, and the ``selector`` column of the results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ufo_rl.config import ModelConfig, SelectorConfig
from ufo_rl.errors import UserError
from ufo_rl.models import build_continuation, build_prompt, template_keeps_system
from ufo_rl.problems import Problem


@dataclass
class ScoreContext:
    """What a scorer may use. ``model``/``tok`` are None for scorers that need no model."""

    model: object
    tok: object
    model_cfg: ModelConfig
    cfg: SelectorConfig
    progress: bool = False
    # a ufo_rl.generation.Generator for scorers that sample (None: HF generate on `model`)
    generator: object = None


@dataclass
class ScoreChunk:
    """Scores of a slice of the pool: per-problem columns, summed costs, kept samples."""

    columns: dict[str, list]
    forward_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    samples: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: Callable[[ScoreContext, Sequence[Problem]], ScoreChunk]
    needs_model: bool
    # the column the selection rule reads by default
    signal: str | None
    # whether it samples completions (then a vLLM generator can stand in for the HF model)
    samples: bool = False
    # which config fields change the scores (the cache key); fields that only change speed
    # (batch size, bucketing) are left out so a faster rerun still hits the cache
    key_fields: tuple[str, ...] = ()


SCORERS: dict[str, Scorer] = {}
COLUMNS = ("prompt", "target", "logprob_mean", "confidence", "pass_rate", "n_samples")


def register_scorer(name: str, needs_model: bool = True, signal: str | None = None,
                    samples: bool = False, key_fields: tuple[str, ...] = ()):
    def deco(fn):
        SCORERS[name] = Scorer(name, fn, needs_model, signal, samples, key_fields)
        return fn

    return deco


def get_scorer(name: str) -> Scorer:
    import baselines  # noqa: F401  (registers multisample, random, full)

    if name not in SCORERS:
        raise UserError(f"unknown selector {name!r}; known: {', '.join(sorted(SCORERS))}")
    return SCORERS[name]


def empty_columns(n: int) -> dict[str, list]:
    return {"prompt": [""] * n, "target": [""] * n, "logprob_mean": [None] * n,
            "confidence": [None] * n, "pass_rate": [None] * n, "n_samples": [None] * n}


def prompts_for(ctx: ScoreContext, problems: Sequence[Problem]) -> list[str]:
    return [build_prompt(ctx.tok, p.question, ctx.model_cfg.system_prompt) for p in problems]


def ufo_targets(ctx: ScoreContext, problems: Sequence[Problem], prompts: list[str]):
    """(prefixes, targets, generated tokens) for the configured target variant.

    - ``answer``: prompt + answer prefix (the paper's ``"<answer> "``), target = gold final answer;
    - ``solution``: prompt, target = the whole worked solution;
    - ``greedy``: prompt, target = the model's own greedy completion (costs a generation).
    """
    target = ctx.cfg.target
    if target == "answer":
        return [p + ctx.model_cfg.answer_prefix for p in prompts], [q.answer for q in problems], 0
    if target == "solution":
        missing = [q.id for q in problems if not q.solution]
        if missing:
            raise UserError(f"selector.target=solution needs worked solutions; {len(missing)} problems "
                            f"have none (first: {missing[0]}); use selector.target=answer")
        return prompts, [q.solution for q in problems], 0
    if target == "greedy":
        from ufo_rl.generation import HFGenerator, SamplingParams

        gen = HFGenerator(ctx.model, ctx.tok, batch_size=ctx.cfg.batch_size)
        outs = gen.generate(prompts, SamplingParams(n=1, temperature=0.0,
                                                    max_new_tokens=ctx.model_cfg.max_new_tokens,
                                                    stop=tuple(ctx.model_cfg.stop)), ctx.progress)
        return prompts, [o[0].text for o in outs], gen.stats.generated_tokens
    raise UserError(f"unknown selector.target {target!r}; use answer, solution or greedy")


TOKENIZATIONS = ("auto", "joint", "split")


def resolve_tokenization(value: str, tok) -> str:
    """``joint`` or ``split`` for ``selector.tokenization=value`` with tokenizer ``tok``: auto is
    joint when the chat template renders a system message (real chat models), else split (the
    tiny model, whose template drops the system prompt, and models without a template)."""
    if value not in TOKENIZATIONS:
        raise UserError(f"unknown selector.tokenization {value!r}; use {', '.join(TOKENIZATIONS)}")
    if value != "auto":
        return value
    return "joint" if template_keeps_system(tok) else "split"


def tokenization_for_key(selector_cfg: SelectorConfig, model_cfg: ModelConfig) -> str:
    """The resolved tokenization for the score cache key, before the model is loaded: auto reads
    the model's tokenizer (cheap next to the weights; the folder is resolved already)."""
    value = selector_cfg.tokenization
    if value != "auto":
        return resolve_tokenization(value, None)
    from ufo_rl.models import load_tokenizer, resolve_model_path

    try:
        tok = load_tokenizer(resolve_model_path(model_cfg, progress=False), model_cfg)
    except Exception:  # loading the model reports it in one line; the key stays "auto"
        return "auto"
    return resolve_tokenization(value, tok)


@register_scorer("ufo", signal="confidence",
                 key_fields=("target", "tokenization"))
def score_ufo(ctx: ScoreContext, problems: Sequence[Problem]) -> ScoreChunk:
    """One teacher-forced forward pass per prompt (PAPER.md Sec. 4): Conf and s = exp(Conf).

    With ``joint`` tokenization the scored string is the chat whose assistant turn is continued
    by the target (answer_prefix + gold for ``target=answer``), tokenised at once; the ``prompt``
    column then holds that string without the target."""
    from ufo_rl.scoring import encode_joint, encode_pairs, mean_target_logprob

    t0 = _sync_time(ctx)
    mode = resolve_tokenization(ctx.cfg.tokenization, ctx.tok)
    prompts = prompts_for(ctx, problems)
    prefixes, targets, generated = ufo_targets(ctx, problems, prompts)
    if mode == "joint":
        lead = ctx.model_cfg.answer_prefix if ctx.cfg.target == "answer" else ""
        texts = [build_continuation(ctx.tok, p.question, ctx.model_cfg.system_prompt, lead + t)
                 for p, t in zip(problems, targets)]
        pairs = encode_joint(ctx.tok, texts, targets)
        prefixes = [x[: len(x) - len(t.rstrip())] if t.rstrip() and x.endswith(t.rstrip()) else x
                    for x, t in zip(texts, targets)]
    else:
        pairs = encode_pairs(ctx.tok, prefixes, targets)
    res = mean_target_logprob(ctx.model, pairs, ctx.tok.pad_token_id, ctx.cfg.batch_size,
                              ctx.cfg.bucket, ctx.progress)
    seconds = _sync_time(ctx) - t0
    cols = empty_columns(len(problems))
    cols.update(prompt=prefixes, target=targets, logprob_mean=res.logprob_mean.tolist(),
                confidence=np.exp(res.logprob_mean).tolist())
    return ScoreChunk(cols, forward_tokens=res.forward_tokens, generated_tokens=generated, seconds=seconds)


def _sync_time(ctx: ScoreContext) -> float:
    """Wall clock after the device has finished queued work (so GPU timings are honest)."""
    import torch

    if ctx.model is not None and next(ctx.model.parameters()).is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter()
