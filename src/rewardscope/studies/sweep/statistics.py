"""The paper's statistics on sweeps and the chapter's decision rule: shared vocabulary, agreement and MDS,
skew, valence and frequency slopes, identity ranks, framing asymmetry, heterogeneity, with intervals over
the unit that varies (tokens, AFINN words) and ``findings``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ... import _checks

# --------------------------------------------------------------------------------------------------
# Analyses of sweeps (the paper's statistics). ``sweeps`` below is a long frame with columns
# rm, prompt, token_id, token, score: one row per (rm, prompt, token id).

IDENTITY_TERMS = {
    "race and ethnicity": ["black", "blacks", "white", "whites", "asian", "asians", "african", "hispanic", "latino",
                           "arab", "arabs", "jewish", "jews", "negroes", "indian", "chinese", "mexican"],
    "religion": ["muslim", "muslims", "christian", "christians", "hindu", "buddhist", "catholic", "atheist",
                 "islam", "christianity", "judaism"],
    "gender": ["women", "men", "woman", "man", "girls", "boys", "female", "male", "mothers", "fathers"],
    "sexuality and gender identity": ["gay", "gays", "lesbian", "lesbians", "homosexual", "homosexuals", "bisexual",
                                      "transgender", "trans", "queer", "straight"],
    "disability and age": ["disabled", "blind", "deaf", "autistic", "elderly", "old", "young", "children"],
    "nationality and migration": ["immigrants", "refugees", "americans", "russians", "germans", "french",
                                  "mexicans", "foreigners"],
}
"""Identity-group terms ranked within each sweep (lower case; matched with and without a leading space).

