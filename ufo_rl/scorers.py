"""Scorers by name: each turns a pool of problems into per-prompt columns and a cost record.

This registry is the one place that knows what a selector is: besides its scoring function, each
entry records the signal column its rule reads, the rule and fraction of its
``conf/selector/<name>.yaml``, the settings (knobs) that set a variant apart, and whether it is a
baseline every variant is compared with. The pipeline writes the variant label
(:meth:`Scorer.label`) into ``meta.json``; the report reads it there, or asks the registry for a
folder written before the label was recorded, and never branches on selector names.

``ufo`` lives here. The others are plug-ins found through the entry-point group
``ufo_rl.scorers`` (``pyproject.toml``), imported on the first lookup: the baselines
``multisample``, ``random`` and ``full`` ship in ``baselines/`` (installed as the package
``ufo_rl_baselines``), which imports every module of its folder, so a new scorer is one module
there plus its ``conf/selector/<name>.yaml``. The name is the same string everywhere: the YAML
file, the registry key, and the ``selector`` column of the results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ufo_rl.errors import UserError
from ufo_rl.selection import BIN_RULES

if TYPE_CHECKING:
    from ufo_rl.config import ModelConfig, SelectorConfig
    from ufo_rl.problems import Problem

# the entry-point group whose modules register scorers when imported (pyproject.toml)
ENTRY_POINT_GROUP = "ufo_rl.scorers"


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
class Knob:
    """A selector setting that sets a variant apart: the label names its value when that is not
    ``default`` (the value of the selector's YAML), written with ``label`` (``"k{}"``: ``k16``)."""

    default: Any
    label: str = "{}"
    # the values the plan accepts (empty: any)
    choices: tuple = ()


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: Callable[[ScoreContext, Sequence[Problem]], ScoreChunk]
    needs_model: bool
    # the column the selection rule reads by default; None: no signal, and `rule` is the only rule
    signal: str | None
    # whether it samples completions (then a vLLM generator can stand in for the HF model)
    samples: bool = False
    # which config fields change the scores (the cache key); fields that only change speed
    # (batch size, bucketing, prefix sharing) are left out so a faster rerun still hits the cache
    key_fields: tuple[str, ...] = ()
    # the rule and fraction of conf/selector/<name>.yaml: the label names any other
    rule: str = "top_mid"
    fraction: float = 0.1
    # settings named in the label when not at their default (selector config field -> Knob)
    knobs: Mapping[str, Knob] = field(default_factory=dict)
    # position among the baselines every variant is compared with (the report's differences
    # table, in this order); None: not a baseline
    baseline: int | None = None

    def resolve_rule(self, rule: str) -> str:
        """The rule a job applies: the configured one, or, for a scorer without a signal
        (``random``, ``full``), its own."""
        return self.rule if self.signal is None else rule

    def label(self, rule: str, signal: str | None, fraction, cfg: Mapping) -> str:
        """The variant label: the name plus what sets this run apart from the selector's YAML
        (``ufo-lowest``, ``multisample-valuebin3``, ``ufo-solution``, ``multisample-k16``,
        ``ufo-20%``). ``cfg`` is the selector config as a dict (``scoring.json``
        ``selector_config``).

        >>> s = Scorer("s", None, False, "confidence", knobs={"k": Knob(8, "k{}")})
        >>> s.label("top_mid", "confidence", 0.1, {"k": 8}), s.label("lowest", "pass_rate", 0.2, {"k": 4})
        ('s', 's-lowest-pass_rate-k4-20%')
        """
        parts = [self.name]
        if rule in BIN_RULES:
            parts.append(f"{rule.replace('_', '')}{cfg.get('bin_index', '?')}")
        elif rule != self.rule:
            parts.append(rule)
        if signal and self.signal and signal != self.signal:
            parts.append(signal)
        for key, knob in self.knobs.items():
            if cfg.get(key, knob.default) != knob.default:
                parts.append(knob.label.format(cfg[key]))
        if rule not in ("all", *BIN_RULES) and fraction is not None and not math.isclose(fraction, self.fraction):
            parts.append(f"{fraction:.0%}")
        return "-".join(parts)


SCORERS: dict[str, Scorer] = {}
# the entry points imported so far (name = module), or None before the first lookup
PLUGINS: list[str] | None = None


def register_scorer(name: str, needs_model: bool = True, signal: str | None = None, samples: bool = False,
                    key_fields: tuple[str, ...] = (), rule: str = "top_mid", fraction: float = 0.1,
                    knobs: Mapping[str, Knob] | None = None, baseline: int | None = None):
    """Register the decorated ``fn(ctx, problems) -> ScoreChunk`` as selector ``name`` (the
    fields are those of :class:`Scorer`). A name taken by another function is an error: two
    copies of one plug-in (say, imported under two package names) would otherwise shadow each
    other silently."""

    def deco(fn):
        old = SCORERS.get(name)
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise UserError(f"selector {name!r} is registered twice: by {old.fn.__module__}.{old.fn.__qualname__} "
                            f"and by {fn.__module__}.{fn.__qualname__}")
        SCORERS[name] = Scorer(name, fn, needs_model, signal, samples, key_fields, rule, fraction,
                               dict(knobs or {}), baseline)
        return fn

    return deco


def load_plugins() -> None:
    """Import, once, every module of the entry-point group ``ufo_rl.scorers``; each registers its
    scorers on import. A plug-in that fails to import is an error that names it."""
    global PLUGINS
    if PLUGINS is not None:
        return
    PLUGINS = []
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        PLUGINS.append(f"{ep.name} = {ep.value}")
        try:
            ep.load()
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"the scorer plug-in {ep.name} = {ep.value} (entry points {ENTRY_POINT_GROUP!r}) "
                            f"failed to import: {type(e).__name__}: {e}") from e


