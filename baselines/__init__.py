"""Baseline selectors; importing this package registers them by name."""

from baselines import full, multisample, random_subset  # noqa: F401
