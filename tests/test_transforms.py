"""The log-sigmoid transform, references, aggregation and best-of-n against plain numpy references."""

from itertools import combinations

import numpy as np
import pytest
from scipy.stats import norm

from rewardscope.bon import best_of_n, bon_kl, expected_best_of_n
from rewardscope.rewards import load_reward_model
from rewardscope.transforms import (
    AggregateReward,
    aggregate,
    good_on_all,
    log_sigmoid_transform,
    reference_reward,
    refusal_reference,
)


def naive_log_sigmoid(d):
    return np.log(1.0 / (1.0 + np.exp(-np.asarray(d, dtype=np.float64))))


def test_log_sigmoid_matches_naive_formula_where_it_is_representable():
    rng = np.random.default_rng(0)
    r, ref = rng.normal(0, 5, 1000), rng.normal(0, 5, 1000)
    np.testing.assert_allclose(log_sigmoid_transform(r, ref), naive_log_sigmoid(r - ref), rtol=1e-12, atol=1e-14)


def test_log_sigmoid_is_exact_at_extremes_where_the_naive_formula_breaks():
    d = np.array([-1e4, -800.0, -40.0, 0.0, 40.0, 800.0, 1e4])
    with np.errstate(over="ignore", divide="ignore"):
        naive = naive_log_sigmoid(d)
    assert np.isinf(naive[0])  # the naive formula gives log 0 = -inf far below the reference
    out = log_sigmoid_transform(d, 0.0)
    assert np.all(np.isfinite(out)) and np.all(out <= 0)
    np.testing.assert_allclose(out[:2], d[:2])  # ≈ linear with slope 1 far below the reference
    assert out[2] == pytest.approx(-40 - np.exp(-40), rel=1e-15)
    assert out[3] == pytest.approx(-np.log(2))
    assert out[4] == pytest.approx(-np.exp(-40), rel=1e-12)  # log1p precision, not 0
    assert np.all(np.diff(out) > 0) or out[-1] == 0.0
    assert isinstance(log_sigmoid_transform(1.0, 0.5), float)


def test_log_sigmoid_broadcasts_a_reference_per_prompt():
    r = np.arange(6.0).reshape(2, 3)
    ref = np.array([[1.0], [4.0]])
    np.testing.assert_allclose(log_sigmoid_transform(r, ref), naive_log_sigmoid(r - ref))


@pytest.mark.parametrize("bad", [[np.nan], [np.inf], "abc"])
def test_log_sigmoid_rejects_non_finite_or_non_numeric(bad):
    with pytest.raises((ValueError, TypeError), match="r "):
        log_sigmoid_transform(bad, 0.0)


def test_reference_reward_empirical_and_normal_match_numpy_scipy():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(7, 16))
    expected = np.array([np.quantile(row, 0.85) for row in base])
    np.testing.assert_allclose(reference_reward(base), expected)
    normal = np.array([row.mean() + norm.ppf(0.7) * row.std(ddof=1) for row in base])
    np.testing.assert_allclose(reference_reward(base, 0.7, method="normal"), normal)
    assert reference_reward(base, 0.85, "normal")[0] == pytest.approx(base[0].mean() + 1.0364 * base[0].std(ddof=1), abs=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    ({"base_rewards": np.ones(5)}, "2-D"),
    ({"base_rewards": np.ones((0, 3))}, "2-D"),
    ({"base_rewards": np.ones((2, 3)), "quantile": 1.0}, "quantile"),
    ({"base_rewards": np.ones((2, 3)), "quantile": True}, "quantile"),
    ({"base_rewards": np.ones((2, 3)), "method": "median"}, "method"),
    ({"base_rewards": np.ones((2, 1)), "method": "normal"}, "2 samples"),
    ({"base_rewards": np.array([[1.0, np.nan]])}, "non-finite"),
])
def test_reference_reward_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        reference_reward(**kwargs)


def test_aggregate_transformed_and_raw_against_plain_sums():
    rng = np.random.default_rng(2)
    r = {"helpful": rng.normal(size=(4, 8)), "harmless": rng.normal(size=(4, 8))}
    ref = {"helpful": rng.normal(size=(4, 1)), "harmless": rng.normal(size=(4, 1))}
    expected = naive_log_sigmoid(r["helpful"] - ref["helpful"]) + naive_log_sigmoid(r["harmless"] - ref["harmless"])
    np.testing.assert_allclose(aggregate(r, ref), expected)
    np.testing.assert_allclose(aggregate(r, method="raw"), r["helpful"] + r["harmless"])
    np.testing.assert_allclose(aggregate(r, method="raw", weights={"harmless": 3.0}), r["helpful"] + 3 * r["harmless"])


