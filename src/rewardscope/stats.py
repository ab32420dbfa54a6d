"""Uncertainty: percentile bootstrap confidence intervals and effect sizes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_ci(values, statistic: Callable[[np.ndarray], float] = np.mean, n_resamples: int = 2000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high): the statistic and its percentile bootstrap interval over rows of ``values``.

    Examples
    --------
    >>> est, lo, hi = bootstrap_ci(np.arange(100.0))
    >>> lo < est < hi
    True
    """
    values = np.asarray(values)
    if len(values) < 2:
        raise ValueError(f"bootstrap needs at least 2 values, got {len(values)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(n_resamples)])
    alpha = (1 - level) / 2
    return float(statistic(values)), float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


def cohens_d(treated, control) -> float:
    """Standardised mean difference with the pooled standard deviation."""
    treated, control = np.asarray(treated, float), np.asarray(control, float)
    pooled = np.sqrt(((len(treated) - 1) * treated.var(ddof=1) + (len(control) - 1) * control.var(ddof=1))
                     / (len(treated) + len(control) - 2))
    return float((treated.mean() - control.mean()) / pooled) if pooled > 0 else float("nan")


def win_rate(treated, control) -> np.ndarray:
    """Per row (prompt), P(treated > control) + ½·P(tie) over all pairs of a treated and a control sample.

    ``treated`` [n_prompts, k1] and ``control`` [n_prompts, k2] hold scores of samples for the same prompts.
    """
    treated, control = np.asarray(treated, float), np.asarray(control, float)
    if treated.ndim != 2 or control.ndim != 2 or treated.shape[0] != control.shape[0] or 0 in treated.shape + control.shape:
        raise ValueError(f"treated and control must be 2-D [n_prompts, k] with the same prompts, got "
                         f"{treated.shape} and {control.shape}")
    diff = treated[:, :, None] - control[:, None, :]
    return (diff > 0).mean(axis=(1, 2)) + 0.5 * (diff == 0).mean(axis=(1, 2))
