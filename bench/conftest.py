"""Fixtures for the benchmarks: the model under test (built once, cached) and its config.

``UFO_BENCH_MODEL`` picks it: ``tiny`` (default, the embedded model), a local folder or hub id,
or ``random-0.5b``: a randomly initialised Llama shaped like Qwen2.5-0.5B (896 hidden, 24 layers,
14 heads, 2 KV heads) with the tiny model's character tokenizer. Its weights mean nothing, so its
answers are noise (on one H200 it generated 62 of 96 tokens per sample on average on the embedded
pool and 94 of 256 on GSM8K, ``results/bench/scoring_speed-h200-random05b.json``); it exists to
time real-size forward passes where no real weights can be had (offline GPU box).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


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


@pytest.fixture(scope="session")
def default_model():
    from ufo_rl.config import ModelConfig
    from ufo_rl.models import load_model

    name = os.environ.get("UFO_BENCH_MODEL", "tiny")
    if name == "random-0.5b":
        name = str(random_05b(Path(tempfile.gettempdir()) / "ufo-rl-random-0.5b"))
    threads = int(os.environ.get("UFO_BENCH_THREADS", "0")) or None
    cfg = ModelConfig(name_or_path=name, threads=threads)
    model, tok, info = load_model(cfg, progress=True)
    info["bench_model"] = os.environ.get("UFO_BENCH_MODEL", "tiny")
    return model, tok, cfg, info
