"""Experiment tracking for the GRPO stage: ``trainer.report_to``, offline by default.

``train.jsonl`` stays the source of every table and figure (:mod:`ufo_rl.report`); a tracker
only mirrors the Trainer's logs for browsing. Each tracker works without a network:

- ``tensorboard`` writes event files under ``<run>/tensorboard`` (transformers'
  ``TensorBoardCallback`` reads ``TENSORBOARD_LOGGING_DIR``; without it the events would go under
  ``<run>/checkpoints/runs``);
- ``wandb`` runs with ``WANDB_MODE=offline`` unless the user set ``WANDB_MODE``, and writes under
  ``<run>/wandb`` (``WANDB_DIR``); ``wandb sync <run>/wandb/offline-run-*`` uploads it later;
- ``trackio`` is local unless a Space is named (``trainer.extra.trackio_space_id``): one
  database per project under ``$HF_HOME/trackio`` (``TRACKIO_DIR``, read when trackio is
  imported, moves it), the project being ``trainer.extra.project`` (transformers' default
  ``huggingface``); ``trackio show`` opens it.

The helpers are pure: :func:`report_targets` and :func:`missing_packages` check the value and
what is installed, :func:`tracking_env` returns the environment a run needs; ``train.grpo_args``
applies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path

from ufo_rl.errors import UserError

# trainer.report_to values, and the modules any of which makes each one work (transformers'
# is_tensorboard_available accepts tensorboard or tensorboardX)
TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",), "wandb": ("wandb",)}
TENSORBOARD_DIR = "tensorboard"


def report_targets(value: str | Sequence[str] | None) -> list[str]:
    """``trainer.report_to`` as the list ``trl.GRPOConfig`` takes; ``"none"`` (or empty) is ``[]``.

    >>> report_targets("none"), report_targets("wandb"), report_targets(["tensorboard", "wandb"])
    ([], ['wandb'], ['tensorboard', 'wandb'])
    >>> report_targets("mlflow")
    Traceback (most recent call last):
    ...
    ufo_rl.errors.UserError: unknown trainer.report_to 'mlflow'; use none or any of tensorboard, trackio, wandb
    """
    names = [value] if isinstance(value, str) or value is None else list(value)
    names = [n for n in names if n not in (None, "none", "")]
    for n in names:
        if n not in TRACKERS:
            raise UserError(f"unknown trainer.report_to {n!r}; use none or any of {', '.join(TRACKERS)}")
    return list(dict.fromkeys(names))


def missing_packages(targets: Sequence[str]) -> list[str]:
    """The trackers of ``targets`` whose package is not installed."""
    return [t for t in targets if not any(find_spec(m) for m in TRACKERS[t])]


def check_report_to(value: str | Sequence[str] | None) -> list[str]:
    """:func:`report_targets`, and a one-line :class:`UserError` when a tracker is not installed."""
    targets = report_targets(value)
    missing = missing_packages(targets)
    if missing:
        raise UserError(f"trainer.report_to={missing[0]} needs the {missing[0]} package; "
                        f"pip install {missing[0]} (or set trainer.report_to=none)")
    return targets


def tracking_env(targets: Sequence[str], run_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Environment variables the trackers of ``targets`` need to log offline under ``run_dir``.

    The folders are set for every run (a sweep runs several in one process); ``WANDB_MODE`` only
    when the user has not set it.

    >>> tracking_env(["tensorboard", "wandb"], Path("r"), {})
    {'TENSORBOARD_LOGGING_DIR': 'r/tensorboard', 'WANDB_DIR': 'r', 'WANDB_MODE': 'offline'}
    >>> tracking_env(["wandb"], Path("r"), {"WANDB_MODE": "online"})
    {'WANDB_DIR': 'r'}
    """
    env = {}
    if "tensorboard" in targets:
        env["TENSORBOARD_LOGGING_DIR"] = str(Path(run_dir) / TENSORBOARD_DIR)
    if "wandb" in targets:
        env["WANDB_DIR"] = str(run_dir)
        if "WANDB_MODE" not in environ:
            env["WANDB_MODE"] = "offline"
    return env
