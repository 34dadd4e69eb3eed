"""HFGenerator's own decoding loop against Hugging Face ``generate`` and the model's own forward.

The loop prefills a prompt once for its samples, drops finished rows from the batch and writes
the KV cache in place; none of that may change what is generated. The shipped tiny model is
used because it stops at EOS after a varying number of tokens, so rows leave the batch at
different steps (a random micro model writes spaces up to the length cap).
"""

from __future__ import annotations

import pytest
import torch

from ufo_rl.config import TinyConfig
from ufo_rl.data.arith import embedded_splits
from ufo_rl.generation import HFGenerator, SamplingParams
from ufo_rl.models import build_prompt
from ufo_rl.tiny_model import shipped_model


@pytest.fixture(scope="module")
def loaded():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = shipped_model(TinyConfig())
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def prompts(loaded):
    pool = embedded_splits(0, 60, 5)["pool"]
    return [build_prompt(loaded[1], p.question) for p in pool[:30]]  # levels 1-6: mixed lengths


def texts(outs) -> list[list[tuple[str, int, bool]]]:
    return [[(c.text, c.n_tokens, c.finished) for c in cs] for cs in outs]


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_greedy_outputs_are_generates_token_for_token(loaded, prompts, batch_size):
    model, tok = loaded
    prompts = prompts[:10] if batch_size == 1 else prompts  # one prompt per batch: slow in generate
    params = SamplingParams(max_new_tokens=96)
    ref = HFGenerator(model, tok, batch_size=batch_size, own_loop=False).generate(prompts, params)
    ours = HFGenerator(model, tok, batch_size=batch_size)
    out = ours.generate(prompts, params)
    assert texts(out) == texts(ref)
    lengths = {c.n_tokens for cs in out for c in cs}
    assert len(lengths) > 5 and all(c.finished for cs in out for c in cs)  # rows left at many steps
    assert ours.stats.generated_tokens == sum(c.n_tokens for cs in out for c in cs)


def test_cut_at_the_length_cap_is_unfinished(loaded, prompts):
    model, tok = loaded
    params = SamplingParams(max_new_tokens=12)
    out = HFGenerator(model, tok, batch_size=8).generate(prompts, params)
    ref = HFGenerator(model, tok, batch_size=8, own_loop=False).generate(prompts, params)
    assert texts(out) == texts(ref)
    assert all(c.n_tokens == 12 and not c.finished for cs in out for c in cs)


def test_samples_of_a_shared_prefill_follow_the_model(loaded, prompts):
    """At a temperature near 0 every sample is the greedy completion: the prefill copied to n
    rows, and rows dropped as they finish, keep each row's own cache."""
    model, tok = loaded
    greedy = HFGenerator(model, tok, batch_size=64).generate(prompts, SamplingParams(max_new_tokens=96))
    gen = HFGenerator(model, tok, batch_size=20)  # 5 prompts of 4 samples per batch
    cold = gen.generate(prompts, SamplingParams(n=4, temperature=1e-4, max_new_tokens=96, seed=3))
    assert [[c.text for c in cs] for cs in cold] == [[g[0].text] * 4 for g in greedy]
    assert gen.shares_prefill and gen.stats.prompt_tokens == sum(len(tok(p)["input_ids"]) for p in prompts)


def first_token_probs(model, tok, prompt: str, temperature: float) -> torch.Tensor:
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return torch.softmax(model(input_ids=ids).logits[0, -1].double() / temperature, dim=-1)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (2.0, 1.0), (1.0, 0.6)])
def test_sampled_first_tokens_follow_the_warped_softmax(loaded, temperature, top_p):
    """A 2-digit sum the model cannot do, cut after "12" (it is unsure what follows: about 0.39,
    0.31 and 0.24 on three digits); 10000 draws of the first token against softmax(logits / T)
    restricted to the top-p nucleus."""
    model, tok = loaded
    prompt = build_prompt(tok, "Left to right: 58+67") + "58+67=12"
    p = first_token_probs(model, tok, prompt, temperature)
    if top_p < 1.0:
        desc, order = p.sort(descending=True)
        nucleus = order[: int((desc.cumsum(0) < top_p).sum()) + 1]
        p = torch.zeros_like(p).index_fill_(0, nucleus, 1.0) * p
        p /= p.sum()
    assert p.max() < 0.9  # otherwise the test would not see the sampler at all
    params = SamplingParams(n=10000, temperature=temperature, top_p=top_p, max_new_tokens=1, seed=1)
    outs = HFGenerator(model, tok, batch_size=10000).generate([prompt], params)[0]
    ids = [tok(c.text, add_special_tokens=False)["input_ids"] or [tok.eos_token_id] for c in outs]
    freq = torch.bincount(torch.tensor([i[0] for i in ids]), minlength=len(p)).double() / len(outs)
    assert (freq - p).abs().sum() / 2 < 0.05  # total variation; about 0.02 expected
    assert set(torch.nonzero(freq).flatten().tolist()) <= set(torch.nonzero(p).flatten().tolist())
