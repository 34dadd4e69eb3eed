"""Calibrated single pass: UFO's confidence for every prompt, K-sample pass rates for a small share.

This suite's extension of UFO-RL (arXiv 2505.12457), not the paper's method. UFO's Top-Mid keeps
the prompts nearest the pool's mean confidence, which lies wherever the mean lies, not
necessarily where GRPO groups disagree (pass rate strictly between 0 and 1). Here a share of the
pool (``selector.calibration_share``, 5% by default) is also sampled ``k`` times, as
``multisample`` does, and the rule ``calibrated`` (ufo_rl/selection.py) fits a monotone map
from confidence to pass rate on that share and keeps the prompts whose predicted pass rate is
nearest ``selector.band_target`` (0.5).

Which prompts are in the share depends only on their id and ``selector.calibration_seed``
(:func:`in_calibration`), so it does not change with the chunking of the score cache, the order
of the pool, or a multi-process launch. The calibration samples are drawn with Hugging Face
generation on the model that scores (the scorer does not sample the whole pool, so it is not a
``samples`` scorer: the cost table compares it with multisample, and it needs the HF model loaded
for its forward pass anyway).
"""

from __future__ import annotations

import hashlib
import math

from ufo_rl.scorers import Knob, ScoreChunk, register_scorer, score_ufo

from .multisample import score_multisample


def calibration_draw(problem_id: str, seed: int) -> float:
    """A uniform number in [0, 1) from sha256 of (id, seed): the same for a prompt in any chunk.

    >>> calibration_draw("p1", 0) == calibration_draw("p1", 0) != calibration_draw("p1", 1)
    True
    """
    digest = hashlib.sha256(f"{seed}\x00{problem_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_calibration(problem_id: str, share: float, seed: int) -> bool:
    """Whether prompt ``problem_id`` is in the calibration share (about ``share`` of any pool)."""
    return calibration_draw(str(problem_id), seed) < share


@register_scorer("ufo_calibrated", signal="confidence", rule="calibrated",
                 key_fields=("target", "tokenization", "k", "temperature", "calibration_share",
                             "calibration_seed"),
                 knobs={"target": Knob("answer", choices=("answer", "solution", "greedy")),
                        "k": Knob(8, "k{}"),
                        "calibration_share": Knob(0.05, "cal{:g}"),
                        "calibration_seed": Knob(0, "calseed{}")})
def score_ufo_calibrated(ctx, problems) -> ScoreChunk:
    """UFO's columns for every prompt (:func:`ufo_rl.scorers.score_ufo`, any ``selector.target``),
    ``pass_rate`` and ``n_samples`` from :func:`score_multisample` for the prompts of the
    calibration share (NaN elsewhere), and ``calibrated`` (bool). The cost is both parts summed;
    the calibration samples are kept."""
    ufo = score_ufo(ctx, problems)
    share, seed = ctx.cfg.calibration_share, ctx.cfg.calibration_seed
    mask = [in_calibration(p.id, share, seed) for p in problems]
    cols = dict(ufo.columns)
    cols["pass_rate"] = [math.nan] * len(problems)
    cols["n_samples"] = [None] * len(problems)
    cols["calibrated"] = mask
    chunk = ScoreChunk(cols, forward_tokens=ufo.forward_tokens, generated_tokens=ufo.generated_tokens,
                       seconds=ufo.seconds)
    rows = [i for i, m in enumerate(mask) if m]
    if rows:
        ms = score_multisample(ctx, [problems[i] for i in rows])
        for i, rate, n in zip(rows, ms.columns["pass_rate"], ms.columns["n_samples"]):
            cols["pass_rate"][i], cols["n_samples"][i] = float(rate), n
        chunk.forward_tokens += ms.forward_tokens
        chunk.generated_tokens += ms.generated_tokens
        chunk.seconds += ms.seconds
        chunk.samples = ms.samples
    return chunk
