"""GRPO through TRL on a tiny random model: it trains, learns a learnable reward, logs, resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ufo_rl.config import ModelConfig, TrainerConfig
from ufo_rl.problems import Problem
from ufo_rl.train import TRAIN_LOG, latest_checkpoint, total_steps, train_grpo

ROW_KEYS = {"step", "reward_mean", "reward_std", "zero_adv_frac", "kl", "loss", "learning_rate",
            "tokens", "wall_seconds"}


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> str:
    """A random 2-layer Llama with the embedded char tokenizer, saved as an HF folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ufo_rl.tiny_model import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    path = tmp_path_factory.mktemp("model") / "tiny"
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def problems(n: int = 8) -> list[Problem]:
    return [Problem(id=f"p{i}", question=f"Left to right: {i}+1", answer=str(i + 1)) for i in range(n)]


def digit_share(completions, answer, **kw) -> list[float]:
    """Learnable from scratch: the share of characters that are digits (about 0.1 at random)."""
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]


def cfg(**kw) -> TrainerConfig:
    base = dict(max_steps=3, num_generations=3, per_device_prompts=2, max_completion_length=8,
                learning_rate=1e-3, save_steps=2, mask_truncated_completions=False, temperature=1.0)
    return TrainerConfig(**{**base, **kw})


def params(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / TRAIN_LOG).read_text().splitlines()]


def test_budget_steps_and_epochs():
    assert total_steps(cfg(budget="steps", max_steps=7), 100) == 7
    assert total_steps(cfg(budget="epochs", epochs=2.0, per_device_prompts=4), 10) == 5  # ceil(20/4)


def test_grpo_changes_parameters_and_logs_every_step(tiny_path, tmp_path):
    calls = []

    def reward(completions, answer, **kw):
        """digit_share, except that prompts with an even answer always get 0.5: their groups
        have zero advantage whatever the model writes."""
        r = [0.5 if int(a) % 2 == 0 else d for a, d in zip(answer, digit_share(completions, answer))]
        calls.append((list(answer), r))
        return r

    out = tmp_path / "run"
    res = train_grpo(tiny_path, problems(), cfg(), ModelConfig(), out, seed=0, progress=False,
                     reward_fn=reward)
    assert res["steps"] == 3 and res["resumed"] is False and res["n_train"] == 8
    before, after = params(tiny_path), params(res["final_model_path"])
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) >= len(before) // 2, f"only {moved} moved"
    log = rows(out)
    assert [r["step"] for r in log] == [1, 2, 3]
    for r in log:
        assert ROW_KEYS <= set(r)
    # one reward call per step, 2 prompts x 3 generations, each prompt's group consecutive
    assert len(calls) == 3 and all(len(r) == 6 for _, r in calls)
    for answers, _ in calls:
        assert answers[0:3] == [answers[0]] * 3 and answers[3:6] == [answers[3]] * 3
    # zero_adv_frac recomputed from the rewards: the share of groups whose rewards all agree
    expected = [sum(len(set(r[g:g + 3])) == 1 for g in (0, 3)) / 2 for _, r in calls]
    assert [r["zero_adv_frac"] for r in log] == pytest.approx(expected)
    assert res["zero_adv_frac_mean"] == pytest.approx(sum(expected) / 3)
    # the even-answer groups alone bound it from below
    evens = [sum(int(a[g]) % 2 == 0 for g in (0, 3)) / 2 for a, _ in calls]
    assert all(e >= lo for e, lo in zip(expected, evens)), (expected, evens)
    assert (Path(res["final_model_path"]) / "tokenizer.json").exists()


def test_periodic_eval_builds_a_curve(tiny_path, tmp_path):
    seen = []

    def eval_fn(model, step):
        seen.append((step, model.training))
        return {"accuracy": step / 10}

    res = train_grpo(tiny_path, problems(), cfg(max_steps=4, eval_every=2), ModelConfig(),
                     tmp_path / "run", seed=0, progress=False, reward_fn=digit_share, eval_fn=eval_fn)
    assert seen == [(2, False), (4, False)]  # every eval_every steps, in eval mode
    # each result is kept with the step that produced it
    assert res["curve"] == [{"step": 2, "accuracy": 0.2}, {"step": 4, "accuracy": 0.4}]


@pytest.mark.parametrize("extra,own", [({}, True), ({"top_k": 5}, False)])
def test_rollouts_come_from_the_decoding_loop(tiny_path, tmp_path, monkeypatch, extra, own):
    """Plain sampling goes through HFGenerator.sample_ids, one prefill per prompt for its
    group; what it returns is what the reward sees. A setting it does not reproduce (top-k)
    leaves sampling to TRL."""
    from ufo_rl.generation import HFGenerator

    sampled, seen = [], []
    real = HFGenerator.sample_ids

    def spy(self, prompt_ids, params, eos_ids=None):
        out = real(self, prompt_ids, params, eos_ids)
        sampled.append((len(prompt_ids), params.n, params.temperature, params.max_new_tokens, out))
        return out

    def reward(completions, answer, **kw):
        seen.append(list(completions))
        return digit_share(completions, answer)

    monkeypatch.setattr(HFGenerator, "sample_ids", spy)
    train_grpo(tiny_path, problems(), cfg(max_steps=2, extra=extra), ModelConfig(), tmp_path / "run", seed=0,
               progress=False, reward_fn=reward)
    if not own:
        assert sampled == [] and len(seen) == 2
        return
    from ufo_rl.tiny_model import build_tokenizer

    tok = build_tokenizer()
    assert [s[:4] for s in sampled] == [(2, 3, 1.0, 8)] * 2  # 2 prompts x 3 generations per step
    assert all(len(s[4]) == 6 and all(0 < len(ids) <= 8 for ids in s[4]) for s in sampled)
    assert seen == [[tok.decode(ids, skip_special_tokens=True) for ids in s[4]] for s in sampled]


def test_resume_from_checkpoint(tiny_path, tmp_path):
    out = tmp_path / "run"
    train_grpo(tiny_path, problems(), cfg(max_steps=2, save_steps=2), ModelConfig(), out, seed=0,
               progress=False, reward_fn=digit_share)
    assert latest_checkpoint(out / "checkpoints").name == "checkpoint-2"
    res = train_grpo(tiny_path, problems(), cfg(max_steps=4, save_steps=2), ModelConfig(), out,
                     seed=0, progress=False, reward_fn=digit_share)
    assert res["resumed"] is True and res["steps"] == 4
    assert [r["step"] for r in rows(out)] == [1, 2, 3, 4]


@pytest.mark.slow
def test_learnable_reward_rises(tiny_path, tmp_path):
    """GRPO must climb a reward the random model can learn (emit digits)."""
    res = train_grpo(tiny_path, problems(16), cfg(max_steps=30, per_device_prompts=4, learning_rate=3e-3,
                                                  save_steps=1000, num_generations=4),
                     ModelConfig(), tmp_path / "run", seed=0, progress=False, reward_fn=digit_share)
    log = rows(tmp_path / "run")
    first = sum(r["reward_mean"] for r in log[:5]) / 5
    last = sum(r["reward_mean"] for r in log[-5:]) / 5
    assert last > first + 0.2, (first, last)
    # the summary is the mean of the first and of the last tenth of the logged steps (3 of 30)
    assert res["reward_first"] == pytest.approx(sum(r["reward_mean"] for r in log[:3]) / 3)
    assert res["reward_last"] == pytest.approx(sum(r["reward_mean"] for r in log[-3:]) / 3)
