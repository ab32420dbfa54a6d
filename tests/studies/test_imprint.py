"""SEAL's metrics on planted data and hand-made cases."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from rewardscope.studies.seal.imprint import (
    alignment_regimes,
    alignment_resistance,
    angle_summary,
    feature_imprint,
    labeller_verdict,
    misalignment_drivers,
    regime_labels,
    reward_shift_angle,
    robustness_coefficients,
    stack_pairs,
)

PLANTED = {"helpful": 1.2, "harmless": 2.0, "sentiment": 0.5, "length": -0.3}


def _planted_frame(n_pairs=600, seed=0):
    """Two texts per pair; a shared pair effect makes the residuals correlated within pairs."""
    rng = np.random.default_rng(seed)
    n = 2 * n_pairs
    frame = pd.DataFrame({
        "pair": np.repeat(np.arange(n_pairs), 2),
        "helpful": rng.integers(0, 2, n),
        "harmless": rng.integers(0, 2, n),
        "sentiment": rng.integers(-1, 2, n),
        "length": rng.normal(3, 1, n),
    })
    pair_effect = np.repeat(rng.normal(0, 1.0, n_pairs), 2)
    frame["reward"] = 0.7 + sum(b * frame[f] for f, b in PLANTED.items()) + pair_effect + rng.normal(0, 0.5, n)
    return frame


def test_imprint_recovers_planted_coefficients():
    fit = feature_imprint(_planted_frame(), "reward", list(PLANTED), cluster="pair")
    assert list(fit.index) == list(PLANTED)
    for feature, beta in PLANTED.items():
        assert abs(fit.loc[feature, "coef"] - beta) < 4 * fit.loc[feature, "se"], feature
        assert fit.loc[feature, "ci_low"] < beta < fit.loc[feature, "ci_high"], feature
    assert fit.attrs["n"] == 1200 and fit.attrs["n_clusters"] == 600 and fit.attrs["cov_type"] == "cluster"
    assert abs(fit.attrs["intercept"] - 0.7) < 0.3


def test_imprint_standard_errors_equal_statsmodels_and_the_cluster_sandwich():
    frame = _planted_frame(n_pairs=300, seed=1)
    features = list(PLANTED)
    fit = feature_imprint(frame, "reward", features, cluster="pair")

    X = sm.add_constant(frame[features].to_numpy(float))
    y = frame["reward"].to_numpy()
    direct = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": frame["pair"].to_numpy()})
    np.testing.assert_allclose(fit["coef"], direct.params[1:], rtol=1e-10)
    np.testing.assert_allclose(fit["se"], direct.bse[1:], rtol=1e-10)
    np.testing.assert_allclose(fit["p"], direct.pvalues[1:], rtol=1e-8)

    # the Liang–Zeger sandwich by hand, with statsmodels' small-sample factor G/(G-1) (N-1)/(N-K)
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    u = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    meat = sum(np.outer(X[g].T @ u[g], X[g].T @ u[g]) for g in np.split(np.arange(len(y)), 300))
    n, k, groups = X.shape[0], X.shape[1], 300
    cov = groups / (groups - 1) * (n - 1) / (n - k) * bread @ meat @ bread
    np.testing.assert_allclose(fit["se"], np.sqrt(np.diag(cov))[1:], rtol=1e-8)


def test_clustering_matters_and_bonferroni_counts_only_the_features():
    frame = _planted_frame(n_pairs=300, seed=2)
    # a pair-level feature: both texts of a pair share it, so its effective sample is the pairs
    frame["topic"] = np.repeat(np.random.default_rng(5).integers(0, 2, 300), 2)
    clustered = feature_imprint(frame, "reward", [*PLANTED, "topic"], cluster="pair")
    robust = feature_imprint(frame, "reward", [*PLANTED, "topic"])
    assert robust.attrs["cov_type"] == "HC1"
    assert clustered.loc["topic", "se"] > 1.2 * robust.loc["topic", "se"]
    np.testing.assert_allclose(clustered["p_adj"], np.minimum(1, clustered["p"] * 5))


@pytest.mark.parametrize("mutate, match", [
    (lambda f: f.drop(columns="length"), r"feature column\(s\) \['length'\] not in frame"),
    (lambda f: f.assign(harmless=1), r"feature\(s\) \['harmless'\] are constant"),
    (lambda f: f.assign(reward=f["reward"].where(f.index != 3)), r"\['reward'\] contain NaN"),
    (lambda f: f.assign(reward=f["reward"].where(f.index != 3, -np.inf)), r"\['reward'\] contain inf or -inf"),
    (lambda f: f.assign(length=f["length"].where(f.index != 7, np.inf)), r"\['length'\] contain inf or -inf"),
    (lambda f: f.head(5), "5 rows cannot fit 4 features"),
    (lambda f: f.assign(length=2 * f["helpful"]), "collinear"),
    (lambda f: f.assign(sentiment=f["sentiment"].astype(str)), "'sentiment' must be numeric"),
    (lambda f: f.assign(pair=0), "single group"),
])
def test_imprint_fails_early_with_one_clear_line(mutate, match):
    with pytest.raises(ValueError, match=match):
        feature_imprint(mutate(_planted_frame(50)), "reward", list(PLANTED), cluster="pair")


def test_imprint_rejects_bad_arguments():
    frame = _planted_frame(50)
    with pytest.raises(ValueError, match="cluster column"):
        feature_imprint(frame, "reward", list(PLANTED), cluster="row")
    with pytest.raises(ValueError, match="non-empty list"):
        feature_imprint(frame, "reward", [])
    with pytest.raises(ValueError, match="also listed in features"):
        feature_imprint(frame, "reward", ["reward", "helpful"])


def test_stack_pairs_gives_two_rows_per_pair():
    pairs = pd.DataFrame({"pair": [0, 1], "chosen_x": [1, 2], "rejected_x": [3, 4]})
    stacked = stack_pairs(pairs, ["x"], keep=["pair"])
    assert stacked.to_dict("list") == {"pair": [0, 1, 0, 1], "role": ["chosen", "chosen", "rejected", "rejected"],
                                       "x": [1, 2, 3, 4]}


# --------------------------------------------------------------------------------------------------
# Regimes and resistance

# pre (chosen, rejected), post (chosen, rejected); ties count as misaligned
HAND = [((2, 1), (3, 1), "stayed_aligned"),
        ((1, 1), (2, 1), "got_aligned"),        # a tie before: not aligned
        ((0, 1), (1, 0), "got_aligned"),
        ((0, 1), (0, 2), "resisted"),
        ((0, 1), (1, 1), "resisted"),           # a tie after
        ((5, 1), (1, 5), "reversed"),
        ((1, 0), (0, 0), "reversed"),
        ((-1, -2), (-1, -3), "stayed_aligned")]


def _hand_arrays():
    pre = np.array([h[0] for h in HAND], float)
    post = np.array([h[1] for h in HAND], float)
    return pre[:, 0], pre[:, 1], post[:, 0], post[:, 1]


def test_regimes_count_exactly_on_a_hand_made_case():
    assert regime_labels(*_hand_arrays()).tolist() == [h[2] for h in HAND]
    assert alignment_regimes(*_hand_arrays()) == {"stayed_aligned": 2, "got_aligned": 2, "resisted": 2, "reversed": 2}


def test_resistance_is_the_share_the_post_model_gets_wrong():
    res = alignment_resistance(*_hand_arrays()[2:], *_hand_arrays()[:2])
    assert res["n"] == 8 and res["resistance"] == 0.5
    assert res["resisted"] == 0.25 and res["reversed"] == 0.25 and res["resisted_of_misaligned"] == 0.5
    assert alignment_resistance([1, 0], [0, 0]) == {"n": 2, "resistance": 0.5}


def test_regimes_refuse_misaligned_indexes_and_bad_lengths():
    pc, pr, qc, qr = (pd.Series(a) for a in _hand_arrays())
    assert alignment_regimes(pc, pr, qc, qr)["reversed"] == 2  # same index: fine
    with pytest.raises(ValueError, match="post_chosen has a different index from pre_chosen; join"):
        alignment_regimes(pc, pr, qc.sample(frac=1, random_state=0), qr)
    with pytest.raises(ValueError, match="post_rejected has 2 values but the first input has 8"):
        alignment_regimes(pc, pr, qc, [0, 1])
    with pytest.raises(ValueError, match="pre_rejected contains NaN at position 1"):
        alignment_regimes([1, 2], [0, np.nan], [1, 2], [0, 0])
    with pytest.raises(ValueError, match="empty"):
        alignment_regimes([], [], [], [])


@pytest.mark.parametrize("position, value, match", [
    (0, np.inf, r"pre_chosen contains \+inf at position 1; scores must be finite"),
    (3, -np.inf, r"post_rejected contains -inf at position 1"),
    (2, np.nan, r"post_chosen contains NaN at position 1"),
])
def test_regimes_refuse_non_finite_scores(position, value, match):
    scores = [[1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [0.0, 0.0]]
    scores[position][1] = value
    with pytest.raises(ValueError, match=match):
        alignment_regimes(*scores)


def test_regimes_refuse_non_numeric_scores():
    with pytest.raises(TypeError, match="pre_rejected must be a sequence of numbers"):
        alignment_regimes([1, 2], ["a", "b"], [1, 2], [0, 0])
    with pytest.raises(ValueError, match="both pre_chosen and pre_rejected"):
        alignment_resistance([1], [0], pre_chosen=[1])


# --------------------------------------------------------------------------------------------------
# Reward-shift angle


def test_shift_angle_on_hand_made_vectors():
    cases = [  # pre (c, r), post (c, r), θ
        ((1, 1), (1, 0), 45.0),       # positive quadrant: clockwise is towards chosen > rejected
        ((-1, -1), (0, -1), 45.0),    # negative quadrant: counter-clockwise is
        ((1, 0), (1, 1), -45.0),
        ((2, 1), (4, 2), 0.0),        # parallel: arccos gave NaN here
        ((-3, -3), (-3, -4), np.degrees(np.arctan2(1, 7))),
        ((1, -1), (-1, 1), 180.0),    # c + r = 0: half a turn
        ((0, 0), (1, 0), np.nan),     # zero vector: undefined
    ]
    pre = np.array([c[0] for c in cases], float)
    post = np.array([c[1] for c in cases], float)
    theta = reward_shift_angle(pre[:, 0], pre[:, 1], post[:, 0], post[:, 1])
    np.testing.assert_allclose(np.abs(theta), np.abs([c[2] for c in cases]), atol=1e-9)
    np.testing.assert_array_equal(np.sign(theta[:5]), np.sign([c[2] for c in cases[:5]]))


def test_shift_angle_sign_means_towards_alignment_in_every_quadrant():
    rng = np.random.default_rng(0)
    pre = rng.normal(0, 3, (500, 2))
    post = pre + rng.normal(0, 0.3, (500, 2))  # small rotations
    theta = reward_shift_angle(pre[:, 0], pre[:, 1], post[:, 0], post[:, 1])
    norm_margin = lambda v: (v[:, 0] - v[:, 1]) / np.hypot(v[:, 0], v[:, 1])
    gain = norm_margin(post) - norm_margin(pre)
    # within a half-plane c + r > 0 or < 0 the normalised margin (c - r)/|v| is monotone in the angle,
    # so θ > 0 exactly when the post vector is more aligned (crossing c + r = 0 passes the extreme)
    same_side = np.sign(pre.sum(1)) == np.sign(post.sum(1))
    assert same_side.mean() > 0.9
    np.testing.assert_array_equal(np.sign(theta[same_side]), np.sign(gain[same_side]))
    back = reward_shift_angle(post[:, 0], post[:, 1], pre[:, 0], pre[:, 1])
    np.testing.assert_allclose(back[same_side], -theta[same_side], atol=1e-9)


def test_angle_summary_by_regime():
    summary = angle_summary([10.0, 20.0, -5.0, np.nan], ["a", "a", "b", "b"])
    assert summary.loc["all", "n"] == 3 and summary.loc["a", "mean"] == 15.0
    assert summary.loc["b", "share positive"] == 0.0
    with pytest.raises(ValueError, match="one length"):
        angle_summary([1.0], ["a", "b"])


# --------------------------------------------------------------------------------------------------
# The labeller's verdict γ


def test_verdict_is_lexicographic_harmless_first():
    # columns (harmless, helpful) of chosen and of rejected
    chosen = [[1, 1], [1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1], [0, 0]]
    rejected = [[1, 0], [0, 1], [1, 0], [1, 1], [0, 1], [1, 1], [0, 0], [0, 0]]
    expected = ["agrees", "agrees", "disagrees", "indifferent", "disagrees", "disagrees", "agrees", "indifferent"]
    assert labeller_verdict(chosen, rejected).tolist() == expected
    frame_c = pd.DataFrame(chosen, columns=["harmless", "helpful"])
    frame_r = pd.DataFrame(rejected, columns=["harmless", "helpful"])
    assert labeller_verdict(frame_c, frame_r).tolist() == expected
    # the released notebook compared str(np.array) with "[1, 1]", which never matches, so it called the
    # first pair (harmless and helpful chosen over harmless only) something other than "agrees"
    assert labeller_verdict([[1, 1]], [[1, 0]]).tolist() == ["agrees"]


def test_verdict_rejects_bad_labels():
    with pytest.raises(ValueError, match="one shape"):
        labeller_verdict([[1, 0]], [[1, 0, 1]])
    with pytest.raises(ValueError, match="NaN"):
        labeller_verdict([[1, np.nan]], [[1, 0]])


# --------------------------------------------------------------------------------------------------
# Drivers and robustness


def test_misalignment_drivers_recover_a_planted_linear_probability_model():
    rng = np.random.default_rng(3)
    n = 4000
    pairs = pd.DataFrame({f"{s}_{f}": rng.integers(0, 2, n) for s in ("chosen", "rejected") for f in ("refusal", "helpful")})
    pairs["prompt"] = rng.integers(0, 1000, n)
    p = 0.2 + 0.15 * pairs["rejected_refusal"] - 0.1 * pairs["chosen_helpful"]
    pairs["misaligned"] = (rng.random(n) < p).astype(int)
    fit = misalignment_drivers(pairs, "misaligned", ["refusal", "helpful"], cluster="prompt")
    assert list(fit.index) == ["chosen_refusal", "chosen_helpful", "rejected_refusal", "rejected_helpful"]
    assert abs(fit.loc["rejected_refusal", "coef"] - 0.15) < 0.05
    assert abs(fit.loc["chosen_helpful", "coef"] + 0.10) < 0.05
    assert fit.loc["rejected_helpful", "p_adj"] > 0.01
    with pytest.raises(ValueError, match=r"\['chosen_eloquent', 'rejected_eloquent'\] not in frame"):
        misalignment_drivers(pairs, "misaligned", ["eloquent"])


def test_robustness_coefficients_on_planted_flips():
    rng = np.random.default_rng(4)
    n = 3000
    pairs = pd.DataFrame({"chosen_sentiment": rng.integers(-1, 2, n), "rejected_sentiment": rng.integers(-1, 2, n),
                          "chosen_coherent": np.ones(n, int), "rejected_coherent": np.ones(n, int)})
    flip = rng.random(n) < 0.3
    pairs["chosen_rewritten_sentiment"] = np.where(flip, pairs["chosen_sentiment"] - 1, pairs["chosen_sentiment"])
    pairs["rejected_rewritten_sentiment"] = pairs["rejected_sentiment"]
    pairs["chosen_rewritten_coherent"] = 1
    pairs["rejected_rewritten_coherent"] = 1
    pairs["became"] = (rng.random(n) < 0.05 + 0.2 * flip).astype(int)  # lowering chosen sentiment hurts
    pi = robustness_coefficients(pairs, "became", ["sentiment", "coherent"])
    assert abs(pi.loc[("chosen", "sentiment", "+"), "coef"] - 0.2) < 0.05
    assert pi.loc[("chosen", "sentiment", "+"), "n_flips"] == flip.sum()
    assert np.isnan(pi.loc[("chosen", "coherent", "+"), "coef"]) and pi.loc[("chosen", "coherent", "+"), "n_flips"] == 0
    no_flip = pairs.assign(chosen_rewritten_sentiment=pairs["chosen_sentiment"])
    with pytest.raises(ValueError, match="changed none of the features"):
        robustness_coefficients(no_flip, "became", ["sentiment", "coherent"])


# --------------------------------------------------------------------------------------------------
# Chapter helpers


def test_score_pairs_scores_each_distinct_text_once():
    from rewardscope import load_reward_model
    from rewardscope.studies.seal.imprint import score_pairs
    from rewardscope.studies.seal.labels import label_pairs

    rm = load_reward_model("vader-compound")
    calls = []
    original = rm._score
    rm._score = lambda p, r, b, g: calls.append(len(r)) or original(p, r, b, g)
    pairs = pd.DataFrame({"prompt": ["q", "q", "q2"], "chosen": ["I love it", "I love it", "Great"],
                          "rejected": ["I hate it", "a table", "I love it"]}, index=[10, 11, 12])
    scores = score_pairs(rm, pairs)
    assert calls == [5] and list(scores.index) == [10, 11, 12]  # ("q2", "I love it") differs from ("q", "I love it")
    np.testing.assert_allclose(scores["chosen"], rm.score(pairs["prompt"], pairs["chosen"]))
    np.testing.assert_allclose(scores["rejected"], rm.score(pairs["prompt"], pairs["rejected"]))
    cache = {}
    calls.clear()
    score_pairs(rm, pairs.head(1), cache=cache)
    again = score_pairs(rm, pairs, cache=cache)
    assert calls == [2, 3] and len(cache) == 5  # the second call scored only the 3 texts not cached
    pd.testing.assert_frame_equal(again, scores)
    labelled = label_pairs(pairs, ["sentiment", "refusal"])
    assert labelled["chosen_sentiment"].tolist() == [1, 1, 1] and labelled["rejected_sentiment"].tolist() == [-1, 0, 1]
    with pytest.raises(ValueError, match="pairs is empty"):
        score_pairs(rm, pairs.iloc[:0])


def test_share_ci_resamples_clusters():
    from rewardscope.studies.seal.imprint import share_ci

    flags = np.r_[np.ones(50), np.zeros(50)]
    share, lo, hi = share_ci(flags, n_resamples=500)
    assert share == 0.5 and lo < 0.5 < hi
    # ten clusters that are all-or-nothing: the clustered interval is much wider
    _, clo, chi = share_ci(flags, clusters=np.repeat(np.arange(10), 10), n_resamples=500)
    assert chi - clo > 2 * (hi - lo)
    with pytest.raises(ValueError, match="at least 2"):
        share_ci([1.0])
    with pytest.raises(ValueError, match="clusters has 1 distinct value"):
        share_ci([1.0, 0.0], clusters=[3, 3])


# --- chapter 4's decision rule (issue 14) ---------------------------------------------------------


def _planted_pairs(n_prompts=200, per=3, gain=0.2, wrong_post=0.1, err_gap=0.3, theta_resisted=-10.0, seed=0):
    rng = np.random.default_rng(seed)
    n = n_prompts * per
    prompt = np.repeat(np.arange(n_prompts), per)
    verdict = rng.choice(["agrees", "disagrees", "indifferent"], size=n, p=[0.4, 0.2, 0.4])
    p_wrong = np.where(verdict == "disagrees", wrong_post + err_gap, wrong_post)
    post = rng.random(n) > p_wrong
    pre = rng.random(n) < post.mean() - gain
    regime = regime_labels(pre.astype(float), np.full(n, 0.5), post.astype(float), np.full(n, 0.5))
    theta = np.where(regime == "resisted", theta_resisted, 5.0) + rng.normal(scale=3, size=n)
    split = np.where(prompt % 5 == 0, "test", "train")
    return pd.DataFrame({"prompt_id": prompt, "split": split, "aligned_pre": pre, "aligned_post": post,
                         "regime": regime, "theta": theta, "verdict": verdict})


def test_cluster_ratio_ci_resamples_whole_prompts():
    from rewardscope.studies.seal.imprint import cluster_ratio_ci

    rng = np.random.default_rng(1)
    prompt_effect = np.repeat(rng.random(50) < 0.5, 20).astype(float)  # all pairs of a prompt share one outcome
    est, lo, hi = cluster_ratio_ci(prompt_effect, np.ones(1000), np.repeat(np.arange(50), 20), n_resamples=400)
    _, lo_iid, hi_iid = cluster_ratio_ci(prompt_effect, np.ones(1000), np.arange(1000), n_resamples=400)
    assert lo < est < hi and (hi - lo) > 3 * (hi_iid - lo_iid)  # 50 independent prompts, not 1,000 pairs
    with pytest.raises(ValueError, match="at least 2"):
        cluster_ratio_ci([1.0, 0.0], [1.0, 1.0], [0, 0])


def test_seal_findings_mark_by_construction_rows_and_can_fail():
    from rewardscope.findings import summary
    from rewardscope.studies.seal.imprint import findings, seal_results

    good = findings(seal_results(_planted_pairs(), n_resamples=300))
    by = {r.claim: r for r in good}
    # rows the old table counted as "holds" that cannot fail here
    assert by["the targets leave the largest positive imprints"].holds is None
    assert by["rewards rotate towards the label where pairs got aligned"].holds is None
    assert by["training on the preference data raises agreement with its labels"].holds is True
    assert by["the model errs most where the labeller disagrees with the label"].holds is True
    assert by["rewards rotate away from the label where pairs resisted"].holds is True
    res = by["a share of the pairs the RM was trained on resists: still misordered after training"]
    assert res.holds is True and res.unit == "prompts" and res.n == 160  # in-sample: the 160 train prompts
    assert summary(good) == (4, 4)
    # a planted case where none holds: no gain, errors equal across verdicts, resisted pairs rotate towards
    # the label, and resistance no larger than the labels' own noise
    bad = _planted_pairs(gain=0.0, wrong_post=0.1, err_gap=0.0, theta_resisted=+10.0, seed=2)
    bad["aligned_pre"] = bad["aligned_post"]
    bad["regime"] = np.where(bad["aligned_post"], "stayed_aligned", "resisted")
    rows = findings(seal_results(bad, label_noise=0.25, n_resamples=300))
    assert summary(rows) == (0, 4), [(r.claim, r.here) for r in rows]


def test_seal_target_imprints_are_a_test_only_with_independent_labellers():
    from rewardscope.studies.seal.imprint import findings, seal_results

    imprint = pd.DataFrame({"coef": [0.1, -0.2, 0.9], "ci_low": [-0.1, -0.4, 0.5], "ci_high": [0.3, 0.0, 1.3]},
                           index=["harmless", "helpful", "eloquence"])
    imprint.attrs["n_clusters"] = 120
    results = seal_results(_planted_pairs(), imprint_post=imprint, labellers_share_gold_signals=False, n_resamples=100)
    row = {r.claim: r for r in findings(results)}["the targets leave positive imprints"]
    assert row.holds is False and "eloquence" in row.here and row.n == 120


def test_seal_target_imprints_are_not_a_test_when_labellers_share_the_golds_signals():
    """With target labellers computed from the gold's own signals (labels.helpful_proxy and
    harmless_proxy on the lab's hh gold), the target row cannot fail and is not counted, even where
    the targets' imprints are the largest and clearly positive."""
    from rewardscope.findings import summary
    from rewardscope.studies.seal.imprint import findings, seal_results

    imprint = pd.DataFrame({"coef": [0.8, 0.6, 0.1], "ci_low": [0.5, 0.3, -0.1], "ci_high": [1.1, 0.9, 0.3]},
                           index=["harmless", "helpful", "eloquence"])
    imprint.attrs["n_clusters"] = 120
    shared = findings(seal_results(_planted_pairs(), imprint_post=imprint, labellers_share_gold_signals=True,
                                   n_resamples=100))
    rows = {r.claim: r for r in shared}
    row = rows["the targets leave the largest positive imprints"]
    assert row.holds is None and row.rule.startswith("not a test here") and "by construction" in row.rule
    assert row.here == "harmless, helpful"
    # the same imprints with independent labellers (the default) are a test, and it holds
    independent = findings(seal_results(_planted_pairs(), imprint_post=imprint, n_resamples=100))
    assert {r.claim: r for r in independent}["the targets leave positive imprints"].holds is True
    assert summary(independent) == (summary(shared)[0] + 1, summary(shared)[1] + 1)


