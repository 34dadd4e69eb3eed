"""Training budgets for 1, 2 and 8 processes (ufo_rl/budget.py), and the GRPOConfig TRL gets."""

from __future__ import annotations

import pytest

from ufo_rl.budget import Budget, completions_per_device_step, plan_budget, prompts_per_step, total_steps
from ufo_rl.config import TrainerConfig
from ufo_rl.errors import UserError

WORLDS = (1, 2, 8)


def trainer(**kw) -> TrainerConfig:
    return TrainerConfig(**{"per_device_prompts": 2, "num_generations": 4, "gradient_accumulation_steps": 3, **kw})


@pytest.mark.parametrize("world", WORLDS)
def test_global_batch_counts_every_process_and_accumulation_step(world):
    assert prompts_per_step(trainer(), world) == 2 * 3 * world
    assert completions_per_device_step(trainer()) == 2 * 4


@pytest.mark.parametrize("world", WORLDS)
def test_equal_steps_gives_max_steps_updates_of_the_global_batch(world):
    b = plan_budget(trainer(budget="steps", max_steps=40), n_subset=500, world_size=world)
    assert (b.steps, b.prompts_per_step, b.world_size) == (40, 6 * world, world)
    assert b.passes == pytest.approx(40 * 6 * world / 500)


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("epochs", [0.5, 1.0, 3.0])
def test_equal_epochs_gives_the_same_passes_whatever_the_process_count(world, epochs):
    n = 1000
    b = plan_budget(trainer(budget="epochs", epochs=epochs), n_subset=n, world_size=world)
    # the fewest whole steps that visit epochs x n prompts
    assert b.steps * b.prompts_per_step >= epochs * n > (b.steps - 1) * b.prompts_per_step
    assert b.passes == pytest.approx(epochs, abs=b.prompts_per_step / n)


def test_epochs_over_more_processes_take_fewer_steps_of_a_bigger_batch():
    steps = {w: plan_budget(trainer(budget="epochs"), 960, world_size=w).steps for w in WORLDS}
    assert steps == {1: 160, 2: 80, 8: 20}


def test_dropped_prompts_are_not_counted():
    cfg = trainer(budget="epochs", epochs=1.0)
    b = plan_budget(cfg, n_subset=120, n_dropped=24, world_size=2)
    assert (b.n_train, b.n_dropped, b.steps) == (96, 24, 8)  # 96 / 12, not ceil(120 / 12) = 10
    assert plan_budget(trainer(budget="steps", max_steps=5), 120, 24, 2).steps == 5


def test_a_subset_smaller_than_one_global_batch_is_refused():
    assert plan_budget(trainer(), n_subset=48, world_size=8).steps == 60
    with pytest.raises(UserError, match=r"47 prompts to train on, fewer than one optimizer step takes \(48"):
        plan_budget(trainer(), n_subset=50, n_dropped=3, world_size=8)


def test_single_process_budget_is_the_old_one():
    """The old ``train.total_steps`` (one process, before any drop) is the world-size-1 case."""
    from ufo_rl import train

    assert train.total_steps is total_steps and train.prompts_per_step is prompts_per_step
    assert total_steps(TrainerConfig(budget="epochs", epochs=2.0, per_device_prompts=4), 10) == 5
    assert isinstance(plan_budget(TrainerConfig(per_device_prompts=4), 10), Budget)


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("budget", ["steps", "epochs"])
def test_grpo_config_takes_the_budgets_global_batch(world, budget, tmp_path, monkeypatch):
    """TRL derives its generation batch from ``per_device_train_batch_size`` (completions), the
    process count and the accumulation steps; one generation batch per optimizer step must hold
    exactly the budget's global batch of prompts, each ``num_generations`` times. The process
    count is what ``GRPOConfig.world_size`` reads from accelerate, set here without a launch."""
    from trl import GRPOConfig

    from ufo_rl.train import grpo_args

    monkeypatch.setattr(GRPOConfig, "world_size", property(lambda self: world))
    cfg = trainer(budget=budget, max_steps=7, epochs=1.0)
    b = plan_budget(cfg, n_subset=200, world_size=world)
    args = grpo_args(cfg, tmp_path, b.steps, seed=0, progress=False)
    assert args.world_size == world and args.max_steps == b.steps
    assert args.per_device_train_batch_size == completions_per_device_step(cfg)
    assert args.steps_per_generation == args.gradient_accumulation_steps == cfg.gradient_accumulation_steps
    assert args.generation_batch_size == b.prompts_per_step * cfg.num_generations
    assert args.generation_batch_size % cfg.num_generations == 0
