"""Multi-sample pass rate: the expensive signal UFO-RL replaces (arXiv 2505.12457, Figure 1).

K completions per prompt at temperature 1.0, each verified by :mod:`ufo_rl.answers`;
``pass_rate = correct / K``. Generation goes through the same generator interface, dtype and
batch policy as the rest of the suite (HF ``generate`` with KV cache and length-sorted batches,
or vLLM on GPUs), so the speedup we report is against a strong baseline.
"""

from __future__ import annotations

from ufo_rl.answers import check
from ufo_rl.scorers import Knob, ScoreChunk, _sync_time, empty_columns, prompts_for, register_scorer


def make_generator(ctx):
    if ctx.generator is not None:
        return ctx.generator
    from ufo_rl.generation import HFGenerator  # torch: imported when scoring, not when registering

    return HFGenerator(ctx.model, ctx.tok, batch_size=ctx.cfg.batch_size)


@register_scorer("multisample", signal="pass_rate", samples=True, key_fields=("k", "temperature"),
                 knobs={"k": Knob(8, "k{}")})
def score_multisample(ctx, problems) -> ScoreChunk:
    """Pass rate over ``k`` samples per prompt; every sample is kept."""
    from ufo_rl.generation import SamplingParams

    t0 = _sync_time(ctx)
    prompts = prompts_for(ctx, problems)
    gen = make_generator(ctx)
    before_gen, before_prompt = gen.stats.generated_tokens, gen.stats.prompt_tokens
    params = SamplingParams(n=ctx.cfg.k, temperature=ctx.cfg.temperature,
                            max_new_tokens=ctx.model_cfg.max_new_tokens,
                            stop=tuple(ctx.model_cfg.stop), seed=0)
    outs = gen.generate(prompts, params, ctx.progress)
    samples, rates = [], []
    for p, comps in zip(problems, outs):
        right = 0
        for j, c in enumerate(comps):
            pred, ok = check(c.text, p.answer)
            right += ok
            samples.append({"id": p.id, "sample": j, "completion": c.text, "extracted": pred,
                            "correct": bool(ok), "n_tokens": c.n_tokens, "finished": c.finished})
        rates.append(right / len(comps))
    seconds = _sync_time(ctx) - t0
    cols = empty_columns(len(problems))
    cols.update(prompt=prompts, pass_rate=rates, n_samples=[len(c) for c in outs])
    # a generator that shares the prefill (the HF decoding loop of ufo_rl/generation.py, vLLM)
    # computes each prompt once for its k samples; HF generate itself (own_loop=False) once per sample
    prefill = (gen.stats.prompt_tokens - before_prompt) * (1 if getattr(gen, "shares_prefill", False) else ctx.cfg.k)
    return ScoreChunk(cols, forward_tokens=prefill,
                      generated_tokens=gen.stats.generated_tokens - before_gen,
                      seconds=seconds, samples=samples)
