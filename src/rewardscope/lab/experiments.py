"""Cached building blocks that chapters share: scored samples of a policy, and whole RL runs.

Each is an :func:`rewardscope.artifacts.cached` entry, so a rerun of a chapter, or an interrupted
``make book``, reuses what finished. Models are named in the cache key by their content
(:func:`rewardscope.zoo.model_identity`: config, tokenizer and weight files), not by their spec or
directory, so a model rebuilt or overwritten in place invalidates what was computed with the old one,
and two copies of one model share their entries.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _checks, artifacts, hf

VERSION = 3  # 2: models keyed by content (model_identity), rewards as [identity, options] in order;
# 3: samples drawn by rewardscope.sampling (one seeded stream per prompt, independent of the batch)


def model_id(spec: str) -> str:
    """The cache key of a model spec: the content identity of the directory it resolves to (an embedded name, a
    local directory or a hub snapshot alike); lexicon and classifier rewards are just their name."""
    from ..rewards import reward_kinds
    from ..zoo import locate

    return spec if spec in reward_kinds() else f"model:{locate(spec).identity}"


def _reward_keys(specs: Sequence[str], options: Mapping[str, dict] | None) -> list[list]:
    """Each reward's content key with the loader options it is given, in order (options of other specs drop out)."""
    options = dict(options or {})
    return [[model_id(spec), dict(options.get(spec, {}))] for spec in specs]


def _named(frame: pd.DataFrame, rewards: Sequence[str]) -> pd.DataFrame:
    """The caller's reward specs as the score columns: a cached frame may have been built under other spec texts
    that named the same models."""
    return frame.set_axis([*frame.columns[:-len(rewards)], *rewards] if rewards else list(frame.columns), axis=1)


def _policy_options(policy: str, policy_options: Mapping[str, dict] | None) -> dict:
    """The :func:`rewardscope.load_policy` keyword arguments that ``policy_options`` gives ``policy`` (maybe none)."""
    if policy_options is not None and not isinstance(policy_options, Mapping):
        raise TypeError(f"policy_options must map policy specs to load_policy options, got {policy_options!r}")
    options = (policy_options or {}).get(policy) or {}
    if not isinstance(options, Mapping):
        raise TypeError(f"policy_options[{policy!r}] must be a mapping of load_policy options, got {options!r}")
    return dict(options)


def load_rewards(specs: Sequence[str], options: Mapping[str, dict] | None = None) -> dict:
    """Reward models by spec, each loaded with its own keyword arguments from ``options`` (dtype, chat_template …)."""
    from ..rewards import load_reward_model

    options = dict(options or {})  # options for other specs are ignored: one dict can serve a whole chapter
    return {spec: load_reward_model(spec, **options.get(spec, {})) for spec in specs}


def _score_columns(frame: pd.DataFrame, rewards: Sequence[str], options: Mapping[str, dict] | None) -> pd.DataFrame:
    for spec, rm in load_rewards(rewards, options).items():
        frame[spec] = rm.score(frame["prompt"].tolist(), frame["response"].tolist())
    return frame


def scored_samples(policy: str, prompts: Sequence[str], k: int, rewards: Sequence[str], *, max_new_tokens: int = 24,
                   dtype: str = "auto", seed: int = 0, options: Mapping[str, dict] | None = None,
                   policy_options: Mapping[str, dict] | None = None) -> pd.DataFrame:
    """k sampled responses of ``policy`` per prompt, each scored by every reward in ``rewards`` (cached).

    Columns: prompt_id, prompt, sample, response, one column per reward spec. ``options`` maps a reward spec to
    keyword arguments of :func:`rewardscope.load_reward_model`; ``policy_options`` maps a policy spec to keyword
    arguments of :func:`rewardscope.load_policy` (``{"EleutherAI/pythia-70m": {"chat_template": "plain"}}``; a
    ``dtype`` there wins over ``dtype``). Options of other specs are ignored: one dict can serve a whole chapter.
    """
    prompts = _checks.texts("prompts", prompts, nonblank=True)
    rewards = list(dict.fromkeys(rewards))
    _checks.count("k", k)
    loader = _policy_options(policy, policy_options)
    params = {"policy": model_id(policy), "prompts": prompts, "k": k, "rewards": _reward_keys(rewards, options),
              "max_new_tokens": max_new_tokens, "dtype": hf.dtype_name(dtype), "seed": seed}
    if loader:  # only when given, so entries made without policy options keep their keys
        params["policy_options"] = loader

    def build(out: Path) -> None:
        from ..policy import load_policy

        repeated = [p for p in prompts for _ in range(k)]
        responses = load_policy(policy, **{"dtype": dtype, **loader}).generate(
            repeated, max_new_tokens=max_new_tokens, seed=seed, batch_size=64)
        frame = pd.DataFrame({"prompt_id": np.repeat(np.arange(len(prompts)), k), "prompt": repeated,
                              "sample": np.tile(np.arange(k), len(prompts)), "response": responses})
        _score_columns(frame, rewards, options).to_parquet(out / "samples.parquet", index=False)

    return _named(pd.read_parquet(artifacts.cached("scored-samples", params, VERSION, build).path / "samples.parquet"),
                  rewards)


