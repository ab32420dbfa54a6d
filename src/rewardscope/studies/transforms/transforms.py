"""Transforming and combining rewards (Wang et al. 2024): u = log σ(r − r_ref(x)) and its sums.

If "good" means "better than a reference response" and the reward model is Bradley–Terry, then
p(good | x, y) = σ(r(x, y) − r_ref(x)), and the KL-regularised optimum of the utility
u = log σ(r − r_ref) samples the base policy conditioned on being good. Summing the transformed
rewards of several properties gives log Π p(good_i), a logical AND, where the raw sum lets one
property compensate for another. The reference r_ref(x) is a per-prompt quantile (85% in the paper)
of the rewards of base-policy samples.

No official code was released; everything here follows the paper's definitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ... import _checks
from ...rewards import RewardModel, check_pairs

REFUSAL = "I'm sorry, but I can't help with that."
METHODS = ("transformed", "raw")


def _finite(name: str, values) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numeric, got {type(values).__name__}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(array)))} non-finite values (NaN or inf)")
    return array


def _check_reference(r: np.ndarray, ref: np.ndarray, r_name: str, ref_name: str) -> None:
    """A reference is a scalar or has the rewards' dimensions, each axis as long or 1 ([n, 1] for [n, k]).

    Anything else would broadcast into a different shape ([3] against [3, 1] gives [3, 3]) or fail in numpy.
    """
    if ref.ndim and (ref.ndim != r.ndim or any(b not in (a, 1) for a, b in zip(r.shape, ref.shape))):
        raise ValueError(f"{ref_name} has shape {ref.shape} but {r_name} has shape {r.shape}; {ref_name} must be a "
                         f"scalar or have {r_name}'s shape (axes of length 1 allowed, e.g. [n, 1] for [n, k] rewards)")


def _log_sigmoid(d: np.ndarray):
    out = -np.logaddexp(0.0, -d)  # log σ(d) = −log(1 + e^{−d}), computed without forming e^{−d}
    return out if out.ndim else float(out)


def log_sigmoid_transform(r, r_ref):
    """log σ(r − r_ref), elementwise; exact for any |r − r_ref| (no overflow, no log 0).

    ``r_ref`` is a scalar or has ``r``'s shape, where axes of length 1 repeat (one reference per prompt:
    shape [n, 1] for rewards [n, k]); the result has ``r``'s shape.

    Examples
    --------
    >>> log_sigmoid_transform([0.0, 1000.0, -1000.0], 0.0).round(4)
    array([-6.931e-01, -0.000e+00, -1.000e+03])
    """
    r, r_ref = _finite("r", r), _finite("r_ref", r_ref)
    _check_reference(r, r_ref, "r", "r_ref")
    return _log_sigmoid(r - r_ref)


REFERENCE_METHODS = ("unbiased", "weibull", "linear", "normal")


def reference_reward(base_rewards, quantile: float = 0.85, method: str = "unbiased", seed: int = 0) -> np.ndarray:
    """r_ref(x) per prompt from the rewards of base-policy samples, shape [n_prompts, k] -> [n_prompts].

    What a reference must do: a fresh answer of the base policy beats it with probability 1 − q. For k samples
    with order statistics X₍₁₎ ≤ … ≤ X₍ₖ₎ of a continuous reward distribution F, F(X₍ⱼ₎) ~ Beta(j, k + 1 − j),
    so a fresh sample exceeds X₍ⱼ₎ with probability exactly 1 − j/(k + 1), whatever F is. Let h = (k + 1)·q.

    ``method="unbiased"`` (the default): X₍ₕ₎ when h is an integer; otherwise X₍⌊h⌋₎ or X₍⌊h⌋₊₁₎, the upper one
    with probability h − ⌊h⌋ (drawn per prompt from ``seed``). The expected exceedance is then
    1 − (⌊h⌋ + h − ⌊h⌋)/(k + 1) = 1 − q exactly, for any continuous F and any k with 1 ≤ h ≤ k, i.e.
    1/(k + 1) ≤ q ≤ k/(k + 1). Choose k with (k + 1)·q an integer (k = 19 for q = 0.5, 0.85 and 0.95) and nothing
    is drawn: the reference is a plain order statistic.

    ``method="weibull"``: numpy's Weibull plotting position, linear interpolation between X₍⌊h⌋₎ and X₍⌊h⌋₊₁₎.
    Equal to "unbiased" when h is an integer; otherwise exact only for a uniform F. Value-space interpolation in a
    thinning upper tail sets the reference too high: at k = 8, q = 0.85 a fresh sample exceeds it 13.9 % of the
    time for a normal F and 13.5 % for an exponential one (simulated), instead of 15 %.

    ``method="linear"``: numpy's default (h = (k − 1)·q + 1), the old behaviour; it is exceeded with probability
    1 − ((k − 1)q + 1)/(k + 1), 22.8 % at k = 8, q = 0.85, whatever F is (25 % of its own samples).

    ``method="normal"``: a normal fitted per prompt, μ + Φ⁻¹(q)·σ with the sample standard deviation (ddof 1),
    as in the PAR re-implementation; its exceedance depends on F.
    """
    from scipy.stats import norm

    rewards = _finite("base_rewards", base_rewards)
    if rewards.ndim != 2 or rewards.shape[0] < 1 or rewards.shape[1] < 1:
        raise ValueError(f"base_rewards must be 2-D [n_prompts, n_samples] and non-empty, got shape {rewards.shape}")
    if isinstance(quantile, bool) or not isinstance(quantile, int | float | np.floating) or not 0 < quantile < 1:
        raise ValueError(f"quantile must be a number in (0, 1), got {quantile!r}")
    k = rewards.shape[1]
    if method == "unbiased":
        h = (k + 1) * float(quantile)
        j = int(np.floor(h + 1e-9))  # 1-based; (k + 1)·q computed in floating point: 20 · 0.85 = 17.000000000000004
        frac = h - j if h - j > 1e-9 else 0.0
        if j < 1 or j + (frac > 0) > k:
            need = int(np.ceil(max(quantile, 1 - quantile) / (1 - max(quantile, 1 - quantile)) - 1e-9))
            raise ValueError(f"method='unbiased' needs 1/(k + 1) <= quantile <= k/(k + 1); quantile {quantile} with "
                             f"k = {k} samples per prompt is outside it: use at least {need} samples per prompt")
        ordered = np.sort(rewards, axis=1)
        upper = np.random.default_rng(seed).random(len(rewards)) < frac if frac else np.zeros(len(rewards), bool)
        return ordered[np.arange(len(rewards)), j - 1 + upper.astype(int)]
    if method in ("weibull", "linear"):
        return np.quantile(rewards, quantile, axis=1, method=method)
    if method == "normal":
        if rewards.shape[1] < 2:
            raise ValueError("method='normal' needs at least 2 samples per prompt to estimate σ")
        return rewards.mean(axis=1) + norm.ppf(quantile) * rewards.std(axis=1, ddof=1)
    raise ValueError(f"method must be one of {', '.join(map(repr, REFERENCE_METHODS))}, got {method!r}")


def exceedance(reference, samples) -> np.ndarray:
    """Per prompt, the share of ``samples`` [n_prompts, m] above ``reference`` [n_prompts] (ties count ½).

    Measure it on base samples that did not build the reference: on its own samples a reference is biased.
    """
    reference, samples = _finite("reference", reference), _finite("samples", samples)
    if samples.ndim != 2 or reference.shape != samples.shape[:1] or 0 in samples.shape:
        raise ValueError(f"reference must be [n_prompts] and samples [n_prompts, m], got {reference.shape} and "
                         f"{samples.shape}")
    above, tied = samples > reference[:, None], samples == reference[:, None]
    return above.mean(axis=1) + 0.5 * tied.mean(axis=1)


def refusal_reference(rm: RewardModel, prompts: Sequence[str], refusal: str = REFUSAL) -> np.ndarray:
    """The paper's alternative reference: the reward of a fixed refusal to each prompt."""
    prompts, _ = check_pairs(prompts, [refusal] * len(list(prompts)))
    if not refusal.strip():
        raise ValueError("refusal must be a non-empty response text")
    return rm.score(prompts, [refusal] * len(prompts))


