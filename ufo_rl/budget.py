"""Training budgets in optimizer steps, for any number of processes: the arithmetic in one place.

One optimizer step of TRL's GRPO takes a *global batch* of prompts, each sampled
``num_generations`` times::

    prompts per step = per_device_prompts x gradient_accumulation_steps x processes

(TRL's ``per_device_train_batch_size`` counts completions: ``per_device_prompts x
num_generations``; its generation batch is that x processes x accumulation, one per optimizer
step.) The two budgets of ``trainer.budget`` (README, "What the suite does"):

- ``steps``: ``max_steps`` optimizer updates of that global batch, the same for every selector
  (equal compute);
- ``epochs``: ``ceil(epochs x n_train / prompts per step)`` updates, so every selector makes the
  same number of passes over its own subset whatever the process count, and a bigger subset
  costs proportionally more (the paper's training-time comparison, arXiv 2505.12457, Table 6).

``n_train`` counts the prompts that are trained on: the subset less the prompts dropped for
being over ``trainer.max_prompt_length`` (ufo_rl/train.py). TRL's sampler forms only whole
global batches, so a subset smaller than one is refused here rather than trained for no step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ufo_rl.config import BUDGETS, TrainerConfig
from ufo_rl.errors import UserError


@dataclass(frozen=True)
class Budget:
    """What one run trains: ``steps`` updates of ``prompts_per_step`` prompts over ``n_train``."""

    steps: int
    prompts_per_step: int  # global: all processes and accumulation steps together
    world_size: int
    n_train: int
    n_dropped: int

    @property
    def passes(self) -> float:
        """Passes over the trained prompts that the steps amount to."""
        return self.steps * self.prompts_per_step / self.n_train

    def record(self) -> dict:
        return {**asdict(self), "passes": self.passes}


def prompts_per_step(cfg: TrainerConfig, world_size: int = 1) -> int:
    """Prompts per optimizer step over all ``world_size`` processes (each sampled
    ``num_generations`` times).

    >>> prompts_per_step(TrainerConfig(per_device_prompts=2, gradient_accumulation_steps=8), 8)
    128
    """
    return cfg.per_device_prompts * cfg.gradient_accumulation_steps * world_size


def completions_per_device_step(cfg: TrainerConfig) -> int:
    """TRL's ``per_device_train_batch_size``: completions per process and micro-step."""
    return cfg.per_device_prompts * cfg.num_generations


def total_steps(cfg: TrainerConfig, n_train: int, world_size: int = 1) -> int:
    """Optimizer steps for the budget: fixed (``steps``) or proportional to ``n_train`` (``epochs``).

    >>> total_steps(TrainerConfig(budget="epochs", epochs=1.0, per_device_prompts=8), 200)
    25
    >>> total_steps(TrainerConfig(budget="epochs", epochs=1.0, per_device_prompts=8), 200, world_size=2)
    13
    >>> total_steps(TrainerConfig(budget="steps", max_steps=40), 200, world_size=8)
    40
    """
    if cfg.budget == "steps":
        steps = cfg.max_steps
    elif cfg.budget == "epochs":
        steps = math.ceil(cfg.epochs * n_train / prompts_per_step(cfg, world_size))
    else:
        raise UserError(f"unknown trainer.budget {cfg.budget!r}; use one of {', '.join(BUDGETS)}")
    if steps < 1:
        raise UserError(f"the training budget comes to {steps} steps; raise trainer.max_steps or trainer.epochs")
    return steps


def plan_budget(cfg: TrainerConfig, n_subset: int, n_dropped: int = 0, world_size: int = 1) -> Budget:
    """The budget of a run on ``n_subset`` selected prompts of which ``n_dropped`` were dropped as
    over-long, launched on ``world_size`` processes."""
    n_train = n_subset - n_dropped
    per_step = prompts_per_step(cfg, world_size)
    if n_train < per_step:
        raise UserError(
            f"{n_train} prompts to train on, fewer than one optimizer step takes ({per_step} = "
            f"trainer.per_device_prompts {cfg.per_device_prompts} x trainer.gradient_accumulation_steps "
            f"{cfg.gradient_accumulation_steps} x {world_size} processes); lower trainer.per_device_prompts "
            "or select more prompts")
    return Budget(total_steps(cfg, n_train, world_size), per_step, world_size, n_train, n_dropped)