def test_transformed_sum_is_an_and_where_the_raw_sum_compensates():
    # Response 0 is excellent on one property and poor on the other; response 1 beats both references a little.
    r = {"helpful": np.array([[6.0, 0.6]]), "harmless": np.array([[-2.0, 0.6]])}
    ref = {"helpful": np.array([[0.0]]), "harmless": np.array([[0.0]])}
    assert best_of_n(aggregate(r, method="raw"))[0] == 0
    assert best_of_n(aggregate(r, ref))[0] == 1
    assert good_on_all({k: v[0] for k, v in r.items()}, {k: v[0] for k, v in ref.items()}).tolist() == [False, True]


def test_best_of_n_with_aggregation_picks_the_planted_best():
    rng = np.random.default_rng(3)
    helpful, harmless = rng.normal(-1, 0.3, (5, 32)), rng.normal(-1, 0.3, (5, 32))
    planted = rng.integers(0, 32, 5)
    helpful[np.arange(5), planted] = harmless[np.arange(5), planted] = 1.0  # the only response good on both
    decoys = (planted + 1) % 32
    helpful[np.arange(5), decoys] = 9.0  # great on one property, bad on the other
    harmless[np.arange(5), decoys] = -3.0
    refs = {"helpful": np.zeros((5, 1)), "harmless": np.zeros((5, 1))}
    rewards = {"helpful": helpful, "harmless": harmless}
    np.testing.assert_array_equal(best_of_n(aggregate(rewards, refs)), planted)
    np.testing.assert_array_equal(best_of_n(aggregate(rewards, method="raw")), decoys)


@pytest.mark.parametrize("args, kwargs, message", [
    (({},), {}, "non-empty"),
    (({"a": np.ones(2), "b": np.ones(3)},), {"method": "raw"}, "same shape"),
    (({"a": np.ones(2)},), {}, "needs a reference"),
    (({"a": np.ones(2)}, {"b": np.ones(2)}), {}, "missing \\['a'\\]"),
    (({"a": np.ones(2)}, {"a": np.ones(2)}), {"weights": {"a": 2.0}}, "apply to method=.raw. only"),
    (({"a": np.ones(2)},), {"method": "raw", "weights": {"c": 1.0}}, "not rewards"),
    (({"a": np.ones(2)},), {"method": "product"}, "method"),
])
def test_aggregate_rejects_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        aggregate(*args, **kwargs)


@pytest.mark.parametrize("r, r_ref, message", [
    ([0.0, 1.0, 2.0], [[0.0], [1.0], [2.0]], r"r_ref has shape \(3, 1\) but r has shape \(3,\)"),  # was a 3x3 result
    ([0.0, 1.0, 2.0], [0.0, 1.0], r"r_ref has shape \(2,\) but r has shape \(3,\)"),
    (np.zeros((2, 3)), np.zeros(2), r"r_ref has shape \(2,\) but r has shape \(2, 3\)"),  # per prompt needs [n, 1]
    (0.0, [0.0, 1.0], r"r_ref has shape \(2,\) but r has shape \(\)"),
])
def test_log_sigmoid_refuses_a_reference_that_would_change_the_shape(r, r_ref, message):
    with pytest.raises(ValueError, match=message) as err:
        log_sigmoid_transform(r, r_ref)
    assert "\n" not in str(err.value) and "broadcast" not in str(err.value)


def test_log_sigmoid_refuses_an_infinite_reference():
    with pytest.raises(ValueError, match="r_ref has 1 non-finite"):
        log_sigmoid_transform([0.0, 1.0], [0.0, -np.inf])


@pytest.mark.parametrize("args, kwargs, error, message", [
    (({"a": np.ones(3)}, {"a": np.ones((3, 1))}), {}, ValueError,
     r"references\['a'\] has shape \(3, 1\) but rewards\['a'\] has shape \(3,\)"),
    (({"a": np.ones(3)}, {"a": np.ones(2)}), {}, ValueError, r"references\['a'\] has shape \(2,\)"),
    (({"a": np.ones(2), "b": np.ones(3)},), {"method": "raw"}, ValueError,
     r"rewards\['a'\] has shape \(2,\) but rewards\['b'\] has shape \(3,\)"),
    (({"a": []}, {"a": []}), {}, ValueError, "rewards are empty"),
    (({"a": [], "b": []},), {"method": "raw"}, ValueError, "rewards are empty"),
    (({"a": np.ones(2)}, {"a": [0.0, np.inf]}), {}, ValueError, r"references\['a'\] has 1 non-finite"),
    (({"a": [1.0, np.nan]}, {"a": 0.0}), {}, ValueError, r"rewards\['a'\] has 1 non-finite"),
    (({"a": np.ones(2)},), {"method": "raw", "weights": {"a": [1.0, 2.0]}}, ValueError, r"weights\['a'\] must be one"),
    (([1.0, 2.0],), {"method": "raw"}, TypeError, "rewards must be a dict"),
    (({"a": np.ones(2)}, [np.zeros(2)]), {}, TypeError, "references must be a dict"),
])
def test_aggregate_refuses_mismatched_empty_or_non_finite_input(args, kwargs, error, message):
    with pytest.raises(error, match=message) as err:
        aggregate(*args, **kwargs)
    assert "\n" not in str(err.value) and "broadcast" not in str(err.value)