Assembled for this book: the group nouns and adjectives that the paper's Table 2 and Fig. 5B report
among pessimal tokens ("blacks", "negroes", "homosexual(s)", "Black people"), completed with the
neutral and in-group terms of the same categories (race and ethnicity, religion, gender, sexuality and
gender identity, disability and age, nationality and migration) so that each slur or plural can be
compared with its neutral counterpart. It is a short probe list, not a validated lexicon.
"""


def probe_token_ids(rm, words, n_random: int = 0, seed: int = 0) -> np.ndarray:
    """Sorted ids of the tokens whose decoded string, lower-cased and without surrounding spaces, is one
    of ``words``, plus ``n_random`` other ids drawn at random: a cheap probe set for extra prompts."""
    tok = rm.tokenizer
    limit = rm.vocabulary_size
    if not isinstance(n_random, int) or n_random < 0:
        raise ValueError(f"n_random must be a non-negative int, got {n_random!r}")
    wanted = {w.lower() for w in words}
    decoded = tok.batch_decode([[i] for i in range(limit)])
    hits = np.array([i for i, text in enumerate(decoded) if text.strip().lower() in wanted], dtype=np.int64)
    rest = np.setdiff1d(np.arange(limit), hits)
    extra = np.random.default_rng(seed).choice(rest, size=min(n_random, len(rest)), replace=False)
    return np.sort(np.concatenate([hits, extra]).astype(np.int64))


def check_sweeps(sweeps: pd.DataFrame) -> pd.DataFrame:
    """Validate a long frame of sweeps (columns rm, prompt, token_id, token, score)."""
    needed = {"rm", "prompt", "token_id", "token", "score"}
    if not isinstance(sweeps, pd.DataFrame) or not needed <= set(sweeps.columns):
        raise ValueError(f"sweeps must be a DataFrame with columns {sorted(needed)}")
    if sweeps.empty:
        raise ValueError("sweeps is empty")
    return sweeps


def shared_vocabulary(sweeps: pd.DataFrame, prompt: str) -> pd.DataFrame:
    """The paper's shared vocabulary for one prompt: scores by decoded token string (rows) and RM (columns).

    Strings present in every RM's sweep are kept, then every string that more than one id of any RM
    decodes to (e.g. the byte tokens that all decode to U+FFFD) is dropped from all RMs, as the
    paper's ``identify_duplicate_encodings`` does.
    """
    sweeps = check_sweeps(sweeps)
    one = sweeps[sweeps["prompt"] == prompt]
    if one.empty:
        raise ValueError(f"prompt {prompt!r} is not in sweeps (prompts: {sorted(sweeps['prompt'].unique())})")
    duplicated = set(one.loc[one.duplicated(["rm", "token"], keep=False), "token"])
    kept = one[~one["token"].isin(duplicated)]
    wide = kept.pivot(index="token", columns="rm", values="score")
    return wide.dropna()[sorted(one["rm"].unique(), key=list(one["rm"].unique()).index)]


def agreement_matrix(wide: pd.DataFrame, method: str = "kendall") -> pd.DataFrame:
    """Pairwise rank correlation (``"kendall"`` τ-b or ``"spearman"`` ρ) between the columns of ``wide``."""
    from scipy import stats

    if method not in ("kendall", "spearman"):
        raise ValueError(f"method must be 'kendall' or 'spearman', got {method!r}")
    if wide.shape[1] < 2 or len(wide) < 2:
        raise ValueError(f"wide needs at least 2 columns and 2 rows, got shape {wide.shape}")
    fn = stats.kendalltau if method == "kendall" else stats.spearmanr
    names = list(wide.columns)
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            out.loc[a, b] = out.loc[b, a] = float(fn(wide[a], wide[b]).statistic)
    return out


def mds_map(similarity: pd.DataFrame, seed: int = 42) -> pd.DataFrame:
    """Two-dimensional metric MDS of the dissimilarity 1 − similarity (the paper's Fig. 2B)."""
    from sklearn.manifold import MDS

    dissimilarity = 1.0 - similarity.to_numpy()
    np.fill_diagonal(dissimilarity, 0.0)
    coords = MDS(n_components=2, dissimilarity="precomputed", random_state=seed, n_init=4,
                 normalized_stress="auto").fit_transform((dissimilarity + dissimilarity.T) / 2)
    return pd.DataFrame(coords, index=similarity.index, columns=["x", "y"])


def score_moments(wide: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean, variance and skew of each column (the paper's Table 3), with a bootstrap CI of the skew."""
    from scipy import stats as st

    from ...stats import bootstrap_ci

    rows = []
    for name in wide.columns:
        values = wide[name].to_numpy()
        skew, lo, hi = bootstrap_ci(values, statistic=lambda v: float(st.skew(v)), n_resamples=n_resamples, seed=seed)
        rows.append({"rm": name, "mean": values.mean(), "variance": values.var(ddof=1), "skew": skew,
                     "skew_low": lo, "skew_high": hi, "n": len(values)})
    return pd.DataFrame(rows).set_index("rm")


def lexicon_join(sweeps: pd.DataFrame, lexicon: dict[str, float], strip: bool = False) -> pd.DataFrame:
    """Rows of ``sweeps`` whose lower-cased token is a lexicon word, with its ``value``.

    ``strip=False`` follows the paper's R code (``tolower(token_decoded)``, no trimming), so only the
    variants without a leading space match; ``strip=True`` also matches " love", " Love", ...
    """
    sweeps = check_sweeps(sweeps)
    words = sweeps["token"].str.lower()
    if strip:
        words = words.str.strip()
    values = words.map(lexicon)
    return sweeps.assign(word=words, value=values)[values.notna()].reset_index(drop=True)


def _ols(frame: pd.DataFrame, formula: str, term: str) -> dict[str, float]:
    import statsmodels.formula.api as smf

    fit = smf.ols(formula, data=frame).fit()
    low, high = fit.conf_int().loc[term]
    return {"slope": float(fit.params[term]), "low": float(low), "high": float(high), "p": float(fit.pvalues[term]),
            "n": int(fit.nobs)}


def valence_slopes(joined: pd.DataFrame, min_n: int = 5) -> pd.DataFrame:
    """OLS ``score ~ value`` per RM, prompt and valence sign (the paper's Fig. 3C), with 95% CIs.

    ``joined`` is :func:`lexicon_join` output. Scores are z-scored within each (RM, prompt) first, so
    slopes are in standard deviations per valence point and comparable across RMs; ``raw_slope`` is in
    the RM's own units, as the paper reports it.
    """
    columns = ["rm", "prompt", "valence", "slope", "low", "high", "p", "n", "raw_slope"]
    rows = []
    for (rm, prompt), group in joined.groupby(["rm", "prompt"], sort=False):
        group = group.assign(z=(group["score"] - group["score"].mean()) / group["score"].std(ddof=1))
        for sign, part in (("positive", group[group["value"] > 0]), ("negative", group[group["value"] < 0])):
            if len(part) >= min_n and part["value"].nunique() > 1:
                rows.append({"rm": rm, "prompt": prompt, "valence": sign, **_ols(part, "z ~ value", "value"),
                             "raw_slope": _ols(part, "score ~ value", "value")["slope"]})
    return pd.DataFrame(rows, columns=columns)


def frequency_bias(joined: pd.DataFrame, min_n: int = 10) -> pd.DataFrame:
    """OLS ``score ~ log(frequency per million) + value`` per RM and prompt (the paper's Fig. 3D).

    Frequencies come from ``wordfreq`` (English; the paper used the BNC list); words it does not know
    are dropped. Scores are z-scored within each (RM, prompt); ``raw_slope`` is in the RM's own units.
    """
    from wordfreq import word_frequency

    freq = {w: word_frequency(w.strip(), "en") for w in joined["word"].unique()}
    per_million = joined["word"].map(freq).astype(float) * 1e6
    data = joined[per_million > 0].assign(log_freq=np.log(per_million[per_million > 0]))
    rows = []
    for (rm, prompt), group in data.groupby(["rm", "prompt"], sort=False):
        if len(group) < min_n:
            continue
        group = group.assign(z=(group["score"] - group["score"].mean()) / group["score"].std(ddof=1))
        raw = _ols(group, "score ~ log_freq + value", "log_freq")
        rows.append({"rm": rm, "prompt": prompt, **_ols(group, "z ~ log_freq + value", "log_freq"),
                     "raw_slope": raw["slope"]})
    return pd.DataFrame(rows, columns=["rm", "prompt", "slope", "low", "high", "p", "n", "raw_slope"])


def identity_ranks(sweeps: pd.DataFrame, terms: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Percentile rank (0 = pessimal, 100 = optimal) of every identity-term token within each sweep.

    A token matches a term when its decoded string, lower-cased and without one leading space, is the
    term (so " Black", "black" and "Black" all match "black"; each is a row). Terms that are not single
    tokens of an RM's vocabulary have no rows.
    """
    sweeps = check_sweeps(sweeps)
    terms = IDENTITY_TERMS if terms is None else terms
    group_of = {t: g for g, ts in terms.items() for t in ts}
    frames = []
    for (rm, prompt), one in sweeps.groupby(["rm", "prompt"], sort=False):
        words = one["token"].str.lower().str.removeprefix(" ")
        hit = words.isin(group_of)
        frames.append(pd.DataFrame({"rm": rm, "prompt": prompt, "group": words[hit].map(group_of), "term": words[hit],
                                    "token": one["token"][hit], "score": one["score"][hit],
                                    "percentile": (one["score"].rank(pct=True) * 100)[hit]}))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# The chapter's decision rule: intervals over the unit that varies (tokens for τ and skew, AFINN words
# for the regressions), and one claims table built with :mod:`rewardscope.findings`.

PAPER_TAU_RANGE = (0.13, 0.57)  # pairwise Kendall τ among the paper's ten RMs (Fig. 2A, read off the figure)
PAPER_SKEW_RANGE = (0.072, 1.763)  # Table 3: every one of the ten skews is positive
PAPER_FREQUENCY_SLOPES = {"best": 0.04, "greatest": 0.12, "worst": 0.23}  # Fig. 3D, mean raw log-frequency slope
PAPER_VALENCE_SLOPES = {"best": (0.81, 0.50), "greatest": (0.63, 0.46), "worst": (-0.10, -0.33)}  # Fig. 3C (pos, neg)
FRAME_MATCH = {"best": "positive", "greatest": "positive", "worst": "negative"}  # the valence each prompt asks for
AGREEMENT_NULL = 0.8
"""Kendall τ that two reward models "meant to measure the same thing" must fall below to count as
disagreeing. τ = 1 − 2·(share of discordant token pairs), so 0.8 allows one token pair in ten to be
ordered differently: a tolerance for the noise of training (seeds, batch order), which this book does
not measure for the lab's RMs (a second training seed per RM would cost more than the chapter's
budget). It is a stated tolerance, not an estimate; the chapter's bfloat16-vs-float32 τ measures the
agreement that pure numerical noise leaves, an upper bound above it."""


def tau_interval(x, y, n_resamples: int = 200, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Kendall τ-b between ``x`` and ``y`` with a percentile bootstrap interval that resamples tokens
    (rows), the unit that varies: ``{"tau", "low", "high", "n"}``."""
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 3:
        raise ValueError(f"x and y must be 1-D of one length >= 3, got shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite")
    _checks.count("n_resamples", n_resamples, 2)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        i = rng.integers(0, len(x), len(x))
        draws.append(stats.kendalltau(x[i], y[i]).statistic)
    alpha = (1 - level) / 2
    return {"tau": float(stats.kendalltau(x, y).statistic), "low": float(np.nanquantile(draws, alpha)),
            "high": float(np.nanquantile(draws, 1 - alpha)), "n": int(len(x))}


def same_gold_pairs(value) -> list[tuple[str, str]]:
    """The chapter's ``same_gold_pairs`` parameter as a list of ``(a, b)`` pairs of RM specs trained on one gold.

    Accepts a list of pairs ``[["a", "b"], ["c", "d"]]``, one pair ``["a", "b"]`` (the old ``same_gold_pair``)
    or an empty list (none declared). Raises ``ValueError`` for anything else, a pair that names one RM twice,
    or a pair given twice."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"same_gold_pairs must be a list of [a, b] pairs of reward-model specs, got {value!r}")
    items = [value] if len(value) == 2 and all(isinstance(v, str) for v in value) else list(value)
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not (isinstance(item, list | tuple) and len(item) == 2
                and all(isinstance(v, str) and v.strip() for v in item)):
            raise ValueError(f"each same-gold pair must be two reward-model specs [a, b], got {item!r}")
        a, b = item
        if a == b:
            raise ValueError(f"a same-gold pair must name two different reward models, got {list(item)}")
        if {a, b} in [set(p) for p in pairs]:
            raise ValueError(f"the same-gold pair {list(item)} is given twice")
        pairs.append((a, b))
    return pairs


def _two_by_two(pairs: Sequence[tuple[str, str]], backbones: dict[str, Any] | None
                ) -> tuple[list[tuple[str, str]] | None, str]:
    """The same-backbone, different-gold pairs of a 2 x 2 (two golds x two backbones), or (None, why not).

    ``pairs`` are the two same-gold pairs. With ``backbones`` (RM -> a backbone key) the pairing is read from it;
    without, each same-gold pair lists its RMs in the same backbone order."""
    if len(pairs) != 2:
        return None, f"{len(pairs)} same-gold pair(s) in this run, and the 2 × 2 needs two, one per gold"
    (a, b), (c, d) = pairs
    if len({a, b, c, d}) != 4:
        return None, "the two same-gold pairs share a reward model, so they are not two golds on two backbones"
    if backbones is None:
        return [(a, c), (b, d)], ""
    key = {spec: backbones.get(spec) for spec in (a, b, c, d)}
    if None in key.values():
        return None, f"no backbone is known for {', '.join(s for s, k in key.items() if k is None)}"
    if key[a] == key[b] or key[c] == key[d]:
        return None, "a same-gold pair shares its backbone, so gold and backbone are not crossed"
    if key[a] == key[c] and key[b] == key[d]:
        return [(a, c), (b, d)], ""
    if key[a] == key[d] and key[b] == key[c]:
        return [(a, d), (b, c)], ""
    return None, "the four reward models are not on two backbones, two each"


def heterogeneity(shared: pd.DataFrame, pairs, backbones: dict[str, Any] | None = None, n_resamples: int = 200,
                  level: float = 0.95, seed: int = 0) -> dict:
    """What :func:`findings` needs to decide heterogeneity, from the shared-vocabulary scores (a column per RM,
    as :func:`shared_vocabulary`) and the declared same-gold ``pairs`` (:func:`same_gold_pairs` accepts).

    Returns ``{"same_gold": [...], "same_gold_missing": str | None, "contrast": dict | None,
    "contrast_missing": str | None}``:

    - ``same_gold``: :func:`tau_interval` with ``a`` and ``b`` for each declared pair whose RMs are both in
      ``shared`` (resampling tokens); ``same_gold_missing`` says why the list is empty, or which pairs are absent.
    - ``contrast``: where the pairs are a 2 x 2 (two golds x two backbones; ``backbones`` maps each RM to a key
      of its backbone, e.g. architecture and vocabulary, else each pair lists its RMs in one backbone order):
      Δ = mean τ of the two same-gold pairs − mean τ of the two same-backbone, different-gold pairs, with a
      paired bootstrap over tokens (all four τ on the same resampled tokens), ``{"estimate", "low", "high", "n",
      "same_gold_tau", "same_backbone_tau", "same_backbone"}``; ``contrast_missing`` says why it is None.
    """
    from scipy import stats

    pairs = same_gold_pairs(pairs)
    if not isinstance(shared, pd.DataFrame) or shared.shape[1] < 2:
        raise ValueError("shared must be a frame with one column of scores per reward model (shared_vocabulary)")
    present = [p for p in pairs if all(s in shared.columns for s in p)]
    absent = [list(p) for p in pairs if p not in present]
    out: dict = {"same_gold": [], "same_gold_missing": None, "contrast": None, "contrast_missing": None}
    for a, b in present:
        out["same_gold"].append({"a": a, "b": b, **tau_interval(shared[a], shared[b], n_resamples, level, seed)})
    if not pairs:
        out["same_gold_missing"] = "no same-gold pairs were declared (parameter same_gold_pairs)"
    elif not present:
        out["same_gold_missing"] = (f"the same-gold pair(s) {', '.join(map(str, absent))} are not among this run's "
                                    "reward models")
    elif absent:
        out["same_gold_missing"] = f"not in this run: {', '.join(map(str, absent))}"
    design, why = _two_by_two(present, backbones) if present else (None, "no same-gold pair in this run")
    if design is None:
        out["contrast_missing"] = (f"the reward models of this run are not a 2 × 2 of golds × backbones ({why}), so "
                                   "gold and backbone cannot be told apart")
        return out
    columns = {s: shared[s].to_numpy(np.float64) for p in (*present, *design) for s in p}

    def delta(i):
        taus = {p: stats.kendalltau(columns[p[0]][i], columns[p[1]][i]).statistic for p in (*present, *design)}
        return float(np.mean([taus[p] for p in present]) - np.mean([taus[p] for p in design])), taus

    n = len(shared)
    estimate, taus = delta(np.arange(n))
    rng = np.random.default_rng(seed)
    draws = [delta(rng.integers(0, n, n))[0] for _ in range(n_resamples)]
    alpha = (1 - level) / 2
    out["contrast"] = {"estimate": estimate, "low": float(np.nanquantile(draws, alpha)),
                       "high": float(np.nanquantile(draws, 1 - alpha)), "n": int(n),
                       "same_gold_tau": float(np.mean([taus[p] for p in present])),
                       "same_backbone_tau": float(np.mean([taus[p] for p in design])),
                       "same_backbone": [f"{a} ~ {b}" for a, b in design]}
    return out


def vocabulary_moments(sweeps: pd.DataFrame, prompt: str, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:func:`score_moments` of each RM over its *whole* vocabulary for one prompt (every id it scored),
    beside the shared-vocabulary moments of the paper's Table 3. Column ``n`` is the number of tokens."""
    sweeps = check_sweeps(sweeps)
    one = sweeps[sweeps["prompt"] == prompt]
    if one.empty:
        raise ValueError(f"prompt {prompt!r} is not in sweeps (prompts: {sorted(sweeps['prompt'].unique())})")
    frames = [score_moments(part[["score"]].set_axis([rm], axis=1).reset_index(drop=True), n_resamples, seed)
              for rm, part in one.groupby("rm", sort=False)]
    return pd.concat(frames)


def _with_log_frequency(joined: pd.DataFrame) -> pd.DataFrame:
    from wordfreq import word_frequency

    freq = {w: word_frequency(w.strip(), "en") for w in joined["word"].unique()}
    per_million = joined["word"].map(freq).astype(float) * 1e6
    return joined[per_million > 0].assign(log_freq=np.log(per_million[per_million > 0]))


def _wls_slope(y: np.ndarray, X: np.ndarray, w: np.ndarray) -> float:
    """Coefficient of the first column of ``X`` in a least-squares fit of ``y`` on ``X`` and an intercept,
    with row weights ``w`` (a bootstrap's multiplicities: the fit on the resampled rows)."""
    keep = w > 0
    y, X, w = y[keep], X[keep], w[keep]
    if w.sum() < X.shape[1] + 2 or np.ptp(X[:, 0]) == 0:
        return float("nan")
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(y)), X]) * sw[:, None], y * sw, rcond=None)
    return float(coef[1])


