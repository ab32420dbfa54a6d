"""SEAL's metrics (Revel et al. 2024): feature imprint, alignment regimes and resistance, the
reward-shift angle, the labeller verdict γ, misalignment drivers and robustness to rewrites.

A *pair* is (chosen, rejected) with a human (or gold) preference for chosen. A reward model is
*aligned* on a pair when it scores chosen strictly above rejected; a tie counts as misaligned.
"Pre" is the reward model before training on the preference set, "post" after it.

Differences from the released analysis, each fixed here on purpose:

- the imprint regression clusters standard errors by pair (the R code called
  ``coeftest(model, cluster=row_id)``, which ignores ``cluster`` without ``vcov.=vcovCL``), does not
  put the row id in as a regressor (``reward ~ .`` did), and applies Bonferroni over the features
  only, not over every printed row including the intercept;
- regimes are counted on positionally matched arrays, and differently indexed pandas inputs are
  refused rather than silently aligned by index label;
- the reward-shift angle uses ``atan2`` (``arccos`` gave NaN for parallel vectors) and its sign
  means "towards chosen above rejected" in every quadrant;
- the verdict γ compares label vectors element by element (a notebook cell compared
  ``str(numpy array)`` with ``"[1, 1]"``, which never matches, and misassigned 186 rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

REGIMES = ("stayed_aligned", "got_aligned", "resisted", "reversed")
VERDICTS = ("agrees", "disagrees", "indifferent")


# --------------------------------------------------------------------------------------------------
# Input checks


def _vector(name: str, values, n: int | None = None) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if n is not None and array.size != n:
        raise ValueError(f"{name} has {array.size} values but the first input has {n}; they must pair up")
    if not np.isfinite(array).all():
        i = int(np.flatnonzero(~np.isfinite(array))[0])
        kind = "NaN" if np.isnan(array[i]) else f"{array[i]:+}"
        raise ValueError(f"{name} contains {kind} at position {i}; scores must be finite")
    return array


def _four(pre_chosen, pre_rejected, post_chosen, post_rejected) -> tuple[np.ndarray, ...]:
    """Four equally long score vectors; pandas inputs must share one index (no silent realignment)."""
    named = {"pre_chosen": pre_chosen, "pre_rejected": pre_rejected, "post_chosen": post_chosen,
             "post_rejected": post_rejected}
    indexes = [(k, v.index) for k, v in named.items() if isinstance(v, pd.Series)]
    for key, index in indexes[1:]:
        if not index.equals(indexes[0][1]):
            raise ValueError(f"{key} has a different index from {indexes[0][0]}; join the score tables on the pair id "
                             "first (matching by index label is how the original mixed up pairs)")
    n = len(np.asarray(pre_chosen))
    return tuple(_vector(k, v, n) for k, v in named.items())


def _columns(frame: pd.DataFrame, names: Sequence[str], role: str) -> None:
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValueError(f"{role} column(s) {missing} not in frame; columns: {list(frame.columns)}")


# --------------------------------------------------------------------------------------------------
# Feature imprint


def feature_imprint(frame: pd.DataFrame, reward: str, features: Sequence[str], cluster: str | None = None,
                    level: float = 0.95) -> pd.DataFrame:
    """Feature imprint: OLS of ``reward`` on ``features`` (plus an intercept), one row per feature.

    The coefficient β_τ of feature τ is its *imprint*: the change in reward, in the reward model's
    own units, associated with τ being present (or one unit higher), the other features held fixed.

    Parameters
    ----------
    frame : one row per scored text (SEAL stacks the chosen and the rejected text of every pair).
    reward : the column to explain (a reward, or a difference of rewards for the imprint's shift).
    features : numeric feature columns; binary labels give "presence" effects.
    cluster : a column of group ids (the pair id, or the prompt id when one text appears in several
        pairs). Standard errors are then cluster-robust (statsmodels ``cov_type="cluster"``, which
        applies the usual small-sample correction); without it they are heteroskedasticity-robust (HC1).
    level : confidence level of the ``ci_low``/``ci_high`` columns.

    Returns
    -------
    DataFrame indexed by feature with columns coef, se, t, p, p_adj (Bonferroni over the features,
    capped at 1; the intercept is not counted), ci_low, ci_high. ``attrs`` holds n, n_clusters,
    intercept, r2 and cov_type.

    The released analysis put ``row_id`` in the regression and did not cluster (see the module
    docstring); both are fixed here. Bad input (a missing column, NaN, a constant or collinear
    feature, too few rows or clusters) raises ValueError before fitting.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"x": rng.integers(0, 2, 200), "pair": np.repeat(np.arange(100), 2)})
    >>> df["r"] = 1.5 * df["x"] + rng.normal(0, 0.1, 200)
    >>> float(feature_imprint(df, "r", ["x"], cluster="pair").loc["x", "coef"].round(1))
    1.5
    """
    import statsmodels.api as sm

    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(features, str) or not len(features):
        raise ValueError("features must be a non-empty list of column names")
    features = list(features)
    if len(set(features)) != len(features):
        raise ValueError(f"features has duplicates: {features}")
    if reward in features:
        raise ValueError(f"reward column {reward!r} is also listed in features")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    _columns(frame, [reward], "reward")
    _columns(frame, features, "feature")
    if cluster is not None:
        _columns(frame, [cluster], "cluster")
    data = frame[[reward, *features]]
    for column in data.columns:
        if not pd.api.types.is_numeric_dtype(data[column]):
            raise ValueError(f"column {column!r} must be numeric (booleans and 0/1 labels are fine), got {data[column].dtype}")
    data = data.astype(np.float64)
    if data.isna().any().any():
        bad = data.columns[data.isna().any()].tolist()
        raise ValueError(f"column(s) {bad} contain NaN; drop or impute those rows first")
    if np.isinf(data.to_numpy()).any():
        bad = data.columns[np.isinf(data.to_numpy()).any(axis=0)].tolist()
        raise ValueError(f"column(s) {bad} contain inf or -inf; values must be finite")
    if cluster is not None and frame[cluster].isna().any():
        raise ValueError(f"cluster column {cluster!r} contains NaN")
    if len(data) <= len(features) + 1:
        raise ValueError(f"{len(data)} rows cannot fit {len(features)} features and an intercept; need more rows")
    constant = [f for f in features if data[f].nunique() < 2]
    if constant:
        raise ValueError(f"feature(s) {constant} are constant in the frame; drop them (their imprint is not identified)")
    X = sm.add_constant(data[features].to_numpy(), has_constant="add")
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        raise ValueError(f"features are collinear (design rank {rank} < {X.shape[1]} columns); drop redundant features")
    model = sm.OLS(data[reward].to_numpy(), X)
    if cluster is not None:
        groups = pd.factorize(frame[cluster])[0]
        n_clusters = int(groups.max()) + 1
        if n_clusters < 2:
            raise ValueError(f"cluster column {cluster!r} has a single group; cluster-robust errors need several")
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
        cov_type = "cluster"
    else:
        n_clusters = len(data)
        fit = model.fit(cov_type="HC1")
        cov_type = "HC1"
    ci = np.asarray(fit.conf_int(alpha=1 - level))
    out = pd.DataFrame({"coef": fit.params[1:], "se": fit.bse[1:], "t": fit.tvalues[1:], "p": fit.pvalues[1:],
                        "ci_low": ci[1:, 0], "ci_high": ci[1:, 1]}, index=pd.Index(features, name="feature"))
    out.insert(4, "p_adj", np.minimum(1.0, out["p"] * len(features)))
    out.attrs.update(n=len(data), n_clusters=n_clusters, intercept=float(fit.params[0]), r2=float(fit.rsquared),
                     cov_type=cov_type)
    return out


def identifiable_features(frame: pd.DataFrame, features: Sequence[str], columns: Sequence[str] = ("{}",)) -> list[str]:
    """The features whose imprint can be estimated together, in the order given: each feature is kept
    unless its columns are constant or a linear combination of the intercept and the columns kept
    before it (e.g. *harmless* and *insult* flagging exactly the same texts). List the features that
    matter most first, the targets before the spoilers, so that a redundant spoiler is dropped rather
    than a target.

    ``columns`` are templates that turn a feature name into its columns in ``frame``: ``("{}",)``
    for :func:`feature_imprint` on stacked texts, ``("chosen_{}", "rejected_{}")`` for
    :func:`misalignment_drivers`.

    Examples
    --------
    >>> df = pd.DataFrame({"a": [0, 1, 0, 1], "b": [1, 0, 1, 0], "c": [1, 1, 1, 1], "d": [0, 0, 1, 1]})
    >>> identifiable_features(df, ["a", "b", "c", "d"])
    ['a', 'd']
    """
    if isinstance(features, str) or isinstance(columns, str):
        raise ValueError("features and columns must be lists of names, not single strings")
    _columns(frame, [t.format(f) for f in features for t in columns], "feature")
    kept: list[str] = []
    design = np.ones((len(frame), 1))
    for f in features:
        block = frame[[t.format(f) for t in columns]].to_numpy(dtype=np.float64)
        if not np.isfinite(block).all():
            continue
        candidate = np.c_[design, block]
        if np.linalg.matrix_rank(candidate) == candidate.shape[1]:
            kept.append(f)
            design = candidate
    return kept


def stack_pairs(pairs: pd.DataFrame, columns: Sequence[str], keep: Sequence[str] = ()) -> pd.DataFrame:
    """SEAL's text-level frame: two rows per pair, from ``chosen_<c>`` and ``rejected_<c>`` columns.

    Returns ``keep`` columns (repeated), ``role`` ("chosen"/"rejected") and one column per name in
    ``columns``. This is the frame :func:`feature_imprint` regresses on.
    """
    _columns(pairs, [f"{side}_{c}" for side in ("chosen", "rejected") for c in columns], "pair")
    _columns(pairs, keep, "keep")
    parts = []
    for side in ("chosen", "rejected"):
        part = pairs[list(keep)].copy()
        part["role"] = side
        for c in columns:
            part[c] = pairs[f"{side}_{c}"].to_numpy()
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# Regimes, resistance, reward shift


def aligned(chosen, rejected) -> np.ndarray:
    """Per pair: does the reward model score chosen strictly above rejected? (ties are misaligned)"""
    chosen = _vector("chosen", chosen)
    return chosen > _vector("rejected", rejected, len(chosen))


def regime_labels(pre_chosen, pre_rejected, post_chosen, post_rejected) -> np.ndarray:
    """Per pair, its regime: "stayed_aligned", "got_aligned", "resisted" (misaligned before and
    after) or "reversed" (aligned before, misaligned after). Inputs match positionally."""
    pc, pr, qc, qr = _four(pre_chosen, pre_rejected, post_chosen, post_rejected)
    before, after = pc > pr, qc > qr
    return np.select([before & after, ~before & after, ~before & ~after], list(REGIMES[:3]), default=REGIMES[3])


def alignment_regimes(pre_chosen, pre_rejected, post_chosen, post_rejected) -> dict[str, int]:
    """Counts of the four regimes: stayed_aligned, got_aligned, resisted, reversed.

    Agreement means chosen scored strictly above rejected. Scores are matched by position; pandas
    Series with different indexes are refused (join on the pair id first).

    Examples
    --------
    >>> alignment_regimes([1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1])
    {'stayed_aligned': 1, 'got_aligned': 1, 'resisted': 1, 'reversed': 1}
    """
    labels = regime_labels(pre_chosen, pre_rejected, post_chosen, post_rejected)
    return {regime: int((labels == regime).sum()) for regime in REGIMES}


def alignment_resistance(post_chosen, post_rejected, pre_chosen=None, pre_rejected=None) -> dict[str, float]:
    """Alignment resistance: the share of pairs the post reward model gets wrong (chosen not above rejected).

    With the pre scores too, it is split into ``resisted`` (wrong before and after) and ``reversed``
    (right before, wrong after), each as a share of all pairs, and ``resisted_of_misaligned``.
    """
    post_chosen = _vector("post_chosen", post_chosen)
    wrong = ~(post_chosen > _vector("post_rejected", post_rejected, len(post_chosen)))
    out = {"n": int(len(wrong)), "resistance": float(wrong.mean())}
    if (pre_chosen is None) != (pre_rejected is None):
        raise ValueError("pass both pre_chosen and pre_rejected, or neither")
    if pre_chosen is not None:
        counts = alignment_regimes(pre_chosen, pre_rejected, post_chosen, post_rejected)
        out["resisted"] = counts["resisted"] / len(wrong)
        out["reversed"] = counts["reversed"] / len(wrong)
        out["resisted_of_misaligned"] = counts["resisted"] / wrong.sum() if wrong.any() else float("nan")
    return out


def reward_shift_angle(pre_chosen, pre_rejected, post_chosen, post_rejected) -> np.ndarray:
    """Signed reward shift θ (degrees) from each pair's pre vector (r_c, r_r) to its post vector.

    |θ| is the angle between the two vectors (from ``atan2``, so parallel vectors give 0, never
    NaN). θ > 0 when the rotation moves towards "chosen above rejected": rotating a vector (c, r)
    counter-clockwise changes c − r at rate −(c + r), so counter-clockwise is towards alignment
    exactly when c + r < 0 at the pre vector. (The released code used ``arccos`` and a fixed
    counter-clockwise sign, right only for mostly negative scores.) Where c + r = 0 the sign is
    that of the change in (c − r)/‖v‖. A zero-length vector gives NaN.

    Examples
    --------
    >>> reward_shift_angle([1.0], [1.0], [1.0], [0.0]).round(1)   # onto the chosen axis: +45°
    array([45.])
    """
    pc, pr, qc, qr = _four(pre_chosen, pre_rejected, post_chosen, post_rejected)
    ccw = np.degrees(np.arctan2(pc * qr - pr * qc, pc * qc + pr * qr))  # counter-clockwise, in (-180, 180]
    with np.errstate(invalid="ignore", divide="ignore"):
        towards = np.sign((qc - qr) / np.hypot(qc, qr) - (pc - pr) / np.hypot(pc, pr))
    sign = np.where(pc + pr < 0, 1.0, np.where(pc + pr > 0, -1.0, np.where(towards == 0, 1.0, towards * np.sign(ccw))))
    theta = sign * ccw + 0.0  # no negative zeros
    theta[(np.hypot(pc, pr) == 0) | (np.hypot(qc, qr) == 0)] = np.nan
    return theta


# --------------------------------------------------------------------------------------------------
# The labeller's verdict γ


def labeller_verdict(chosen, rejected) -> np.ndarray:
    """γ: does a feature labeller agree with the human preference? One verdict per pair.

    ``chosen`` and ``rejected`` are label arrays of shape [n_pairs, k] (or DataFrames) whose
    columns are the target features in priority order: SEAL uses (harmless, helpful), harmless
    first. The pair is compared lexicographically: the first feature on which the two texts differ
    decides; "agrees" if chosen has more of it, "disagrees" if rejected has, "indifferent" when all
    labels are equal.

    The released notebook's second version of this rule compared ``str(np.array([1, 1]))`` (which
    prints "[1 1]") with "[1, 1]", never matched, and misassigned rows; here labels are compared as
    numbers.

    Examples
    --------
    >>> labeller_verdict([[1, 0], [0, 1], [1, 1]], [[0, 1], [1, 0], [1, 1]]).tolist()
    ['agrees', 'disagrees', 'indifferent']
    """
    c = np.asarray(chosen, dtype=np.float64)
    r = np.asarray(rejected, dtype=np.float64)
    if c.ndim == 1:
        c, r = c[:, None], r[:, None] if r.ndim == 1 else r
    if c.ndim != 2 or c.shape != r.shape:
        raise ValueError(f"chosen and rejected must be label arrays of one shape [n_pairs, k], got {c.shape} and {r.shape}")
    if c.size == 0:
        raise ValueError("chosen is empty")
    if np.isnan(c).any() or np.isnan(r).any():
        raise ValueError("labels contain NaN; a verdict needs every target label")
    verdict = np.full(len(c), VERDICTS[2], dtype=object)
    undecided = np.ones(len(c), dtype=bool)
    for j in range(c.shape[1]):
        diff = c[:, j] - r[:, j]
        verdict[undecided & (diff > 0)] = VERDICTS[0]
        verdict[undecided & (diff < 0)] = VERDICTS[1]
        undecided &= diff == 0
    return verdict.astype(str)


# --------------------------------------------------------------------------------------------------
# Drivers of misalignment and robustness to rewrites


def misalignment_drivers(pairs: pd.DataFrame, misaligned: str, features: Sequence[str], cluster: str | None = None,
                         level: float = 0.95) -> pd.DataFrame:
    """SEAL's "Regression 3": a linear probability model of ``misaligned`` (0/1 per pair) on the
    chosen text's and the rejected text's features (columns ``chosen_<f>`` and ``rejected_<f>``).

    A positive coefficient on ``rejected_<f>`` means pairs whose rejected text has f are more often
    misordered. Standard errors as in :func:`feature_imprint` (clustered when ``cluster`` is given,
    else HC1); the result is indexed ``chosen_<f>``, ``rejected_<f>``.
    """
    if isinstance(features, str) or not len(features):
        raise ValueError("features must be a non-empty list of feature names")
    columns = [f"{side}_{f}" for side in ("chosen", "rejected") for f in features]
    return feature_imprint(pairs, misaligned, columns, cluster=cluster, level=level)


def flip_columns(pairs: pd.DataFrame, features: Sequence[str], rewritten: str = "rewritten") -> pd.DataFrame:
    """Feature flips of a rewrite, split by sign, for :func:`robustness_coefficients`.

    For each side s (chosen, rejected) and feature f, Δ = original − rewritten, read from columns
    ``s_f`` and ``s_{rewritten}_f`` (``chosen_helpful`` and ``chosen_rewritten_helpful``, as
    :func:`rewardscope.studies.seal.labels.label_pairs` names them). Returns columns ``s_f_plus`` = max(Δ, 0) (the
    rewrite lowered f) and ``s_f_minus`` = max(−Δ, 0) (the rewrite raised f).
    """
    originals = [(side, f) for side in ("chosen", "rejected") for f in features]
    _columns(pairs, [f"{s}_{f}" for s, f in originals] + [f"{s}_{rewritten}_{f}" for s, f in originals], "flip")
    out = pd.DataFrame(index=pairs.index)
    for side, f in originals:
        delta = pairs[f"{side}_{f}"].astype(float) - pairs[f"{side}_{rewritten}_{f}"].astype(float)
        out[f"{side}_{f}_plus"] = delta.clip(lower=0)
        out[f"{side}_{f}_minus"] = (-delta).clip(lower=0)
    return out


def robustness_coefficients(pairs: pd.DataFrame, became_misaligned: str, features: Sequence[str],
                            rewritten: str = "rewritten", cluster: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """Robustness scores π^s_±(f): a linear probability model of ``became_misaligned`` (aligned on
    the original pair, misaligned on the rewritten one) on the feature flips of the rewrite
    (:func:`flip_columns`).

    π^c_+(sentiment) > 0 says: when rewriting lowered the chosen text's sentiment, the reward model
    more often lost the pair. Flips that never occur cannot be estimated; their rows are kept with
    NaN estimates. Column ``n_flips`` counts the pairs with a nonzero flip. Indexed by ``side``,
    ``feature`` and ``sign`` ("+" lowered, "−" raised).
    """
    if isinstance(features, str) or not len(features):
        raise ValueError("features must be a non-empty list of feature names")
    _columns(pairs, [became_misaligned], "outcome")
    flips = flip_columns(pairs, features, rewritten)
    present = [c for c in flips.columns if flips[c].nunique() > 1]
    if not present:
        raise ValueError("no feature flips vary across pairs: the rewrites changed none of the features")
    frame = flips.assign(_y=pairs[became_misaligned].to_numpy())
    if cluster is not None:
        _columns(pairs, [cluster], "cluster")
        frame["_cluster"] = pairs[cluster].to_numpy()
    fit = feature_imprint(frame, "_y", present, cluster="_cluster" if cluster is not None else None, level=level)
    out = fit.reindex(flips.columns)
    out["n_flips"] = (flips != 0).sum().to_numpy()
    index = [(side, f, sign) for side in ("chosen", "rejected") for f in features for sign in ("+", "−")]
    out.index = pd.MultiIndex.from_tuples(index, names=["side", "feature", "sign"])
    out.attrs.update(fit.attrs)
    return out


def angle_summary(theta, groups) -> pd.DataFrame:
    """Per group of pairs (and "all"): n, mean and median θ, the share of θ > 0 and a two-sided sign
    test of "θ > 0 as often as θ < 0" (binomial, zeros dropped). NaN angles are left out."""
    from scipy.stats import binomtest

    theta = np.asarray(theta, dtype=np.float64)
    groups = np.asarray(groups)
    if theta.ndim != 1 or theta.shape != groups.shape:
        raise ValueError(f"theta and groups must be 1-D of one length, got {theta.shape} and {groups.shape}")
    keep = ~np.isnan(theta)
    if not keep.any():
        raise ValueError("theta has no finite angle")
    theta, groups = theta[keep], groups[keep]
    rows = []
    for key in ["all", *pd.unique(groups)]:
        sample = theta if key == "all" else theta[groups == key]
        nonzero = sample[sample != 0]
        p = binomtest(int((nonzero > 0).sum()), len(nonzero)).pvalue if len(nonzero) else float("nan")
        rows.append({"group": key, "n": len(sample), "mean": sample.mean(), "median": float(np.median(sample)),
                     "share positive": (sample > 0).mean(), "sign test p": p})
    return pd.DataFrame(rows).set_index("group")


# --------------------------------------------------------------------------------------------------
# Helpers for the chapter: scoring pairs once per distinct text, interval for a share


def score_pairs(rm, pairs: pd.DataFrame, columns: Sequence[str] = ("chosen", "rejected"), cache: dict | None = None,
                **kwargs) -> pd.DataFrame:
    """Score each distinct (prompt, text) of ``pairs[columns]`` once with ``rm`` (a RewardModel).

    Returns a frame indexed like ``pairs`` with one score column per name in ``columns``. Texts that
    recur across pairs (the lab pairs every response with up to three others) are scored once.
    ``cache``, a dict {(prompt, text): score} kept by the caller for one reward model, is read and
    filled in, so texts scored before (e.g. the parts of a pair a rewrite left unchanged) are not
    scored again. ``kwargs`` go to ``rm.score``.
    """
    _columns(pairs, ["prompt", *columns], "pair")
    if pairs.empty:
        raise ValueError("pairs is empty")
    cache = {} if cache is None else cache
    keys = list(dict.fromkeys(k for c in columns for k in zip(pairs["prompt"], pairs[c])))
    new = [k for k in keys if k not in cache]
    if new:
        scores = rm.score([p for p, _ in new], [t for _, t in new], **kwargs)
        cache.update(zip(new, scores.tolist()))
    return pd.DataFrame({c: [cache[k] for k in zip(pairs["prompt"], pairs[c])] for c in columns}, index=pairs.index,
                        dtype=np.float64)


def share_ci(flags, clusters=None, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(share, low, high): the share of true ``flags`` and a percentile bootstrap interval that
    resamples whole clusters (e.g. prompts, whose pairs share responses) when ``clusters`` is given."""
    from ...stats import bootstrap_ci

    flags = np.asarray(flags, dtype=np.float64)
    if flags.ndim != 1 or len(flags) < 2:
        raise ValueError(f"flags must be 1-D with at least 2 values, got shape {flags.shape}")
    if clusters is None:
        return bootstrap_ci(flags, n_resamples=n_resamples, level=level, seed=seed)
    per = pd.DataFrame({"f": flags, "g": np.asarray(clusters)}).groupby("g")["f"].agg(["sum", "count"]).to_numpy(float)
    if len(per) < 2:
        raise ValueError(f"clusters has {len(per)} distinct value(s); a cluster bootstrap needs at least 2")
    return bootstrap_ci(per, lambda v: v[:, 0].sum() / v[:, 1].sum(), n_resamples=n_resamples, level=level, seed=seed)