def test_identifiable_features_drops_constant_and_redundant_features_in_order():
    from rewardscope.studies.seal.imprint import identifiable_features

    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({"harmless": rng.integers(0, 2, n), "length": rng.normal(size=n), "constant": np.ones(n)})
    frame["insult"] = 1 - frame["harmless"]  # the same texts flagged twice: not identified together
    frame["sum"] = frame["harmless"] + 2 * frame["length"]
    assert identifiable_features(frame, ["harmless", "length", "constant", "insult", "sum"]) == ["harmless", "length"]
    assert identifiable_features(frame, ["insult", "harmless"]) == ["insult"]  # order decides which is kept
    fit = feature_imprint(frame.assign(r=frame["length"]), "r", identifiable_features(frame, list(frame.columns)))
    assert list(fit.index) == ["harmless", "length"]
    pairs = pd.DataFrame({"chosen_a": [1, 0, 1, 0, 1], "rejected_a": [0, 0, 1, 1, 0],
                          "chosen_b": [1, 0, 1, 0, 1], "rejected_b": [1, 0, 0, 1, 1]})
    assert identifiable_features(pairs, ["a", "b"], columns=("chosen_{}", "rejected_{}")) == ["a"]
    with pytest.raises(ValueError, match="not in frame"):
        identifiable_features(frame, ["missing"])
