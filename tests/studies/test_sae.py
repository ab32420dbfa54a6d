"""Sparse autoencoders, MMCS and activation capture: planted dictionaries, brute-force matching, padding and hooks."""

from itertools import permutations

import numpy as np
import pytest
import torch

from rewardscope.studies.irm.sae import SAE, matched_cosines, mmcs, reconstruction_metrics, train_sae

TEXTS = ["Hello there, how are you doing today?", "Hi", "What a wonderful day it is to be alive and well",
         "ok then", "The pills worked, and my doctor was pleased."]


def planted_dictionary(d=32, n_features=64, n=4096, active=3, seed=0):
    """Rows x = sum of ``active`` unit atoms of a random dictionary with coefficients U(0.5, 1.5)."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(n_features, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = np.zeros((n, n_features))
    for row in codes:
        row[rng.choice(n_features, active, replace=False)] = rng.uniform(0.5, 1.5, active)
    return (codes @ atoms).astype(np.float32), atoms


# --------------------------------------------------------------------------------------------------
# training


def test_default_sae_recovers_a_planted_dictionary():
    x, atoms = planted_dictionary()  # 2x overcomplete (64 atoms in d=32), 3 active per row
    sae = train_sae(x, 64)
    assert mmcs(sae.dictionary, atoms) >= 0.9  # one-to-one Hungarian matching, 0.96-0.99 over seeds 0-2
    metrics = reconstruction_metrics(sae, x)
    assert metrics["fvu"] < 0.15 and metrics["l0"] < 10 and metrics["dead_fraction"] == 0
    np.testing.assert_allclose(np.linalg.norm(sae.dictionary, axis=1), 1.0, atol=1e-5)
    assert sae.losses.shape == (3000, 3) and sae.losses[-100:, 0].mean() < sae.losses[:100, 0].mean()
    # a random dictionary of the same shape is far from it: the threshold means something
    random_atoms = np.random.default_rng(9).normal(size=atoms.shape)
    assert mmcs(random_atoms, atoms) < 0.5


def test_training_is_deterministic_given_the_seed():
    x, _ = planted_dictionary(d=8, n_features=16, n=512)
    a, b = train_sae(x, 16, seed=3, n_steps=100), train_sae(x, 16, seed=3, n_steps=100)
    c = train_sae(x, 16, seed=4, n_steps=100)
    np.testing.assert_array_equal(a.dictionary, b.dictionary)
    np.testing.assert_array_equal(a.encode(x), b.encode(x))
    assert not np.allclose(a.dictionary, c.dictionary)


def test_encode_decode_follow_the_formula_in_raw_units():
    x, _ = planted_dictionary(d=8, n_features=16, n=256)
    sae = train_sae(x, 16, n_steps=50)
    W_enc, b_enc = sae.W_enc.detach().numpy(), sae.b_enc.detach().numpy()
    W_dec, b_dec, s = sae.W_dec.detach().numpy(), sae.b_dec.detach().numpy(), float(sae.scale)
    f = np.maximum((x / s - b_dec) @ W_enc + b_enc, 0)
    np.testing.assert_allclose(sae.encode(x), f, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sae.decode(f), (f @ W_dec + b_dec) * s, rtol=1e-5, atol=1e-5)
    assert isinstance(sae.encode(torch.as_tensor(x)), torch.Tensor)
    # the scale is the RMS distance to the mean: rows normalised by it have mean squared centred norm 1
    assert s == pytest.approx(np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean()), rel=1e-4)


def test_reconstruction_metrics_match_numpy():
    x, _ = planted_dictionary(d=8, n_features=16, n=300)
    sae = train_sae(x, 16, n_steps=100)
    x_hat, f = sae.decode(sae.encode(x)).astype(np.float64), sae.encode(x)
    metrics = reconstruction_metrics(sae, x, batch_size=64)  # several batches
    assert metrics["fvu"] == pytest.approx(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum(), rel=1e-5)
    assert metrics["mse"] == pytest.approx(((x - x_hat) ** 2).mean(), rel=1e-5)
    assert metrics["l0"] == pytest.approx((f > 0).sum(1).mean())
    assert metrics["dead_fraction"] == pytest.approx(1 - (f > 0).any(0).mean())


def test_save_and_load_round_trip(tmp_path):
    x, _ = planted_dictionary(d=8, n_features=16, n=256)
    sae = train_sae(x, 16, n_steps=30)
    loaded = SAE.load(sae.save(tmp_path / "sae"))
    np.testing.assert_array_equal(loaded.encode(x), sae.encode(x))
    np.testing.assert_array_equal(loaded.losses, sae.losses)
    with pytest.raises(ValueError, match="no saved SAE"):
        SAE.load(tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"activations": np.ones(10)}, "2-D"),
    ({"activations": np.ones((0, 4))}, "2-D"),
    ({"n_features": 0}, "n_features"),
    ({"n_features": True}, "n_features"),
    ({"l1_coefficient": -1.0}, "l1_coefficient"),
    ({"batch_size": 0}, "batch_size"),
    ({"n_steps": 2.5}, "n_steps"),
    ({"activations": np.ones((20, 4))}, "must vary"),
])
def test_train_sae_rejects_bad_input(kwargs, message):
    args = {"activations": np.random.default_rng(0).normal(size=(20, 4)), "n_features": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        train_sae(**args)


def test_encode_rejects_the_wrong_width():
    sae = train_sae(np.random.default_rng(0).normal(size=(64, 4)), 8, n_steps=5)
    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        sae.encode(np.ones((3, 5)))


# --------------------------------------------------------------------------------------------------
# MMCS


def brute_force_matching(a, b):
    """Best one-to-one matching by enumerating every injective map from the shorter side."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = a @ b.T
    if len(a) <= len(b):
        return max(np.mean([cos[i, j] for i, j in enumerate(p)]) for p in permutations(range(len(b)), len(a)))
    return max(np.mean([cos[i, j] for j, i in enumerate(p)]) for p in permutations(range(len(a)), len(b)))