def wide(samples: pd.DataFrame, column: str) -> np.ndarray:
    """One column of :func:`scored_samples` as a [n_prompts, k] array (prompt order kept)."""
    ordered = samples.sort_values(["prompt_id", "sample"])
    return ordered[column].to_numpy().reshape(ordered["prompt_id"].nunique(), -1)


def rl_run(policy: str, reward, train_prompts: Sequence[str], eval_prompts: Sequence[str], config, *,
           key: Mapping, eval_rewards: Sequence[str] = (), monitors: Mapping[str, str] | None = None, eval_k: int = 4,
           max_new_tokens: int = 24, dtype: str = "auto", options: Mapping[str, dict] | None = None,
           policy_options: Mapping[str, dict] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tune ``policy`` on ``reward`` with :func:`rewardscope.training.rlhf.tune_policy`, then sample and score held-out prompts.

    ``key`` must describe ``reward`` completely (its models, method, references …): it is the cache key, since a
    reward object cannot be hashed. ``monitors`` (log name -> reward spec) are logged along training. The
    tuned weights are deleted after evaluation; the cache keeps the training log and the scored samples.
    ``options`` and ``policy_options`` are as for :func:`scored_samples`; ``policy``'s options apply to the tuned
    copy too.

    Returns (training log, scored eval samples) as :func:`scored_samples` would give for the tuned policy.
    """
    from ..policy import load_policy
    from ..training.rlhf import tune_policy

    train_prompts = _checks.texts("train_prompts", train_prompts, nonblank=True)
    eval_prompts = _checks.texts("eval_prompts", eval_prompts, nonblank=True)
    monitors, eval_rewards = dict(monitors or {}), list(dict.fromkeys(eval_rewards))
    params = {"policy": model_id(policy), "reward": dict(key), "train_prompts": train_prompts,
              "eval_prompts": eval_prompts, "config": asdict(config), "eval_rewards": _reward_keys(eval_rewards, options),
              "monitors": {n: _reward_keys([s], options)[0] for n, s in monitors.items()}, "eval_k": eval_k,
              "max_new_tokens": max_new_tokens, "dtype": hf.dtype_name(dtype)}
    loader = _policy_options(policy, policy_options)
    if loader:  # only when given, so entries made without policy options keep their keys
        params["policy_options"] = loader

    def build(out: Path) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="rewardscope-rl-run-"))
        try:
            result = tune_policy(policy, reward, train_prompts, scratch / "policy", config,
                                 monitors={n: load_rewards([s], options)[s] for n, s in monitors.items()},
                                 policy_options=loader)
            result.log.to_csv(out / "rl_log.csv", index=False)
            repeated = [p for p in eval_prompts for _ in range(eval_k)]
            responses = load_policy(str(result.path), **{"dtype": dtype, **loader}).generate(
                repeated, max_new_tokens=max_new_tokens, seed=config.seed, batch_size=64)
            frame = pd.DataFrame({"prompt_id": np.repeat(np.arange(len(eval_prompts)), eval_k), "prompt": repeated,
                                  "sample": np.tile(np.arange(eval_k), len(eval_prompts)), "response": responses})
            _score_columns(frame, eval_rewards, options).to_parquet(out / "samples.parquet", index=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    path = artifacts.cached("rl-run", params, VERSION, build).path
    return pd.read_csv(path / "rl_log.csv"), _named(pd.read_parquet(path / "samples.parquet"), eval_rewards)
