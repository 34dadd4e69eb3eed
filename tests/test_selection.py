import numpy as np
import pytest

from ufo_rl.errors import UserError
from ufo_rl.selection import RULE_PARAMS, RULES, apply_rule, n_keep, select


def plain_top(values, k):
    """Reference: indices of the k largest values by a plain Python sort (values distinct)."""
    return set(sorted(range(len(values)), key=lambda i: values[i], reverse=True)[:k])


@pytest.fixture
def s():
    return np.random.default_rng(0).random(101)


def test_top_mid_keeps_the_fraction_closest_to_the_mean(s):
    keep, score = select("top_mid", s, 0.1)
    mu = s.mean()
    assert keep.sum() == 10
    assert set(np.flatnonzero(keep)) == plain_top([-abs(v - mu) for v in s], 10)
    np.testing.assert_allclose(score, 1 - (s - mu) ** 2)


def test_lowest_and_highest_against_plain_sort(s):
    assert set(np.flatnonzero(select("lowest", s, 0.2)[0])) == plain_top(list(-s), 20)
    assert set(np.flatnonzero(select("highest", s, 0.2)[0])) == plain_top(list(s), 20)


def test_band_keeps_values_closest_to_target(s):
    keep, _ = select("band", s, 0.1, band_target=0.3)
    assert set(np.flatnonzero(keep)) == plain_top([-abs(v - 0.3) for v in s], 10)


def test_bins_partition_the_pool_in_signal_order(s):
    masks = [select("bin", s, 0.1, n_bins=4, bin_index=i)[0] for i in range(4)]
    # reference: a plain sort cut into 4 consecutive chunks of 26, 25, 25, 25 (101 distinct values)
    order = sorted(range(len(s)), key=lambda i: s[i])
    bounds = [0, 26, 51, 76, 101]
    for i, m in enumerate(masks):
        assert set(np.flatnonzero(m)) == set(order[bounds[i]:bounds[i + 1]]), f"bin {i}"


def test_dapo_drops_solved_and_unsolved():
    rates = np.array([0, 1, 0.5, 0.25, 0, 1, 0.75, 0.125] * 5)
    keep, _ = select("dapo", rates, 0.25, seed=3)
    assert keep.sum() == 10
    assert set(np.unique(rates[keep])) <= {0.5, 0.25, 0.75, 0.125}


def test_ties_are_broken_by_seed_not_by_position():
    rates = np.full(100, 0.5)
    a = select("top_mid", rates, 0.1, seed=0)[0]
    b = select("top_mid", rates, 0.1, seed=1)[0]
    assert a.sum() == b.sum() == 10
    assert not np.array_equal(a, b)
    assert np.array_equal(a, select("top_mid", rates, 0.1, seed=0)[0])
    assert not np.array_equal(a, np.arange(100) < 10)


def test_random_is_seeded_and_all_keeps_everything(s):
    keep = select("random", s, 0.1, seed=5)[0]
    assert keep.sum() == 10
    assert np.array_equal(keep, select("random", s, 0.1, seed=5)[0])
    assert not np.array_equal(keep, select("random", s, 0.1, seed=6)[0])
    # the signal is ignored: another signal of the same length gives the same subset
    assert np.array_equal(keep, select("random", -s, 0.1, seed=5)[0])
    assert select("all", s, 1.0)[0].all()


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_fraction_out_of_range_is_a_clear_error(fraction):
    with pytest.raises(UserError, match="fraction must be in"):
        select("top_mid", np.ones(10), fraction)


def test_pool_too_small_for_fraction():
    with pytest.raises(UserError, match="keeps no prompt"):
        n_keep(3, 0.1)


def test_unknown_rule_lists_known_names():
    with pytest.raises(UserError, match="known: .*top_mid"):
        select("middle", np.ones(10), 0.5)
    assert {"top_mid", "lowest", "highest", "band", "bin", "dapo", "random", "all"} <= set(RULES)


def test_missing_values_in_signal_are_rejected():
    with pytest.raises(UserError, match="missing values"):
        select("top_mid", np.array([0.1, np.nan, 0.3]), 0.5)


def test_value_bins_group_equal_pass_rates_and_merge_small_ones():
    # K=8 pass rates: 60 prompts at 0, 25 at 1/8, 5 at 2/8, 30 at 4/8, 10 at 1 (130 prompts)
    p = np.array([0] * 60 + [1 / 8] * 25 + [2 / 8] * 5 + [4 / 8] * 30 + [1.0] * 10)
    # bins of at least max(20, 5% of 130 = 7) prompts: {0}, {1/8}, {2/8, 4/8}, and 1.0 (10 < 20)
    # joins the last full bin
    keep, score = select("value_bin", p, 0.1, bin_index=2)
    assert set(np.unique(p[keep])) == {2 / 8, 4 / 8, 1.0}
    assert [set(np.unique(p[score == b])) for b in range(3)] == [{0.0}, {1 / 8}, {2 / 8, 4 / 8, 1.0}]
    # one pass rate never lands in two bins, whatever the pool's order
    perm = np.random.default_rng(0).permutation(len(p))
    _, score_perm = select("value_bin", p[perm], 0.1, bin_index=0)
    assert (score_perm == score[perm]).all()
    with pytest.raises(UserError, match="has 3 value bins"):
        select("value_bin", p, 0.1, bin_index=3)
    assert "bin_min_share" in RULE_PARAMS


def test_apply_rule_reads_the_scorers_signal_and_marks_the_subset():
    import pandas as pd

    from ufo_rl.config import SelectorConfig
    from ufo_rl.problems import Problem
    from ufo_rl.scorers import get_scorer

    pool = [Problem(f"p{i}", f"q{i}", str(i), "", difficulty=1 + i % 3) for i in range(20)]
    conf = np.linspace(0.01, 0.99, 20)
    ufo, rnd = get_scorer("ufo"), get_scorer("random")
    scores = pd.DataFrame({"confidence": conf})
    df, signal, rule = apply_rule(ufo, SelectorConfig(name="ufo", fraction=0.2), scores, pool, 0)
    assert (signal, rule) == ("confidence", "top_mid")
    expected, _ = select("top_mid", conf, 0.2, seed=0)
    assert df["selected"].tolist() == expected.tolist() and int(df["selected"].sum()) == 4
    assert df["difficulty"].tolist() == [p.difficulty for p in pool] and set(df["selector"]) == {"ufo"}
    # a scorer without a signal applies its own rule, whatever the config's
    random_half = SelectorConfig(name="random", rule="top_mid", fraction=0.5)
    df, signal, rule = apply_rule(rnd, random_half, pd.DataFrame(index=range(20)), pool, 3)
    assert (signal, rule) == (None, "random") and int(df["selected"].sum()) == 10
    with pytest.raises(UserError, match="produces no 'pass_rate' signal"):
        apply_rule(ufo, SelectorConfig(name="ufo", signal="pass_rate"), pd.DataFrame({"confidence": conf}), pool, 0)
