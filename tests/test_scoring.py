import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import save_random_model

from ufo_rl.cache import score_with_cache
from ufo_rl.config import ModelConfig, SelectorConfig
from ufo_rl.data.arith import embedded_splits
from ufo_rl.errors import UserError
from ufo_rl.generation import Completion, GenerationStats
from ufo_rl.models import build_prompt, load_model
from ufo_rl.scorers import ScoreContext, get_scorer
from ufo_rl.scoring import MIN_SHARED_PREFIX, encode_pairs, mean_target_logprob, shared_prefix_length


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = save_random_model(tmp_path_factory.mktemp("m") / "model")
    model, tok, _ = load_model(ModelConfig(name_or_path=str(path), dtype="float32", device="cpu"))
    return model, tok


@pytest.fixture(scope="module")
def pool():
    return embedded_splits(0, 40, 5)["pool"]


def slow_conf(model, prefix_ids, target_ids):
    """Independent reference: one unpadded sequence, one token at a time, plain softmax."""
    ids = torch.tensor([prefix_ids + target_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    total = 0.0
    for t, tok_id in enumerate(target_ids):
        pos = len(prefix_ids) + t - 1  # logits at t-1 predict token t
        probs = torch.softmax(logits[pos], dim=-1)
        total += math.log(probs[tok_id].item())
    return total / len(target_ids)


@pytest.mark.parametrize("share_prefix", [False, True])
@pytest.mark.parametrize("batch_size,bucket", [(1, False), (7, False), (16, True)])
def test_ufo_score_matches_token_by_token_reference(loaded, pool, batch_size, bucket, share_prefix):
    model, tok = loaded
    prefixes = [build_prompt(tok, p.question) + "<answer>" for p in pool[:12]]
    targets = [p.answer if i % 2 else p.solution for i, p in enumerate(pool[:12])]  # mixed lengths
    pairs = encode_pairs(tok, prefixes, targets)
    res = mean_target_logprob(model, pairs, tok.pad_token_id, batch_size=batch_size, bucket=bucket,
                              share_prefix=share_prefix)
    ref = [slow_conf(model, p, t) for p, t in pairs]
    np.testing.assert_allclose(res.logprob_mean, ref, atol=1e-5)
    assert list(res.n_target_tokens) == [len(t) for _, t in pairs]
    shared = shared_prefix_length(pairs)
    assert shared >= MIN_SHARED_PREFIX  # the prompt template's head is common to all
    assert res.shared_prefix_tokens == (shared if share_prefix else 0)
    assert res.forward_tokens == sum(len(p) + len(t) for p, t in pairs) - (len(pairs) - 1) * res.shared_prefix_tokens


def test_shared_prefix_stops_before_each_rows_last_context_token():
    assert shared_prefix_length([([1, 2, 3, 4], [9]), ([1, 2, 3, 5, 6], [8])]) == 3
    assert shared_prefix_length([([1, 2, 3], [9]), ([1, 2, 3, 7], [8])]) == 2  # the first keeps 3
    assert shared_prefix_length([([1, 2], [9]), ([3, 2], [9])]) == 0
    assert shared_prefix_length([([1, 2, 3], [9])]) == 0  # one prompt: nothing to share


def test_a_shared_prefix_longer_than_a_batch_row_still_scores_every_row(loaded):
    """Rows of very different lengths: the padding between the shared prefix and a short row's
    rest is masked, and the short row's positions continue from the prefix."""
    model, tok = loaded
    head = tok("Q: Left to right: ", add_special_tokens=False)["input_ids"]
    pairs = [(head + tok(q, add_special_tokens=False)["input_ids"], tok(a, add_special_tokens=False)["input_ids"])
             for q, a in [("1+1\nA: <answer>", " 2"), ("3+4-2+9-1+8+1-1\nA: <answer>", " 21"),
                          ("5\nA: <answer>", " 5 and then some more words")]]
    res = mean_target_logprob(model, pairs, tok.pad_token_id, batch_size=3, share_prefix=True)
    assert res.shared_prefix_tokens == len(head)
    np.testing.assert_allclose(res.logprob_mean, [slow_conf(model, p, t) for p, t in pairs], atol=1e-5)


def test_bucketing_wastes_less_padding(loaded, pool):
    model, tok = loaded
    pairs = encode_pairs(tok, [build_prompt(tok, p.question) for p in pool], [p.solution for p in pool])
    plain = mean_target_logprob(model, pairs, tok.pad_token_id, 8, bucket=False)
    bucketed = mean_target_logprob(model, pairs, tok.pad_token_id, 8, bucket=True)
    assert bucketed.padded_tokens < plain.padded_tokens
    np.testing.assert_allclose(plain.logprob_mean, bucketed.logprob_mean, atol=1e-5)


def ctx_for(loaded, generator=None, **sel):
    model, tok = loaded
    return ScoreContext(model, tok, ModelConfig(name_or_path="x", max_new_tokens=8),
                        SelectorConfig(**sel), generator=generator)


def reference_conf(loaded, out):
    """slow_conf of each scored (prompt, target) row, tokenised here (one token per character)."""
    model, tok = loaded
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    return [slow_conf(model, ids(p), ids(t)) for p, t in zip(out.columns["prompt"], out.columns["target"])]


def greedy_reference(loaded, prompt, max_new_tokens):
    """Independent greedy decoding: argmax of the full forward pass, one token at a time, to EOS."""
    model, tok = loaded
    ids, new = tok(prompt, add_special_tokens=False)["input_ids"], []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            nxt = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
        new.append(nxt)
        if nxt == tok.eos_token_id:
            break
    return new


def test_ufo_scorer_targets(loaded, pool):
    ufo = get_scorer("ufo")
    out = ufo.fn(ctx_for(loaded, target="answer"), pool[:6])
    assert out.columns["target"] == [p.answer for p in pool[:6]]
    assert out.columns["prompt"] == [build_prompt(loaded[1], p.question) + "<answer>" for p in pool[:6]]
    np.testing.assert_allclose(out.columns["logprob_mean"], reference_conf(loaded, out), atol=1e-5)
    np.testing.assert_allclose(out.columns["confidence"], np.exp(reference_conf(loaded, out)), rtol=1e-5)
    assert out.generated_tokens == 0
    sol = ufo.fn(ctx_for(loaded, target="solution"), pool[:6])
    assert sol.columns["target"] == [p.solution for p in pool[:6]]
    assert sol.columns["prompt"] == [build_prompt(loaded[1], p.question) for p in pool[:6]]
    np.testing.assert_allclose(sol.columns["logprob_mean"], reference_conf(loaded, sol), atol=1e-5)
    # greedy: the target is the model's own greedy answer, and the generation is paid for
    greedy = ufo.fn(ctx_for(loaded, target="greedy"), pool[:6])
    ref = [greedy_reference(loaded, p, 8) for p in greedy.columns["prompt"]]
    assert greedy.columns["target"] == [loaded[1].decode(r, skip_special_tokens=True) for r in ref]
    assert greedy.generated_tokens == sum(len(r) for r in ref)
    np.testing.assert_allclose(greedy.columns["logprob_mean"], reference_conf(loaded, greedy), atol=1e-5)


def test_solution_target_without_solutions_is_a_clear_error(loaded, pool):
    from dataclasses import replace

    bare = [replace(p, solution=None) for p in pool[:3]]
    with pytest.raises(UserError, match="needs worked solutions"):
        get_scorer("ufo").fn(ctx_for(loaded, target="solution"), bare)


class FakeGenerator:
    """Answers problem i correctly in the first `right[i]` of its k samples."""

    def __init__(self, right):
        self.right = right
        self.stats = GenerationStats()
        self.calls = 0

    def generate(self, prompts, params, progress=False):
        self.calls += 1
        out = []
        for prompt in prompts:
            gold, right = self.right[prompt]
            comps = [Completion(f"<answer>{gold if j < right else int(gold) + 1}</answer>", 5)
                     for j in range(params.n)]
            self.stats.generated_tokens += 5 * params.n
            out.append(comps)
        return out


def test_multisample_pass_rates_against_known_outcomes(loaded, pool):
    prompts = [build_prompt(loaded[1], p.question) for p in pool[:8]]
    fake = FakeGenerator({pr: (p.answer, i) for i, (pr, p) in enumerate(zip(prompts, pool))})
    ctx = ctx_for(loaded, generator=fake, k=8)
    out = get_scorer("multisample").fn(ctx, pool[:8])
    assert out.columns["pass_rate"] == [i / 8 for i in range(8)]
    assert out.columns["n_samples"] == [8] * 8
    assert len(out.samples) == 64 and out.generated_tokens == 320
    assert sum(s["correct"] for s in out.samples) == sum(range(8))
    assert {"id", "sample", "completion", "extracted", "correct"} <= set(out.samples[0])


def test_cache_hit_and_resume(tmp_path, loaded, pool):
    calls = []

    def score(chunk):
        calls.append(len(chunk))
        return get_scorer("ufo").fn(ctx_for(loaded), chunk)

    folder = tmp_path / "c"
    df, cost, _, status = score_with_cache(folder, pool, score, chunk_size=16, progress=False)
    assert calls == [16, 16, 8] and status == {"cached": False, "resumed_chunks": 0, "repaired_chunks": 0}
    # second call: nothing recomputed, same values, same original cost
    df2, cost2, _, status2 = score_with_cache(folder, pool, score, chunk_size=16, progress=False)
    assert calls == [16, 16, 8] and status2["cached"]
    pd.testing.assert_frame_equal(df, df2)
    assert cost2 == cost
    # an interrupted run: the last chunk's completion marker is gone; only it is redone
    (folder / "chunk-00002.json").unlink()
    df3, cost3, _, status3 = score_with_cache(folder, pool, score, chunk_size=16, progress=False)
    assert calls == [16, 16, 8, 8] and status3 == {"cached": False, "resumed_chunks": 2, "repaired_chunks": 0}
    np.testing.assert_allclose(df3["logprob_mean"], df["logprob_mean"], atol=1e-6)
    assert json.loads((folder / "chunk-00000.json").read_text())["n"] == 16


def test_cache_recomputes_a_foreign_pool(tmp_path, loaded, pool, capsys):
    score = lambda chunk: get_scorer("ufo").fn(ctx_for(loaded), chunk)  # noqa: E731
    score_with_cache(tmp_path, pool[:10], score, chunk_size=16, progress=False)
    df, _, _, status = score_with_cache(tmp_path, pool[10:20], score, chunk_size=16, progress=False)
    assert list(df["id"]) == [p.id for p in pool[10:20]] and status["repaired_chunks"] == 1
    assert "holds other problems; recomputing it" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate values", "torn record", "edit values", "drop samples"])
def test_cache_repairs_a_damaged_chunk(tmp_path, loaded, pool, capsys, damage):
    calls = []

    def score(chunk):
        calls.append(len(chunk))
        return get_scorer("ufo").fn(ctx_for(loaded), chunk)

    df, _, _, _ = score_with_cache(tmp_path, pool, score, chunk_size=16, progress=False)
    vals, rec = tmp_path / "chunk-00001.parquet", tmp_path / "chunk-00001.json"
    if damage == "truncate values":
        vals.write_bytes(vals.read_bytes()[:100])
    elif damage == "torn record":
        rec.write_text(rec.read_text()[:20])
    elif damage == "edit values":  # a readable parquet whose bytes are not the ones recorded
        pd.read_parquet(vals).assign(confidence=0.5).to_parquet(vals, index=False)
    else:
        (tmp_path / "chunk-00001.samples.jsonl").unlink()
    df2, _, _, status = score_with_cache(tmp_path, pool, score, chunk_size=16, progress=False)
    assert calls == [16, 16, 8, 16], "only the damaged chunk is recomputed"
    assert status["repaired_chunks"] == 1 and not status["cached"]
    np.testing.assert_allclose(df2["logprob_mean"], df["logprob_mean"], atol=1e-6)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(err) == 1 and "chunk-00001.json" in err[0] and "recomputing it" in err[0]
    # repaired for good: the next run reads every chunk from the cache
    score_with_cache(tmp_path, pool, score, chunk_size=16, progress=False)
    assert calls == [16, 16, 8, 16]


@pytest.mark.parametrize("shares_prefill", [False, True])
def test_multisample_counts_a_shared_prefill_once(shares_prefill):
    """HF generate prefills a prompt once per sample; vLLM once per prompt for all its samples."""
    from ufo_rl.config import ModelConfig, SelectorConfig
    from ufo_rl.generation import Completion, GenerationStats
    from ufo_rl.problems import Problem
    from ufo_rl.scorers import ScoreContext, get_scorer

    class Stub:
        def __init__(self):
            self.stats = GenerationStats()
            self.shares_prefill = shares_prefill

        def generate(self, prompts, params, progress=False):
            self.stats.prompts += len(prompts)
            self.stats.prompt_tokens += 10 * len(prompts)  # 10 tokens per prompt
            self.stats.generated_tokens += 3 * params.n * len(prompts)
            return [[Completion("<answer>4</answer>", 3, True)] * params.n for _ in prompts]

    class Tok:
        chat_template = None

    problems = [Problem(id=str(i), question="2+2", answer="4") for i in range(5)]
    ctx = ScoreContext(None, Tok(), ModelConfig(), SelectorConfig(name="multisample", k=8), generator=Stub())
    chunk = get_scorer("multisample").fn(ctx, problems)
    assert chunk.columns["pass_rate"] == [1.0] * 5
    assert chunk.forward_tokens == 5 * 10 * (1 if shares_prefill else 8)
    assert chunk.generated_tokens == 5 * 8 * 3
