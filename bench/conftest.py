"""Fixtures for the benchmarks: the embedded default model (built once, cached) and prompts."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def default_model():
    from ufo_rl.config import ModelConfig
    from ufo_rl.models import load_model

    threads = int(os.environ.get("UFO_BENCH_THREADS", "0")) or None
    cfg = ModelConfig(threads=threads)
    model, tok, info = load_model(cfg, progress=True)
    return model, tok, cfg, info
