"""Small builders shared by tests: a random tiny model saved as a real HF folder, in a second."""

from __future__ import annotations

from pathlib import Path

import torch

from ufo_rl.config import TinyConfig
from ufo_rl.tiny_model import build_config, build_tokenizer

MICRO = TinyConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=256)


def save_random_model(path: Path, seed: int = 0, recipe: TinyConfig = MICRO) -> Path:
    """An untrained char-level Llama with the tiny model's tokenizer and chat template."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    tok = build_tokenizer()
    model = LlamaForCausalLM(build_config(recipe, tok))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def load_bench_script(name: str):
    """A script under ``bench/`` imported as a module (``bench`` is not a package)."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(f"bench_{name}", root / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
