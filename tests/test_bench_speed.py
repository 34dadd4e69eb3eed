"""The benchmarks' bookkeeping, without timing anything: the reference ratios per machine class
(bench/reference_speedups.json) and how a run is held against them, and the useful-FLOP count
of bench/test_ufo_vs_authors.py."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import load_bench_script

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = json.loads((ROOT / "bench" / "reference_speedups.json").read_text())


@pytest.fixture
def speed(monkeypatch, tmp_path):
    monkeypatch.setenv("UFO_BENCH_OUT", str(tmp_path))
    return load_bench_script("test_scoring_speed")


def test_every_reference_names_its_class_sizes_and_source():
    assert {"cpu-tiny", "cpu-smollm2"} <= set(REFERENCES)
    for cls, pools in REFERENCES.items():
        device, model = cls.split("-", 1)
        assert device in ("cpu", "cuda") and model, cls
        for pool, ref in pools.items():
            assert pool in ("embedded", "gsm8k"), (cls, pool)
            assert ref["speedup"] > 0 and ref["n_prompts"] > 0 and ref["max_new_tokens"] > 0, (cls, pool)
            assert ref["measured"], (cls, pool)


def _fill(speed, model: str, device: str, multisample_factor: float = 1.0, n_prompts: int | None = None):
    """This run's timings as the committed cpu-tiny measurement, changed as asked."""
    measured = json.loads((ROOT / "results" / "bench" / "scoring_speed-cpu-tiny.json").read_text())
    speed.RESULTS.clear()
    for pool in ("embedded", "gsm8k"):
        for method in ("ufo", "multisample"):
            row = copy.deepcopy(measured[pool][method])
            row.update(device=device, model=model)
            if method == "multisample":
                row["seconds"] *= multisample_factor
            if n_prompts:
                row["n_prompts"] = n_prompts
            speed.RESULTS[f"{model}/{pool}/{method}"] = row


def test_a_run_is_held_against_half_the_reference_of_its_class(speed, tmp_path):
    assert speed.machine_class("cuda:0", "random-0.5b") == "cuda-random-0.5b"
    assert speed.machine_class("cpu", "smollm2") == "cpu-smollm2"
    _fill(speed, "tiny", "cpu")
    speed.test_speedup_ratio("tiny")  # the reference's own measurement passes
    assert json.loads((tmp_path / "scoring_speed-cpu-tiny.json").read_text())["machine_class"] == "cpu-tiny"
    _fill(speed, "tiny", "cpu", multisample_factor=0.4)  # multisample 2.5x faster: under half
    with pytest.raises(AssertionError, match="under 0.5 of the reference"):
        speed.test_speedup_ratio("tiny")


def test_other_sizes_and_provisional_references_are_not_asserted(speed):
    _fill(speed, "tiny", "cpu", multisample_factor=0.01, n_prompts=7)
    with pytest.raises(pytest.skip.Exception, match="sizes match none"):
        speed.test_speedup_ratio("tiny")
    provisional = {p: r for p, r in REFERENCES.get("cuda-random-0.5b", {}).items() if r.get("provisional")}
    if provisional:
        _fill(speed, "random-0.5b", "cuda:0", multisample_factor=0.01, n_prompts=provisional["embedded"]["n_prompts"])
        with pytest.raises(pytest.skip.Exception, match="provisional"):
            speed.test_speedup_ratio("random-0.5b")
    _fill(speed, "some-model", "cpu")
    with pytest.raises(pytest.skip.Exception, match="no reference speedup for machine class cpu-some-model"):
        speed.test_speedup_ratio("some-model")


def test_useful_flops_counts_the_weights_the_attention_and_the_read_logits(monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    sys.modules.pop("bench_test_ufo_vs_authors", None)
    bench = load_bench_script("test_ufo_vs_authors")
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    # every weight matrix of the decoder layers, counted from the model itself (norms have no matmul)
    matrices = sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear))
    lengths, targets = [5, 9], [2, 3]
    head_dim = 32 // 4
    expected = (2 * matrices * sum(lengths)
                + 4 * 4 * head_dim * 3 * sum(n * (n + 1) // 2 for n in lengths)
                + 2 * 32 * 50 * sum(targets))
    assert bench.useful_flops(cfg, lengths, targets) == expected
    # a shared prefix of 4 tokens is run once: the second prompt skips its 4 tokens and 10 pairs
    skipped = 2 * matrices * 4 + 4 * 4 * head_dim * 3 * 10
    assert bench.useful_flops(cfg, lengths, targets, shared=4) == expected - skipped