def aggregate(rewards: Mapping[str, np.ndarray], references: Mapping[str, np.ndarray] | None = None,
              method: str = "transformed", weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Combine several rewards of the same responses into one utility.

    ``"transformed"``: Σ_i log σ(r_i − ref_i), the log-probability that a response is good on every property
    (``references`` needed, one per reward: a scalar or the reward's shape, axes of length 1 allowed, as in
    :func:`log_sigmoid_transform`). ``"raw"``: Σ_i w_i r_i (``weights`` default to 1; references are ignored).
    All rewards have one shape, with at least one value.

    Examples
    --------
    >>> r = {"helpful": np.array([2.0, 0.0]), "harmless": np.array([-1.0, 0.5])}
    >>> aggregate(r, method="raw", weights={"helpful": 1.0, "harmless": 2.0})
    array([0., 1.])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if not isinstance(rewards, Mapping):
        raise TypeError(f"rewards must be a dict of name -> array of rewards, got {type(rewards).__name__}")
    if not rewards:
        raise ValueError("rewards must be a non-empty dict of name -> array of rewards")
    for label, value in (("references", references), ("weights", weights)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{label} must be a dict keyed by reward name or None, got {type(value).__name__}")
    arrays = {name: _finite(f"rewards[{name!r}]", values) for name, values in rewards.items()}
    (first, a0), *rest = arrays.items()
    for name, a in rest:
        if a.shape != a0.shape:
            raise ValueError(f"rewards[{first!r}] has shape {a0.shape} but rewards[{name!r}] has shape {a.shape}; "
                             "rewards must all have the same shape")
    if a0.size == 0:
        raise ValueError(f"rewards are empty (shape {a0.shape}); give at least one reward value")
    if method == "raw":
        weights = {} if weights is None else dict(weights)
        if unknown := sorted(set(weights) - set(arrays)):
            raise ValueError(f"weights names {unknown} that are not rewards; rewards: {sorted(arrays)}")
        w = {name: _finite(f"weights[{name!r}]", weights.get(name, 1.0)) for name in arrays}
        if shaped := sorted(name for name, value in w.items() if value.ndim):
            raise ValueError(f"weights[{shaped[0]!r}] must be one number, got shape {w[shaped[0]].shape}")
        w = {name: float(value) for name, value in w.items()}
        return sum(w[name] * a for name, a in arrays.items())
    if weights is not None:
        raise ValueError("weights apply to method='raw' only; the transformed sum is a product of probabilities")
    missing = sorted(arrays) if references is None else sorted(set(arrays) - set(references))
    if missing:
        raise ValueError(f"method='transformed' needs a reference for every reward; missing {missing}")
    refs = {name: _finite(f"references[{name!r}]", references[name]) for name in arrays}
    for name, a in arrays.items():
        _check_reference(a, refs[name], f"rewards[{name!r}]", f"references[{name!r}]")
    return sum(_log_sigmoid(a - refs[name]) for name, a in arrays.items())


def good_on_all(rewards: Mapping[str, np.ndarray], references: Mapping[str, np.ndarray]) -> np.ndarray:
    """Whether each response beats the reference on every property (the event the transformed sum targets)."""
    if not rewards or not set(rewards) <= set(references):
        raise ValueError(f"need a reference for every reward; rewards {sorted(rewards)}, references {sorted(references)}")
    good = []
    for n, r in rewards.items():
        r, ref = _finite(f"rewards[{n!r}]", r), _finite(f"references[{n!r}]", references[n])
        _check_reference(r, ref, f"rewards[{n!r}]", f"references[{n!r}]")
        good.append(r > ref)
    return np.logical_and.reduce(good)


def good(scores: Mapping[str, np.ndarray], references: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per property, whether each response beats its prompt's reference: scores [n_prompts, n], references [n_prompts]."""
    if not scores or not set(scores) <= set(references):
        raise ValueError(f"need a reference for every score; scores {sorted(scores)}, references {sorted(references)}")
    out = {}
    for name, values in scores.items():
        values, ref = _finite(f"scores[{name!r}]", values), _finite(f"references[{name!r}]", references[name])
        if values.ndim != 2 or ref.shape != values.shape[:1]:
            raise ValueError(f"scores[{name!r}] must be [n_prompts, n] and references[{name!r}] [n_prompts], got "
                             f"{values.shape} and {ref.shape}")
        out[name] = values > ref[:, None]
    return out


def win_on_both(scores: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per response, P(it beats a random base answer to its prompt on every property), judged by ``scores``.

    ``scores[name]`` [n_prompts, n] scores the responses judged and ``base[name]`` [n_prompts, m] the base
    policy's answers to the same prompts, by the same judge (the gold, never the reward model a selector
    optimised). A response wins on a property against one base answer when it scores higher (a tie counts ½);
    it wins on all when it wins on each against the *same* base answer. Returns [n_prompts, n]: the average over
    the m base answers, so ``expected_best_of_n(utility, win_on_both(...), n)`` is the best-of-n win rate.
    """
    if not scores or set(scores) != set(base):
        raise ValueError(f"scores and base must name the same properties, got {sorted(scores)} and {sorted(base)}")
    total = None
    for name in scores:
        s, b = _finite(f"scores[{name!r}]", scores[name]), _finite(f"base[{name!r}]", base[name])
        if s.ndim != 2 or b.ndim != 2 or s.shape[0] != b.shape[0] or 0 in s.shape + b.shape:
            raise ValueError(f"scores[{name!r}] and base[{name!r}] must be [n_prompts, n] and [n_prompts, m], got "
                             f"{s.shape} and {b.shape}")
        diff = s[:, :, None] - b[:, None, :]
        win = (diff > 0) + 0.5 * (diff == 0)
        total = win if total is None else total * win
        if total.shape != win.shape:
            raise ValueError("every property must score the same responses and the same base answers")
    return total.mean(axis=2)


def within_prompt_correlation(a, b, n_resamples: int = 1000, seed: int = 0,
                              level: float = 0.95) -> tuple[float, float, float]:
    """(r, low, high): the within-prompt Pearson correlation of two scores of the same responses, bootstrapping prompts.

    ``a`` and ``b`` are [n_prompts, k] scores (e.g. two golds) of the same k answers to each prompt. Each prompt's
    scores are centred on their own mean, and r is Pearson's correlation of the centred values pooled over prompts,
    Σ ãb̃ / √(Σ ã² · Σ b̃²): how two properties trade off *among the answers to one prompt*, which is what a
    best-of-n or a per-prompt reference sees, with the differences between prompts removed. Two properties
    conflict within a prompt when r < 0. The interval resamples prompts with replacement (the unit that varies);
    resamples whose drawn prompts have no spread on a score are skipped. A score with no spread within any
    prompt (every answer to a prompt scored alike) has no correlation: an error.

    Examples
    --------
    >>> a = np.array([[1.0, 2.0, 3.0], [10.0, 11.0, 12.0]])
    >>> within_prompt_correlation(a, -a, n_resamples=10)[0]
    -1.0
    """
    a, b = _finite("a", a), _finite("b", b)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"a and b must both be [n_prompts, k] with at least 2 prompts and 2 answers each, got "
                         f"{a.shape} and {b.shape}")
    _checks.count("n_resamples", n_resamples)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    ac, bc = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    sums = np.stack([(ac * bc).sum(axis=1), (ac * ac).sum(axis=1), (bc * bc).sum(axis=1)], axis=1)  # per prompt
    sums[np.abs(sums) < 1e-12 * max(1.0, float(np.abs(sums).max()))] = 0.0  # spread lost to rounding is no spread
    for name, column in (("a", 1), ("b", 2)):
        if not sums[:, column].any():
            raise ValueError(f"{name} does not vary within any prompt: it has no within-prompt correlation")

    def r_of(total):
        return float(np.clip(total[0] / np.sqrt(total[1] * total[2]), -1.0, 1.0))

    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        counts = np.bincount(rng.integers(0, len(sums), len(sums)), minlength=len(sums)).astype(float)
        total = counts @ sums
        if total[1] > 0 and total[2] > 0:
            draws.append(r_of(total))
    if not draws:
        raise ValueError("no bootstrap resample had spread on both scores; the interval is not identified")
    alpha = (1 - level) / 2
    return r_of(sums.sum(axis=0)), float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


def calibrate_temperature(chosen, rejected, bounds: tuple[float, float] = (1e-3, 1e3)) -> float:
    """The Bradley–Terry temperature T of a reward model from held-out preference pairs (one-parameter logistic fit).

    Maximises Σ log σ((r_chosen − r_rejected)/T) over T, so that σ((r_a − r_b)/T) is the probability that a
    is preferred: the calibration the transform log σ(r − r_ref) assumes. Divide the RM's scores by T before
    transforming. ``chosen`` and ``rejected`` are the RM's scores of each pair's preferred and dispreferred
    response (the labels may be noisy: that is what the fit measures). Refuses pairs the RM separates
    perfectly (T → 0) or that carry no signal (T → ∞), instead of returning a bound.
    """
    from scipy.optimize import minimize_scalar

    chosen, rejected = _finite("chosen", chosen), _finite("rejected", rejected)
    if chosen.ndim != 1 or chosen.shape != rejected.shape or len(chosen) < 2:
        raise ValueError(f"chosen and rejected must be 1-D with one score per pair (at least 2 pairs), got "
                         f"{chosen.shape} and {rejected.shape}")
    d = chosen - rejected
    if not np.any(d < 0):
        raise ValueError("the reward model orders every pair correctly: its temperature is not identified (T -> 0)")
    if not np.any(d > 0):
        raise ValueError("the reward model orders no pair correctly: its temperature is not identified")
    lo, hi = bounds
    fit = minimize_scalar(lambda log_a: -float(np.sum(_log_sigmoid(np.exp(log_a) * d))),
                          bounds=(-np.log(hi), -np.log(lo)), method="bounded", options={"xatol": 1e-10})
    temperature = float(np.exp(-fit.x))
    if not lo * 1.001 < temperature < hi / 1.001:
        raise ValueError(f"the fitted temperature {temperature:.3g} is at a bound of {bounds}: the pairs do not identify it "
                         "(is the RM's accuracy on them at or below chance?)")
    return temperature


AND_JUDGES = ("gold: wins on both vs a base answer", "gold: above both references", "RM: above both references")


def and_selectors(rm_scores: Mapping[str, np.ndarray], rm_references: Mapping[str, np.ndarray],
                  raw_weights: Sequence[float]) -> dict[str, np.ndarray]:
    """The utilities that choose among the samples: "transformed sum" and "raw, w = …" (first + w · second).

    ``rm_scores`` maps the two properties (in order) to [n_prompts, N] reward-model scores, ``rm_references`` to
    [n_prompts] references in the same units.
    """
    if len(rm_scores) != 2:
        raise ValueError(f"the AND compares two properties, got {sorted(rm_scores)}")
    first, second = rm_scores
    selectors = {"transformed sum": aggregate(rm_scores, {k: np.asarray(rm_references[k])[:, None] for k in rm_scores})}
    for w in raw_weights:
        selectors[f"raw, w = {w:g}"] = aggregate(rm_scores, method="raw", weights={first: 1.0, second: float(w)})
    return selectors


def and_table(rm_scores: Mapping[str, np.ndarray], rm_references: Mapping[str, np.ndarray],
              gold_scores: Mapping[str, np.ndarray], gold_base: Mapping[str, np.ndarray],
              gold_references: Mapping[str, np.ndarray], raw_weights: Sequence[float], ns: Sequence[int],
              n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Best-of-n with two rewards: how often the chosen answer is good on both properties, per selector and n.

    Three judges, each a column "judge" in the result: the golds' win on both properties against a random base
    answer (:func:`win_on_both`, the decisive one); the golds above both of their own references; and the
    reward models above both of theirs, which is circular (the transformed sum targets exactly those references)
    and shown only for contrast. Each row: method, n, KL (nats), judge, share, low, high (95 % bootstrap over
    prompts). ``gold_base`` holds the golds' scores of base answers that are not the N samples.
    """
    from ...stats import bootstrap_ci
    from .bon import bon_kl, expected_best_of_n

    judged = {AND_JUDGES[0]: win_on_both(gold_scores, gold_base),
              AND_JUDGES[1]: np.logical_and.reduce(list(good(gold_scores, gold_references).values())).astype(float),
              AND_JUDGES[2]: np.logical_and.reduce(list(good(rm_scores, rm_references).values())).astype(float)}
    rows = []
    for method, utility in and_selectors(rm_scores, rm_references, raw_weights).items():
        for n in ns:
            for judge, value in judged.items():
                est, lo, hi = bootstrap_ci(expected_best_of_n(utility, value, int(n)), n_resamples=n_resamples, seed=seed)
                rows.append({"method": method, "n": int(n), "KL (nats)": bon_kl(int(n)), "judge": judge, "share": est,
                             "low": lo, "high": hi})
    return pd.DataFrame(rows)


class AggregateReward(RewardModel):
    """Reward models combined into one reward, for the RL trainer or best-of-n.

    ``references`` maps each reward's name to {prompt: r_ref}; a prompt without a reference is an error, since
    the transform is meaningless without one. With one reward and ``method="transformed"`` this is the
    paper's single-reward utility log σ(r − r_ref(x)). ``temperatures`` (name -> T, from
    :func:`calibrate_temperature`) divides each reward model's score by T before aggregating, so references
    must then be in those calibrated units.
    """

    kind = "aggregate"

    def __init__(self, rewards: Mapping[str, RewardModel], references: Mapping[str, Mapping[str, float]] | None = None,
                 method: str = "transformed", weights: Mapping[str, float] | None = None, name: str | None = None,
                 temperatures: Mapping[str, float] | None = None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
        if not rewards or not all(isinstance(rm, RewardModel) for rm in rewards.values()):
            raise ValueError("rewards must be a non-empty dict of name -> RewardModel")
        if method == "transformed" and (references is None or set(references) < set(rewards)):
            raise ValueError(f"method='transformed' needs references for every reward: {sorted(rewards)}")
        super().__init__(name or f"{method}({'+'.join(rewards)})")
        self.rewards, self.method, self.weights = dict(rewards), method, weights
        self.references = {n: dict(references[n]) for n in rewards} if references is not None else None
        temperatures = {} if temperatures is None else dict(temperatures)
        if unknown := sorted(set(temperatures) - set(rewards)):
            raise ValueError(f"temperatures names {unknown} that are not rewards; rewards: {sorted(rewards)}")
        self.temperatures = {n: float(temperatures.get(n, 1.0)) for n in rewards}
        if bad := [n for n, t in self.temperatures.items() if not (np.isfinite(t) and t > 0)]:
            raise ValueError(f"temperatures must be finite and > 0, got {bad[0]!r}: {self.temperatures[bad[0]]}")

    def reference_of(self, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        if self.references is None:
            raise ValueError("this reward has no references (method='raw' without references)")
        missing = [p for p in dict.fromkeys(prompts) if any(p not in refs for refs in self.references.values())]
        if missing:
            raise ValueError(f"{len(missing)} prompts have no reference reward, e.g. {missing[0][:60]!r}")
        return {n: np.array([refs[p] for p in prompts]) for n, refs in self.references.items()}

    def components(self, prompts: Sequence[str], responses: Sequence[str]) -> dict[str, np.ndarray]:
        """Each reward model's raw score of the pairs."""
        prompts, responses = check_pairs(prompts, responses)
        return {n: rm.score(prompts, responses) for n, rm in self.rewards.items()}

    def _score(self, prompts, responses, batch_size, progress):
        references = self.reference_of(prompts) if self.method == "transformed" else None
        scores = {n: r / self.temperatures[n] for n, r in self.components(prompts, responses).items()}
        return aggregate(scores, references, self.method, self.weights)


# --------------------------------------------------------------------------------------------------
# The chapter's claims table: one rule (findings.decide), the paper's claims as named constants

PAPER_SAME_PICK = "implied: log σ is increasing, so one reward's best-of-n pick is unchanged"
PAPER_MATCHED_KL = "higher win rate against the SFT policy at matched KL (figures; numbers not obtained)"
PAPER_UNDERFITTING = "the transform lifts poorly served prompts (qualitative)"
PAPER_AND = "the transformed sum beats the raw sum on 'helpful and harmless' (qualitative)"
PAPER_CONFLICT = "helpful and harmless pull in opposite directions (the premise of the AND; not measured)"
PRECONDITION = "precondition:"  # the claim of a row that checks the setting, not the paper: never counted as a claim
NULL_DIFFERENCE = 0.0  # every comparison here is transformed − raw; the claim is that it is above 0
MIN_SEEDS = 3  # an interval over RL seeds needs at least this many


def seed_interval(differences, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the t interval of per-seed differences (RL arms paired by seed)."""
    from scipy.stats import t

    d = _finite("differences", differences).ravel()
    if len(d) < 2:
        raise ValueError(f"an interval over seeds needs at least 2 seeds, got {len(d)}")
    half = t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


FINDINGS_KEYS = ("same_pick", "n_prompts", "target_kl", "n_best_of", "conflict", "matched_kl", "hardest_quarter",
                 "and_bon", "and_tilt", "rl_win", "rl_and")


def paper_claims(rows: Sequence) -> list:
    """The rows of :func:`findings` that test the paper, without the precondition rows (count these)."""
    return [r for r in rows if not r.claim.startswith(PRECONDITION)]


def findings(results: Mapping) -> list:
    """Chapter 5's claims table, every tested row decided by :func:`rewardscope.findings.decide`.

    ``results`` holds: ``same_pick`` (share of prompts where the raw and the transformed single reward pick the
    same best-of-n answer), ``n_prompts`` (held-out prompts), ``target_kl`` (nats), ``n_best_of`` (N),
    ``conflict`` ((r, low, high) from :func:`within_prompt_correlation` of the two properties' golds over base
    answers: the precondition row, which holds when the interval lies below 0; it checks the setting, not the
    paper, so :func:`paper_claims` leaves it out of the count), and
    (estimate, low, high) over prompts of transformed − raw for ``matched_kl`` (gold win rate of the exact
    KL-regularised optimum at ``target_kl``), ``hardest_quarter`` (proxy gain on the hardest quarter of
    prompts, same tilt and KL), ``and_bon`` (gold-judged win on both properties against a random base answer,
    best-of-N, against the best raw weight) and ``and_tilt`` (the same at ``target_kl``, against the raw sum);
    ``rl_win`` and ``rl_and``: per-seed differences of the RL arms (gold win rate; win on both). Rows that
    cannot fail are :func:`~rewardscope.findings.not_a_test`, and so are the RL rows with fewer than
    :data:`MIN_SEEDS` seeds.
    """
    from ...findings import decide, not_a_test

    if not isinstance(results, Mapping) or (missing := [k for k in FINDINGS_KEYS if k not in results]):
        raise ValueError(f"results must be a dict with keys {', '.join(FINDINGS_KEYS)}; missing "
                         f"{missing if isinstance(results, Mapping) else list(FINDINGS_KEYS)}")
    n, kl, big_n = int(results["n_prompts"]), float(results["target_kl"]), int(results["n_best_of"])
    est, low, high = (float(v) for v in results["conflict"])
    rows = [decide(f"{PRECONDITION} the two properties conflict within a prompt (golds, base answers)", PAPER_CONFLICT,
                   est, low, high, null=0.0, side="less", unit="prompts", n=n, what="within-prompt r"),
            not_a_test("one reward: the transform cannot change a best-of-n pick", PAPER_SAME_PICK,
                       f"same pick on {results['same_pick']:.0%} of prompts",
                       "log σ(r − r_ref(x)) is increasing in r within a prompt", unit="prompts", n=n)]
    for key, claim, paper, what in (
            ("matched_kl", f"better gold win rate at matched KL ({kl:g} nats, exact KL-regularised optimum)",
             PAPER_MATCHED_KL, "Δ win rate"),
            ("hardest_quarter", f"bigger proxy gain on the hardest quarter of prompts (same optimum, {kl:g} nats)",
             PAPER_UNDERFITTING, "Δ gain"),
            ("and_bon", f"transformed sum wins on both properties more (gold-judged, best-of-{big_n}, vs best raw weight)",
             PAPER_AND, "Δ win on both"),
            ("and_tilt", f"... and at matched KL ({kl:g} nats, exact optimum, vs the raw sum)", PAPER_AND,
             "Δ win on both")):
        est, low, high = (float(v) for v in results[key])
        rows.append(decide(claim, paper, est, low, high, null=NULL_DIFFERENCE, unit="prompts", n=n, what=what))
    for key, claim, paper in (("rl_win", "RL (second look): better gold win rate, same β", PAPER_MATCHED_KL),
                              ("rl_and", "RL (second look): transformed sum wins on both more", PAPER_AND)):
        d = _finite(key, results[key]).ravel()
        if len(d) < MIN_SEEDS:
            rows.append(not_a_test(claim, paper, f"Δ {d.mean():+.3f} over {len(d)} seed(s)",
                                   f"{len(d)} seed(s): no interval over seeds (needs {MIN_SEEDS})", unit="seeds",
                                   n=len(d)))
        else:
            est, low, high = seed_interval(d)
            rows.append(decide(claim, paper, est, low, high, null=NULL_DIFFERENCE, unit="seeds", n=len(d), what="Δ"))
    return rows
