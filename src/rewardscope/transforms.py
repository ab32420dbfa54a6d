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

from .rewards import RewardModel, check_pairs

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
    array([-0.6931, -0.    , -1000.    ])
    """
    r, r_ref = _finite("r", r), _finite("r_ref", r_ref)
    _check_reference(r, r_ref, "r", "r_ref")
    return _log_sigmoid(r - r_ref)


def reference_reward(base_rewards, quantile: float = 0.85, method: str = "empirical") -> np.ndarray:
    """r_ref(x) per prompt from the rewards of base-policy samples, shape [n_prompts, n_samples] -> [n_prompts].

    ``method="empirical"``: numpy's quantile (linear interpolation, its default). ``method="normal"``: a normal
    fitted per prompt, μ + Φ⁻¹(q)·σ with the sample standard deviation (ddof 1), as in the PAR re-implementation.
    """
    from scipy.stats import norm

    rewards = _finite("base_rewards", base_rewards)
    if rewards.ndim != 2 or rewards.shape[0] < 1 or rewards.shape[1] < 1:
        raise ValueError(f"base_rewards must be 2-D [n_prompts, n_samples] and non-empty, got shape {rewards.shape}")
    if isinstance(quantile, bool) or not isinstance(quantile, int | float | np.floating) or not 0 < quantile < 1:
        raise ValueError(f"quantile must be a number in (0, 1), got {quantile!r}")
    if method == "empirical":
        return np.quantile(rewards, quantile, axis=1)
    if method == "normal":
        if rewards.shape[1] < 2:
            raise ValueError("method='normal' needs at least 2 samples per prompt to estimate σ")
        return rewards.mean(axis=1) + norm.ppf(quantile) * rewards.std(axis=1, ddof=1)
    raise ValueError(f"method must be 'empirical' or 'normal', got {method!r}")


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


class AggregateReward(RewardModel):
    """Reward models combined into one reward, for the RL trainer or best-of-n.

    ``references`` maps each reward's name to {prompt: r_ref}; a prompt without a reference is an error, since
    the transform is meaningless without one. With one reward and ``method="transformed"`` this is the
    paper's single-reward utility log σ(r − r_ref(x)).
    """

    kind = "aggregate"

    def __init__(self, rewards: Mapping[str, RewardModel], references: Mapping[str, Mapping[str, float]] | None = None,
                 method: str = "transformed", weights: Mapping[str, float] | None = None, name: str | None = None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
        if not rewards or not all(isinstance(rm, RewardModel) for rm in rewards.values()):
            raise ValueError("rewards must be a non-empty dict of name -> RewardModel")
        if method == "transformed" and (references is None or set(references) < set(rewards)):
            raise ValueError(f"method='transformed' needs references for every reward: {sorted(rewards)}")
        super().__init__(name or f"{method}({'+'.join(rewards)})")
        self.rewards, self.method, self.weights = dict(rewards), method, weights
        self.references = {n: dict(references[n]) for n in rewards} if references is not None else None

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
        return aggregate(self.components(prompts, responses), references, self.method, self.weights)
