"""``full``: train on the whole pool (the paper's full-data baseline)."""

from __future__ import annotations

from ufo_rl.scorers import ScoreChunk, empty_columns, register_scorer


@register_scorer("full", needs_model=False, signal=None, rule="all", fraction=1.0, baseline=2)
def score_full(ctx, problems) -> ScoreChunk:
    """No signal and no cost: the rule ``all`` keeps every prompt."""
    return ScoreChunk(empty_columns(len(problems)))