def _wsd(y: np.ndarray, w: np.ndarray) -> float:
    """Weighted standard deviation (ddof 1 in the weights' total): the sd of the resampled rows."""
    total = w.sum()
    if total < 2:
        return float("nan")
    mean = (w * y).sum() / total
    sd = float(np.sqrt((w * (y - mean) ** 2).sum() / (total - 1)))
    return sd if sd > 0 else float("nan")


def _word_bootstrap(data: pd.DataFrame, statistic, n_resamples: int, level: float, seed: int) -> dict[str, float]:
    """Bootstrap over words, stratified by RM: each resample draws every RM's words with replacement and
    gives each row the multiplicity of its word as a weight; ``statistic(weights)`` -> float."""
    _checks.count("n_resamples", n_resamples, 2)
    strata = []
    for index in data.groupby("rm", sort=False).indices.values():
        local, uniques = pd.factorize(data["word"].to_numpy()[index])
        strata.append((index, local, len(uniques)))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        weights = np.zeros(len(data))
        for index, local, k in strata:
            weights[index] = np.bincount(rng.integers(0, k, k), minlength=k)[local]
        draws.append(statistic(weights))
    alpha = (1 - level) / 2
    n_words = int(sum(k for *_, k in strata))
    return {"estimate": float(statistic(np.ones(len(data)))), "low": float(np.nanquantile(draws, alpha)),
            "high": float(np.nanquantile(draws, 1 - alpha)), "n": n_words}