def test_good_on_all_refuses_a_reference_that_would_change_the_shape():
    with pytest.raises(ValueError, match=r"references\['a'\] has shape \(3, 1\)"):
        good_on_all({"a": np.ones(3)}, {"a": np.ones((3, 1))})
    with pytest.raises(ValueError, match="need a reference for every reward"):
        good_on_all({"a": np.ones(3)}, {"b": np.ones(3)})


def brute_force_best_of_n(utility, value, n):
    """Average, over every n-subset, of the value of its utility-best sample (first on ties)."""
    out = []
    for u, v in zip(utility, value):
        picks = [v[list(s)[int(np.argmax(u[list(s)]))]] for s in combinations(range(len(u)), n)]
        out.append(np.mean(picks))
    return np.array(out)


def test_expected_best_of_n_equals_enumeration_over_subsets_ties_included():
    rng = np.random.default_rng(4)
    utility = rng.integers(0, 4, (5, 7)).astype(float)  # many ties
    value = rng.normal(size=(5, 7))
    for n in range(1, 8):
        np.testing.assert_allclose(expected_best_of_n(utility, value, n), brute_force_best_of_n(utility, value, n),
                                   atol=1e-12)
    np.testing.assert_allclose(expected_best_of_n(utility, value, 1), value.mean(axis=1))
    best = value[np.arange(5), best_of_n(utility)]
    np.testing.assert_allclose(expected_best_of_n(utility, value, 7), best)


def test_expected_best_of_n_is_stable_for_large_n():
    rng = np.random.default_rng(5)
    u = rng.normal(size=(3, 512))
    out = expected_best_of_n(u, u, 256)
    assert np.all(np.isfinite(out)) and np.all(out <= u.max(axis=1) + 1e-12) and np.all(out > np.median(u, axis=1))


def test_bon_kl_formula_and_failures():
    assert bon_kl(1) == 0.0
    assert bon_kl(64) == pytest.approx(np.log(64) - 63 / 64)
    np.testing.assert_allclose(bon_kl([1, 2, 4]), [0.0, np.log(2) - 0.5, np.log(4) - 0.75])
    with pytest.raises(ValueError, match="integers >= 1"):
        bon_kl(0)
    with pytest.raises(ValueError, match="integers >= 1"):
        bon_kl(2.5)


@pytest.mark.parametrize("call, message", [
    (lambda: best_of_n(np.ones(4)), "2-D"),
    (lambda: expected_best_of_n(np.ones((2, 3)), np.ones((2, 4)), 1), "same shape"),
    (lambda: expected_best_of_n(np.ones((2, 3)), np.ones((2, 3)), 4), "n must be"),
    (lambda: expected_best_of_n(np.ones((2, 3)), np.ones((2, 3)), 0), "n must be"),
    (lambda: best_of_n(np.array([[1.0, np.nan]])), "non-finite"),
])
def test_best_of_n_rejects_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_aggregate_reward_scores_like_the_plain_formula():
    vader, afinn = load_reward_model("vader-compound"), load_reward_model("afinn")
    prompts = ["How was the film?", "How was the film?", "Any news?"]
    responses = ["It was wonderful, I loved it.", "Awful. I hated it.", "Nothing much."]
    refs = {"vader": {"How was the film?": 0.2, "Any news?": -0.1}, "afinn": {"How was the film?": 1.0, "Any news?": 0.0}}
    rm = AggregateReward({"vader": vader, "afinn": afinn}, refs)
    v, a = vader.score(prompts, responses), afinn.score(prompts, responses)
    expected = naive_log_sigmoid(v - np.array([0.2, 0.2, -0.1])) + naive_log_sigmoid(a - np.array([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(rm.score(prompts, responses), expected)
    raw = AggregateReward({"vader": vader, "afinn": afinn}, method="raw", weights={"afinn": 0.5})
    np.testing.assert_allclose(raw.score(prompts, responses), v + 0.5 * a)
    with pytest.raises(ValueError, match="no reference reward"):
        rm.score(["Unseen prompt"], ["Hi"])
    with pytest.raises(ValueError, match="needs references"):
        AggregateReward({"vader": vader})
    with pytest.raises(ValueError, match="RewardModel"):
        AggregateReward({"vader": "vader-compound"}, method="raw")


def test_refusal_reference_scores_the_refusal():
    vader = load_reward_model("vader-compound")
    refs = refusal_reference(vader, ["Help me?", "Tell me more."])
    np.testing.assert_allclose(refs, vader.score(["Help me?"], ["I'm sorry, but I can't help with that."])[0])
    with pytest.raises(ValueError, match="non-empty"):
        refusal_reference(vader, ["Hi"], refusal="  ")
