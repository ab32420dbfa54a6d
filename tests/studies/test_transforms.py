"""The log-sigmoid transform, references, aggregation and best-of-n against plain numpy references."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import norm

from rewardscope.rewards import load_reward_model
from rewardscope.studies.transforms.bon import (
    best_of_n,
    bon_kl,
    compare_at_kl,
    exact_tilt,
    expected_best_of_n,
    tilt_betas,
    value_at_kl,
)
from rewardscope.studies.transforms.transforms import (
    AggregateReward,
    aggregate,
    calibrate_temperature,
    exceedance,
    good,
    good_on_all,
    log_sigmoid_transform,
    paper_claims,
    reference_reward,
    refusal_reference,
    seed_interval,
    win_on_both,
    within_prompt_correlation,
)
from rewardscope.studies.transforms.transforms import findings as transforms_findings


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
    assert np.all(np.diff(out[:5]) > 0)  # strictly increasing wherever a double can tell the values apart
    assert np.all(out[5:] == 0.0)  # -exp(-800) is below the smallest double: 0 is the exact rounding
    assert isinstance(log_sigmoid_transform(1.0, 0.5), float)


def test_log_sigmoid_broadcasts_a_reference_per_prompt():
    r = np.arange(6.0).reshape(2, 3)
    ref = np.array([[1.0], [4.0]])
    np.testing.assert_allclose(log_sigmoid_transform(r, ref), naive_log_sigmoid(r - ref))


@pytest.mark.parametrize("bad", [[np.nan], [np.inf], "abc"])
def test_log_sigmoid_rejects_non_finite_or_non_numeric(bad):
    with pytest.raises((ValueError, TypeError), match="r "):
        log_sigmoid_transform(bad, 0.0)


def test_reference_reward_linear_weibull_and_normal_match_numpy_scipy():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(7, 16))
    expected = np.array([np.quantile(row, 0.85) for row in base])
    np.testing.assert_allclose(reference_reward(base, method="linear"), expected)
    weibull = np.array([np.quantile(row, 0.85, method="weibull") for row in base])
    np.testing.assert_allclose(reference_reward(base, method="weibull"), weibull)
    normal = np.array([row.mean() + norm.ppf(0.7) * row.std(ddof=1) for row in base])
    np.testing.assert_allclose(reference_reward(base, 0.7, method="normal"), normal)
    assert reference_reward(base, 0.85, "normal")[0] == pytest.approx(base[0].mean() + 1.0364 * base[0].std(ddof=1), abs=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    ({"base_rewards": np.ones(5)}, "2-D"),
    ({"base_rewards": np.ones((0, 3))}, "2-D"),
    ({"base_rewards": np.ones((2, 3)), "quantile": 1.0}, "quantile"),
    ({"base_rewards": np.ones((2, 3)), "quantile": True}, "quantile"),
    ({"base_rewards": np.ones((2, 3)), "method": "median"}, "method"),
    ({"base_rewards": np.ones((2, 4))}, "at least 6 samples per prompt"),  # 0.85 needs k >= 5.67
    ({"base_rewards": np.ones((2, 8)), "quantile": 0.05}, "at least 19 samples per prompt"),
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


# --------------------------------------------------------------------------------------------------
# Issue 14: a reference exceeded with probability 1 − q, gold-judged AND, matched KL, calibration, findings


@pytest.mark.parametrize("dist", [stats.norm(), stats.expon(), stats.lognorm(1.0)], ids=["normal", "exponential",
                                                                                        "lognormal"])
def test_a_fresh_base_sample_exceeds_the_reference_with_probability_one_minus_q(dist):
    rng = np.random.default_rng(6)
    k, q, prompts = 8, 0.85, 40_000
    base = dist.rvs(size=(prompts, k), random_state=rng)
    exceed = dist.sf(reference_reward(base, q))  # exact P(fresh sample > r_ref) for each prompt
    tolerance = 4 * exceed.std() / np.sqrt(prompts)
    assert abs(exceed.mean() - (1 - q)) < tolerance  # unbiased, whatever the distribution
    linear = dist.sf(reference_reward(base, q, method="linear")).mean()
    assert abs(linear - (1 - q)) > 10 * tolerance and linear == pytest.approx(1 - (7 * q + 1) / 9, abs=0.005)  # 22.8 %
    # with (k + 1)·q an integer the reference is a plain order statistic: no draw, and Weibull agrees
    base19 = dist.rvs(size=(prompts, 19), random_state=rng)
    np.testing.assert_array_equal(reference_reward(base19, q), np.sort(base19, axis=1)[:, 16])
    np.testing.assert_allclose(reference_reward(base19, q, method="weibull"), reference_reward(base19, q))
    assert abs(dist.sf(reference_reward(base19, q)).mean() - (1 - q)) < tolerance


def test_unbiased_reference_is_seeded_and_scale_equivariant():
    base = np.random.default_rng(7).normal(size=(50, 8))
    np.testing.assert_array_equal(reference_reward(base, seed=3), reference_reward(base, seed=3))
    np.testing.assert_allclose(reference_reward(2.5 * base - 1, seed=3), 2.5 * reference_reward(base, seed=3) - 1)


def test_exceedance_counts_held_out_samples_above_the_reference():
    np.testing.assert_allclose(exceedance(np.array([0.0, 1.0]), np.array([[1.0, -1.0, 0.0, 2.0], [0.0, 0.5, 1.0, 3.0]])),
                               [0.625, 0.375])
    with pytest.raises(ValueError, match="n_prompts"):
        exceedance(np.zeros(3), np.zeros((2, 4)))


def test_win_on_both_matches_a_plain_loop():
    rng = np.random.default_rng(8)
    scores = {"a": rng.integers(0, 3, (3, 5)).astype(float), "b": rng.normal(size=(3, 5))}
    base = {"a": rng.integers(0, 3, (3, 4)).astype(float), "b": rng.normal(size=(3, 4))}
    expected = np.zeros((3, 5))
    for p in range(3):
        for i in range(5):
            for j in range(4):
                win = [1.0 if scores[n][p, i] > base[n][p, j] else 0.5 if scores[n][p, i] == base[n][p, j] else 0.0
                       for n in ("a", "b")]
                expected[p, i] += win[0] * win[1] / 4
    np.testing.assert_allclose(win_on_both(scores, base), expected)
    # great on one property and bad on the other never wins on both; good on both always does
    s = {"a": np.array([[9.0, 1.0]]), "b": np.array([[-9.0, 1.0]])}
    np.testing.assert_allclose(win_on_both(s, {"a": np.zeros((1, 3)), "b": np.zeros((1, 3))}), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="same properties"):
        win_on_both({"a": np.ones((1, 2))}, {"b": np.ones((1, 2))})


def test_good_moved_from_the_notebook():
    flags = good({"a": np.array([[0.0, 2.0]])}, {"a": np.array([1.0])})
    assert flags["a"].tolist() == [[False, True]]
    with pytest.raises(ValueError, match="need a reference"):
        good({"a": np.ones((1, 2))}, {})


def test_calibrate_temperature_recovers_a_planted_bradley_terry_temperature():
    rng = np.random.default_rng(9)
    for temperature in (0.5, 2.5):
        a, b = rng.normal(0, 3, (2, 20_000))
        first = rng.random(20_000) < 1 / (1 + np.exp(-(a - b) / temperature))  # BT labels at this temperature
        chosen, rejected = np.where(first, a, b), np.where(first, b, a)
        assert calibrate_temperature(chosen, rejected) == pytest.approx(temperature, rel=0.06)
        assert calibrate_temperature(4 * chosen, 4 * rejected) == pytest.approx(4 * temperature, rel=0.06)
    with pytest.raises(ValueError, match="every pair correctly"):
        calibrate_temperature([1.0, 2.0], [0.0, 0.0])


def test_aggregate_reward_divides_by_the_temperatures():
    vader = load_reward_model("vader-compound")
    prompts, responses = ["Hi", "Hi"], ["I love it.", "I hate it."]
    refs = {"v": {"Hi": 0.1}}
    v = vader.score(prompts, responses)
    rm = AggregateReward({"v": vader}, refs, temperatures={"v": 0.25})
    np.testing.assert_allclose(rm.score(prompts, responses), naive_log_sigmoid(v / 0.25 - 0.1))
    with pytest.raises(ValueError, match="temperatures must be finite"):
        AggregateReward({"v": vader}, refs, temperatures={"v": 0.0})
    with pytest.raises(ValueError, match="not rewards"):
        AggregateReward({"v": vader}, refs, temperatures={"w": 1.0})


def test_exact_tilt_on_two_samples_matches_the_closed_form():
    delta, betas = 2.0, np.array([0.5, 1.0, 4.0])
    out = exact_tilt(np.array([[0.0, delta]]), {"value": np.array([[0.0, 1.0]])}, betas)
    w2 = 1 / (1 + np.exp(-delta / betas))  # w ∝ exp(u/β): the upper sample's weight is σ(Δ/β)
    w1 = 1 - w2
    np.testing.assert_allclose(out["value"][:, 0], w2)
    np.testing.assert_allclose(out["kl"][:, 0], w1 * np.log(2 * w1) + w2 * np.log(2 * w2))


def test_exact_tilt_is_the_kl_regularised_optimum_by_brute_force():
    rng = np.random.default_rng(10)
    u, beta = rng.normal(size=(1, 4)), 0.7
    out = exact_tilt(u, {"u": u}, [beta])
    best = out["u"][0, 0] - beta * out["kl"][0, 0]
    for w in rng.dirichlet(np.ones(4), 20_000):  # no distribution on the samples does better
        assert w @ u[0] - beta * np.sum(w * np.log(4 * w)) <= best + 1e-12
    grid = tilt_betas(u)
    kl = exact_tilt(u, {}, grid)["kl"][:, 0]
    assert kl[0] < 1e-3 and kl[-1] > np.log(4) - 1e-3 and np.all(np.diff(kl) >= -1e-12)


def test_compare_at_kl_matches_arms_at_equal_kl_not_per_nat():
    # Arm b moves less (smaller KL at every β) but is worse at equal KL: a gain-per-nat ratio favours b.
    rng = np.random.default_rng(11)
    u = rng.normal(size=(30, 16))
    value = u.copy()
    a = exact_tilt(u, {"v": value}, tilt_betas(u))
    b = exact_tilt(0.5 * u + 0.5 * rng.normal(size=u.shape), {"v": value}, tilt_betas(u))
    est, low, high = compare_at_kl(a["kl"], a["v"], b["kl"], b["v"], 1.0, n_resamples=300)
    assert low > 0 and low <= est <= high

    def per_nat(arm, i):  # the old rule: mean gain over 0.5 / max(KL, 0.05), one point of each arm
        return (arm["v"][i].mean() - value.mean()) / max(arm["kl"][i].mean(), 0.05)

    assert b["kl"][30].mean() < a["kl"][40].mean() and per_nat(b, 30) > per_nat(a, 40)  # it prefers b, wrongly
    same = compare_at_kl(a["kl"], a["v"], a["kl"], a["v"], 1.0, n_resamples=50)
    assert same == (0.0, 0.0, 0.0)
    assert value_at_kl(a["kl"], a["v"], 1.0) == pytest.approx(est + value_at_kl(b["kl"], b["v"], 1.0))
    with pytest.raises(ValueError, match="outside the range"):
        compare_at_kl(a["kl"], a["v"], b["kl"], b["v"], 99.0)


def planted_results(**changes):
    results = {"same_pick": 1.0, "n_prompts": 24, "target_kl": 1.0, "n_best_of": 64, "conflict": (-0.3, -0.4, -0.2),
               "matched_kl": (0.04, 0.01, 0.07), "hardest_quarter": (0.02, -0.03, 0.06),
               "and_bon": (0.05, 0.02, 0.09), "and_tilt": (-0.01, -0.04, 0.02),
               "rl_win": [0.02, -0.01], "rl_and": [0.03, 0.05, 0.04]}
    return {**results, **changes}


def test_findings_decides_every_row_by_the_interval_and_never_counts_by_construction_rows():
    from rewardscope.findings import summary, table

    all_rows = transforms_findings(planted_results())
    frame = table(all_rows).set_index("claim")
    assert all_rows[0].claim.startswith("precondition:") and all_rows[0].holds is True  # r's interval below 0
    rows = paper_claims(all_rows)
    assert rows == all_rows[1:]
    verdicts = [r.verdict for r in rows]
    # same pick: by construction; hardest quarter and AND-at-KL: interval includes 0; RL win: 2 seeds only
    assert verdicts == ["not a test here", "holds", "does not hold", "holds", "does not hold", "not a test here",
                        "holds"]
    assert summary(rows) == (3, 5)
    assert set(frame["unit"]) == {"prompts", "seeds"} and frame["n"].iloc[2] == 24
    assert all(r.n == 3 for r in rows[-1:]) and "seeds" in rows[-1].rule
    # the old rule (a point estimate above the other arm's) would have counted the hardest-quarter row
    assert rows[2].holds is False and planted_results()["hardest_quarter"][0] > 0
    # properties that do not conflict (interval not below 0): the precondition fails, the claims are unchanged
    for conflict in ((0.02, -0.05, 0.09), (-0.05, -0.12, 0.01), (0.3, 0.2, 0.4)):
        other = transforms_findings(planted_results(conflict=conflict))
        assert other[0].holds is False and "below 0" in other[0].rule
        assert [r.verdict for r in paper_claims(other)] == verdicts
    with pytest.raises(ValueError, match="missing"):
        transforms_findings({"same_pick": 1.0})


def test_seed_interval_is_a_t_interval():
    est, low, high = seed_interval([1.0, 2.0, 3.0])
    assert est == 2.0 and high - est == pytest.approx(stats.t.ppf(0.975, 2) / np.sqrt(3))


def test_heldout_pairs_of_a_lab_rm_come_from_its_own_gold_and_split(monkeypatch):
    from rewardscope.lab import recipes as lab

    calls = []

    def fake_pairs(scale, gold, margin, label_noise=0.0):
        calls.append((scale.name, gold, margin, label_noise))
        return pd.DataFrame({"split": ["train", "validation", "test"], "prompt": ["p"] * 3, "chosen": list("abc"),
                             "rejected": list("xyz")})

    monkeypatch.setattr(lab, "preference_pairs", fake_pairs)
    assert lab.heldout_pairs("sentiment-minilm")["chosen"].tolist() == ["b"]
    assert lab.heldout_pairs("helpful-minilm-smoke", split="test")["chosen"].tolist() == ["c"]
    assert calls == [("default", "vader-compound", 0.3, 0.0), ("smoke", "helpfulness", 0.0, 0.0)]  # its own pairs
    assert lab.heldout_pairs("OpenAssistant/reward-model-deberta-v3-large-v2") is None
    with pytest.raises(ValueError, match="split must be"):
        lab.heldout_pairs("sentiment-minilm", split="train")


def test_and_table_judges_by_the_gold_win_on_both_and_matches_a_direct_computation():
    from rewardscope.studies.transforms.transforms import AND_JUDGES, and_selectors, and_table

    rng = np.random.default_rng(12)
    rm = {"a": rng.normal(size=(6, 8)), "b": rng.normal(size=(6, 8))}
    gold = {k: v + rng.normal(0, 0.3, v.shape) for k, v in rm.items()}
    base = {k: rng.normal(size=(6, 5)) for k in rm}
    rm_ref, gold_ref = {k: reference_reward(v[:, :5], 0.5) for k, v in rm.items()}, {k: np.zeros(6) for k in rm}
    frame = and_table(rm, rm_ref, gold, base, gold_ref, [1.0], [1, 8], n_resamples=50)
    assert set(frame["judge"]) == set(AND_JUDGES) and set(frame["method"]) == {"transformed sum", "raw, w = 1"}
    pick = best_of_n(and_selectors(rm, rm_ref, [1.0])["transformed sum"])
    win = win_on_both(gold, base)[np.arange(6), pick].mean()
    row = frame[(frame["method"] == "transformed sum") & (frame["n"] == 8) & (frame["judge"] == AND_JUDGES[0])]
    assert row["share"].item() == pytest.approx(win)
    n1 = frame[frame["n"] == 1].groupby("judge")["share"].nunique()
    assert (n1 == 1).all()  # at n = 1 every selector is the base policy


def planted_pair(n_prompts, k, rho, seed=0, offsets=0.0):
    """Two scores of k answers per prompt with within-prompt correlation rho; ``offsets`` scales prompt means."""
    rng = np.random.default_rng(seed)
    z1, z2 = rng.normal(size=(2, n_prompts, k))
    shift = offsets * rng.normal(size=(2, n_prompts, 1))
    return z1 + shift[0], rho * z1 + np.sqrt(1 - rho**2) * z2 + shift[1]


def test_within_prompt_correlation_is_pooled_pearson_of_per_prompt_centred_scores():
    a, b = planted_pair(7, 5, -0.4, seed=1, offsets=3.0)
    ac, bc = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    est, low, high = within_prompt_correlation(a, b, n_resamples=200)
    assert est == pytest.approx(stats.pearsonr(ac.ravel(), bc.ravel())[0], abs=1e-12)
    assert low <= est <= high
    # invariant to any per-prompt shift of either score, and to positive rescaling
    shifted = within_prompt_correlation(a + 100 * np.arange(7)[:, None], 3 * b - 5, n_resamples=200)
    assert shifted == pytest.approx((est, low, high), abs=1e-12)
    assert within_prompt_correlation(a, -b, n_resamples=200)[0] == pytest.approx(-est)


def test_within_prompt_correlation_finds_a_planted_conflict_and_its_absence():
    # conflict: r = -0.3 within prompts, while the prompt means correlate positively (an easy prompt is good on both)
    rng = np.random.default_rng(5)
    a, b = planted_pair(40, 16, -0.3, seed=2)
    common = 4.0 * rng.normal(size=(40, 1))
    a, b = a + common, b + common
    assert stats.pearsonr(a.ravel(), b.ravel())[0] > 0.5  # pooled over prompts the two look aligned
    est, low, high = within_prompt_correlation(a, b, n_resamples=500, seed=0)
    assert -0.4 < est < -0.2 and high < 0  # within a prompt they conflict, and the interval says so
    # no conflict: independent within prompts (r = 0), the interval covers 0
    est, low, high = within_prompt_correlation(*planted_pair(40, 16, 0.0, seed=3, offsets=2.0), n_resamples=500)
    assert abs(est) < 0.1 and low < 0 < high
    # aligned properties: the interval lies above 0
    est, low, high = within_prompt_correlation(*planted_pair(40, 16, 0.5, seed=4), n_resamples=500)
    assert low > 0.35 and high < 0.65
    # the same seed gives the same interval
    pair = planted_pair(12, 6, -0.2, seed=6)
    assert within_prompt_correlation(*pair, seed=1) == within_prompt_correlation(*pair, seed=1)


def test_within_prompt_correlation_resamples_prompts_not_answers():
    # few prompts, many answers: the interval must reflect 4 prompts whose own correlations differ widely
    a, b = [], []
    for i, rho in enumerate((-0.9, 0.6, -0.8, 0.7)):
        x, y = planted_pair(1, 400, rho, seed=10 + i)
        a.append(x[0])
        b.append(y[0])
    est, low, high = within_prompt_correlation(np.array(a), np.array(b), n_resamples=500)
    assert high - low > 0.5  # an interval over 1,600 independent answers would be about 0.1 wide


@pytest.mark.parametrize(("a", "b", "message"), [
    (np.ones((3, 4)), np.arange(12.0).reshape(3, 4), "a does not vary within any prompt"),
    (np.arange(12.0).reshape(3, 4), np.tile([[1.0], [2.0], [3.0]], (1, 4)), "b does not vary within any prompt"),
    (np.ones((3, 4)), np.ones((3, 5)), "must both be"),
    (np.ones((1, 4)), np.ones((1, 4)), "at least 2 prompts"),
    (np.ones((3, 1)), np.ones((3, 1)), "at least 2 prompts and 2 answers"),
    (np.ones(4), np.ones(4), "must both be"),
    (np.array([[1.0, np.nan], [1.0, 2.0]]), np.ones((2, 2)), "non-finite"),
])
def test_within_prompt_correlation_rejects_bad_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        within_prompt_correlation(a, b)
