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
