"""Shared test helpers: where the project and the reference data live, and how to skip without them.

The reference benchmarks in ``../shared/data`` are optional: tests that read them take the
``shared_data`` / ``shared_problems`` fixtures (or the ``needs_shared_data`` marker) and skip
cleanly when the folder is absent. Tests use the fixtures rather than ``from conftest import``:
with several conftest files the module name ``conftest`` is ambiguous. No test downloads
anything: the benchmark configs in ``conf/dataset`` name hub sets, and these helpers point them
at the local copies instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ufo_rl.config import DatasetConfig
from ufo_rl.problems import Problem

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

# conf/dataset/<name>.yaml -> its local copy under ../shared/data (see the README there)
SHARED_FILES = {
    "gsm8k": "gsm8k/train.jsonl",
    "gsm8k_test": "gsm8k/test.jsonl",
    "math500": "math500/test.jsonl",
    "aime24": "aime24/test.jsonl",
    "amc23": "amc23/test.jsonl",
}

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"reference data not found at {SHARED_DATA}"
)


def load_dataset_config(name: str, **overrides) -> DatasetConfig:
    """``conf/dataset/<name>.yaml`` merged onto the schema (unknown keys fail), then overrides."""
    node = OmegaConf.merge(
        OmegaConf.structured(DatasetConfig), OmegaConf.load(CONF_DIR / "dataset" / f"{name}.yaml")
    )
    return dataclasses.replace(OmegaConf.to_object(node), **overrides)


@pytest.fixture
def dataset_config() -> Callable[..., DatasetConfig]:
    """``dataset_config(name, **overrides)``: see :func:`load_dataset_config`."""
    return load_dataset_config


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def _shared_cache() -> dict[str, list[Problem]]:
    return {}


@pytest.fixture
def shared_problems(_shared_cache) -> Callable[[str], list[Problem]]:
    """``shared_problems(name)``: benchmark ``name`` loaded through its own config from the local
    copy (kind=jsonl), cached for the session; skips the test when the file is absent."""
    from ufo_rl.data.loaders import load_problems

    def load(name: str) -> list[Problem]:
        if name not in _shared_cache:
            path = SHARED_DATA / SHARED_FILES[name]
            if not path.is_file():
                pytest.skip(f"reference file not found: {path}")
            cfg = load_dataset_config(name, kind="jsonl", path=str(path))
            _shared_cache[name] = load_problems(cfg)
        return _shared_cache[name]

    return load
