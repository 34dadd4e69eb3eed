"""The embedded tiny model: tokenizer, a seconds-long build, HF folder format, cache behaviour."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from ufo_rl import tiny_model
from ufo_rl.config import TinyConfig
from ufo_rl.tiny_model import RECIPE_FILE, build_tokenizer, ensure_tiny_model, recipe_key

# A recipe that builds in a few seconds: it proves the pipeline, not the accuracy.
SMALL = TinyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=192,
                   sft_steps=3, batch_size=4, warmup_steps=1, eval_per_level=1)


def test_tokenizer_round_trips_text_with_newlines_and_tags():
    tok = build_tokenizer()
    text = "12+7=19\n19*3=57\n<answer>57</answer>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text
    # the tags are ordinary characters, so decoding with skip_special_tokens keeps them
    assert "<answer>" not in tok.all_special_tokens


def test_chat_template_ends_where_the_assistant_writes():
    tok = build_tokenizer()
    prompt = tok.apply_chat_template([{"role": "user", "content": "Left to right: 1+2"}],
                                     tokenize=False, add_generation_prompt=True)
    assert prompt == "Q: Left to right: 1+2\nA: "
    full = tok.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
                                   tokenize=False)
    assert full.endswith("A: y" + tok.eos_token)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, ensure_tiny_model(SMALL, cache, progress=False)


def test_small_recipe_builds_an_hf_folder_that_loads(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, path = built
    assert path.name == f"tiny-{recipe_key(SMALL)}"
    info = json.loads((path / RECIPE_FILE).read_text())
    assert info["recipe_key"] == recipe_key(SMALL)
    assert set(info["greedy_accuracy_per_level"]) == {str(lv) for lv in range(1, 7)}
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.hidden_size == 32
    prompt = tok.apply_chat_template([{"role": "user", "content": "Left to right: 1+2"}],
                                     tokenize=False, add_generation_prompt=True)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    # the loaded folder generates what its own logits say: argmax, one token at a time, to EOS
    ids = enc["input_ids"][0].tolist()
    for _ in range(5):
        with torch.no_grad():
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
        if ids[-1] == tok.eos_token_id:
            break
    assert out[0].tolist() == ids


def test_cache_reuses_the_folder(built, monkeypatch):
    cache, path = built
    mtime = (path / RECIPE_FILE).stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("rebuilt although the cache holds this recipe")

    monkeypatch.setattr(tiny_model, "train_tiny", boom)
    assert ensure_tiny_model(SMALL, cache, progress=False) == path
    assert (path / RECIPE_FILE).stat().st_mtime_ns == mtime


@pytest.mark.slow  # two builds
def test_interrupted_build_leaves_no_half_folder(tmp_path, monkeypatch):
    from transformers import PreTrainedTokenizerFast

    recipe = replace(SMALL, seed=7)
    real_save = PreTrainedTokenizerFast.save_pretrained

    def interrupted(self, *a, **k):  # weights written, then the build dies
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_tiny_model(recipe, tmp_path, progress=False)
    assert not (tmp_path / f"tiny-{recipe_key(recipe)}").exists()
    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", real_save)
    path = ensure_tiny_model(recipe, tmp_path, progress=False)  # a retry builds a complete folder
    assert (path / RECIPE_FILE).exists() and (path / "tokenizer.json").exists()


def test_recipe_key_changes_with_the_recipe():
    assert recipe_key(TinyConfig()) != recipe_key(TinyConfig(sft_steps=TinyConfig().sft_steps + 1))
    assert recipe_key(TinyConfig()) == recipe_key(TinyConfig())
    assert recipe_key(TinyConfig()) != recipe_key(TinyConfig(slip_frac=0.0))


def test_slips_keep_the_steps_and_repeat_the_value_before_the_last_one():
    from ufo_rl.data import arith

    problems = arith.generate("warmup", 400, 0, [1, 2, 3, 4, 5, 6])
    slipped = tiny_model.with_slips(problems, 0.5, seed=0)
    changed = [(p, s) for p, s in zip(problems, slipped) if p.solution != s.solution]
    assert 150 < len(changed) < 250  # about half
    for p, s in changed:
        steps = p.solution.splitlines()[:-1]
        assert s.solution.splitlines()[:-1] == steps  # the worked steps are untouched
        before_last = steps[-1].split("=")[0].rstrip("0123456789").rstrip("+-*")
        assert s.solution.splitlines()[-1] == f"<answer>{before_last}</answer>"
        assert s.answer == p.answer  # the gold label stays right
    assert tiny_model.with_slips(problems, 0.5, seed=0) == slipped  # deterministic
    assert [s.solution for s in tiny_model.with_slips(problems, 0.0, seed=0)] == [p.solution for p in problems]


def test_slip_fraction_out_of_range_is_a_user_error():
    from ufo_rl.errors import UserError

    with pytest.raises(UserError, match="slip_frac"):
        tiny_model.with_slips([], 1.5, seed=0)


# ---- the shipped build ---------------------------------------------------------------------


def test_the_default_recipe_ships_and_its_weights_are_intact():
    """The default model is the same file on every machine; a recipe change without a new
    shipped build (``python -m ufo_rl.tiny_model ship``) fails here."""
    path = tiny_model.shipped_model(TinyConfig())
    assert path is not None, f"no shipped build for recipe {recipe_key(TinyConfig())}; run the ship command"
    info = json.loads((path / RECIPE_FILE).read_text())
    assert info["recipe_key"] == recipe_key(TinyConfig())
    assert tiny_model.weights_digest(path) == info["weights_sha256"]
    assert sorted(p.name for p in tiny_model.SHIPPED_DIR.iterdir()) == [path.name]  # no stale builds


@pytest.mark.slow  # 300 greedy generations
def test_the_shipped_model_is_the_recorded_one():
    """Loaded here, the shipped weights give the per-level accuracy recorded when they were
    built (on another CPU the last bits of the logits move, so a near-tie may flip: 2 of 50)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ufo_rl.data import arith

    path = tiny_model.shipped_model(TinyConfig())
    info = json.loads((path / RECIPE_FILE).read_text())
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    recipe = TinyConfig()
    probe = arith.generate("test", recipe.eval_per_level * len(arith.LEVELS), recipe.seed + 1)
    acc = tiny_model.per_level_accuracy(model, tok, probe)
    for level, recorded in info["greedy_accuracy_per_level"].items():
        assert acc[int(level)] == pytest.approx(recorded, abs=2 / recipe.eval_per_level), level