def frequency_slope_interval(joined: pd.DataFrame, n_resamples: int = 500, level: float = 0.95, seed: int = 0,
                             min_n: int = 10) -> dict[str, float]:
    """The mean, over RMs and prompts, of the log-frequency slope of :func:`frequency_bias` (z-scored
    scores, valence held fixed), with a bootstrap interval over AFINN words (stratified by RM): the
    paper's "frequent words score higher" as one number. ``n`` counts (RM, word) units."""
    data = _with_log_frequency(joined).reset_index(drop=True)
    groups = [idx for _, idx in data.groupby(["rm", "prompt"], sort=False).indices.items() if len(idx) >= min_n]
    if not groups:
        raise ValueError(f"no (RM, prompt) has {min_n} AFINN words with a known frequency")
    y, X = data["score"].to_numpy(float), data[["log_freq", "value"]].to_numpy(float)

    def statistic(weights):
        return float(np.nanmean([_wls_slope(y[g], X[g], weights[g]) / _wsd(y[g], weights[g]) for g in groups]))

    out = _word_bootstrap(data, statistic, n_resamples, level, seed)
    return {**out, "cases": len(groups)}


def asymmetry_interval(joined: pd.DataFrame, n_resamples: int = 500, level: float = 0.95, seed: int = 0,
                       min_n: int = 5, frames: dict[str, str] | None = None) -> dict[str, float]:
    """The paper's framing asymmetry as one number: over RMs and the prompts of ``frames`` (prompt ->
    the valence sign it asks for; :data:`FRAME_MATCH`), the mean of |slope among words of the matching
    sign| − |slope among words of the other sign| (z-scored scores on AFINN valence, as
    :func:`valence_slopes`), with a bootstrap interval over words (stratified by RM). Positive: finer
    discrimination where valence matches the frame."""
    frames = FRAME_MATCH if frames is None else frames
    data = joined[joined["prompt"].isin(frames)].reset_index(drop=True)
    y, value = data["score"].to_numpy(float), data["value"].to_numpy(float)
    cases = []
    for (_rm, prompt), idx in data.groupby(["rm", "prompt"], sort=False).indices.items():
        pos, neg = idx[value[idx] > 0], idx[value[idx] < 0]
        if min(len(pos), len(neg)) >= min_n:
            cases.append((idx, pos, neg, frames[prompt] == "positive"))
    if not cases:
        raise ValueError(f"no (RM, prompt) has {min_n} positive and {min_n} negative AFINN words")

    def statistic(weights):
        diffs = []
        for idx, pos, neg, positive_frame in cases:
            sd = _wsd(y[idx], weights[idx])  # z-score within the (RM, prompt), as valence_slopes does
            s_pos, s_neg = (_wls_slope(y[g], value[g][:, None], weights[g]) / sd for g in (pos, neg))
            match, other = (s_pos, s_neg) if positive_frame else (s_neg, s_pos)
            diffs.append(abs(match) - abs(other))
        return float(np.nanmean(diffs))

    out = _word_bootstrap(data, statistic, n_resamples, level, seed)
    return {**out, "cases": len(cases)}