@pytest.mark.parametrize("n_a, n_b", [(5, 5), (4, 6), (6, 4), (1, 3)])
def test_mmcs_equals_the_brute_force_best_matching(n_a, n_b):
    rng = np.random.default_rng(n_a * 10 + n_b)
    for _ in range(5):
        a, b = rng.normal(size=(n_a, 3)), rng.normal(size=(n_b, 3))
        assert mmcs(a, b) == pytest.approx(brute_force_matching(a, b), abs=1e-12)


def test_mmcs_of_a_permuted_rescaled_copy_is_one_and_signs_count():
    atoms = np.random.default_rng(0).normal(size=(7, 5))
    shuffled = atoms[[3, 1, 6, 0, 2, 5, 4]] * np.arange(1, 8)[:, None]
    assert mmcs(atoms, shuffled) == pytest.approx(1.0)
    assert mmcs([[1.0, 2.0]], [[-1.0, -2.0]]) == pytest.approx(-1.0)  # a flipped direction is another ReLU feature
    assert mmcs(np.eye(3), np.vstack([np.eye(3)[0]] * 3), one_to_one=False) == pytest.approx(1 / 3)
    # one-to-one: a duplicated atom can be matched once only
    assert mmcs(np.eye(2), np.vstack([np.eye(2)[0], np.eye(2)[0]])) == pytest.approx(0.5)


def test_matched_cosines_ranks_features_and_marks_the_unmatched():
    a = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    b = np.array([[0.0, 1, 0.1], [1, 0.2, 0]])
    table = matched_cosines(a, b)
    assert list(table.columns) == ["feature_a", "feature_b", "cosine"]
    assert np.all(np.diff(table["cosine"].dropna()) <= 0)  # highest first
    matched = table.dropna()
    assert sorted(matched["feature_b"]) == [0, 1] and len(matched) == 2
    assert set(table.loc[table["cosine"].isna(), "feature_b"]) == {-1}
    row = table.set_index("feature_a").loc[1]
    assert row["feature_b"] == 0 and row["cosine"] == pytest.approx(1 / np.sqrt(1.01))
    best = matched_cosines(a, b, one_to_one=False).set_index("feature_a")["cosine"]
    cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    np.testing.assert_allclose(best.sort_index(), cos.max(1))


@pytest.mark.parametrize("a, b, message", [
    (np.ones((4, 3)), np.ones((3, 4)), "transpose"),
    (np.ones(3), np.ones((2, 3)), "2-D"),
    (np.zeros((2, 3)), np.ones((2, 3)), "all-zero"),
    (np.full((2, 3), np.nan), np.ones((2, 3)), "non-finite"),
])
def test_mmcs_rejects_bad_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        mmcs(a, b)


# --------------------------------------------------------------------------------------------------
# one seed per SAE (issue 14): no shared initial rows, no shared batch order


def _initial_dictionary(x, n_features, seed):
    """The initial dictionary of train_sae: lr = 0 leaves it unchanged after one step."""
    return train_sae(x, n_features, seed=seed, lr=0.0, n_steps=1).dictionary


def test_two_widths_never_share_initial_rows_even_under_one_seed():
    x = np.random.default_rng(0).normal(size=(300, 24)).astype(np.float32)
    # the old behaviour: randn(2d, d) under seed 0 began with the rows of randn(d, d)
    small, big = _initial_dictionary(x, 24, 0), _initial_dictionary(x, 48, 0)
    assert np.abs(small @ big.T).max() < 0.95
    from rewardscope.studies.irm.sae import sae_seed

    # seeds of their own, across widths and models
    dicts = {(m, w): _initial_dictionary(x, w, sae_seed(m, 3, w, 0)) for m in ("base", "tuned") for w in (24, 48)}
    keys = list(dicts)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert np.abs(dicts[a] @ dicts[b].T).max() < 0.95, (a, b)