# --------------------------------------------------------------------------------------------------
# The chapter's claims table, by the book's one rule (rewardscope.findings)

PAPER = {"agreement pre": 0.57, "agreement post": 0.74, "stayed_aligned": 0.483, "got_aligned": 0.258,
         "resisted": 0.172, "reversed": 0.087, "resistance": 0.259, "agrees": 0.177, "disagrees": 0.067,
         "indifferent": 0.756, "misaligned | agrees": 0.106, "misaligned | indifferent": 0.280,
         "misaligned | disagrees": 0.438, "θ all": 6.5, "θ stayed_aligned": 8.3, "θ got_aligned": 18.0,
         "θ resisted": -7.8, "θ reversed": -9.9}
"""The released notebooks' outputs (hh-rlhf train split, 160,800 pairs; see the research notes). The
resistance, 25.9 %, is in-sample: the post-D model was trained on those pairs."""
PAPER_TARGETS = ("harmless", "helpful")


def cluster_ratio_ci(numerators, denominators, clusters, n_resamples: int = 1000, level: float = 0.95,
                     seed: int = 0, combine=None) -> tuple[float, float, float]:
    """(estimate, low, high) of a ratio of sums (or a function of several) with a percentile bootstrap
    that resamples whole clusters (prompts, whose pairs share texts).

    ``numerators`` and ``denominators`` are arrays [n_rows] or [n_rows, k]; each is summed within
    clusters, clusters are drawn with replacement, and the estimate is Σ num / Σ den per column,
    passed through ``combine`` (a function of the k ratios; default: the single ratio). A resample
    with a zero denominator gives NaN and is ignored by the quantiles.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    num, den = (num[:, None], den[:, None]) if num.ndim == 1 else (num, den)
    if num.shape != den.shape or num.ndim != 2 or len(num) != len(np.asarray(clusters)):
        raise ValueError(f"numerators, denominators and clusters must match row for row, got {num.shape}, "
                         f"{den.shape} and {len(np.asarray(clusters))}")
    codes, uniques = pd.factorize(np.asarray(clusters))
    k = len(uniques)
    if k < 2:
        raise ValueError(f"clusters has {k} distinct value(s); a cluster bootstrap needs at least 2")
    sums_num = np.zeros((k, num.shape[1]))
    sums_den = np.zeros((k, num.shape[1]))
    np.add.at(sums_num, codes, num)
    np.add.at(sums_den, codes, den)
    combine = combine if combine is not None else (lambda r: r[..., 0])
    weights = np.random.default_rng(seed).multinomial(k, np.full(k, 1 / k), size=n_resamples)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = combine((weights @ sums_num) / (weights @ sums_den))
        estimate = float(combine(sums_num.sum(0) / sums_den.sum(0)))
    alpha = (1 - level) / 2
    if np.isnan(draws).all():
        return estimate, float("nan"), float("nan")
    return estimate, float(np.nanquantile(draws, alpha)), float(np.nanquantile(draws, 1 - alpha))


def seal_results(pairs: pd.DataFrame, imprint_post: pd.DataFrame | None = None, label_noise: float = 0.0,
                 labellers_share_gold_signals: bool = False, n_resamples: int = 1000, seed: int = 0) -> dict:
    """The estimates chapter 4's claims rest on, each with a bootstrap interval over prompts.

    ``pairs`` has one row per pair with columns ``prompt_id`` (the cluster), ``split``, ``aligned_pre``,
    ``aligned_post``, ``regime`` (:func:`regime_labels`), ``theta`` (:func:`reward_shift_angle`) and
    ``verdict`` (:func:`labeller_verdict`). ``imprint_post`` is :func:`feature_imprint` of the post
    reward. ``label_noise`` is the share of training labels that contradict the gold (0 for a
    deterministic gold): the resistance a perfect reward model would still show in-sample.
    ``labellers_share_gold_signals`` says whether the target labellers are computed from the signals
    the gold is made of (e.g. :func:`rewardscope.studies.seal.labels.helpful_proxy` and
    :func:`~rewardscope.studies.seal.labels.harmless_proxy` on the lab's helpful-and-harmless gold); the target
    imprints are then true by construction and :func:`findings` does not count them. False for
    :data:`rewardscope.studies.seal.labels.TARGETS` (:data:`rewardscope.studies.seal.labels.TARGETS_SHARE_GOLD_SIGNALS`).
    """
    _columns(pairs, ["prompt_id", "split", "aligned_pre", "aligned_post", "regime", "theta", "verdict"], "pair")
    if not 0 <= label_noise < 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise}")
    out = {"label_noise": float(label_noise), "labellers_share_gold_signals": bool(labellers_share_gold_signals),
           "n_pairs": len(pairs)}

    def interval(frame, num, den, combine=None):
        if frame["prompt_id"].nunique() < 2:
            return None
        est, low, high = cluster_ratio_ci(num, den, frame["prompt_id"], n_resamples, seed=seed, combine=combine)
        if np.isnan([est, low, high]).any():
            return None
        return {"estimate": est, "low": low, "high": high, "n": int(frame["prompt_id"].nunique())}

    test = pairs[pairs["split"] == "test"]
    held = test if len(test) else pairs
    out["gain_split"] = "test" if len(test) else "all"
    gain = held["aligned_post"].astype(float) - held["aligned_pre"].astype(float)
    out["gain"] = interval(held, gain, np.ones(len(held)))
    if out["gain"] is not None:
        out["gain"].update(pre=float(held["aligned_pre"].mean()), post=float(held["aligned_post"].mean()))
    train = pairs[pairs["split"] == "train"]
    out["resistance_split"] = "train" if len(train) else "all"
    seen = train if len(train) else pairs
    out["resistance"] = interval(seen, (~seen["aligned_post"].astype(bool)).astype(float), np.ones(len(seen)))
    wrong = (~pairs["aligned_post"].astype(bool)).astype(float).to_numpy()
    is_d, is_a = (pairs["verdict"] == "disagrees").to_numpy(float), (pairs["verdict"] == "agrees").to_numpy(float)
    both = pairs["prompt_id"].nunique() >= 2 and is_d.sum() > 0 and is_a.sum() > 0
    out["verdict_errors"] = interval(pairs, np.c_[wrong * is_d, wrong * is_a], np.c_[is_d, is_a],
                                     combine=lambda r: r[..., 0] - r[..., 1]) if both else None
    if out["verdict_errors"] is not None:
        out["verdict_errors"].update(disagrees=float(wrong[is_d > 0].mean()), agrees=float(wrong[is_a > 0].mean()))
    resisted = pairs[(pairs["regime"] == "resisted") & pairs["theta"].notna()]
    out["theta_resisted"] = interval(resisted, resisted["theta"].to_numpy(float), np.ones(len(resisted))) \
        if len(resisted) else None
    got = pairs[(pairs["regime"] == "got_aligned") & pairs["theta"].notna()]
    out["theta_got_aligned"] = float(got["theta"].mean()) if len(got) else float("nan")
    out["theta_got_aligned_positive"] = float((got["theta"] > 0).mean()) if len(got) else float("nan")
    if imprint_post is not None:
        top = imprint_post["coef"].sort_values(ascending=False)
        out["top_imprints"] = list(top.index[:2])
        targets = [t for t in PAPER_TARGETS if t in imprint_post.index]
        out["target_imprints"] = {t: imprint_post.loc[t, ["coef", "ci_low", "ci_high"]].astype(float).to_dict()
                                  for t in targets}
        out["n_clusters"] = int(imprint_post.attrs.get("n_clusters", 0))
    return out


def findings(results: dict) -> list:
    """Chapter 4's claims table as :class:`rewardscope.findings.Finding` rows (see :func:`seal_results`).

    Two rows cannot fail here and are :func:`rewardscope.findings.not_a_test`: the θ sign of
    got-aligned pairs (a pair that goes from misordered to ordered rotates towards "chosen above
    rejected", which is what θ > 0 means, unless the rotation passes the line chosen + rejected = 0
    where the sign is read), and, when the target labellers share signals with the gold
    (``labellers_share_gold_signals``), the target imprints. Resistance is in-sample (train split) beside the paper's in-sample
    25.9 %, against the null of the training labels' own noise (a perfect fit would still misorder
    exactly the flipped pairs).
    """
    from ...findings import decide, not_a_test

    rows = []
    pct = "{:.1%}"
    claim = "training on the preference data raises agreement with its labels"
    gain = results.get("gain")
    paper = f"{PAPER['agreement pre']:.2f} → {PAPER['agreement post']:.2f}"
    if gain is None:
        rows.append(not_a_test(claim, paper, "n/a", "fewer than two prompts to resample"))
    else:
        rows.append(decide(claim, paper, gain["estimate"], gain["low"], gain["high"], null=0.0, unit="prompts",
                           n=gain["n"], fmt="{:+.3f}",
                           what=f"{results.get('gain_split', 'test')} split {gain['pre']:.3f} → {gain['post']:.3f}, gain"))
    claim = "a share of the pairs the RM was trained on resists: still misordered after training"
    paper = f"{PAPER['resistance']:.1%} in-sample"
    res = results.get("resistance")
    noise = float(results.get("label_noise", 0.0))
    if res is None:
        rows.append(not_a_test(claim, paper, "n/a", "fewer than two prompts to resample"))
    else:
        rows.append(decide(claim, paper, res["estimate"], res["low"], res["high"], null=noise, unit="prompts",
                           n=res["n"], fmt=pct, what=f"{results.get('resistance_split', 'train')} split (in-sample; null: "
                           + ("the share of its labels against the gold)" if noise > 0 else "no label noise)")))
    claim = "the targets leave the largest positive imprints"
    top = results.get("top_imprints") or []
    here = ", ".join(top) if top else "n/a"
    paper = ", ".join(PAPER_TARGETS)
    targets = results.get("target_imprints") or {}
    if results.get("labellers_share_gold_signals", False):
        rows.append(not_a_test(claim, paper, here, "the target labellers are computed from the gold's own signals, "
                               "so the targets carry the gold by construction"))
    elif len(targets) < len(PAPER_TARGETS):
        rows.append(not_a_test(claim, paper, here, "a target feature is constant or redundant here and has no imprint"))
    else:
        weakest = min(targets, key=lambda t: targets[t]["ci_low"])
        t = targets[weakest]
        rows.append(decide("the targets leave positive imprints", paper, t["coef"], t["ci_low"], t["ci_high"], null=0.0,
                           unit="prompts", n=max(int(results.get("n_clusters", 1)), 1), fmt="{:+.2f}",
                           what=f"largest: {here}; weaker target, {weakest}:"))
    claim = "the model errs most where the labeller disagrees with the label"
    paper = f"{PAPER['misaligned | disagrees']:.3f} vs {PAPER['misaligned | agrees']:.3f}"
    err = results.get("verdict_errors")
    if err is None:
        rows.append(not_a_test(claim, paper, "n/a", "no pairs with both an agreeing and a disagreeing verdict"))
    else:
        rows.append(decide(claim, paper, err["estimate"], err["low"], err["high"], null=0.0, unit="prompts",
                           n=err["n"], fmt="{:+.3f}",
                           what=f"{err['disagrees']:.3f} vs {err['agrees']:.3f}, difference"))
    got = results.get("theta_got_aligned", float("nan"))
    share = results.get("theta_got_aligned_positive", float("nan"))
    rows.append(not_a_test("rewards rotate towards the label where pairs got aligned",
                           f"{PAPER['θ got_aligned']:+.1f}°",
                           "n/a" if np.isnan(got) else f"mean {got:+.1f}°, {share:.0%} of the pairs above 0",
                           "the sign is forced: a pair that goes from misordered to ordered rotates towards "
                           "'chosen above rejected', which θ > 0 means, unless the rotation is so large that it "
                           "passes the line chosen + rejected = 0, where the sign is read"))
    claim = "rewards rotate away from the label where pairs resisted"
    paper = f"{PAPER['θ resisted']:+.1f}°"
    theta = results.get("theta_resisted")
    if theta is None:
        rows.append(not_a_test(claim, paper, "n/a", "fewer than two prompts with resisted pairs"))
    else:
        rows.append(decide(claim, paper, theta["estimate"], theta["low"], theta["high"], null=0.0, unit="prompts",
                           n=theta["n"], side="less", fmt="{:+.1f}", what="mean θ (°)"))
    return rows
