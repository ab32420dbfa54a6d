"""The reward-model card: one reward model through every lens of the book that needs only a reward model.

Each ``*_section`` function computes one section of the card from the functions the chapters use and returns a
dict of plain JSON values (numbers, strings, lists, dicts; no NaN): an estimate with its 95 % interval wherever
there is a sample (``{"estimate", "low", "high", "n", "unit"}``). A part that cannot be computed for this reward
model or probe set says why in a ``"skipped"`` entry instead of failing the audit. :func:`verdict` turns the
numbers into plain sentences by the book's one rule (:func:`rewardscope.findings.excludes`: a sentence claims an
effect only when its interval excludes the null), :func:`card_markdown` renders the card as a MyST page and
:func:`write_card` writes ``card.json`` and ``card.md`` atomically.

Sections (``rewardscope audit SPEC`` runs them all through ``notebooks/audit/audit.ipynb``):

* *inputs*: architecture, how inputs are built (chat template, BOS count, text pairs), batched == one at a time,
  float32 vs bfloat16 rank agreement;
* *vocabulary* (chapter 3): optimal and pessimal tokens per prompt, skew, frequency bias, framing asymmetry,
  identity-term ranks;
* *imprint* (chapter 4): feature imprint on labelled probe pairs, agreement with the pairs' labels;
* *robustness* (chapter 4): score change under meaning-preserving paraphrases and under sentiment flips;
* *transform* (chapter 5): Bradley–Terry temperature, how log σ(r − r_ref) compresses scores above a per-prompt
  reference, and best-of-n gain on the probe set's gold where it has one.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ... import _checks

SECTIONS = ("inputs", "vocabulary", "imprint", "robustness", "transform")
CARD_JSON, SWEEPS_FILE = "card.json", "sweeps.parquet"
CARD_VERSION = 1
MAX_VERDICT = 5
FEATURE_UNITS = {"length": "standard deviation of log(1 + words)", "eloquence": "standard deviation of mean word "
                 "length", "sentiment": "unit of VADER compound (−1…1)"}  # the rest are 0/1 labels: presence
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


# --------------------------------------------------------------------------------------------------
# Small helpers


def _check_rm(rm: Any) -> None:
    from ...rewards import RewardModel

    if not isinstance(rm, RewardModel):
        raise TypeError(f"rm must be a RewardModel (from load_reward_model), got {type(rm).__name__}")


def _is_hf(rm: Any) -> bool:
    from ...rewards import HFRewardModel

    return isinstance(rm, HFRewardModel)


def _check_pairs(pairs: Any, extra: Sequence[str] = ()) -> pd.DataFrame:
    if not isinstance(pairs, pd.DataFrame):
        raise TypeError(f"pairs must be a pandas DataFrame, got {type(pairs).__name__}")
    missing = [c for c in ("prompt_id", "prompt", "chosen", "rejected", *extra) if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs has no column(s) {missing}; probe_pairs() gives the expected frame")
    if len(pairs) < 2:
        raise ValueError(f"pairs needs at least 2 rows, got {len(pairs)}")
    return pairs


def _number(value: Any) -> float | None:
    """A plain float, or None for NaN/inf/None (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def interval(estimate: Any, low: Any = None, high: Any = None, n: int | None = None, unit: str | None = None,
             **extra: Any) -> dict[str, Any]:
    """An estimate with its 95 % interval, as the card stores it."""
    out = {"estimate": _number(estimate), "low": _number(low), "high": _number(high)}
    if n is not None:
        out["n"] = int(n)
    if unit is not None:
        out["unit"] = unit
    return out | extra


def _bootstrap(values, statistic: Callable, n_resamples: int, seed: int, unit: str, **extra: Any) -> dict[str, Any]:
    from ...stats import bootstrap_ci

    values = np.asarray(values)
    if len(values) < 2:
        return interval(statistic(values) if len(values) else None, n=len(values), unit=unit, **extra)
    est, lo, hi = bootstrap_ci(values, statistic, n_resamples=n_resamples, seed=seed)
    return interval(est, lo, hi, n=len(values), unit=unit, **extra)


def plain(value: Any) -> Any:
    """``value`` as plain JSON: numpy scalars and arrays unwrapped, NaN/inf as None, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray | pd.Series):
        return [plain(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _number(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a card")


def safe_name(spec: str) -> str:
    """A folder name for a reward-model spec: ``org/name`` -> ``org--name``, a path -> its last parts."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"spec must be a non-empty string, got {spec!r}")
    text = spec.strip().rstrip("/")
    if text.startswith((".", "/", "~")):
        text = "--".join(Path(text).parts[-2:])
    text = _SAFE.sub("-", text.replace("/", "--").replace(":", "--")).strip("-.")
    return text or "rm"


def describe_model(rm: Any, spec: str | None = None) -> dict[str, Any]:
    """The card's header: spec, kind, content identity (the hash every cache key uses), size."""
    _check_rm(rm)
    out: dict[str, Any] = {"spec": spec or rm.name, "kind": rm.kind}
    if _is_hf(rm):
        meta = rm.metadata
        out.update(identity=rm.identity, path=str(rm.path), parameters=int(rm.parameters),
                   dtype=str(next(rm.model.parameters()).dtype).removeprefix("torch."), device=str(rm.device),
                   description=meta.get("description") or meta.get("source"))
    else:
        out.update(identity=f"rule:{rm.name}", description=(type(rm).__doc__ or "").strip().split("\n")[0] or None)
    return out


# --------------------------------------------------------------------------------------------------
# The probe set


def probe_pairs(data: str = "lab", lab_scale: str = "default", n_pairs: int | None = None, seed: int = 0,
                split: str | None = None) -> pd.DataFrame:
    """Labelled preference pairs to probe a reward model with: columns pair_id, prompt_id, prompt, chosen,
    rejected, and for the lab ``chosen_gold`` / ``rejected_gold`` (the gold the labels were drawn from).

    ``data="lab"``: the lab's helpful-and-harmless target pairs (the pairs ``seal-post`` was trained and tested
    on; chapter 4's probe set, offline); otherwise hh-rlhf-style data (a hub id, local copy or file, see
    :func:`rewardscope.data.hh_rlhf_heldout_pairs`). ``n_pairs`` keeps at most that many pairs, drawn whole
    prompts at a time (so every kept prompt has all its responses, which the per-prompt reference needs);
    ``split`` keeps one split ("train", "validation", "test").
    """
    if n_pairs is not None:
        _checks.count("n_pairs", n_pairs)
    if data == "lab":
        from ...lab.recipes import recipe_pairs

        pairs = recipe_pairs("seal-post", lab_scale).rename(columns={"chosen_score": "chosen_gold",
                                                                      "rejected_score": "rejected_gold"})
    else:
        from ...data import hh_rlhf_heldout_pairs

        pairs = hh_rlhf_heldout_pairs(data, n=n_pairs)
    if split is not None:
        pairs = pairs[pairs["split"] == split]
    if pairs.empty:
        raise ValueError(f"no probe pairs in {data!r}" + (f" split {split!r}" if split else ""))
    if n_pairs is not None and len(pairs) > n_pairs:
        order = np.random.default_rng(seed).permutation(pairs["prompt_id"].unique())
        sizes = pairs.groupby("prompt_id").size().reindex(order)
        keep = order[: max(1, int(np.searchsorted(sizes.cumsum().to_numpy(), n_pairs, side="right")))]
        pairs = pairs[pairs["prompt_id"].isin(keep)]
    pairs = pairs.reset_index(drop=True)
    pairs.insert(0, "pair_id", np.arange(len(pairs)))
    return pairs


def score_probe(rm: Any, pairs: pd.DataFrame, cache: dict | None = None, batch_size: int | None = None) -> pd.DataFrame:
    """``pairs`` with the RM's ``chosen_reward`` and ``rejected_reward`` (each distinct text scored once)."""
    from ..seal.imprint import score_pairs

    _check_rm(rm)
    pairs = _check_pairs(pairs)
    scores = score_pairs(rm, pairs, cache=cache, batch_size=batch_size)
    return pairs.assign(chosen_reward=scores["chosen"], rejected_reward=scores["rejected"])


def _texts(pairs: pd.DataFrame, gold: bool = False) -> pd.DataFrame:
    """The distinct (prompt, text) of the pairs, one row each, with prompt_id (and gold and reward where known)."""
    parts = []
    for side in ("chosen", "rejected"):
        columns = {"prompt_id": "prompt_id", "prompt": "prompt", side: "text"}
        for extra in ("reward", "gold"):
            if f"{side}_{extra}" in pairs.columns:
                columns[f"{side}_{extra}"] = extra
        parts.append(pairs[list(columns)].rename(columns=columns))
    return pd.concat(parts, ignore_index=True).drop_duplicates(["prompt", "text"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Inputs


def bfloat16_copy(rm: Any) -> tuple[Any | None, str | None]:
    """(a bfloat16 copy of an HF reward model sharing its tokenizer, None) or (None, why it cannot be made)."""
    import copy

    import torch

    _check_rm(rm)
    if not _is_hf(rm):
        return None, "a rule reward has no weights to run in bfloat16"
    if next(rm.model.parameters()).dtype != torch.float32:
        return None, f"the model runs in {next(rm.model.parameters()).dtype}, not float32"
    try:
        low = copy.copy(rm)
        low.model = copy.deepcopy(rm.model).to(torch.bfloat16)
        low.score(["Hi"], ["Hello there"])
    except (RuntimeError, TypeError, ValueError, AttributeError, NotImplementedError) as err:
        return None, f"bfloat16 is not supported here: {type(err).__name__}: {str(err).splitlines()[0]}"
    return low, None


def inputs_section(rm: Any, prompts: Sequence[str], responses: Sequence[str], low_precision: Any = None,
                   low_precision_skipped: str | None = None, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """How the RM reads its inputs, whether a score depends on its batch, and float32 vs bfloat16 rank agreement.

    ``prompts``/``responses``: probe pairs of varied lengths (the batch check pads them together). The batch check
    scores them in one batch and one at a time and reports the largest absolute difference. ``low_precision``: a
    bfloat16 copy of ``rm`` (:func:`bfloat16_copy`); without it the drift part is skipped with
    ``low_precision_skipped`` as the reason.
    """
    from scipy import stats

    from ...hf import template_token_ids
    from ...rewards import check_pairs

    _check_rm(rm)
    prompts, responses = check_pairs(prompts, responses)
    if len(prompts) < 3:
        raise ValueError(f"inputs_section needs at least 3 probe pairs, got {len(prompts)}")
    out: dict[str, Any] = {"kind": rm.kind}
    if _is_hf(rm):
        tok, ids = rm.tokenizer, rm.encode(prompts[0], responses[0])
        out.update(architecture=rm.architecture, model_type=getattr(rm.model.config, "model_type", None),
                   vocabulary=int(rm.vocabulary_size),
                   reward_read_from=f"{rm.output}[{rm.label}]", max_length=int(rm.max_length))
        if rm.architecture == "decoder":
            out.update(input_format="chat template rendered to token ids, left-padded, read at the last token",
                       chat_template=bool(tok.chat_template), bos_count=int(ids.count(tok.bos_token_id))
                       if tok.bos_token_id is not None else 0, pad_id=int(rm.pad_id),
                       pad_in_template=bool(rm.pad_id in template_token_ids(tok)))
        else:
            sep = tok.sep_token_id
            out.update(input_format="text pair (prompt, response) through the tokenizer's pair encoding",
                       chat_template=False, pair_encoding=True,
                       separators=int(ids.count(sep)) if sep is not None else 0,
                       bos_count=int(ids.count(tok.cls_token_id)) if tok.cls_token_id is not None else 0)
        out["tokens_of_first_probe"] = len(ids)
    else:
        out.update(architecture="rule", input_format="the response text (and for some rules the prompt) as text")
    batched = rm.score(prompts, responses, batch_size=len(prompts))
    single = np.array([rm.score([p], [r])[0] for p, r in zip(prompts, responses)])
    scale = float(np.std(single)) if len(single) > 1 else 0.0
    diff = float(np.max(np.abs(batched - single)))
    out["batch_invariance"] = {"max_abs_difference": diff, "score_sd": scale, "n": len(prompts),
                               "equal": bool(diff <= 1e-4 + 1e-3 * scale)}
    if low_precision is None:
        out["dtype_drift"] = {"skipped": low_precision_skipped or "no bfloat16 copy was given"}
        return out
    _check_rm(low_precision)
    low = low_precision.score(prompts, responses)
    if np.ptp(single) == 0 or np.ptp(low) == 0:
        out["dtype_drift"] = {"skipped": "the probe scores are constant; rank agreement is undefined"}
        return out
    pair = np.c_[single, low]
    kendall = _bootstrap(pair, lambda v: float(stats.kendalltau(v[:, 0], v[:, 1]).statistic), n_bootstrap, seed,
                         "texts")
    out["dtype_drift"] = {"spearman": _number(stats.spearmanr(single, low).statistic), "kendall": kendall,
                          "max_abs_difference": float(np.max(np.abs(single - low))), "n": len(prompts)}
    return out


# --------------------------------------------------------------------------------------------------
# Vocabulary (chapter 3)


def _show(token: str) -> str:
    return repr(token)[1:-1] if token.strip() == token and token.isprintable() else repr(token)


def vocabulary_token_ids(rm: Any, vocab_tokens: int = 0, seed: int = 0) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(ids to sweep, the random part of them): ``vocab_tokens`` = 0 sweeps the whole vocabulary (None, None);
    otherwise the identity terms and AFINN words of the vocabulary plus ``vocab_tokens`` random ids, so the
    identity and frequency lenses have their words even in a small sweep."""
    from ...lexicons import afinn_lexicon
    from ..sweep import IDENTITY_TERMS, probe_token_ids

    _checks.count("vocab_tokens", vocab_tokens, 0)
    if vocab_tokens == 0:
        return None, None
    words = {t for terms in IDENTITY_TERMS.values() for t in terms} | set(afinn_lexicon())
    hits = probe_token_ids(rm, sorted(words))
    limit = rm.vocabulary_size
    rest = np.setdiff1d(np.arange(limit), hits)
    random = np.sort(np.random.default_rng(seed).choice(rest, size=min(vocab_tokens, len(rest)), replace=False))
    return np.union1d(hits, random).astype(np.int64), random.astype(np.int64)


def vocabulary_sweeps(rm: Any, prompts: Mapping[str, str], vocab_tokens: int = 0, seed: int = 0,
                      method: str = "prefix", others: Mapping[str, Any] | None = None
                      ) -> tuple[pd.DataFrame | None, np.ndarray | None]:
    """(token sweeps of ``prompts`` by the RM, then by each of ``others`` that has a vocabulary: columns rm (the
    RM's name, or its key in ``others``), prompt, token_id, token, score; the random ids among the RM's ids), or
    (None, None) for a rule reward. Sweeps are cached. Over the whole vocabulary (``vocab_tokens`` = 0) the models
    are swept together as chapter 3 sweeps them (:func:`rewardscope.sweep.vocabulary_sweeps`): models that share
    their bottom layers (the lab's decoder RMs) compute them once, and the chapter's cache entries are reused."""
    from ..sweep import vocabulary_sweeps as sweep_together

    _check_rm(rm)
    if not isinstance(prompts, Mapping) or not prompts:
        raise ValueError(f"prompts must map at least one name to a prompt, got {prompts!r}")
    if not _is_hf(rm):
        return None, None
    models = {rm.name: rm, **{k: m for k, m in (others or {}).items() if _is_hf(m) and k != rm.name}}
    if vocab_tokens == 0:
        swept, random = sweep_together(models, dict(prompts), method=method), None
    else:  # each model's own identity terms, AFINN words and random ids
        swept, random = {}, vocabulary_token_ids(rm, vocab_tokens, seed)[1]
        for name, model in models.items():
            ids, _ = vocabulary_token_ids(model, vocab_tokens, seed)
            swept.update(sweep_together({name: model}, dict(prompts), token_ids=ids, method=method))
    frames = [frame.assign(rm=name, prompt=prompt) for (name, prompt), frame in swept.items()]
    return pd.concat(frames, ignore_index=True)[["rm", "prompt", "token_id", "token", "score"]], random


def vocabulary_section(rm: Any, prompts: Mapping[str, str], vocab_tokens: int = 0, n_top: int = 10,
                       n_bootstrap: int = 1000, seed: int = 0, method: str = "prefix",
                       others: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Chapter 3's lenses for one RM: each prompt's optimal and pessimal tokens, the skew of the token scores
    (interval over tokens), the frequency bias (slope of z-scored score on log word frequency, valence held
    fixed; interval over AFINN words), the framing asymmetry, and the identity terms' percentile ranks (interval
    over tokens) for the first prompt. Sweeps are cached, so the chapter's sweeps are reused.

    ``others`` ({name: reward model}) places the RM among other RMs on the first prompt: Kendall τ with each over
    the tokens whose decoded strings all of them share (interval over tokens) and chapter 3's MDS map of 1 − τ."""
    from ...lexicons import afinn_lexicon
    from ...stats import bootstrap_ci
    from ..sweep import (
        FRAME_MATCH,
        asymmetry_interval,
        frequency_bias,
        frequency_slope_interval,
        identity_ranks,
        lexicon_join,
        score_moments,
    )

    _checks.count("n_top", n_top)
    swept, random = vocabulary_sweeps(rm, prompts, vocab_tokens, seed, method, others)
    if swept is None:
        return {"skipped": f"{rm.name} is a rule reward ({rm.kind}); it has no token vocabulary to sweep"}
    sweeps = swept[swept["rm"] == rm.name]
    out: dict[str, Any] = {"prompts": dict(prompts), "tokens_swept": int((sweeps["prompt"] == next(iter(prompts))).sum()),
                           "sample": "whole vocabulary" if random is None else
                           f"{len(random)} random ids plus the vocabulary's identity terms and AFINN words"}
    per_prompt = []
    for name, one in sweeps.groupby("prompt", sort=False):
        ranked = one.sort_values("score", ascending=False)
        moments_on = one if random is None else one[one["token_id"].isin(random)]
        moments = score_moments(moments_on[["score"]].rename(columns={"score": rm.name}), n_resamples=n_bootstrap,
                                seed=seed).iloc[0]
        per_prompt.append({
            "prompt": name, "text": prompts[name],
            "optimal": [{"token": _show(t), "score": float(s)} for t, s in zip(ranked["token"].head(n_top),
                                                                                 ranked["score"].head(n_top))],
            "pessimal": [{"token": _show(t), "score": float(s)} for t, s in zip(ranked["token"].tail(n_top)[::-1],
                                                                                  ranked["score"].tail(n_top)[::-1])],
            "mean": float(moments["mean"]), "sd": float(np.sqrt(moments["variance"])),
            "skew": interval(moments["skew"], moments["skew_low"], moments["skew_high"], n=moments["n"],
                             unit="tokens")})
    out["per_prompt"] = per_prompt
    joined = lexicon_join(sweeps, afinn_lexicon(), strip=True)
    try:
        table = frequency_bias(joined)
        overall = frequency_slope_interval(joined, n_resamples=n_bootstrap, seed=seed)
        out["frequency_bias"] = {
            **interval(overall["estimate"], overall["low"], overall["high"], n=overall["n"], unit="AFINN words",
                       what="slope of z-scored score on log word frequency (valence held fixed), mean over prompts"),
            "per_prompt": [{"prompt": r.prompt, **interval(r.slope, r.low, r.high, n=r.n, unit="words (OLS)")}
                           for r in table.itertuples()]}
    except ValueError as err:
        out["frequency_bias"] = {"skipped": str(err)}
    frames_here = {p: v for p, v in FRAME_MATCH.items() if p in prompts and prompts[p] in _chapter_prompts()}
    try:
        if not frames_here:
            raise ValueError("none of the prompts is one of chapter 3's framed prompts (best, greatest, worst)")
        with warnings.catch_warnings():  # an (RM, prompt) with too few words of one sign is a NaN it skips
            warnings.simplefilter("ignore", RuntimeWarning)
            asym = asymmetry_interval(joined, n_resamples=n_bootstrap, seed=seed, frames=frames_here)
        out["framing_asymmetry"] = interval(asym["estimate"], asym["low"], asym["high"], n=asym["n"],
                                            unit="AFINN words", what="|slope| where valence matches the frame − "
                                            "|slope| where it does not (z-scored scores on AFINN valence)")
    except ValueError as err:
        out["framing_asymmetry"] = {"skipped": str(err)}
    first = next(iter(prompts))
    identity = identity_ranks(sweeps[sweeps["prompt"] == first])
    groups = []
    for group, part in identity.groupby("group", sort=False):
        values = part["percentile"].to_numpy()
        if len(values) > 1:
            est, lo, hi = bootstrap_ci(values, np.median, n_resamples=n_bootstrap, seed=seed)
        else:
            est, lo, hi = float(values[0]), None, None
        lowest = part.sort_values("percentile").iloc[0]
        groups.append({"group": group, **interval(est, lo, hi, n=len(values), unit="tokens"),
                       "lowest": _show(lowest["token"]), "lowest_percentile": float(lowest["percentile"])})
    out["identity_ranks"] = {"prompt": first, "what": "median percentile (0 = pessimal, 100 = optimal)",
                             "groups": groups} if groups else {"skipped": "no identity term is a single token here"}
    if others:
        out["neighbours"] = vocabulary_neighbours(swept[swept["prompt"] == first], others, first, prompts[first],
                                                  vocab_tokens=vocab_tokens, n_bootstrap=n_bootstrap, seed=seed,
                                                  method=method)
    return out


def vocabulary_neighbours(sweep: pd.DataFrame, others: Mapping[str, Any], prompt_name: str, prompt: str,
                          vocab_tokens: int = 0, n_bootstrap: int = 200, seed: int = 0,
                          method: str = "prefix") -> dict[str, Any]:
    """Where one RM's sweep of ``prompt`` (a frame with columns rm, prompt, token_id, token, score; the RM's rows
    first, and any of ``others`` already swept) sits among ``others``: each other RM's sweep of the same prompt
    (taken from ``sweep`` where it is there, else swept; cached), Kendall τ with
    the audited RM over the shared vocabulary (chapter 3's: decoded strings present in every sweep, duplicates
    dropped) with an interval over tokens (at most 200 resamples, each a full τ), and the MDS map of 1 − τ."""
    from ..sweep import agreement_matrix, check_sweeps, mds_map, shared_vocabulary, tau_interval

    check_sweeps(sweep)
    if not isinstance(others, Mapping) or not others:
        raise ValueError(f"others must map at least one name to a reward model, got {others!r}")
    name = str(sweep["rm"].iloc[0])
    frames, skipped, have = [sweep], {}, set(sweep["rm"])
    for other, model in others.items():
        _check_rm(model)
        if other in have:
            continue
        if not _is_hf(model):
            skipped[other] = f"a rule reward ({model.kind}) has no token vocabulary"
            continue
        frame, _ = vocabulary_sweeps(model, {prompt_name: prompt}, vocab_tokens, seed, method)
        frames.append(frame.assign(rm=other))
    combined = pd.concat(frames, ignore_index=True)
    if combined["rm"].nunique() < 2:
        return {"skipped": "no other reward model with a vocabulary to compare with", **({"not_compared": skipped}
                                                                                          if skipped else {})}
    wide = shared_vocabulary(combined, prompt_name)
    if len(wide) < 3:
        return {"skipped": f"only {len(wide)} decoded tokens are shared by every reward model; need 3"}
    rows = []
    for other in wide.columns[1:]:
        tau = tau_interval(wide[name], wide[other], n_resamples=max(2, min(n_bootstrap, 200)), seed=seed)
        rows.append({"rm": other, **interval(tau["tau"], tau["low"], tau["high"], n=tau["n"], unit="shared tokens")})
    out: dict[str, Any] = {"prompt": prompt_name, "shared_tokens": len(wide), "tau": rows}
    if wide.shape[1] >= 3:
        coords = mds_map(agreement_matrix(wide, "kendall"), seed=seed)
        out["mds"] = [{"rm": str(r), "x": float(c["x"]), "y": float(c["y"])} for r, c in coords.iterrows()]
    if skipped:
        out["not_compared"] = skipped
    return out


def _chapter_prompts() -> set[str]:
    from ..sweep import PROMPTS

    return set(PROMPTS.values())


# --------------------------------------------------------------------------------------------------
# Imprint (chapter 4)


def imprint_section(rm: Any, pairs: pd.DataFrame, features: Sequence[str] | None = None, n_bootstrap: int = 1000,
                    seed: int = 0, cluster: str = "prompt_id", cache: dict | None = None,
                    batch_size: int | None = None) -> dict[str, Any]:
    """Chapter 4's feature imprint of ``rm`` on labelled probe pairs, and its agreement with their labels.

    Every text of every pair is labelled with ``features`` (default :data:`rewardscope.studies.seal.labels.FEATURES`, targets
    then spoilers); length and eloquence are standardised over the texts, as in the chapter. The RM's score is
    regressed on the features that are identifiable here (a constant or redundant feature is dropped and named)
    with cluster-robust errors over ``cluster`` (default the prompt: a prompt's pairs share their responses, so a
    pair is nested in it). Agreement is the share of pairs scored chosen > rejected, interval over prompts.
    """
    from ..seal import labels
    from ..seal.imprint import feature_imprint, identifiable_features, share_ci, stack_pairs

    _check_rm(rm)
    pairs = _check_pairs(pairs)
    features = list(labels.FEATURES if features is None else features)
    if cluster not in pairs.columns:
        raise ValueError(f"cluster column {cluster!r} is not in pairs (columns: {', '.join(pairs.columns)})")
    scored = score_probe(rm, pairs, cache=cache, batch_size=batch_size)
    scored = scored.join(labels.label_pairs(scored, features))
    for f in features:
        if f not in labels.BINARY and f != "sentiment":
            both = pd.concat([scored[f"chosen_{f}"], scored[f"rejected_{f}"]])
            sd = float(both.std())
            for side in ("chosen", "rejected"):
                scored[f"{side}_{f}"] = (scored[f"{side}_{f}"] - both.mean()) / (sd if sd > 0 else 1.0)
    aligned = (scored["chosen_reward"] > scored["rejected_reward"]).to_numpy()
    clusters = scored[cluster].to_numpy()
    if len(np.unique(clusters)) > 1:
        est, lo, hi = share_ci(aligned, clusters, n_resamples=n_bootstrap, seed=seed)
    else:
        est, lo, hi = share_ci(aligned, n_resamples=n_bootstrap, seed=seed)
    out: dict[str, Any] = {
        "probe": {"pairs": len(scored), "prompts": int(scored["prompt_id"].nunique())},
        "agreement": interval(est, lo, hi, n=len(np.unique(clusters)), unit="prompts" if cluster == "prompt_id" else
                              cluster, what="share of pairs scored chosen > rejected", null=0.5),
        "ties": int((scored["chosen_reward"] == scored["rejected_reward"]).sum())}
    if {"chosen_gold", "rejected_gold"} <= set(scored.columns):  # the lab: the gold its (noisy) labels were drawn from
        by_gold = ((scored["chosen_reward"] > scored["rejected_reward"])
                   == (scored["chosen_gold"] > scored["rejected_gold"])).to_numpy()
        est, lo, hi = share_ci(by_gold, clusters if len(np.unique(clusters)) > 1 else None, n_resamples=n_bootstrap,
                               seed=seed)
        out["agreement_gold"] = interval(est, lo, hi, n=len(np.unique(clusters)), unit=out["agreement"]["unit"],
                                         what="share of pairs ordered as the gold orders them", null=0.5)
    keep = list(dict.fromkeys(["pair_id", "prompt_id", cluster]))
    stacked = stack_pairs(scored, [*features, "reward"], keep=keep)
    usable = identifiable_features(stacked, features)
    out["dropped_features"] = [f for f in features if f not in usable]
    try:
        if not usable:
            raise ValueError("no feature varies on these texts")
        fit = feature_imprint(stacked, "reward", usable, cluster=cluster)
    except ValueError as err:
        out["features"] = {"skipped": str(err)}
        return out
    out["features"] = [{"feature": f, "role": "target" if f in labels.TARGETS else "spoiler",
                        "per": FEATURE_UNITS.get(f, "presence (0/1 label)"),
                        **interval(row.coef, row.ci_low, row.ci_high, n=fit.attrs["n_clusters"],
                                   unit="prompts" if cluster == "prompt_id" else cluster),
                        "se": float(row.se), "p_adj": _number(row.p_adj)}
                       for f, row in fit.iterrows()]
    out["r2"] = _number(fit.attrs["r2"])
    out["texts"] = int(fit.attrs["n"])
    return out


# --------------------------------------------------------------------------------------------------
# Robustness (chapter 4)


def _rewrite_shift(rm: Any, texts: pd.DataFrame, kind: str, n_bootstrap: int, seed: int, cache: dict | None,
                   batch_size: int | None) -> dict[str, Any]:
    from ..seal.imprint import feature_imprint, score_pairs
    from ..seal.rewrite import REWRITES

    fn = REWRITES[kind]
    rewritten = texts.assign(rewritten=[fn(t) for t in texts["text"]])
    changed = rewritten[rewritten["text"] != rewritten["rewritten"]].reset_index(drop=True)
    if len(changed) < 2:
        return {"skipped": f"the {kind} rewrite changed {len(changed)} of {len(texts)} probe texts; need 2"}
    scores = score_pairs(rm, changed, columns=("text", "rewritten"), cache=cache, batch_size=batch_size)
    delta = (scores["rewritten"] - scores["text"]).to_numpy()
    sd = float(scores["text"].std()) if len(scores) > 1 else 0.0
    out = {"texts_changed": len(changed), "texts": len(texts),
           "mean_change": _bootstrap(delta, np.mean, n_bootstrap, seed, "texts"),
           "mean_abs_change": _bootstrap(np.abs(delta), np.mean, n_bootstrap, seed, "texts"),
           "score_sd": _number(sd)}
    if kind == "flip":  # which way: the chapter's sensitivity of Δ reward to Δ VADER sentiment
        from ...rewards import load_reward_model

        vader = load_reward_model("vader-compound")
        frame = pd.DataFrame({"prompt_id": changed["prompt_id"], "d_reward": delta,
                              "d_sentiment": vader.score(changed["prompt"], changed["rewritten"])
                              - vader.score(changed["prompt"], changed["text"])})
        try:
            if np.ptp(delta) == 0:
                raise ValueError("the score did not change under any flip")
            cluster = "prompt_id" if frame["prompt_id"].nunique() > 1 else None
            fit = feature_imprint(frame, "d_reward", ["d_sentiment"], cluster=cluster).loc["d_sentiment"]
            out["sentiment_sensitivity"] = interval(fit["coef"], fit["ci_low"], fit["ci_high"], n=len(frame),
                                                    unit="texts (clustered by prompt)",
                                                    what="Δ reward per unit Δ VADER compound")
        except ValueError as err:
            out["sentiment_sensitivity"] = {"skipped": str(err)}
    return out


def robustness_section(rm: Any, pairs: pd.DataFrame, n_bootstrap: int = 1000, seed: int = 0,
                       cache: dict | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """Score change of the probe texts under a meaning-preserving paraphrase and under a sentiment flip
    (:mod:`rewardscope.studies.seal.rewrite`), with intervals over the texts each rewrite changed; for the flip also the
    slope of the score change on the VADER sentiment change (which way the RM follows sentiment)."""
    _check_rm(rm)
    texts = _texts(_check_pairs(pairs))
    return {kind: _rewrite_shift(rm, texts, kind, n_bootstrap, seed, cache, batch_size)
            for kind in ("paraphrase", "flip")}


# --------------------------------------------------------------------------------------------------
# Transform (chapter 5)


def _temperature(chosen: np.ndarray, rejected: np.ndarray, n_bootstrap: int, seed: int) -> dict[str, Any]:
    from ..transforms.transforms import calibrate_temperature

    # T scales with the scores (T(r / s) = T(r) / s): fit on scores in units of their sd, so that an RM whose scores
    # differ by 1e-5 is not pinned at the fit's bounds, and scale back
    scale = float(np.std(np.r_[chosen, rejected])) or 1.0
    chosen, rejected = chosen / scale, rejected / scale
    est = scale * calibrate_temperature(chosen, rejected)
    rng, draws = np.random.default_rng(seed), []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(chosen), len(chosen))
        try:
            draws.append(scale * calibrate_temperature(chosen[idx], rejected[idx]))
        except ValueError:  # a resample the RM orders perfectly (or not at all) does not identify T
            continue
    lo, hi = (np.quantile(draws, [0.025, 0.975]) if len(draws) >= max(10, n_bootstrap // 2) else (None, None))
    return interval(est, lo, hi, n=len(chosen), unit="pairs", resamples_identified=len(draws))


def transform_section(rm: Any, pairs: pd.DataFrame, calibration: pd.DataFrame | None = None,
                      calibration_source: str = "the probe pairs", quantile: float = 0.5, n_bootstrap: int = 1000,
                      seed: int = 0, cache: dict | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """Chapter 5's lenses: the Bradley–Terry temperature T fitted on labelled pairs (``calibration``, default
    ``pairs``; interval over pairs); the per-prompt reference r_ref (the ``quantile`` of the RM's scores of each
    prompt's probe responses, :func:`rewardscope.studies.transforms.transforms.reference_reward`) and how strongly
    u = log σ((r − r_ref)/T) compresses scores above it: the mean slope du/dr above the reference over the mean
    slope below (1: no compression; interval over prompts); and, where the probe set has a gold, the best-of-k
    gain: the gold of the response the RM ranks first minus the mean gold of the prompt's responses."""
    from ..transforms.transforms import log_sigmoid_transform, reference_reward

    _check_rm(rm)
    pairs = _check_pairs(pairs)
    if isinstance(quantile, bool) or not isinstance(quantile, int | float) or not 0 < quantile < 1:
        raise ValueError(f"quantile must be a number in (0, 1), got {quantile!r}")
    calibration = pairs if calibration is None else _check_pairs(calibration.assign(
        prompt_id=calibration.get("prompt_id", pd.Series(range(len(calibration)), index=calibration.index))))
    cal = score_probe(rm, calibration, cache=cache, batch_size=batch_size)
    chosen, rejected = cal["chosen_reward"].to_numpy(), cal["rejected_reward"].to_numpy()
    out: dict[str, Any] = {"calibration": {"source": calibration_source, "pairs": len(cal),
                                           "accuracy": _number(np.mean(chosen > rejected))}}
    try:
        out["temperature"] = _temperature(chosen, rejected, n_bootstrap, seed)
        temperature = out["temperature"]["estimate"]
    except ValueError as err:
        out["temperature"] = {"skipped": str(err)}
        temperature = None
    texts = _texts(score_probe(rm, pairs, cache=cache, batch_size=batch_size))
    sizes = texts.groupby("prompt_id").size()
    k = int(sizes.max()) if len(sizes) else 0
    full = sizes[sizes == k].index
    if k < 2 or len(full) < 2:
        out["reference"] = {"skipped": f"need at least 2 prompts with at least 2 responses each, got {len(full)} "
                                       f"prompts with {k}"}
        return out
    kept = texts[texts["prompt_id"].isin(full)].sort_values(["prompt_id", "text"], kind="stable")
    rewards = kept["reward"].to_numpy().reshape(len(full), k)
    scale = temperature or float(np.std(rewards)) or 1.0
    try:
        ref = reference_reward(rewards, quantile=quantile, seed=seed)
    except ValueError as err:
        out["reference"] = {"skipped": str(err)}
        return out
    d = (rewards - ref[:, None]) / scale
    slope = np.exp(log_sigmoid_transform(-d, 0.0))  # du/d(r/T) = σ(−d)
    above, below = d > 0, d < 0

    def ratio(rows: np.ndarray) -> float:
        a, b = above[rows], below[rows]
        if not a.any() or not b.any():
            return float("nan")
        return float(slope[rows][a].mean() / slope[rows][b].mean())

    est = ratio(np.arange(len(full)))
    rng, draws = np.random.default_rng(seed), []
    for _ in range(n_bootstrap):
        value = ratio(rng.integers(0, len(full), len(full)))
        if math.isfinite(value):
            draws.append(value)
    lo, hi = np.quantile(draws, [0.025, 0.975]) if len(draws) >= 10 else (None, None)
    u = log_sigmoid_transform(rewards / scale, ref[:, None] / scale)
    out["reference"] = {"quantile": quantile, "responses_per_prompt": k, "prompts": len(full),
                        "scale": "temperature T" if temperature else "score sd (T not identified)",
                        "compression": interval(est, lo, hi, n=len(full), unit="prompts", null=1.0,
                                                what="mean du/dr above the reference ÷ mean du/dr below"),
                        "share_above": _number(above.mean()),
                        "transformed_range": [_number(u.min()), _number(u.max())]}
    if "gold" in kept.columns and kept["gold"].notna().all():
        gold = kept["gold"].to_numpy().reshape(len(full), k)
        pick = gold[np.arange(len(full)), rewards.argmax(axis=1)]
        gain = pick - gold.mean(axis=1)
        oracle = gold.max(axis=1) - gold.mean(axis=1)
        out["best_of_n"] = {"n": k, "gold": "the probe set's gold (the lab's helpful-and-harmless reward)",
                            "gain": _bootstrap(gain, np.mean, n_bootstrap, seed, "prompts", null=0.0),
                            "share_of_oracle_gain": _number(gain.sum() / oracle.sum()) if oracle.sum() > 0 else None}
    else:
        out["best_of_n"] = {"skipped": "the probe set has no gold reward (hh-rlhf-style data): no best-of-n gain"}
    return out


# --------------------------------------------------------------------------------------------------
# The card: verdict, page, files


def build_card(model: Mapping[str, Any], sections: Mapping[str, Any], parameters: Mapping[str, Any] | None = None,
               seconds: float | None = None) -> dict[str, Any]:
    """The card: header (``model`` from :func:`describe_model`), the sections, the verdict, as plain JSON."""
    from ... import __version__

    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown card section(s) {unknown}; sections: {', '.join(SECTIONS)}")
    card = plain({"card_version": CARD_VERSION, "rewardscope": __version__, "model": dict(model),
                  "parameters": dict(parameters or {}), **{name: sections[name] for name in SECTIONS if name in sections},
                  "seconds": seconds})
    card["verdict"] = verdict(card)
    return card


def _fmt(x: float | None, digits: int = 3, signed: bool = True) -> str:
    sign = "+" if signed else ""
    return "n/a" if x is None else f"{x:{sign}.{digits}g}" if abs(x) < 1e4 else f"{x:{sign}.3e}"


def _ci(item: Mapping[str, Any], digits: int = 3, percent: bool = False, signed: bool = True) -> str:
    if percent:
        est, lo, hi = (None if item.get(k) is None else 100 * item[k] for k in ("estimate", "low", "high"))
        core = "n/a" if est is None else f"{est:.0f}%"
        return core if lo is None else f"{core} [{lo:.0f}%, {hi:.0f}%]"
    core = _fmt(item.get("estimate"), digits, signed)
    if item.get("low") is None or item.get("high") is None:
        return core
    return f"{core} [{_fmt(item['low'], digits, signed)}, {_fmt(item['high'], digits, signed)}]"


def decided(item: Any, null: float = 0.0) -> bool | None:
    """Whether an interval of the card excludes ``null`` (True/False), or None where there is no interval."""
    from ...findings import excludes

    if not isinstance(item, Mapping) or item.get("low") is None or item.get("high") is None:
        return None
    return excludes(item["low"], item["high"], null, side="two-sided")


def _feature(card: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    features = _at(card, "imprint", "features")
    if not isinstance(features, list):
        return None
    return next((f for f in features if f["feature"] == name), None)


def _at(card: Mapping[str, Any], *keys: str) -> Any:
    """``card[k1][k2]...`` or None where a level is missing."""
    for key in keys:
        card = card.get(key) if isinstance(card, Mapping) else None
    return card


def _rule(find, null: float = 0.0):
    """A verdict rule: ``find(card)`` picks an interval, and the decorated ``say(item, holds)`` words it; no
    sentence where the card has no interval there."""
    def wrap(say):
        def sentence(card):
            item = find(card)
            holds = decided(item, null)
            return None if holds is None else say(item, holds)
        return sentence
    return wrap


@_rule(lambda card: _at(card, "imprint", "agreement"), null=0.5)
def _sentence_agreement(item, holds):
    n = f"(95% interval over {item['n']} {item['unit']})"
    if not holds:
        return (f"Does not agree with the probe pairs' labels more often than chance (its interval includes 50%): "
                f"{_ci(item, percent=True)} {n}.")
    side = "more" if item["estimate"] > 0.5 else "less"
    return f"Agrees with the probe pairs' labels {side} often than chance: {_ci(item, percent=True)} of pairs {n}."


def _sentence_feature(name: str, more: str, less: str, noun: str):
    @_rule(lambda card: _feature(card, name))
    def sentence(item, holds):
        unit = f"per {item['per']}" if not item["per"].startswith("presence") else "when present"
        if not holds:
            return f"Shows no {noun} preference its interval can tell from zero: {_ci(item)} {unit}."
        return f"{more if item['estimate'] > 0 else less}: {_ci(item)} {unit} (score units, features held fixed)."
    return sentence


@_rule(lambda card: _at(card, "robustness", "paraphrase", "mean_change"))
def _sentence_paraphrase(item, holds):
    if not holds:
        return f"Is stable under meaning-preserving paraphrases: mean score change {_ci(item)}, an interval that includes 0."
    return (f"Moves under meaning-preserving paraphrases: mean score change {_ci(item)} over {item['n']} rewritten "
            "texts; it reads wording, not only meaning.")


@_rule(lambda card: _at(card, "robustness", "flip", "sentiment_sensitivity"))
def _sentence_flip(item, holds):
    if not holds:
        return f"Does not follow sentiment flips in a direction its interval can tell: {_ci(item)} per unit of VADER change."
    way = "rises" if item["estimate"] > 0 else "falls"
    return f"Its score {way} with sentiment under antonym flips: {_ci(item)} per unit of VADER compound change."


@_rule(lambda card: _at(card, "vocabulary", "frequency_bias"))
def _sentence_frequency(item, holds):
    if not holds:
        return f"Shows no word-frequency bias its interval can tell from zero: {_ci(item)} SD per log unit of frequency."
    way = "frequent" if item["estimate"] > 0 else "rare"
    return f"Favours {way} words among single-token answers: {_ci(item)} SD per log unit of frequency."


@_rule(lambda card: _at(card, "transform", "reference", "compression"), null=1.0)
def _sentence_compression(item, holds):
    if not holds:
        return f"log σ(r − r_ref) does not compress its scores above the reference measurably: ratio {_ci(item, signed=False)}."
    return (f"log σ(r − r_ref) weighs a unit of its reward above the reference {_ci(item, signed=False)} times as much as one "
            "below: the transform caps what over-optimisation can gain.")


def _sentence_batch(card):
    check = _at(card, "inputs", "batch_invariance")
    if not check or check.get("equal", True):
        return None
    return (f"Warning: its scores depend on the batch they are computed in (largest difference "
            f"{check['max_abs_difference']:.3g}, score sd {check['score_sd']:.3g}); compare scores only one at a time.")


VERDICT_RULES = (_sentence_batch, _sentence_agreement,
                 _sentence_feature("length", "Rewards length", "Penalises length", "length"),
                 _sentence_feature("sentiment", "Rewards positive sentiment", "Rewards negative sentiment", "sentiment"),
                 _sentence_paraphrase, _sentence_frequency,
                 _sentence_feature("refusal", "Rewards refusals", "Penalises refusals", "refusal"),
                 _sentence_flip, _sentence_compression)
"""The verdict's candidate sentences, in order; the first five that have an interval make the verdict."""


def verdict(card: Mapping[str, Any]) -> list[str]:
    """Up to five plain sentences from the card's numbers. Each states an effect only when its 95 % interval
    excludes the null (0, or ½ for agreement, 1 for compression) and otherwise says that it does not; a lens
    without an interval (skipped, or too few units) gives no sentence. The batch warning comes first when the
    batched == one-at-a-time check failed."""
    if not isinstance(card, Mapping):
        raise TypeError(f"card must be a mapping (build_card's output), got {type(card).__name__}")
    sentences = []
    for rule in VERDICT_RULES:
        text = rule(card)
        if text:
            sentences.append(text)
        if len(sentences) == MAX_VERDICT:
            break
    return sentences


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|$])")


def _md(text: Any) -> str:
    """Text safe inside a markdown table cell."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _skipped(section: Any) -> str | None:
    return section.get("skipped") if isinstance(section, Mapping) else None


def format_value(v: Any) -> str:
    if isinstance(v, Mapping) and "estimate" in v:
        return _ci(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, Mapping) and "skipped" in v:
        return f"skipped: {v['skipped']}"
    return str(v)


def _inputs_md(s: Mapping[str, Any]) -> list[str]:
    rows = [(k.replace("_", " "), format_value(v)) for k, v in s.items() if k not in ("batch_invariance", "dtype_drift")]
    b = s.get("batch_invariance") or {}
    if b:
        rows.append(("batched == one at a time", f"{'yes' if b['equal'] else 'NO'} (largest difference "
                     f"{b['max_abs_difference']:.3g} over {b['n']} probe pairs)"))
    d = s.get("dtype_drift") or {}
    if "skipped" in d:
        rows.append(("float32 vs bfloat16", f"skipped: {d['skipped']}"))
    elif d:
        rows.append(("float32 vs bfloat16 Kendall τ", f"{_ci(d['kendall'], signed=False)} over {d['n']} texts"))
        rows.append(("float32 vs bfloat16 Spearman ρ", format_value(d["spearman"])))
        rows.append(("float32 vs bfloat16 largest difference", format_value(d["max_abs_difference"])))
    return [_table(["", ""], rows)]


def _vocabulary_md(s: Mapping[str, Any]) -> list[str]:
    out = [f"Swept {s['tokens_swept']:,} tokens per prompt ({s['sample']})."]
    for p in s["per_prompt"]:
        out.append(f"**{_md(p['prompt'])}**: {_md(p['text'])} — skew {_ci(p['skew'])} over {p['skew']['n']:,} tokens")
        rows = [(i + 1, o["token"], f"{o['score']:.3f}", q["token"], f"{q['score']:.3f}")
                for i, (o, q) in enumerate(zip(p["optimal"], p["pessimal"]))]
        out.append(_table(["rank", "optimal", "score", "pessimal", "score"], rows))
    rows = []
    for key, label in (("frequency_bias", "frequency bias (SD per log frequency)"),
                       ("framing_asymmetry", "framing asymmetry")):
        item = s.get(key) or {}
        rows.append((label, f"skipped: {item['skipped']}" if "skipped" in item else
                     f"{_ci(item)} over {item['n']:,} {item['unit']}"))
    out.append(_table(["lens", "estimate [95% interval]"], rows))
    ident = s.get("identity_ranks") or {}
    if "groups" in ident:
        out.append(f"Identity terms, {ident['what']}, prompt *{_md(ident['prompt'])}*:")
        out.append(_table(["group", "median percentile", "tokens", "lowest token"],
                          [(g["group"], _ci(g, signed=False), g["n"], f"{g['lowest']} ({g['lowest_percentile']:.1f})")
                           for g in ident["groups"]]))
    elif ident:
        out.append(f"Identity terms: skipped: {_md(ident['skipped'])}")
    near = s.get("neighbours")
    if near and "skipped" in near:
        out.append(f"Among other reward models: skipped: {_md(near['skipped'])}")
    elif near:
        mds = {m["rm"]: m for m in near.get("mds", [])}
        out.append(f"Among other reward models (prompt *{_md(near['prompt'])}*, {near['shared_tokens']:,} shared "
                   "tokens; τ with this RM, interval over tokens; MDS of 1 − τ):")
        rows = [(r["rm"], _ci(r), f"{mds[r['rm']]['x']:+.2f}, {mds[r['rm']]['y']:+.2f}" if r["rm"] in mds else "")
                for r in near["tau"]]
        spec = next((m for m in mds if m not in {r["rm"] for r in near["tau"]}), None)
        if spec is not None:
            rows.insert(0, (f"{spec} (this RM)", "1", f"{mds[spec]['x']:+.2f}, {mds[spec]['y']:+.2f}"))
        out.append(_table(["reward model", "Kendall τ [95% interval]", "MDS x, y"], rows))
    return out


def _imprint_md(s: Mapping[str, Any]) -> list[str]:
    a = s["agreement"]
    out = [f"{s['probe']['pairs']:,} probe pairs over {s['probe']['prompts']:,} prompts; agreement with their labels "
           f"{_ci(a, percent=True)} (interval over {a['n']} {a['unit']}); ties {s['ties']}."
           + (f" Agreement with the gold the labels were drawn from: {_ci(s['agreement_gold'], percent=True)}."
              if "agreement_gold" in s else "")]
    if _skipped(s["features"]):
        out.append(f"Feature imprint skipped: {_md(s['features']['skipped'])}")
    else:
        out.append(_table(["feature", "role", "imprint [95% interval]", "p (Bonferroni)", "unit"],
                          [(f["feature"], f["role"], _ci(f), format_value(f["p_adj"]), f["per"]) for f in s["features"]]))
        out.append(f"R² = {s['r2']:.3f} over {s['texts']:,} texts; errors clustered by prompt."
                   + (f" Not identifiable on these texts (constant or redundant): {', '.join(s['dropped_features'])}."
                      if s["dropped_features"] else ""))
    return out


def _robustness_md(s: Mapping[str, Any]) -> list[str]:
    rows = []
    for kind, label in (("paraphrase", "meaning-preserving paraphrase"), ("flip", "sentiment flip")):
        item = s.get(kind) or {}
        if "skipped" in item:
            rows.append((label, "skipped", item["skipped"], ""))
            continue
        rows.append((label, _ci(item["mean_change"]), _ci(item["mean_abs_change"]),
                     f"{item['texts_changed']} of {item['texts']}"))
    out = [_table(["rewrite", "mean score change", "mean |change|", "texts changed"], rows)]
    sens = (s.get("flip") or {}).get("sentiment_sensitivity")
    if sens and "skipped" not in sens:
        out.append(f"Under the flip, Δ reward per unit Δ VADER compound: {_ci(sens)}.")
    return out


def _transform_md(s: Mapping[str, Any]) -> list[str]:
    c = s["calibration"]
    t = s["temperature"]
    rows = [("calibration pairs", f"{c['pairs']:,} ({c['source']}); accuracy {c['accuracy']:.3f}"),
            ("Bradley–Terry temperature T", f"skipped: {t['skipped']}" if "skipped" in t else _ci(t, signed=False))]
    r = s.get("reference") or {}
    if "skipped" in r:
        rows.append(("reference and compression", f"skipped: {r['skipped']}"))
    elif r:
        rows.append(("reference", f"quantile {r['quantile']} of {r['responses_per_prompt']} responses per prompt, "
                     f"{r['prompts']} prompts"))
        rows.append(("compression above / below the reference", _ci(r["compression"], signed=False)))
    b = s.get("best_of_n") or {}
    if "skipped" in b:
        rows.append(("best-of-n gain", f"skipped: {b['skipped']}"))
    elif b:
        share = b["share_of_oracle_gain"]
        rows.append((f"best-of-{b['n']} gain on the gold", f"{_ci(b['gain'])}" +
                     (f"; {100 * share:.0f}% of the oracle's gain" if share is not None else "")))
    return [_table(["", ""], rows)]


_RENDER = {"inputs": ("Inputs", _inputs_md), "vocabulary": ("Vocabulary (chapter 3)", _vocabulary_md),
           "imprint": ("Imprint (chapter 4)", _imprint_md), "robustness": ("Robustness (chapter 4)", _robustness_md),
           "transform": ("Transform (chapter 5)", _transform_md)}


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card as a MyST page: title, the RM's spec and content identity, the verdict, then one section per lens."""
    if not isinstance(card, Mapping) or "model" not in card:
        raise ValueError("card must be build_card's output (a mapping with a 'model' entry)")
    model = card["model"]
    lines = [f"# Reward-model card: {_md(model['spec'])}", ""]
    header = [("spec", model["spec"]), ("kind", model.get("kind")), ("content identity", model.get("identity"))]
    header += [(k, model[k]) for k in ("description", "parameters", "dtype", "device") if model.get(k) is not None]
    if card.get("seconds") is not None:
        header.append(("audit time", f"{card['seconds']:.0f} s"))
    lines += [_table(["", ""], header), "", "Every number of this page, and more, is in [card.json](card.json).", "",
              "## Verdict", ""]
    verdict_lines = card.get("verdict") or []
    lines += [f"- {_md(s)}" for s in verdict_lines] or ["- No lens had an interval to decide on."]
    lines += ["", "Each sentence states an effect only when its 95% interval excludes the null (0; ½ for agreement; "
              "1 for compression).", ""]
    for name in SECTIONS:
        if name not in card:
            continue
        title, render = _RENDER[name]
        lines += [f"## {title}", ""]
        reason = _skipped(card[name])
        blocks = [f"Skipped: {_md(reason)}"] if reason else render(card[name])
        for block in blocks:
            lines += [block, ""]
    params = card.get("parameters") or {}
    if params:
        lines += ["## Parameters", "", "```yaml", *(f"{k}: {json.dumps(v)}" for k, v in params.items()), "```", ""]
    return "\n".join(lines)


def write_card(card: Mapping[str, Any], directory: str | Path, sweeps: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write ``card.json`` and ``card.md`` into ``directory`` (made if needed), each atomically, and with ``sweeps``
    (:func:`vocabulary_sweeps`) ``sweeps.parquet``, which the book's explorer reads."""
    from ...artifacts import atomic_write_bytes, atomic_write_text
    from ..sweep import check_sweeps

    if not isinstance(card, Mapping):
        raise TypeError(f"card must be a mapping, got {type(card).__name__}")
    if sweeps is not None:
        check_sweeps(sweeps)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(plain(card), indent=2, allow_nan=False, ensure_ascii=False)
    page = card_markdown(card)
    paths = {"json": directory / CARD_JSON, "markdown": directory / "card.md"}
    if sweeps is not None:
        paths["sweeps"] = directory / SWEEPS_FILE
        atomic_write_bytes(paths["sweeps"], sweeps.to_parquet(index=False))
    atomic_write_text(paths["json"], text + "\n")
    atomic_write_text(paths["markdown"], page)
    return paths


# --------------------------------------------------------------------------------------------------
# Several cards: the comparison table and the explorer's tables


def read_cards(folders: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The cards in ``folders`` (each written by :func:`write_card`), in order."""
    if isinstance(folders, str | Path) or not isinstance(folders, Sequence):
        raise TypeError(f"folders must be a list of card folders, got {type(folders).__name__}")
    cards = []
    for folder in folders:
        path = Path(folder) / CARD_JSON
        if not path.is_file():
            raise ValueError(f"no {CARD_JSON} in {str(folder)!r}: not a card folder (rewardscope audit writes one)")
        card = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(card, dict) or "model" not in card:
            raise ValueError(f"{path} is not a reward-model card (no 'model' entry)")
        cards.append(card)
    return cards


def read_sweeps(folders: Sequence[str | Path]) -> pd.DataFrame | None:
    """The token sweeps saved beside the cards in ``folders`` (:func:`write_card`), concatenated; None if none has."""
    if isinstance(folders, str | Path) or not isinstance(folders, Sequence):
        raise TypeError(f"folders must be a list of card folders, got {type(folders).__name__}")
    frames = [pd.read_parquet(p) for p in (Path(f) / SWEEPS_FILE for f in folders) if p.is_file()]
    return pd.concat(frames, ignore_index=True) if frames else None


def _headline_item(card: Mapping[str, Any], path: Sequence[str]) -> Any:
    if path[:2] == ("imprint", "features"):
        return _feature(card, path[2]) or _at(card, *path[:2])  # the feature, or why the features were skipped
    return _at(card, *path)


HEADLINES = (  # (column, where in the card, how _ci shows it)
    ("agreement with labels", ("imprint", "agreement"), {"percent": True}),
    ("agreement with gold", ("imprint", "agreement_gold"), {"percent": True}),
    ("length imprint", ("imprint", "features", "length"), {}),
    ("sentiment imprint", ("imprint", "features", "sentiment"), {}),
    ("refusal imprint", ("imprint", "features", "refusal"), {}),
    ("paraphrase: mean score change", ("robustness", "paraphrase", "mean_change"), {}),
    ("flip: score per VADER unit", ("robustness", "flip", "sentiment_sensitivity"), {}),
    ("frequency bias (SD per log frequency)", ("vocabulary", "frequency_bias"), {}),
    ("temperature T", ("transform", "temperature"), {"signed": False}),
    ("compression above r_ref", ("transform", "reference", "compression"), {"signed": False}),
    ("best-of-n gain on the gold", ("transform", "best_of_n", "gain"), {}),
)
"""The comparison table's columns: the card's headline numbers, each an estimate with its 95 % interval."""


def compare_cards(cards: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per card (index: the RM's spec), one column per headline (:data:`HEADLINES`): "estimate [low, high]",
    "skipped" where the card skipped that lens, "n/a" where the card has no such number."""
    if isinstance(cards, Mapping) or not isinstance(cards, Sequence) or not cards:
        raise ValueError("cards must be a non-empty list of cards (build_card's or read_cards' output)")
    rows = {}
    for card in cards:
        if not isinstance(card, Mapping) or "model" not in card:
            raise ValueError("every card must be build_card's output (a mapping with a 'model' entry)")
        row = {}
        for column, path, style in HEADLINES:
            item = _headline_item(card, path)
            row[column] = (_ci(item, **style) if isinstance(item, Mapping) and "estimate" in item else
                           "skipped" if isinstance(item, Mapping) and "skipped" in item else "n/a")
        rows[card["model"]["spec"]] = row
    if len(rows) < len(cards):
        raise ValueError("two cards audit the same spec; compare each reward model once")
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("reward model")


def comparison_markdown(cards: Sequence[Mapping[str, Any]], links: Sequence[str] | None = None) -> str:
    """:func:`compare_cards` as a MyST table whose first column links each RM to its card page (``links``, in the
    order of ``cards``), with a line saying what the cells are."""
    table = compare_cards(cards)
    if links is not None and len(links) != len(cards):
        raise ValueError(f"links must give one link per card: {len(links)} links for {len(cards)} cards")
    names = [_md(s) if links is None else f"[{_md(s)}]({link})" for s, link in zip(table.index, links or table.index)]
    lines = ["| reward model | " + " | ".join(_md(c) for c in table.columns) + " |", "|" + "---|" * (table.shape[1] + 1)]
    lines += ["| " + " | ".join([name, *(_md(v) for v in row)]) + " |" for name, row in zip(names, table.to_numpy())]
    return ("Each cell is the card's estimate with its 95% interval over the unit that varies (the card names it); "
            "*skipped*: the lens did not apply to this model or probe set; *n/a*: the card has no such number.\n\n"
            + "\n".join(lines) + "\n")


def feature_table(cards: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every card's feature imprints in one long table: rm, feature, role, estimate, low, high, p (Bonferroni), unit."""
    if isinstance(cards, Mapping) or not isinstance(cards, Sequence):
        raise ValueError("cards must be a list of cards (build_card's or read_cards' output)")
    rows = [{"rm": card["model"]["spec"], "feature": f["feature"], "role": f["role"], "estimate": f["estimate"],
             "low": f["low"], "high": f["high"], "p (Bonferroni)": f.get("p_adj"), "unit": f["per"]}
            for card in cards for f in (_at(card, "imprint", "features") if isinstance(
                _at(card, "imprint", "features"), list) else [])]
    return pd.DataFrame(rows, columns=["rm", "feature", "role", "estimate", "low", "high", "p (Bonferroni)", "unit"])


def token_table(sweeps: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Token sweeps (several RMs and prompts: columns rm, prompt, token_id, token, score) side by side: one row per
    decoded token (shown as :func:`_show` prints it), and for each (RM, prompt) the token's score (``digits``
    decimals) and rank (1 = optimal; ties share the best rank). A string that several ids of one RM decode to keeps
    its best-ranked id; a token that an RM's vocabulary lacks is empty there."""
    from ..sweep import check_sweeps

    sweeps = check_sweeps(sweeps)
    _checks.count("digits", digits, 0)
    ranked = sweeps.assign(rank=sweeps.groupby(["rm", "prompt"], sort=False)["score"].rank(ascending=False,
                                                                                           method="min"))
    ranked = ranked.sort_values("rank", kind="stable").drop_duplicates(["rm", "prompt", "token"])
    ranked["column"] = ranked["rm"] + " · " + ranked["prompt"]
    order = list(dict.fromkeys(ranked.sort_index()["column"]))
    wide = ranked.pivot(index="token", columns="column", values=["score", "rank"])
    out = pd.DataFrame(index=wide.index)
    for column in order:
        out[f"{column}: score"] = wide[("score", column)].round(digits)
        out[f"{column}: rank"] = wide[("rank", column)].astype("Int64")
    out.index = [_show(t) for t in out.index]
    return out.rename_axis("token").reset_index()


def mds_svg(card: Mapping[str, Any]) -> str | None:
    """The card's place among other reward models (chapter 3's MDS map of 1 − Kendall τ on its first prompt) as
    inline SVG: a matplotlib scatter whose points show, on hover, the RM and its τ with the audited RM; None when
    the card has no map (it was compared with fewer than two other RMs)."""
    import io
    from xml.etree import ElementTree

    import matplotlib.pyplot as plt

    if not isinstance(card, Mapping) or "model" not in card:
        raise ValueError("card must be build_card's output (a mapping with a 'model' entry)")
    near = _at(card, "vocabulary", "neighbours")
    if not isinstance(near, Mapping) or not near.get("mds"):
        return None
    tau = {r["rm"]: r for r in near["tau"]}
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, point in enumerate(near["mds"]):
        ours = point["rm"] not in tau
        ax.scatter([point["x"]], [point["y"]], s=90 if ours else 50, marker="*" if ours else "o", gid=f"mds-{i}")
        ax.annotate(point["rm"], (point["x"], point["y"]), xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.set(xlabel="MDS dimension 1 (1 − Kendall τ)", ylabel="MDS dimension 2",
           title=f"Token rankings on the {near['prompt']!r} prompt")
    ax.margins(0.25)
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):  # text as text: readable, searchable, smaller
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    namespace = "http://www.w3.org/2000/svg"
    ElementTree.register_namespace("", namespace)
    root = ElementTree.fromstring(buffer.getvalue())
    for i, point in enumerate(near["mds"]):
        group = root.find(f".//*[@id='mds-{i}']")
        title = ElementTree.Element(f"{{{namespace}}}title")
        title.text = (f"{point['rm']}: the audited reward model" if point["rm"] not in tau else
                      f"{point['rm']}: τ with {card['model']['spec']} = {_ci(tau[point['rm']])}")
        group.insert(0, title)
    root.set("role", "img")
    root.set("aria-label", f"MDS map of {len(near['mds'])} reward models' token rankings")
    return ElementTree.tostring(root, encoding="unicode")


# --------------------------------------------------------------------------------------------------
# Before any compute: does the spec name a reward model with one scalar output?


def scalar_reward_problem(spec: str, options: Mapping[str, Any] | None = None) -> str | None:
    """Why ``spec`` cannot give one scalar reward per pair, read from metadata only (nothing is loaded or built);
    None when it can, or when only running it could tell (custom code, a hub model not yet downloaded)."""
    from ...hf import custom_class, read_config
    from ...rewards import reward_kinds
    from ...zoo import embedded_names, entry, local_path, read_sidecar

    options = dict(options or {})
    if spec in reward_kinds():
        return None
    path = None
    if spec in embedded_names():
        item = entry(spec)
        if item.kind != "reward-model":
            return f"{spec!r} is an embedded {item.kind}, not a reward model (embedded reward models: " \
                   f"{', '.join(n for n in embedded_names() if entry(n).kind == 'reward-model' and ':' not in n)})"
        path = item.locate()
    elif local_path(spec).is_dir():
        path = local_path(spec)
    else:
        path = _hub_cached(spec)
    if path is None or not (Path(path) / "config.json").is_file():
        return None
    try:
        config = read_config(path)
    except (OSError, ValueError):
        return None
    if custom_class(config):
        return None
    kind = read_sidecar(path).get("kind")
    if kind not in (None, "reward-model") and not options.get("allow_random_head"):
        return f"{spec!r} is a {kind}, not a reward model"
    heads = [a for a in config.get("architectures") or [] if a.endswith("ForSequenceClassification")]
    if not heads and not options.get("allow_random_head"):
        return (f"{spec!r} is not a sequence-classification reward model (architectures: {config.get('architectures')}); "
                "it returns no scalar reward")
    n_labels = config.get("num_labels") or len(config.get("id2label") or {}) or 2
    if heads and n_labels != 1 and options.get("label") is None:
        return (f"{spec!r} returns {n_labels} logits, not one scalar; pick the reward with -p reward_options "
                f"'{{\"{spec}\": {{\"label\": K}}}}'")
    return None


def _hub_cached(spec: str) -> Path | None:
    from ...zoo import _HUB_ID

    if not _HUB_ID.match(spec) or spec.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = spec.partition("@")
        found = try_to_load_from_cache(repo, "config.json", revision=revision or None)
    except Exception:  # noqa: BLE001 - a malformed id or an odd cache: only running it could tell
        return None
    return Path(found).parent if isinstance(found, str) else None


def default_card_dir(spec: str) -> Path:
    """Where a card goes when no folder is given: ``_build/audits/<safe name>`` under the caller's folder."""
    from ...zoo import local_path

    return local_path(Path("_build") / "audits" / safe_name(spec))