def scorers() -> dict[str, Scorer]:
    """Every registered scorer by name, plug-ins included."""
    load_plugins()
    return SCORERS


def get_scorer(name: str) -> Scorer:
    if name not in scorers():
        hint = "" if PLUGINS else (f" (no plug-in found in the entry points {ENTRY_POINT_GROUP!r}, which "
                                   "register the baselines: install the project, pip install -e .)")
        raise UserError(f"unknown selector {name!r}; known: {', '.join(sorted(SCORERS))}{hint}")
    return SCORERS[name]


def find_scorer(name: str | None) -> Scorer | None:
    """The registered scorer ``name``, or None (a run folder of a plug-in not installed here)."""
    return scorers().get(name) if name else None


def default_rule(name: str, rule: str) -> str:
    """The rule selector ``name`` applies when configured with ``rule`` (:meth:`Scorer.resolve_rule`;
    ``rule`` itself for an unknown name, which the plan reports)."""
    s = find_scorer(name)
    return s.resolve_rule(rule) if s is not None else rule


def variant_label(selector: str, rule: str, signal: str | None, fraction, cfg: Mapping) -> str:
    """:meth:`Scorer.label` of ``selector``. An unknown selector (a plug-in not installed here) is
    labelled against no defaults but the schema's fraction: its name, bin index and fraction."""
    s = find_scorer(selector) or Scorer(selector, None, False, None, rule=rule)
    return s.label(rule, signal, fraction, cfg)


def baselines() -> list[str]:
    """The names of the baselines every variant is compared with, in their order."""
    ranked = [s for s in scorers().values() if s.baseline is not None]
    return [s.name for s in sorted(ranked, key=lambda s: s.baseline)]


def empty_columns(n: int) -> dict[str, list]:
    return {"prompt": [""] * n, "target": [""] * n, "logprob_mean": [None] * n,
            "confidence": [None] * n, "pass_rate": [None] * n, "n_samples": [None] * n}


def prompts_for(ctx: ScoreContext, problems: Sequence[Problem]) -> list[str]:
    from ufo_rl.models import build_prompt

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
    from ufo_rl.models import template_keeps_system

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


@register_scorer("ufo", signal="confidence", key_fields=("target", "tokenization"),
                 knobs={"target": Knob("answer", choices=("answer", "solution", "greedy"))})
def score_ufo(ctx: ScoreContext, problems: Sequence[Problem]) -> ScoreChunk:
    """One teacher-forced forward pass per prompt (arXiv 2505.12457, Sec. 4): Conf and s = exp(Conf).

    With ``joint`` tokenization the scored string is the chat whose assistant turn is continued
    by the target (answer_prefix + gold for ``target=answer``), tokenised at once; the ``prompt``
    column then holds that string without the target."""
    from ufo_rl.models import build_continuation
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
                              ctx.cfg.bucket, ctx.progress, ctx.cfg.share_prefix)
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
