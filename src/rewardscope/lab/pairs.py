"""Preference pairs: sample k responses per prompt, label them with a gold reward, pair them up.

A *sample pool* holds k sampled responses for each prompt. A gold reward scores every response;
two responses to the same prompt whose gold scores differ by at least ``margin`` form a pair
(chosen = higher gold score). Pairs are split into train / validation / test *by prompt*, so no
prompt of the test set was seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from .. import _checks

SPLITS = ("train", "validation", "test")


def sample_pool(policy, prompts: Sequence[str], k: int = 4, *, max_new_tokens: int = 32, temperature: float = 1.0,
                seed: int = 0, batch_size: int = 64) -> pd.DataFrame:
    """k sampled responses per prompt: columns prompt_id, prompt, sample, response.

    ``policy`` is a :class:`rewardscope.policy.Policy`. Each prompt is repeated k times and all are
    sampled in one seeded pass, so the pool depends only on (policy, prompts, k, settings, seed).
    """
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty: a sample pool needs at least one prompt")
    _checks.count("k", k, 2, why="pairs need two responses per prompt")
    repeated = [p for p in prompts for _ in range(k)]
    responses = policy.generate(repeated, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                                batch_size=batch_size)
    return pd.DataFrame({
        "prompt_id": np.repeat(np.arange(len(prompts)), k),
        "prompt": repeated,
        "sample": np.tile(np.arange(k), len(prompts)),
        "response": responses,
    })


def label_pool(pool: pd.DataFrame, rewards: dict[str, object], batch_size: int | None = None) -> pd.DataFrame:
    """A copy of ``pool`` with one column ``gold_<name>`` per reward model in ``rewards``."""
    if pool.empty:
        raise ValueError("pool is empty")
    labelled = pool.copy()
    for name, rm in rewards.items():
        labelled[f"gold_{name}"] = rm.score(pool["prompt"].tolist(), pool["response"].tolist(), batch_size=batch_size)
    return labelled


def split_prompts(prompt_ids: Sequence[int], fractions: tuple[float, float] = (0.1, 0.1), seed: int = 0) -> dict[int, str]:
    """Assign each distinct prompt id to train / validation / test with the given (val, test) fractions."""
    val, test = fractions
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"validation and test fractions must be in [0, 1) and sum below 1, got {fractions}")
    ids = np.unique(np.asarray(prompt_ids))
    ids = ids[np.random.default_rng(seed).permutation(len(ids))]
    n_val, n_test = round(val * len(ids)), round(test * len(ids))
    return {int(i): ("validation" if j < n_val else "test" if j < n_val + n_test else "train") for j, i in enumerate(ids)}


def bt_temperature(gaps: np.ndarray, label_noise: float) -> float:
    """The Bradley–Terry temperature T at which labels drawn with P(higher gold preferred) = σ(gap / T)
    flip ``label_noise`` of the pairs with these gold ``gaps`` on average (mean σ(−|gap| / T) = label_noise)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    gaps = np.abs(np.asarray(gaps, dtype=float))
    if not 0 < label_noise < 0.5:
        raise ValueError(f"label_noise must be in (0, 0.5), got {label_noise!r}")
    if gaps.size == 0 or not np.all(gaps > 0):
        raise ValueError("label noise needs at least one pair and gold gaps above 0")
    # the flip rate rises from 0 (T → 0) towards 0.5 (T → ∞): one root, bracketed in log T
    excess = lambda log_t: float(expit(-gaps / np.exp(log_t)).mean()) - label_noise  # noqa: E731
    low, high = np.log(gaps.min()) - 10, np.log(gaps.max()) + 20
    return float(np.exp(brentq(excess, low, high, xtol=1e-10)))


def preference_pairs(pool: pd.DataFrame, gold: str, margin: float = 0.0, *, fractions: tuple[float, float] = (0.1, 0.1),
                     seed: int = 0, max_pairs_per_prompt: int | None = None, label_noise: float = 0.0) -> pd.DataFrame:
    """Pairs of responses to the same prompt whose ``gold`` scores differ by at least ``margin``.

    Returns columns split, prompt_id, prompt, chosen, rejected, chosen_score, rejected_score, flipped; the
    split is by prompt. ``gold`` names a column of the pool (e.g. "gold_vader-compound").

    With ``label_noise`` > 0 the labels are drawn as a human labeller's would be under Bradley–Terry: the response
    with the higher gold is chosen with probability σ(gap / T), T set by :func:`bt_temperature` so that
    ``label_noise`` of the pairs are flipped on average (close pairs flip more often than clear ones).
    ``flipped`` marks the pairs whose chosen response has the lower gold; ``chosen_score`` stays the chosen one's.
    """
    if gold not in pool.columns:
        raise ValueError(f"pool has no column {gold!r}; gold columns: {[c for c in pool.columns if c.startswith('gold_')]}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if not 0 <= label_noise < 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise!r}")
    # split by prompt *text*: two ids with the same text would otherwise leak a test prompt into training
    texts = pd.Index(pool["prompt"].unique())
    by_text = split_prompts(np.arange(len(texts)), fractions, seed)
    assignment = {text: by_text[i] for i, text in enumerate(texts)}
    rng = np.random.default_rng(seed)
    rows = []
    for prompt_id, group in pool.groupby("prompt_id", sort=True):
        candidates = []
        for a, b in combinations(range(len(group)), 2):
            sa, sb = group[gold].iloc[a], group[gold].iloc[b]
            if abs(sa - sb) >= margin and sa != sb and group["response"].iloc[a] != group["response"].iloc[b]:
                hi, lo = (a, b) if sa > sb else (b, a)
                candidates.append((hi, lo))
        if max_pairs_per_prompt is not None and len(candidates) > max_pairs_per_prompt:
            keep = rng.choice(len(candidates), size=max_pairs_per_prompt, replace=False)
            candidates = [candidates[i] for i in sorted(keep)]
        prompt = group["prompt"].iloc[0]
        for hi, lo in candidates:
            rows.append({"split": assignment[prompt], "prompt_id": int(prompt_id), "prompt": prompt,
                         "chosen": group["response"].iloc[hi], "rejected": group["response"].iloc[lo],
                         "chosen_score": float(group[gold].iloc[hi]), "rejected_score": float(group[gold].iloc[lo])})
    pairs = pd.DataFrame(rows, columns=["split", "prompt_id", "prompt", "chosen", "rejected", "chosen_score",
                                        "rejected_score"])
    if pairs.empty:
        raise ValueError(f"no pair of responses differs by {margin} in {gold}; lower the margin or sample more")
    pairs["flipped"] = False
    if label_noise > 0:
        from scipy.special import expit

        gaps = (pairs["chosen_score"] - pairs["rejected_score"]).to_numpy()
        temperature = bt_temperature(gaps, label_noise)
        flip = np.random.default_rng([seed, 1]).random(len(pairs)) < expit(-gaps / temperature)
        swapped = ["rejected", "chosen", "rejected_score", "chosen_score"]
        pairs.loc[flip, ["chosen", "rejected", "chosen_score", "rejected_score"]] = pairs.loc[flip, swapped].to_numpy()
        pairs["flipped"] = flip
        pairs.attrs["bt_temperature"] = temperature
    return pairs


def to_dataset_dict(pairs: pd.DataFrame):
    """The pairs as a ``datasets.DatasetDict`` with train / validation / test splits."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({split: Dataset.from_pandas(pairs[pairs["split"] == split].drop(columns="split"),
                                                   preserve_index=False) for split in SPLITS})
