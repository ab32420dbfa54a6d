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
