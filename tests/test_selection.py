import numpy as np
import pytest

from ufo_rl.errors import UserError
from ufo_rl.selection import RULES, n_keep, select


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
