"""Best-of-n sampling: keep the highest-utility of n samples per prompt, at an analytic KL cost.

Drawing n samples from π₀ and keeping the best under a utility moves the policy by
KL(π_bon ‖ π₀) = log n − (n − 1)/n (for continuous utilities without ties), which lets best-of-n
trace a reward-vs-KL curve with no training. From N ≥ n samples per prompt, :func:`expected_best_of_n`
gives the exact expectation over all n-subsets, a smooth curve instead of one noisy draw per n.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln


def bon_kl(n) -> np.ndarray | float:
    """KL(π_bon ‖ π₀) = log n − (n − 1)/n in nats, for n ≥ 1."""
    n_arr = np.asarray(n, dtype=np.float64)
    if np.any(n_arr < 1) or np.any(n_arr != np.round(n_arr)):
        raise ValueError(f"n must be integers >= 1, got {n!r}")
    out = np.log(n_arr) - (n_arr - 1) / n_arr
    return out if out.ndim else float(out)


def _check(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be 2-D [n_prompts, n_samples] and non-empty, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite values")
    return array


def best_of_n(utility) -> np.ndarray:
    """Per prompt, the index of the sample with the highest utility ([n_prompts, n] -> [n_prompts]); ties go to the first."""
    return np.argmax(_check("utility", utility), axis=1)


def expected_best_of_n(utility, value, n: int) -> np.ndarray:
    """Per prompt, E[value of the utility-best of n samples drawn without replacement from the N given].

    Sorting the N samples by utility, the i-th smallest (1-based) is the best of a random n-subset with
    probability C(i−1, n−1)/C(N, n); the expectation weights the values by it. Ties go to the earlier sample, as in
    :func:`best_of_n`.
    """
    utility, value = _check("utility", utility), _check("value", value)
    if utility.shape != value.shape:
        raise ValueError(f"utility {utility.shape} and value {value.shape} must have the same shape")
    total = utility.shape[1]
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= total:
        raise ValueError(f"n must be an int in [1, {total}] (the samples per prompt), got {n!r}")
    order = np.argsort(-utility, axis=1, kind="stable")[:, ::-1]  # ascending; of tied samples the first ranks highest
    ranked = np.take_along_axis(value, order, axis=1)
    i = np.arange(1, total + 1)
    # Hand-written: no library gives the order-statistic weights; log-binomials keep them exact for large N.
    log_w = np.where(i >= n, gammaln(np.maximum(i, n)) - gammaln(n) - gammaln(np.maximum(i - n + 1, 1)), -np.inf)
    log_w -= gammaln(total + 1) - gammaln(n + 1) - gammaln(total - n + 1)
    return ranked @ np.exp(log_w)


def tilt_betas(utility, n: int = 61, span: float = 1e3) -> np.ndarray:
    """A log-spaced grid of β from ``span``·s down to s/``span``, s the mean within-prompt sd of the utility.

    Relative to the utility's own spread, so a raw reward and a transformed one (different units) both run
    from nearly uniform weights (KL ≈ 0) to nearly the argmax (KL ≈ log N).
    """
    utility = _check("utility", utility)
    spread = float(np.mean(utility.std(axis=1))) or 1.0
    return spread * np.geomspace(span, 1.0 / span, n)


def exact_tilt(utility, values, betas) -> dict[str, np.ndarray]:
    """The KL-regularised optimum over each prompt's N base samples, for each β: the paper's target policy.

    Per prompt x, max_π E_π[u] − β·KL(π ‖ π₀) over distributions on its N samples of π₀ (uniform weights 1/N)
    is w_i ∝ exp(u_i/β); its exact KL from the uniform is Σ w_i log(N w_i), between 0 (β → ∞) and log N
    (β → 0, the argmax). ``values`` maps a name to [n_prompts, N] values of the same samples (e.g. the gold's win
    rate against base answers); the result has "beta" [B], "kl" [B, n_prompts] and each name [B, n_prompts],
    the w-weighted mean value per prompt.
    """
    from scipy.special import logsumexp

    utility = _check("utility", utility)
    values = {name: _check(f"values[{name!r}]", v) for name, v in dict(values).items()}
    if bad := [name for name, v in values.items() if v.shape != utility.shape]:
        raise ValueError(f"values[{bad[0]!r}] has shape {values[bad[0]].shape} but utility has {utility.shape}")
    if reserved := sorted({"beta", "kl"} & set(values)):
        raise ValueError(f"values may not be named {reserved}")
    betas = np.asarray(betas, dtype=np.float64).ravel()
    if betas.size == 0 or not np.all(np.isfinite(betas)) or np.any(betas <= 0):
        raise ValueError("betas must be a non-empty list of finite numbers > 0")
    total = utility.shape[1]
    out = {"beta": betas, "kl": np.empty((len(betas), len(utility)))}
    out.update({name: np.empty((len(betas), len(utility))) for name in values})
    for b, beta in enumerate(betas):
        z = utility / beta
        log_w = z - logsumexp(z, axis=1, keepdims=True)
        w = np.exp(log_w)
        out["kl"][b] = np.sum(w * (log_w + np.log(total)), axis=1).clip(min=0.0)
        for name, v in values.items():
            out[name][b] = np.sum(w * v, axis=1)
    return out


def _at_kl(mean_kl: np.ndarray, mean_value: np.ndarray, target: float) -> float:
    order = np.argsort(mean_kl, kind="stable")
    x, y = mean_kl[order], mean_value[order]
    if not x[0] <= target <= x[-1]:
        return float("nan")
    return float(np.interp(target, x, y))


def value_at_kl(kl, value, target: float, subset=None) -> float:
    """The mean value of a tilt curve where its mean KL over prompts equals ``target`` (linear interpolation).

    ``kl`` and ``value`` are [B, n_prompts] from :func:`exact_tilt`. The KL is the policy's: averaged over every
    prompt; ``subset`` (a boolean mask over prompts) restricts only the value's average, e.g. to the hardest
    prompts. NaN when the curve does not reach ``target``.
    """
    kl, value = np.asarray(kl, float), np.asarray(value, float)
    mask = np.ones(kl.shape[1], bool) if subset is None else np.asarray(subset, bool)
    return _at_kl(kl.mean(axis=1), value[:, mask].mean(axis=1), float(target))


def compare_at_kl(kl_a, value_a, kl_b, value_b, target: float, subset=None, n_resamples: int = 1000,
                  seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, low, high) of value_a − value_b at equal mean KL ``target``, bootstrapping prompts.

    Both arms are tilts of the same prompts' samples ([B, n_prompts] arrays from :func:`exact_tilt`); each
    resample draws prompts with replacement, recomputes both curves (KL over all drawn prompts, value over
    the drawn prompts in ``subset``) and interpolates at ``target``. Compares policies at matched KL, not
    gain per nat (which favours whichever arm moves less).
    """
    arrays = [np.asarray(a, float) for a in (kl_a, value_a, kl_b, value_b)]
    n_prompts = arrays[0].shape[1]
    if any(a.ndim != 2 or a.shape[1] != n_prompts for a in arrays) or n_prompts < 2:
        raise ValueError("kl and value arrays must be [B, n_prompts] over the same (at least 2) prompts")
    mask = np.ones(n_prompts, bool) if subset is None else np.asarray(subset, bool)
    if mask.shape != (n_prompts,) or not mask.any():
        raise ValueError(f"subset must be a boolean mask over the {n_prompts} prompts selecting at least one")
    estimate = value_at_kl(arrays[0], arrays[1], target, mask) - value_at_kl(arrays[2], arrays[3], target, mask)
    if np.isnan(estimate):
        raise ValueError(f"target KL {target} is outside the range of one of the curves; pick a smaller one")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        counts = np.bincount(rng.integers(0, n_prompts, n_prompts), minlength=n_prompts).astype(float)
        if not (counts * mask).any():
            continue
        curves = []
        for kl, value in ((arrays[0], arrays[1]), (arrays[2], arrays[3])):
            mean_kl = kl @ counts / counts.sum()
            mean_value = value @ (counts * mask) / (counts * mask).sum()
            curves.append(_at_kl(mean_kl, mean_value, target))
        draws.append(curves[0] - curves[1])
    draws = np.asarray(draws)
    draws = draws[~np.isnan(draws)]
    alpha = (1 - level) / 2
    return float(estimate), float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))