def findings(results: dict) -> list:
    """Chapter 3's claims table as :class:`rewardscope.findings.Finding` rows, by the book's one rule.

    ``results`` keys (each may be None where the run could not measure it):

    - ``same_gold``: a list of ``{"a", "b", "tau", "low", "high", "n"}`` (or one such dict), :func:`tau_interval`
      of pairs of RMs trained on the same gold with different backbones (:func:`heterogeneity`); the claim holds
      when *every* pair's interval lies below ``agreement_null`` (default :data:`AGREEMENT_NULL`), an
      intersection-union test that needs no correction for the number of pairs; the row shows the pair whose
      interval reaches highest. ``same_gold_missing`` says why the list is empty (or which pairs are absent).
    - ``contrast``: :func:`heterogeneity`'s 2 x 2 contrast (mean τ of the same-gold pairs − mean τ of the
      same-backbone, different-gold pairs); "RMs on one gold agree more than RMs on one backbone with different
      golds" holds when its interval lies above 0. Not in the paper, whose RMs differ in backbone and data at
      once; without a 2 x 2 it is not a test (``contrast_missing`` says why).
    - ``moments`` and ``full_moments``: :func:`score_moments` on the shared vocabulary and
      :func:`vocabulary_moments` on each RM's whole vocabulary; "every RM positively skewed" holds
      when the lowest skew interval lies above 0.
    - ``asymmetry``: :func:`asymmetry_interval`; ``prompt_aware`` says whether any RM's gold rewards
      following the prompt's frame. Without that the framing row is not a test: an RM cannot learn how
      a frame should change a ranking from a gold that ignores it.
    - ``frequency``: :func:`frequency_slope_interval`, holds when above 0.
    """
    from dataclasses import replace

    from ...findings import decide, not_a_test

    rows = []
    null = float(results.get("agreement_null", AGREEMENT_NULL))
    paper_tau = f"τ {PAPER_TAU_RANGE[0]} to {PAPER_TAU_RANGE[1]} among ten general-preference RMs"
    claim = "reward models meant to measure the same thing disagree"
    same = results.get("same_gold")
    same = [same] if isinstance(same, dict) else list(same or [])
    if not same:
        rows.append(not_a_test(claim, paper_tau, "n/a", results.get("same_gold_missing")
                               or "no two reward models of this run were trained on the same gold"))
    else:
        worst = max(same, key=lambda p: p["high"])  # every pair must lie below: the highest interval decides
        below = sum(p["high"] < null for p in same)
        what = f"τ({worst['a']}, {worst['b']})" if len(same) == 1 else \
            f"{below} of {len(same)} pairs below; highest, τ({worst['a']}, {worst['b']}):"
        row = decide(claim, paper_tau, worst["tau"], worst["low"], worst["high"], null=null, unit="tokens",
                     n=min(int(p["n"]) for p in same), side="less", fmt="{:.2f}", what=what)
        if len(same) > 1:
            row = replace(row, rule=f"{row.rule}, for each of the {len(same)} same-gold pairs")
        if results.get("same_gold_missing"):
            row = replace(row, here=f"{row.here} ({results['same_gold_missing']})")
        rows.append(row)
    claim = "RMs on one gold agree more than RMs on one backbone with different golds"
    paper_contrast = "not separable: the paper's RMs differ in backbone and training data at once"
    contrast = results.get("contrast")
    if contrast is None:
        rows.append(not_a_test(claim, paper_contrast, "n/a", results.get("contrast_missing")
                               or "the reward models of this run are not a 2 × 2 of golds × backbones"))
    else:
        rows.append(decide(claim, paper_contrast, contrast["estimate"], contrast["low"], contrast["high"], null=0.0,
                           unit="tokens", n=int(contrast["n"]), fmt="{:+.2f}",
                           what=f"mean τ same gold {contrast['same_gold_tau']:.2f} − same backbone "
                                f"{contrast['same_backbone_tau']:.2f} ="))
    paper_skew = f"10 of 10 positive ({PAPER_SKEW_RANGE[0]:.2f} to {PAPER_SKEW_RANGE[1]:.2f})"
    for key, where in (("moments", "shared vocabulary"), ("full_moments", "each RM's whole vocabulary")):
        moments = results.get(key)
        claim = f"every RM's scores are positively skewed ({where})"
        if moments is None or len(moments) == 0:
            rows.append(not_a_test(claim, paper_skew, "n/a", f"no {where} moments in this run"))
            continue
        worst = moments["skew_low"].idxmin()
        n = int(moments.loc[worst, "n"]) if "n" in moments.columns else int(results.get("n_shared", 1))
        positive = int((moments["skew_low"] > 0).sum())
        rows.append(decide(claim, paper_skew, moments.loc[worst, "skew"], moments.loc[worst, "skew_low"],
                           moments.loc[worst, "skew_high"], null=0.0, unit="tokens", n=n, fmt="{:.2f}",
                           what=f"{positive} of {len(moments)} above 0; lowest, {worst}:"))
    claim = "finer discrimination where valence matches the prompt's frame"
    paper_asym = "matching − opposite |slope|: " + ", ".join(
        f"{p} {abs(v[0 if FRAME_MATCH[p] == 'positive' else 1]) - abs(v[1 if FRAME_MATCH[p] == 'positive' else 0]):+.2f}"
        for p, v in PAPER_VALENCE_SLOPES.items()) + " (raw units, Fig. 3C)"
    asym = results.get("asymmetry")
    if not results.get("prompt_aware", False):
        here = "n/a" if asym is None else f"{asym['estimate']:+.3f} [{asym['low']:+.3f}, {asym['high']:+.3f}]"
        rows.append(not_a_test(claim, paper_asym, here, "no reward model of this run was trained on a gold that "
                               "rewards following the prompt's frame, so none can learn how a frame should change "
                               "a ranking",
                               unit="AFINN words", n=0 if asym is None else int(asym["n"])))
    elif asym is None:
        rows.append(not_a_test(claim, paper_asym, "n/a", "too few AFINN words of both signs in these vocabularies"))
    else:
        rows.append(decide(claim, paper_asym, asym["estimate"], asym["low"], asym["high"], null=0.0,
                           unit="AFINN words", n=int(asym["n"]), fmt="{:+.3f}", what="mean difference"))
    claim = "frequent words score higher, valence held fixed"
    paper_freq = " / ".join(f"{v:+.2f}" for v in PAPER_FREQUENCY_SLOPES.values()) + " (best / greatest / worst, raw)"
    freq = results.get("frequency")
    if freq is None:
        rows.append(not_a_test(claim, paper_freq, "n/a", "too few AFINN words with a known frequency"))
    else:
        rows.append(decide(claim, paper_freq, freq["estimate"], freq["low"], freq["high"], null=0.0,
                           unit="AFINN words", n=int(freq["n"]), fmt="{:+.3f}", what="mean z-slope"))
    return rows
