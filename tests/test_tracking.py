"""``trainer.report_to``: the trackers reach ``trl.GRPOConfig``, offline and under the run folder.

No tracker package is needed: :func:`ufo_rl.tracking.missing_packages` is stubbed where a test
names one, and nothing trains.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from ufo_rl import tracking
from ufo_rl.config import TrainerConfig
from ufo_rl.errors import UserError
from ufo_rl.train import grpo_args


@pytest.fixture
def clean_env(monkeypatch):
    """No tracker settings from the caller's shell; whatever grpo_args sets is undone after."""
    for key in ("TENSORBOARD_LOGGING_DIR", "WANDB_DIR", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(tracking, "missing_packages", lambda targets: [])
    return monkeypatch


def args_for(report_to, run_dir):
    return grpo_args(dataclasses.replace(TrainerConfig(), report_to=report_to), run_dir, steps=2, seed=0,
                     progress=False)


def test_default_reports_nowhere(tmp_path, clean_env):
    args = args_for(TrainerConfig().report_to, tmp_path / "run")
    assert args.report_to == [] and "TENSORBOARD_LOGGING_DIR" not in os.environ


def test_tensorboard_logs_inside_the_run_folder(tmp_path, clean_env):
    run = tmp_path / "ufo-top_mid-seed0-abcd1234"
    args = args_for("tensorboard", run)
    assert args.report_to == ["tensorboard"] and args.run_name == run.name
    logdir = os.environ["TENSORBOARD_LOGGING_DIR"]  # what transformers' TensorBoardCallback reads
    assert logdir == str(run / "tensorboard") and (run / "tensorboard").is_relative_to(run)


def test_wandb_is_offline_unless_the_user_says_otherwise(tmp_path, clean_env):
    args = args_for(["wandb", "tensorboard"], tmp_path / "run")
    assert args.report_to == ["wandb", "tensorboard"]
    assert os.environ["WANDB_MODE"] == "offline" and os.environ["WANDB_DIR"] == str(tmp_path / "run")
    clean_env.setenv("WANDB_MODE", "online")
    args_for("wandb", tmp_path / "run")
    assert os.environ["WANDB_MODE"] == "online"


@pytest.mark.parametrize("value", ["mlflow", ["tensorboard", "comet_ml"]])
def test_an_unknown_tracker_is_one_line(tmp_path, clean_env, value):
    with pytest.raises(UserError, match="unknown trainer.report_to") as e:
        args_for(value, tmp_path / "run")
    assert "\n" not in str(e.value) and "tensorboard, trackio, wandb" in str(e.value)


def test_a_tracker_that_is_not_installed_is_one_line(tmp_path, clean_env):
    clean_env.setattr(tracking, "missing_packages", lambda targets: list(targets))
    with pytest.raises(UserError, match="pip install trackio") as e:
        args_for("trackio", tmp_path / "run")
    assert "\n" not in str(e.value)