def test_a_shipped_build_wins_over_a_local_one(built, tmp_path, monkeypatch):
    from ufo_rl.config import ModelConfig
    from ufo_rl.models import resolve_model_path

    cache, local = built
    monkeypatch.setattr(tiny_model, "SHIPPED_DIR", tmp_path / "assets")
    (tmp_path / "assets" / "tiny-000000000000").mkdir(parents=True)  # a build of an older recipe
    shipped = tiny_model.ship(SMALL, source=local)
    assert shipped.parent == tmp_path / "assets" and shipped.name == local.name
    assert not (tmp_path / "assets" / "tiny-000000000000").exists()
    info = json.loads((shipped / RECIPE_FILE).read_text())
    assert info["weights_sha256"] == tiny_model.weights_digest(local)

    def boom(*a, **k):
        raise AssertionError("built although a build is at hand")

    monkeypatch.setattr(tiny_model, "train_tiny", boom)
    # the cache holds a build of the same recipe made on this machine: the shipped one is used
    assert ensure_tiny_model(SMALL, cache, progress=False) == shipped
    cfg = ModelConfig(tiny=SMALL, cache_dir=str(cache))
    assert resolve_model_path(cfg) == str(shipped)
    # unless asked for a local build
    assert resolve_model_path(ModelConfig(tiny=SMALL, cache_dir=str(cache), shipped_tiny=False)) == str(local)


def _warm_start_batches(monkeypatch, recipe):
    """The problems of each warm-start batch of ``recipe`` (the build itself runs)."""
    seen = []
    real = tiny_model._sft_batch

    def spy(tok, problems, device):
        seen.append([p.question for p in problems])
        return real(tok, problems, device)

    monkeypatch.setattr(tiny_model, "_sft_batch", spy)
    _, _, info = tiny_model.train_tiny(recipe, progress=False)
    return seen, info


def test_a_warm_start_longer_than_the_distinct_problems_repeats_them_in_new_orders(monkeypatch):
    recipe = replace(SMALL, sft_steps=6, batch_size=4)  # 24 problems over 4 levels
    monkeypatch.setattr(tiny_model, "UNIQUE_PER_LEVEL", 2)  # 8 distinct problems
    batches, info = _warm_start_batches(monkeypatch, recipe)
    flat = [q for b in batches for q in b]
    assert len(batches) == 6 and len(flat) == 24
    assert len(set(flat)) == 8
    passes = [flat[i:i + 8] for i in range(0, 24, 8)]
    assert all(sorted(one) == sorted(passes[0]) for one in passes)  # each pass holds each problem once
    assert len({tuple(one) for one in passes}) > 1  # and comes in its own order
    assert info["build_device"] == "cpu"


def test_a_warm_start_within_the_cap_draws_each_problem_once(monkeypatch):
    batches, _ = _warm_start_batches(monkeypatch, SMALL)
    flat = [q for b in batches for q in b]
    assert len(flat) == SMALL.sft_steps * SMALL.batch_size == len(set(flat))