def test_sae_seed_separates_model_layer_width_and_replicate():
    from rewardscope.studies.irm.sae import _streams, sae_seed

    seeds = {sae_seed(m, layer, w, r) for m in ("base", "tuned") for layer in (0, 5) for w in (576, 1152)
             for r in (0, 1, 2)}
    assert len(seeds) == 24 and all(0 <= s < 2 ** 63 for s in seeds)
    assert sae_seed("base", 0, 576, 1) == sae_seed("base", 0, 576, 1) != sae_seed("base", 0, 576, 1, salt=1)
    # the batch orders of two SAEs differ too
    orders = [_streams(s, 576)[0].permutation(1000) for s in (sae_seed("base", 0, 576, 0), sae_seed("tuned", 0, 576, 0))]
    assert not np.array_equal(*orders)
    assert not np.array_equal(_streams(0, 576)[0].permutation(1000), _streams(0, 1152)[0].permutation(1000))
    with pytest.raises(ValueError, match="model_id"):
        sae_seed("", 0, 1, 0)
    with pytest.raises(ValueError, match="layer"):
        sae_seed("base", -1, 1, 0)


def test_null_mmcs_matches_the_shapes_compared():
    from rewardscope.studies.irm.sae import null_mmcs, random_dictionary

    square, wide = null_mmcs(64, 64, 32, n_draws=3).mean(), null_mmcs(64, 128, 32, n_draws=3).mean()
    assert wide > square + 0.02  # more rows to choose from: a higher chance level
    cov = np.diag(np.r_[np.full(4, 50.0), np.ones(28)])
    assert null_mmcs(64, 64, 32, covariance=cov, n_draws=3).mean() > square + 0.05  # anisotropic: easier to match
    rows = random_dictionary(10, 32, cov, seed=1)
    assert rows.shape == (10, 32) and np.allclose(np.linalg.norm(rows, axis=1), 1)
    with pytest.raises(ValueError, match="covariance"):
        random_dictionary(3, 4, np.eye(3))


def test_crossed_seed_cosines_detect_a_changed_dictionary_and_not_an_unchanged_one():
    from rewardscope.studies.irm.sae import crossed_seed_cosines

    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(40, 16))
    moved = atoms.copy()
    moved[:20] = rng.normal(size=(20, 16))  # "tuning" replaces half of the features

    def replicates(base, k=3):  # each seed finds the atoms up to noise, in its own order
        return [(base + rng.normal(0, 0.3, base.shape))[rng.permutation(len(base))] for _ in range(k)]

    same = crossed_seed_cosines(replicates(atoms), replicates(atoms))
    changed = crossed_seed_cosines(replicates(atoms), replicates(moved))
    assert set(same.columns) == {"model", "replicate", "feature", "within", "cross", "difference"}
    assert len(same) == 2 * 3 * 40
    assert abs(same["difference"].mean()) < 0.02
    assert changed["difference"].mean() > 0.1
    with pytest.raises(ValueError, match="two replicates"):
        crossed_seed_cosines([atoms], [atoms, atoms])


def test_cross_reconstruction_finds_the_sae_of_other_data_worse():
    from rewardscope.studies.irm.sae import cross_reconstruction, grouped_fvu

    x_a, _ = planted_dictionary(d=16, n_features=32, n=2048, seed=1)
    x_b, _ = planted_dictionary(d=16, n_features=32, n=2048, seed=2)
    own, other = train_sae(x_b, 32, seed=5, n_steps=300), train_sae(x_a, 32, seed=6, n_steps=300)
    groups = np.repeat(np.arange(64), 32)
    parts = grouped_fvu(own, x_b, groups)
    assert np.isclose(parts["error"].sum() / parts["variance"].sum(), reconstruction_metrics(own, x_b)["fvu"], rtol=1e-4)
    result = cross_reconstruction([other], [own], x_b, groups, n_resamples=200)
    assert result["n"] == 64 and result["a"] > result["b"] and result["low"] > 0
    same = cross_reconstruction([own], [own], x_b, groups, n_resamples=50)
    assert same["difference"] == 0 and same["low"] == same["high"] == 0


def test_cross_reconstruction_interval_carries_the_seed_spread_of_saes():
    """SAEs of one data set that differ only in seed: the interval must resample the replicates too."""
    from rewardscope.studies.irm.sae import cross_reconstruction, grouped_fvu

    x, _ = planted_dictionary(d=16, n_features=32, n=2048, seed=1)
    unfamiliar, _ = planted_dictionary(d=16, n_features=32, n=2048, seed=2)
    saes = [train_sae(x, 32, seed=s, n_steps=150) for s in range(6)]
    groups = np.repeat(np.arange(64), 32)
    result = cross_reconstruction(saes[:3], saes[3:], unfamiliar, groups, n_resamples=300)
    assert result["replicates"] == 3 and result["low"] < 0 < result["high"]  # one model, two sets of seeds: no finding
    # the old interval: the generations resampled, the SAEs fixed
    parts = [grouped_fvu(s, unfamiliar, groups) for s in saes]
    variance = parts[0]["variance"].to_numpy()
    gap = np.mean([p["error"] for p in parts[:3]], 0) - np.mean([p["error"] for p in parts[3:]], 0)
    rng = np.random.default_rng(0)
    draws = [gap[i].sum() / variance[i].sum() for i in (rng.integers(0, 64, 64) for _ in range(300))]
    old_width = np.quantile(draws, 0.975) - np.quantile(draws, 0.025)
    assert result["high"] - result["low"] > 3 * old_width
