import numpy as np
import pytest

from rewardscope.stats import bootstrap_ci, cohens_d


def test_bootstrap_interval_covers_the_planted_mean():
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(40):
        sample = rng.normal(3.0, 1.0, 200)
        _, lo, hi = bootstrap_ci(sample, n_resamples=500, seed=trial)
        covered += lo <= 3.0 <= hi
    assert covered >= 34  # nominal 95 %: at least 85 % of 40 trials


def test_bootstrap_is_seeded_and_checks_input():
    x = np.arange(50.0)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(x, level=95)


def test_cohens_d_on_a_known_shift():
    rng = np.random.default_rng(0)
    assert abs(cohens_d(rng.normal(1, 1, 5000), rng.normal(0, 1, 5000)) - 1.0) < 0.05


def test_win_rate_counts_pairs_and_halves_ties():
    from rewardscope.stats import win_rate

    treated = np.array([[3.0, 1.0], [0.0, 0.0]])
    control = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, -1.0]])
    # prompt 0: 3 beats all 3; 1 beats 0, ties 1, loses to 2 -> (3 + 1 + 0.5) / 6; prompt 1: 2 wins, 2 ties of 6
    np.testing.assert_allclose(win_rate(treated, control), [4.5 / 6, 3 / 6])
    with pytest.raises(ValueError, match="same prompts"):
        win_rate(np.ones((2, 2)), np.ones((3, 2)))
