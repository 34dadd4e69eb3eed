"""``random``: a seeded random subset; needs no model and no scoring pass."""

from __future__ import annotations

from ufo_rl.scorers import ScoreChunk, empty_columns, register_scorer


@register_scorer("random", needs_model=False, signal=None, rule="random", baseline=1)
def score_random(ctx, problems) -> ScoreChunk:
    """No signal: the rule (``random``, seeded by the run seed) picks the subset."""
    return ScoreChunk(empty_columns(len(problems)))
