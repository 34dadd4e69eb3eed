"""bench/slips.py: the slip counter behind the README's habit numbers."""

from __future__ import annotations

import doctest
import json

from helpers import load_bench_script

slips = load_bench_script("slips")


def test_doctests():
    assert doctest.testmod(slips).failed == 0


def test_counts_greedy_rows_only_and_fails_without_samples(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "eval_samples").mkdir(parents=True)
    rows = [{"mode": "greedy", "completion": "7+5=12\n12-2=10\n<answer>12</answer>", "correct": False},
            {"mode": "greedy", "completion": "7+5=12\n12-2=10\n<answer>10</answer>", "correct": True},
            {"mode": "greedy", "completion": "1+1=2\n<answer>5</answer>", "correct": False},
            {"mode": "sample", "completion": "7+5=12\n12-2=10\n<answer>12</answer>", "correct": False}]
    (run / "eval_samples" / "before-embedded.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert slips.count(run / "eval_samples" / "before-embedded.jsonl") == {
        "n": 3, "slip_share": 1 / 3, "accuracy": 1 / 3}
    assert slips.main([str(run)]) == 0
    assert "slips=0.333" in capsys.readouterr().out
    assert slips.main([str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.startswith("error: no greedy eval samples")
