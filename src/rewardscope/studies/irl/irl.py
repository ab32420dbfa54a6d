"""Max-margin inverse reinforcement learning of a reward model from demonstrations (Joselowitz et al. 2024).

The IRL extraction study shows a reward model pairs of demonstrations: o⁺ from the *expert* (the
policy RLHF-tuned on a hidden true reward) and o⁻ from the base policy, for the same prompt. It then
fits a reward R̂ that ranks every o⁺ above its o⁻. With the margin d = R̂(o⁺) − R̂(o⁻), the paper's
"max-margin" loss is asymmetric: −d when d > 0 and −2d otherwise, so a pair ranked the wrong way
costs twice as much as a right one earns. The recovered R̂ is then compared with the true reward on
held-out texts (accuracy/F1 after thresholding, correlations), and the spread over restarts shows
that the reward is not identified by the demonstrations.

Two inputs, one loop:

* numeric feature arrays [n, d]: a linear reward R̂(x) = w·x (no bias: pairs cannot identify an offset);
* texts: a reward-model backbone (a causal LM such as the base policy plus a linear score head, or an
  encoder such as MiniLM), tokenised exactly as :class:`rewardscope.rewards.HFRewardModel` scores it
  (:func:`rewardscope.hf.reward_inputs`: chat template, one BOS), trained as in
  :mod:`rewardscope.training.train` and saved as an ordinary HF reward-model directory.

Differences from the released code (ai4ai-lab/irl_for_llms), each fixed here on purpose:

- every demonstration is scored as a whole text, each on its own (the data loader yielded ``row[-1]``,
  the *last character* of each string, and the two texts of a pair went into one tokenizer call);
- gradients are zeroed before every step (they were never zeroed, so they summed over the run);
- the loss is bounded below: the gain of a correctly ranked pair is capped at ``margin`` (see
  :func:`irl_loss`), so inflating the reward scale earns nothing (the original loss −d had no
  bound, and the epoch losses ran to −5,068);
- the best of several restarts is chosen by pairwise accuracy on held-out *validation*
  demonstrations, never by accuracy against the true reward on the test texts;
- besides accuracy at the threshold 0 (which depends on the reward's unidentified offset), the
  metrics include offset-free ones (AUROC, rank correlations) and a threshold calibrated on validation.

The first three bugs can be put back, on purpose, with ``max_margin_irl(..., faithful=True)`` (or a subset
of :data:`PAPER_BUGS`): the *paper-faithful arm*, so that a study can run both arms over the same restarts
and see which of the paper's results (its wide spread over restarts) came from the bugs.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ... import _checks, hf
from ...training.train import BTConfig, freeze_bottom_layers, load_backbone
from ...zoo import resolve, write_sidecar

logger = logging.getLogger(__name__)

LOSSES = ("max_margin", "logistic", "hinge")
LINEAR_DEFAULTS = {"epochs": 100, "learning_rate": 0.05, "batch_size": 256}
"""Optimiser settings of the linear path (AdamW); texts take theirs from a :class:`BTConfig`."""
PAPER_BUGS = ("last_character", "accumulate_gradients", "unbounded_loss")
"""The released code's training bugs that ``faithful=`` reproduces:

- ``"last_character"``: texts only; each demonstration is trained on as its last character alone, without its
  prompt (the data loader yielded ``row[-1]`` of each string). Validation pairs and the saved model still score
  whole texts, as the paper's evaluation did;
- ``"accumulate_gradients"``: gradients are never zeroed, so every step applies the sum of all batch gradients
  so far;
- ``"unbounded_loss"``: the asymmetric loss without the cap, max(−2d, −d), unbounded below (``loss`` must be
  ``"max_margin"``); validation losses are reported with the same loss.
"""


# --------------------------------------------------------------------------------------------------
# The loss


def irl_loss(margins, loss: str = "max_margin", margin: float = 1.0):
    """Per-pair loss of the reward margins d = R̂(preferred) − R̂(dispreferred); same type and shape as ``margins``.

    ``"max_margin"``: the paper's asymmetric loss (−d for d > 0, −2d for d ≤ 0) with the gain capped at
    ``margin``: ℓ(d) = max(−2d, −d, −margin), i.e. −min(d, margin) for d ≥ 0 and −2d below 0. It equals a
    hinge at ``margin`` plus one more unit of slope on wrongly ranked pairs,
    max(0, margin − d) + max(0, −d) − margin.

    Why a capped margin rather than a unit-norm constraint or a squashed d (tanh, d/(1+|d|)): the
    uncapped loss always gains by scaling R̂ up, so the reward scale drifts without bound. A norm
    constraint on the head does not stop that for a network, whose hidden states can grow, while the
    cap bounds the loss below for every reward model: once a pair clears the margin it stops pulling.
    It keeps the paper's slopes (1 and 2) exactly where pairs are not yet separated, keeps the gradient
    of badly inverted pairs (a squashed d loses it), and is a maximum of affine functions of d, hence
    convex for a linear reward. It is the constraint form of max-margin IRL (R̂(o⁺) ≥ R̂(o⁻) + margin)
    with the paper's penalties for violations.

    ``"hinge"``: max(0, margin − d) (the paper's alternative, margin 1). ``"logistic"``: −log σ(d),
    Bradley–Terry; ``margin`` is not used.

    Examples
    --------
    >>> irl_loss(np.array([-1.0, 0.0, 0.5, 3.0]))
    array([ 2. , -0. , -0.5, -1. ])
    >>> irl_loss(np.array([-1.0, 0.5, 3.0]), "hinge")
    array([2. , 0.5, 0. ])
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    _check_margin(margin)
    if isinstance(margins, np.ndarray | float | int):
        d = np.asarray(margins, dtype=np.float64)
        if loss == "max_margin":
            return np.maximum(np.maximum(-2.0 * d, -d), -margin)
        if loss == "hinge":
            return np.maximum(0.0, margin - d)
        return np.logaddexp(0.0, -d)  # −log σ(d) without overflow
    import torch

    d = margins
    if loss == "max_margin":
        return torch.maximum(torch.maximum(-2.0 * d, -d), torch.full_like(d, -margin))
    if loss == "hinge":
        return torch.relu(margin - d)
    return -torch.nn.functional.logsigmoid(d)


def _training_loss(margins, loss: str, margin: float, unbounded: bool):
    """The loss a restart trains on: :func:`irl_loss`, or with ``unbounded`` the paper's uncapped max(−2d, −d)."""
    if not unbounded:
        return irl_loss(margins, loss, margin)
    if isinstance(margins, np.ndarray | float | int):
        d = np.asarray(margins, dtype=np.float64)
        return np.maximum(-2.0 * d, -d)
    import torch

    return torch.maximum(-2.0 * margins, -margins)


def _faithful(faithful, texts: bool, loss: str) -> tuple[str, ...]:
    """The bugs of :data:`PAPER_BUGS` to reproduce: True gives all that apply (features have no last character)."""
    if isinstance(faithful, bool):
        bugs = tuple(b for b in PAPER_BUGS if texts or b != "last_character") if faithful else ()
    elif isinstance(faithful, str) or not isinstance(faithful, Sequence | set | frozenset):
        raise ValueError(f"faithful must be True, False or a sequence of {', '.join(PAPER_BUGS)}; got {faithful!r}")
    else:
        if unknown := sorted(set(faithful) - set(PAPER_BUGS)):
            raise ValueError(f"faithful names unknown bug(s) {unknown}; the known ones are {', '.join(PAPER_BUGS)}")
        bugs = tuple(b for b in PAPER_BUGS if b in set(faithful))
        if "last_character" in bugs and not texts:
            raise ValueError("faithful 'last_character' is for texts; feature arrays have no last character")
    if "unbounded_loss" in bugs and loss != "max_margin":
        raise ValueError(f"faithful 'unbounded_loss' is the paper's max_margin loss uncapped; got loss={loss!r}")
    return bugs


def _check_margin(margin) -> None:
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 < margin < np.inf:
        raise ValueError(f"margin must be a finite number > 0, got {margin!r}")


# --------------------------------------------------------------------------------------------------
# Inputs


def _is_texts(values) -> bool:
    if isinstance(values, str | bytes) or (isinstance(values, np.ndarray) and values.dtype.kind not in "OU"):
        return False
    try:
        items = list(values)
    except TypeError:
        return False
    return bool(items) and all(isinstance(v, str) for v in items)


def _texts(name: str, values, n: int | None = None) -> list[str]:
    if isinstance(values, str):
        raise ValueError(f"{name} must be a sequence of strings, not a single string")
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty: IRL needs at least one pair of demonstrations")
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}] is {type(values[bad]).__name__}; {name} must be all strings or a numeric array")
    if n is not None and len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but preferred has {n}; they must pair up")
    return values


def _features(name: str, values, shape: tuple[int, ...] | None = None) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array [n, d] or a sequence of strings, got "
                         f"{type(values).__name__}") from None
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty 2-D feature array [n, d], got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape} but preferred has {shape}; pairs must match row by row")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(array)))} non-finite values (NaN or inf)")
    return array


@dataclass
class _Pairs:
    """Demonstration pairs: feature arrays [n, d] (linear) or texts with optional shared prompts."""

    preferred: Any
    dispreferred: Any
    prompts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.preferred)

    def take(self, index) -> _Pairs:
        index = np.asarray(index)
        if isinstance(self.preferred, np.ndarray):
            return _Pairs(self.preferred[index], self.dispreferred[index])
        pick = lambda values: [values[i] for i in index]
        return _Pairs(pick(self.preferred), pick(self.dispreferred), None if self.prompts is None else pick(self.prompts))

    def prompt_list(self) -> list[str]:
        """The prompt of each pair ("" without prompts: the text is then scored as a whole response)."""
        return self.prompts if self.prompts is not None else [""] * len(self)


def _pairs(preferred, dispreferred, prompts, role: str = "") -> _Pairs:
    names = [f"{role}{n}" for n in ("preferred", "dispreferred", "prompts")]
    for name, values in zip(names, (preferred, dispreferred, prompts)):
        if isinstance(values, str):
            raise ValueError(f"{name} must be a sequence of strings (or a feature array), not a single string")
    if _is_texts(preferred) or _is_texts(dispreferred):
        pref = _texts(names[0], preferred)
        dispref = _texts(names[1], dispreferred, len(pref))
        prm = None if prompts is None else _texts(names[2], prompts, len(pref))
        same = [i for i, (a, b) in enumerate(zip(pref, dispref)) if a == b]
    else:
        if prompts is not None:
            raise ValueError(f"{names[2]} is only for texts; feature arrays carry no prompts")
        pref = _features(names[0], preferred)
        dispref = _features(names[1], dispreferred, pref.shape)
        prm = None
        same = np.flatnonzero(np.all(pref == dispref, axis=1)).tolist()
    if same:
        raise ValueError(f"{role or ''}pairs {same[:5]}{' ...' if len(same) > 5 else ''} have identical preferred and "
                         "dispreferred demonstrations; drop them (they carry no preference)")
    return _Pairs(pref, dispref, prm)


def _split(pairs: _Pairs, validation, seed: int) -> tuple[_Pairs, _Pairs, np.ndarray | None]:
    """(train, validation, held-out row indices or None): a seeded split by prompt, or explicit pairs."""
    from sklearn.model_selection import GroupShuffleSplit

    if isinstance(validation, tuple):
        if len(validation) not in (2, 3):
            raise ValueError("validation must be a fraction in (0, 1) or a tuple (preferred, dispreferred[, prompts]), "
                             f"got a tuple of {len(validation)}")
        held = _pairs(*validation[:2], validation[2] if len(validation) == 3 else None, role="validation ")
        if isinstance(pairs.preferred, np.ndarray) != isinstance(held.preferred, np.ndarray):
            raise ValueError("validation pairs must be of the same kind (texts or feature arrays) as the training pairs")
        if isinstance(held.preferred, np.ndarray) and held.preferred.shape[1] != pairs.preferred.shape[1]:
            raise ValueError(f"validation features have {held.preferred.shape[1]} columns, training features "
                             f"{pairs.preferred.shape[1]}")
        if (held.prompts is None) != (pairs.prompts is None):
            raise ValueError("validation must carry prompts exactly when the training pairs do")
        return pairs, held, None
    if isinstance(validation, bool) or not isinstance(validation, float | int) or not 0 < validation < 1:
        raise ValueError(f"validation must be a fraction in (0, 1) or a tuple (preferred, dispreferred[, prompts]), "
                         f"got {validation!r}")
    # the same prompt never sits on both sides of the split (its two texts would leak)
    groups = pd.factorize(pd.Series(pairs.prompts))[0] if pairs.prompts is not None else np.arange(len(pairs))
    if len(np.unique(groups)) < 2:
        raise ValueError(f"a validation split needs at least 2 distinct prompts (pairs), got {len(np.unique(groups))}")
    splitter = GroupShuffleSplit(n_splits=1, test_size=validation, random_state=seed)
    train_index, held_index = next(splitter.split(np.zeros(len(pairs)), groups=groups))
    if len(train_index) == 0:
        raise ValueError(f"validation={validation} leaves no training pairs out of {len(pairs)}; lower it")
    train_index, held_index = np.sort(train_index), np.sort(held_index)  # keep the given order of pairs
    return pairs.take(train_index), pairs.take(held_index), held_index


# --------------------------------------------------------------------------------------------------
# Result


@dataclass
class IRLResult:
    """A recovered reward and how it was chosen.

    restarts: one row per restart: restart, seed, train_loss (mean over the last epoch), validation_loss,
        validation_accuracy (share of validation pairs with R̂(preferred) > R̂(dispreferred)), selected.
    best_restart: the restart chosen by validation accuracy (ties: lower validation loss, then the first).
    log: one row per optimiser step: restart, epoch, step, loss, grad_norm (before the step; gradients
        are zeroed before every backward pass, except in the paper-faithful arm with "accumulate_gradients",
        where grad_norm is that of the running sum).
    validation_index: rows of the given pairs held out for validation (None with explicit validation).
    weights: linear path, the selected restart's w, shape [d]; restart_weights: [n_restarts, d].
    path: text path, the saved HF reward-model directory (``load_reward_model(path)`` scores with it).
    """

    loss: str
    margin: float
    restarts: pd.DataFrame
    best_restart: int
    log: pd.DataFrame
    validation_index: np.ndarray | None
    weights: np.ndarray | None = None
    restart_weights: np.ndarray | None = None
    path: Path | None = None
    metrics: dict = field(default_factory=dict)

    @cached_property
    def reward_model(self):
        """The saved reward model (text path), loaded once."""
        from ...rewards import load_reward_model

        if self.path is None:
            raise ValueError("this result is a linear reward (feature arrays); it has weights, not a reward-model directory")
        return load_reward_model(str(self.path))

    def score(self, inputs, prompts: Sequence[str] | None = None) -> np.ndarray:
        """R̂ of each input: feature rows [n, d] (X @ w) or texts (with their prompts, "" when none)."""
        if self.weights is not None:
            if prompts is not None or _is_texts(inputs):
                raise ValueError("this result is a linear reward: it scores feature rows [n, d], not texts or prompts")
            X = _features("inputs", np.atleast_2d(np.asarray(inputs, dtype=np.float64)))
            if X.shape[1] != len(self.weights):
                raise ValueError(f"inputs have {X.shape[1]} features, the reward has {len(self.weights)} weights")
            return X @ self.weights
        texts = _texts("inputs", inputs)
        prompts = [""] * len(texts) if prompts is None else _texts("prompts", prompts, len(texts))
        return self.reward_model.score(prompts, texts)


# --------------------------------------------------------------------------------------------------
# Training


def _check_settings(epochs, learning_rate, batch_size) -> None:
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float) or not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")


def _run(margins_of, parameters, n_train: int, *, epochs: int, batch_size: int, learning_rate: float, loss: str,
         margin: float, seed: int, restart: int, rows: list, bar, train_mode=lambda: None,
         bugs: tuple[str, ...] = ()) -> float:
    """One restart's optimisation (AdamW, seeded batch order); returns the mean loss of the last epoch.
    ``bugs`` (of :data:`PAPER_BUGS`): "accumulate_gradients" skips ``zero_grad``, "unbounded_loss" drops the cap."""
    import torch

    optimiser = torch.optim.AdamW(parameters, lr=learning_rate)
    order_rng = np.random.default_rng(seed)
    step = 0
    for epoch in range(epochs):
        train_mode()
        epoch_losses = []
        order = order_rng.permutation(n_train)
        for start in range(0, n_train, batch_size):
            batch_loss = _training_loss(margins_of(order[start:start + batch_size]), loss, margin,
                                        "unbounded_loss" in bugs).mean()
            if "accumulate_gradients" not in bugs:  # the released code never zeroed: gradients summed over the run
                optimiser.zero_grad(set_to_none=True)
            batch_loss.backward()
            grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in parameters
                                                              if p.grad is not None]))
            optimiser.step()
            step += 1
            epoch_losses.append(batch_loss.item())
            rows.append({"restart": restart, "epoch": epoch, "step": step, "loss": epoch_losses[-1],
                         "grad_norm": grad_norm.item()})
            bar.update()
    return float(np.mean(epoch_losses))


def _selection_key(record) -> tuple:
    """Higher validation accuracy first, then lower validation loss, then the earlier restart."""
    return (-record["validation_accuracy"], record["validation_loss"], record["restart"])


def select_restart(restarts):
    """The restart :func:`max_margin_irl` keeps: the highest validation accuracy, then the lowest validation loss,
    then the earliest restart. ``restarts`` is a DataFrame (or a sequence of dicts) with the columns restart,
    validation_accuracy and validation_loss, one row per restart; the *index label* of the chosen row is returned
    (for a sequence, its position). Test texts and true rewards play no part.

    Examples
    --------
    >>> frame = pd.DataFrame({"restart": [0, 1, 2], "validation_accuracy": [0.8, 0.9, 0.9],
    ...                       "validation_loss": [0.1, 0.5, 0.4]}, index=[10, 11, 12])
    >>> select_restart(frame)
    12
    """
    frame = restarts if isinstance(restarts, pd.DataFrame) else pd.DataFrame(list(restarts))
    missing = {"restart", "validation_accuracy", "validation_loss"} - set(frame.columns)
    if missing or frame.empty:
        raise ValueError(f"restarts needs one row per restart with restart, validation_accuracy and validation_loss; "
                         f"missing {sorted(missing)}" if missing else "restarts is empty")
    return min(frame.index, key=lambda label: _selection_key(frame.loc[label]))


def split_by_prompt(prompts: Sequence[str], shares: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> np.ndarray:
    """"train", "validation" or "test" for each pair, split by prompt: every pair of one prompt lands on one side.

    The distinct prompts (in order of first appearance) are permuted with ``seed``; the first
    round(shares[0]·n) go to train, the next round(shares[1]·n) to validation, the rest to test.

    Examples
    --------
    >>> split_by_prompt(["a", "b", "c", "d", "a"], (0.5, 0.25, 0.25), seed=0).tolist()
    ['validation', 'train', 'train', 'test', 'validation']
    """
    shares = [float(x) for x in shares]
    if len(shares) != 3 or min(shares) <= 0 or abs(sum(shares) - 1) > 1e-9:
        raise ValueError(f"shares must be three positive shares (train, validation, test) summing to 1, got {shares}")
    groups, uniques = pd.factorize(pd.Series(list(prompts), dtype=object))
    if len(uniques) < 3:
        raise ValueError(f"a three-way split needs at least 3 distinct prompts, got {len(uniques)}")
    order = np.random.default_rng(seed).permutation(len(uniques))
    n_train, n_val = round(shares[0] * len(uniques)), round(shares[1] * len(uniques))
    side = np.select([order < n_train, order < n_train + n_val], ["train", "validation"], "test")
    return side[groups]


def _linear(train: _Pairs, held: _Pairs, *, loss, margin, seeds, settings, bar, bugs=()) -> dict:
    import torch

    delta = torch.as_tensor(train.preferred - train.dispreferred)  # (n, d): R̂(o⁺) − R̂(o⁻) = w·(x⁺ − x⁻)
    delta_val = torch.as_tensor(held.preferred - held.dispreferred)

    def restart_fit(restart: int, seed: int) -> tuple[dict, np.ndarray]:
        generator = torch.Generator().manual_seed(seed)
        w = torch.nn.Parameter(torch.randn(delta.shape[1], generator=generator, dtype=torch.float64)
                               / np.sqrt(delta.shape[1]))
        train_loss = _run(lambda idx: delta[idx] @ w, [w], len(train), loss=loss, margin=margin, seed=seed,
                          restart=restart, rows=rows, bar=bar, bugs=bugs, **settings)
        with torch.no_grad():
            d_val = (delta_val @ w).numpy()
        return _record(restart, seed, train_loss, d_val, loss, margin, bugs), w.detach().numpy().copy()

    rows: list[dict] = []
    records, weights = zip(*(restart_fit(restart, seed) for restart, seed in enumerate(seeds)))
    best = int(select_restart(list(records)))
    return {"records": list(records), "rows": rows, "best": best, "weights": weights[best],
            "restart_weights": np.stack(weights)}


def _record(restart: int, seed: int, train_loss: float, d_val: np.ndarray, loss: str, margin: float,
            bugs: tuple[str, ...] = ()) -> dict:
    return {"restart": restart, "seed": seed, "train_loss": train_loss,
            "validation_loss": float(_training_loss(d_val, loss, margin, "unbounded_loss" in bugs).mean()),
            "validation_accuracy": float(np.mean(d_val > 0))}


def _backbone(config: BTConfig, device: str, options: dict | None = None):
    """(model, tokenizer, architecture, pad_id) as :func:`rewardscope.training.train.train_reward_model` loads them; ``options``
    are keyword arguments of :func:`rewardscope.training.train.load_backbone` (chat_template, trust_remote_code)."""
    return load_backbone(config.backbone, device, **(options or {}))


_NOT_FOR_BACKBONES = ("dtype", "device")  # load_policy options that a backbone takes from the config and ``device``


def _backbone_options(options) -> dict:
    """``backbone_options`` as :func:`rewardscope.training.train.load_backbone` keyword arguments. A policy's options may be
    passed as they are: their dtype and device are left out (a backbone trains in float32 on ``device``)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"backbone_options must be a mapping of load_backbone options, got {type(options).__name__}")
    allowed = set(inspect.signature(load_backbone).parameters) - {"spec", "device"}
    if unknown := sorted(set(options) - allowed - set(_NOT_FOR_BACKBONES)):
        raise ValueError(f"backbone_options has unknown option(s) {unknown}; load_backbone takes {sorted(allowed)}")
    return {k: v for k, v in options.items() if k in allowed}


def _warn_if_cut(tokenizer, pair_sets: list[_Pairs], max_length: int) -> None:
    lengths = [len(ids) for pairs in pair_sets for texts in (pairs.preferred, pairs.dispreferred)
               for ids in tokenizer(pairs.prompt_list(), texts).input_ids]
    cut = sum(length > max_length for length in lengths)
    if cut:
        logger.warning("%d of %d (prompt, text) inputs are longer than max_length=%d tokens and will be cut; "
                       "raise config.max_length to score whole texts", cut, len(lengths), max_length)


def _text_restart(train: _Pairs, held: _Pairs, *, restart: int, seed: int, loss: str, margin: float,
                  config: BTConfig, device: str, rows: list, bar, backbone_options: dict | None = None,
                  bugs: tuple[str, ...] = ()) -> tuple[dict, Any, Any, str, int]:
    """One restart on texts: a fresh backbone and head, trained, scored on the validation pairs."""
    import torch

    resolve(config.backbone)  # build an embedded backbone first: a build draws random numbers
    torch.manual_seed(seed)  # after any build, before loading: the new score head is drawn from it
    model, tokenizer, architecture, pad_id = _backbone(config, device, backbone_options)
    if restart == 0 and architecture == "encoder":  # decoders warn in hf.reward_inputs; encoders cut silently
        _warn_if_cut(tokenizer, [train, held], config.max_length)
    n_trainable = freeze_bottom_layers(model, config.trainable)
    parameters = [p for p in model.parameters() if p.requires_grad]

    def margins_of(idx, pairs: _Pairs, last_character: bool = False) -> torch.Tensor:
        # each text on its own and whole, as HFRewardModel reads it (the original scored its last character)
        n, prompts = len(idx), pairs.prompt_list()
        texts = [pairs.preferred[i] for i in idx] + [pairs.dispreferred[i] for i in idx]
        if last_character:  # the paper-faithful arm: row[-1] of each demonstration string, no prompt
            texts, prompts = [t[-1:] for t in texts], [""] * len(prompts)
        batch = hf.reward_inputs(tokenizer, architecture, [prompts[i] for i in idx] * 2, texts, pad_id,
                                 config.max_length)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=config.bf16):
            scores = model(**{k: v.to(device) for k, v in batch.items()}).logits[:, 0].float()
        return scores[:n] - scores[n:]

    train_loss = _run(lambda idx: margins_of(idx, train, "last_character" in bugs), parameters, len(train),
                      epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate, loss=loss,
                      margin=margin, seed=seed, restart=restart, rows=rows, bar=bar, train_mode=model.train, bugs=bugs)
    model.eval()
    with torch.no_grad():
        d_val = np.concatenate([margins_of(np.arange(i, min(i + 64, len(held))), held).cpu().numpy()
                                for i in range(0, len(held), 64)])
    return _record(restart, seed, train_loss, d_val, loss, margin, bugs), model, tokenizer, architecture, n_trainable


def _texts_irl(train: _Pairs, held: _Pairs, *, loss, margin, seeds, config: BTConfig, device: str, output_dir: Path,
               bar, backbone_options: dict | None = None, bugs: tuple[str, ...] = ()) -> dict:
    records: list[dict] = []
    rows: list[dict] = []
    best_key, best_model = None, None
    for restart, seed in enumerate(seeds):
        record, model, tokenizer, architecture, n_trainable = _text_restart(
            train, held, restart=restart, seed=seed, loss=loss, margin=margin, config=config, device=device, rows=rows,
            bar=bar, backbone_options=backbone_options, bugs=bugs)
        records.append(record)
        if best_key is None or _selection_key(record) < best_key:  # hold the best model only, not n_restarts
            best_key, best_model = _selection_key(record), model
        del model
    best_model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)
    return {"records": records, "rows": rows, "best": best_key[2], "architecture": architecture,
            "n_trainable": n_trainable, "parameters": sum(p.numel() for p in best_model.parameters())}


def max_margin_irl(preferred, dispreferred, loss: str = "max_margin", seed: int = 0, *,
                   prompts: Sequence[str] | None = None, validation: float | tuple = 0.2, n_restarts: int = 1,
                   margin: float = 1.0, config: BTConfig | None = None, output_dir: str | Path | None = None,
                   epochs: int | None = None, learning_rate: float | None = None, batch_size: int | None = None,
                   device=None, progress: bool | None = None, backbone_options: Mapping | None = None,
                   faithful: bool | Sequence[str] = False) -> IRLResult:
    """Fit a reward R̂ that ranks each preferred demonstration above its dispreferred one (max-margin IRL).

    Parameters
    ----------
    preferred, dispreferred : the expert's and the other policy's demonstrations, paired row by row:
        numeric feature arrays [n, d] (a linear reward R̂(x) = w·x is fitted), or sequences of n texts
        (scored whole, each on its own, by a reward-model backbone).
    loss : "max_margin" (the paper's asymmetric loss, gain capped at ``margin``), "hinge" or "logistic"
        (Bradley–Terry); see :func:`irl_loss`.
    seed : restart k uses seed + k (initial weights or score head, and batch order); also seeds the
        validation split. Results are identical for the same inputs and seed.
    prompts : texts only: the prompt each pair answers (shared by its two texts). Without prompts each
        text is scored as a response to the empty prompt, as ``load_reward_model(path).score([""] * n, texts)``.
    validation : a fraction in (0, 1) of the given pairs to hold out (split by prompt, seeded), or explicit
        pairs ``(preferred, dispreferred)`` / ``(preferred, dispreferred, prompts)``. The best restart is
        chosen on these pairs alone; no test texts or true rewards ever reach this function.
    n_restarts : independent restarts (the paper's repeated IRL); all their validation metrics are returned.
    margin : the margin of "max_margin" and "hinge", in reward units.
    config : texts only (required): a :class:`rewardscope.training.train.BTConfig` naming the backbone, ``trainable``
        layers, epochs, learning_rate, batch_size (pairs per step), max_length and bf16. Its ``seed`` must
        equal ``seed``.
    output_dir : texts only (required): an empty or new directory; the selected restart is saved there as an
        HF sequence-classification reward model with its tokenizer.
    epochs, learning_rate, batch_size : override the optimiser settings (AdamW); defaults for arrays are
        ``LINEAR_DEFAULTS``, for texts the config's.
    device : texts only: "cpu", "cuda" or None (CUDA when available). Linear rewards fit on the CPU in float64.
    backbone_options : texts only: keyword arguments of :func:`rewardscope.training.train.load_backbone` for
        ``config.backbone``: ``chat_template`` (e.g. ``"plain"`` for a base LM without one, such as Pythia; it is
        saved with the reward model) and ``trust_remote_code``. A policy's load options may be passed as they
        are: their ``dtype`` and ``device`` are left out.
    faithful : the paper-faithful arm: True reproduces every bug of the released code in :data:`PAPER_BUGS`
        that applies (texts: the last character, accumulated gradients, the uncapped loss; feature arrays: the
        last two), or name a subset. False (default) is the fixed code. Everything else (restarts, seeds, the
        validation split, selection, the saved model) is the same, so both arms can run over the same restarts.

    Returns
    -------
    IRLResult with ``restarts`` (per-restart validation metrics), ``best_restart``, ``log`` (per step) and
    either ``weights`` [d] (arrays) or ``path`` (texts); ``result.score(...)`` scores new inputs.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> w_true = np.array([1.0, -2.0, 0.5])
    >>> a, b = rng.normal(size=(500, 3)), rng.normal(size=(500, 3))
    >>> a_wins = (a - b) @ w_true > 0
    >>> pref, dispref = np.where(a_wins[:, None], a, b), np.where(a_wins[:, None], b, a)
    >>> result = max_margin_irl(pref, dispref, n_restarts=2)
    >>> w = result.weights
    >>> bool(w @ w_true / np.linalg.norm(w) / np.linalg.norm(w_true) > 0.95)
    True
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _checks.count("n_restarts", n_restarts)
    _check_margin(margin)
    pairs = _pairs(preferred, dispreferred, prompts)
    texts = not isinstance(pairs.preferred, np.ndarray)
    bugs = _faithful(faithful, texts, loss)
    overrides = {k: v for k, v in (("epochs", epochs), ("learning_rate", learning_rate), ("batch_size", batch_size))
                 if v is not None}
    if texts:
        if not isinstance(config, BTConfig):
            raise ValueError("texts need config=BTConfig(backbone=...): the reward-model backbone and its training "
                             f"settings; got {config!r}")
        if config.seed != seed:
            raise ValueError(f"config.seed ({config.seed}) and seed ({seed}) disagree; restarts use seed, seed + 1, ...")
        config = dataclasses.replace(config, **overrides)  # BTConfig checks the values
        if output_dir is None:
            raise ValueError("texts need output_dir=<a new or empty directory> to save the recovered reward model in")
        output_dir = Path(output_dir)
        if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
            raise ValueError(f"output_dir {output_dir} exists and is not an empty directory")
        settings = {"epochs": config.epochs, "batch_size": config.batch_size}
        device = hf.resolve_device(device)
        backbone_options = _backbone_options(backbone_options)
    else:
        if config is not None or output_dir is not None or device is not None or backbone_options:
            raise ValueError("config, output_dir and device are for texts (so are backbone_options); feature arrays "
                             "fit a linear reward in memory")
        settings = {**LINEAR_DEFAULTS, **overrides}
        _check_settings(**settings)
    train, held, held_index = _split(pairs, validation, int(seed))
    seeds = [int(seed) + k for k in range(n_restarts)]

    from ...progress import bar as progress_bar

    n_steps = n_restarts * settings["epochs"] * int(np.ceil(len(train) / settings["batch_size"]))
    with progress_bar(total=n_steps, desc=f"{loss} IRL, {n_restarts} restart(s)", unit="step", progress=progress) as bar:
        if texts:
            output_dir.mkdir(parents=True, exist_ok=True)
            fit = _texts_irl(train, held, loss=loss, margin=margin, seeds=seeds, config=config, device=device,
                             output_dir=output_dir, bar=bar, backbone_options=backbone_options, bugs=bugs)
        else:
            fit = _linear(train, held, loss=loss, margin=margin, seeds=seeds, settings=settings, bar=bar, bugs=bugs)
    restarts = pd.DataFrame(fit["records"])
    restarts["selected"] = restarts["restart"] == fit["best"]
    chosen = restarts.loc[fit["best"]]
    metrics = {"loss": loss, "margin": margin, "n_restarts": n_restarts, "best_restart": fit["best"],
               "validation_accuracy": float(chosen["validation_accuracy"]),
               "validation_loss": float(chosen["validation_loss"]),
               "restart_validation_accuracies": restarts["validation_accuracy"].round(6).tolist(),
               "n_train_pairs": len(train), "n_validation_pairs": len(held), "faithful": list(bugs)}
    result = IRLResult(loss, margin, restarts, fit["best"], pd.DataFrame(fit["rows"]), held_index, metrics=metrics)
    if texts:
        metrics.update(trainable_parameters=fit["n_trainable"], parameters=fit["parameters"])
        result.path = output_dir
        result.log.to_csv(output_dir / "irl_log.csv", index=False)
        write_sidecar(output_dir, kind="reward-model", architecture=fit["architecture"], backbone=config.backbone,
                      source="max-margin IRL (Joselowitz et al. 2024)", config=dataclasses.asdict(config),
                      metrics=metrics, **({"backbone_options": backbone_options} if backbone_options else {}))
    else:
        result.weights, result.restart_weights = fit["weights"], fit["restart_weights"]
    return result


# --------------------------------------------------------------------------------------------------
# Recovery metrics against the true reward


def _scores(name: str, values, n: int | None = None) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric, got {type(values).__name__}") from None
    if array.ndim != 1 or array.size < 2:
        raise ValueError(f"{name} must be one-dimensional with at least 2 scores, got shape {array.shape}")
    if n is not None and array.size != n:
        raise ValueError(f"{name} has {array.size} scores but true_scores has {n}; they must pair up")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(array)))} non-finite values (NaN or inf)")
    return array


def _labels(true_scores: np.ndarray, true_threshold: float, role: str) -> np.ndarray:
    high = true_scores > true_threshold
    if high.all() or not high.any():
        raise ValueError(f"{role} all lie on one side of true_threshold={true_threshold}; accuracy, F1 and AUROC need "
                         "texts of both classes")
    return high


def calibrate_threshold(true_scores, recovered_scores, *, true_threshold: float = 0.0) -> float:
    """The cut t on the recovered reward that best separates the true classes on *validation* texts.

    A text is in the high class when its true reward exceeds ``true_threshold``; t maximises the share of
    texts with (recovered > t) == high. Candidates are the midpoints between consecutive distinct recovered
    scores and one point beyond each end; among ties the middle candidate is returned. Pass the result as
    ``threshold`` to :func:`recovery_metrics` on the test texts.

    Examples
    --------
    >>> calibrate_threshold([-1.0, -0.5, 0.5, 1.0], [2.0, 3.0, 5.0, 6.0])
    4.0
    """
    true_scores = _scores("true_scores", true_scores)
    recovered = _scores("recovered_scores", recovered_scores, len(true_scores))
    high = _labels(true_scores, true_threshold, "true_scores")
    values = np.unique(recovered)
    candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    # accuracy of every cut at once: sort texts by recovered score, count lows below and highs above each cut
    below = np.searchsorted(np.sort(recovered), candidates, side="right")  # texts with recovered <= cut
    order = np.argsort(recovered, kind="stable")
    lows_below = np.concatenate([[0], np.cumsum(~high[order])])[below]
    highs_above = high.sum() - np.concatenate([[0], np.cumsum(high[order])])[below]
    correct = lows_below + highs_above
    best = np.flatnonzero(correct == correct.max())
    return float(candidates[best[len(best) // 2]])


def recovery_metrics(true_scores, recovered_scores, threshold: float | None = None, *, true_threshold: float = 0.0,
                     positive: str = "low") -> dict[str, float]:
    """How well a recovered reward matches the true reward on the same (held-out) texts.

    Classification, as in the paper: a text is *high* (e.g. non-toxic) when its true reward exceeds
    ``true_threshold`` (0 for a log-odds reward) and *low* otherwise; the recovered reward predicts high
    when it exceeds a cut. Reported at the cut 0 (the paper's, which depends on the recovered reward's
    offset, not identified by pairwise losses) and at ``threshold`` (a cut calibrated on validation texts
    with :func:`calibrate_threshold`; NaN when not given).

    Returns
    -------
    dict with n, n_high; accuracy_at_zero, f1_at_zero; threshold, accuracy_calibrated, f1_calibrated;
    auroc (recovered score as a detector of the high class; offset- and scale-free); pearson, spearman,
    kendall_tau (τ-b) between the two rewards (NaN when the recovered reward is constant). F1 is that of
    the ``positive`` class: "low" (the paper's toxic class, default) or "high".

    Examples
    --------
    >>> m = recovery_metrics([-2.0, -1.0, 1.0, 2.0], [-0.5, 0.2, 0.1, 0.9])
    >>> m["accuracy_at_zero"], m["auroc"]
    (0.75, 0.75)
    """
    from scipy.stats import kendalltau, pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    if positive not in ("low", "high"):
        raise ValueError(f"positive must be 'low' or 'high' (the class whose F1 is reported), got {positive!r}")
    if threshold is not None and (isinstance(threshold, bool) or not np.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number (from calibrate_threshold on validation) or None, "
                         f"got {threshold!r}")
    true_scores = _scores("true_scores", true_scores)
    recovered = _scores("recovered_scores", recovered_scores, len(true_scores))
    high = _labels(true_scores, true_threshold, "true_scores")
    pos_label = positive == "high"

    def classified(cut: float) -> tuple[float, float]:
        predicted = recovered > cut
        return (float(accuracy_score(high, predicted)),
                float(f1_score(high, predicted, pos_label=pos_label, zero_division=0.0)))

    nan = float("nan")
    accuracy_zero, f1_zero = classified(0.0)
    accuracy_cal, f1_cal = classified(float(threshold)) if threshold is not None else (nan, nan)
    constant = np.ptp(recovered) == 0
    return {
        "n": len(true_scores), "n_high": int(high.sum()),
        "accuracy_at_zero": accuracy_zero, "f1_at_zero": f1_zero,
        "threshold": nan if threshold is None else float(threshold),
        "accuracy_calibrated": accuracy_cal, "f1_calibrated": f1_cal,
        "auroc": float(roc_auc_score(high, recovered)),
        "pearson": nan if constant else float(pearsonr(true_scores, recovered).statistic),
        "spearman": nan if constant else float(spearmanr(true_scores, recovered).statistic),
        "kendall_tau": nan if constant else float(kendalltau(true_scores, recovered).statistic),
    }


# --------------------------------------------------------------------------------------------------
# Intervals over the unit that varies


def pair_bootstrap_ci(true_scores, recovered_scores, statistic, *, n_resamples: int = 2000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high): ``statistic(true, recovered)`` with a percentile bootstrap over *pairs* (prompts).

    The texts are laid out as the studies lay them out: the first texts of n pairs (the expert's answers), then
    the second texts of the same n pairs in the same order (the base policy's), 2n scores in each array. Each
    resample draws n pairs with replacement and keeps both texts of a drawn pair, in the same layout, so the unit
    that varies is the prompt, not the text. Resamples where ``statistic`` is NaN (e.g. all texts of one class)
    are left out of the percentiles.

    Examples
    --------
    >>> true, recovered = np.array([1.0, 2.0, 3.0, -1.0, -2.0, -3.0]), np.array([0.5, 1.0, 2.0, 0.0, -1.0, 1.0])
    >>> est, lo, hi = pair_bootstrap_ci(true, recovered, lambda t, r: float(np.mean(r[:3] > r[3:])), n_resamples=200)
    >>> round(est, 3), lo <= est <= hi
    (1.0, True)
    """
    true_scores, recovered = np.asarray(true_scores, dtype=np.float64), np.asarray(recovered_scores, dtype=np.float64)
    if true_scores.ndim != 1 or true_scores.shape != recovered.shape or len(true_scores) % 2:
        raise ValueError(f"true_scores and recovered_scores must be 1-D, of the same even length (n first texts, then "
                         f"n second texts); got shapes {true_scores.shape} and {recovered.shape}")
    n = len(true_scores) // 2
    if n < 2:
        raise ValueError(f"a bootstrap over pairs needs at least 2 pairs, got {n}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        pick = rng.integers(0, n, n)
        rows = np.concatenate([pick, pick + n])  # both texts of every drawn pair
        draws.append(statistic(true_scores[rows], recovered[rows]))
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[~np.isnan(draws)]
    if not len(draws):
        raise ValueError("the statistic was NaN on every resample")
    alpha = (1 - level) / 2
    return (float(statistic(true_scores, recovered)), float(np.quantile(draws, alpha)),
            float(np.quantile(draws, 1 - alpha)))


def interval_over_seeds(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): a Student-t interval for the mean of one value per seed (the seed is the unit).

    With few seeds a bootstrap is degenerate (3 seeds give at most 10 distinct resamples); the t interval
    is wide instead, as it should be. Needs at least 2 finite values.

    Examples
    --------
    >>> [round(x, 3) for x in interval_over_seeds([0.6, 0.7, 0.8])]
    [0.7, 0.452, 0.948]
    """
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"interval_over_seeds needs one finite value per seed, at least 2; got {values!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mean, half = values.mean(), t.ppf((1 + level) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(mean), float(mean - half), float(mean + half)


def sd_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(sd, low, high): the sample standard deviation of one value per restart and its chi-square interval.

    Examples
    --------
    >>> [round(x, 3) for x in sd_interval([0.6, 0.7, 0.8, 0.5, 0.9])]
    [0.158, 0.095, 0.454]
    """
    from scipy.stats import chi2

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"sd_interval needs one finite value per restart, at least 2; got {values!r}")
    k, sd = len(values) - 1, values.std(ddof=1)
    alpha = (1 - level) / 2
    return float(sd), float(sd * np.sqrt(k / chi2.ppf(1 - alpha, k))), float(sd * np.sqrt(k / chi2.ppf(alpha, k)))


def restart_agreement(scores) -> np.ndarray:
    """Spearman correlations between every two restarts' rewards on the same texts (``scores`` [restarts, texts]);
    the upper triangle, one value per pair of restarts (empty for one restart)."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [restarts, texts], got shape {scores.shape}")
    if len(scores) < 2:
        return np.array([])
    ranks = rankdata(scores, axis=1)
    return np.corrcoef(ranks)[np.triu_indices(len(scores), 1)]


# --------------------------------------------------------------------------------------------------
# The chapter's claims, decided by one rule

PAPER_BEST_ACCURACY = 0.804
"""Pythia-70M: the best of 78 restarts, accuracy at 0 against the true reward (chosen on test)."""
PAPER_BEST_F1 = 0.784
PAPER_RESTART_ACCURACY_MEAN = 0.605
"""Pythia-70M: mean accuracy at 0 over 78 restarts."""
PAPER_RESTART_ACCURACY_SD = 0.100
"""... and its standard deviation: the paper's evidence that the reward is not identified."""
PAPER_PEARSON_RANGE = (-0.25, 0.63)
PAPER_TOXICITY_RATIO = {"base": 0.0625, "sft": 0.0559, "rlhf_true": 0.0358, "rlhf_irl": 0.0264}
"""Pythia-70M, share of toxic continuations on 400 held-out prompts."""
PAPER_LM_EVAL = {"base": 0.374, "rlhf_irl": 0.372}
SPREAD_NULL = PAPER_RESTART_ACCURACY_SD / 2
"""A spread over restarts counts as wide when its interval lies above half the paper's standard deviation."""
FLUENCY_MARGIN = 0.10
"""Fluency is kept when the geometric-mean perplexity under π₀ rose by less than 10 % (the interval's top)."""


def findings(results: Mapping) -> list:
    """The chapter's claims table, each row decided by :func:`rewardscope.findings.decide` (or labelled
    :func:`rewardscope.findings.not_a_test`).

    ``results`` holds (missing optional keys drop their rows):

    - ``auroc``: (estimate, low, high) of the selected R̂'s test AUROC, interval over test pairs (prompts);
      ``n_test_pairs``;
    - ``accuracy_calibrated``: (estimate, low, high) at the validation-calibrated cut, same unit; ``majority``:
      the share of the larger class on the test texts (the null);
    - ``restart_accuracy_at_zero``: {arm: accuracy at 0 of every restart} for "fixed" and optionally "faithful"
      (the paper-faithful arm, same seeds);
    - ``rl``: a DataFrame with one row per RL seed and the columns ``win_irl`` (the R̂ run's win rate over π₀
      on r*), ``true_irl`` and ``true_true`` (mean r* of the R̂ run and the r* run), ``ppl_ratio_irl``
      (geometric-mean perplexity under π₀ of the R̂ run's answers over the base policy's);
    - ``backbone``: {"auroc_small", "auroc_large", "matched"}: the backbone comparison; it is a test only when
      ``matched`` (the same epochs, batch size and pairs, so the same number of optimiser steps), and then
      still not one here, with a handful of restarts and no interval over them: it is shown as not a test.
    """
    from ...findings import decide, not_a_test

    rows = []
    n_pairs = int(results["n_test_pairs"]) if "n_test_pairs" in results else 0
    if "auroc" in results:
        rows.append(decide("the recovered reward agrees with the true one above chance",
                           f"single 70M runs: Pearson {PAPER_PEARSON_RANGE[0]} to {PAPER_PEARSON_RANGE[1]}",
                           *results["auroc"], null=0.5, unit="test prompts (pairs)", n=n_pairs, what="AUROC"))
    if "accuracy_calibrated" in results:
        majority = float(results["majority"])
        rows.append(decide("the selected reward classifies texts better than the majority class",
                           f"best of 78: accuracy {PAPER_BEST_ACCURACY:.1%}, F1 {PAPER_BEST_F1:.1%} (chosen on test)",
                           *results["accuracy_calibrated"], null=majority, unit="test prompts (pairs)", n=n_pairs,
                           what="accuracy at the calibrated cut"))
    arms = {"fixed": "the fixed code", "faithful": "the paper-faithful code (its bugs put back)"}
    for arm, accuracies in results.get("restart_accuracy_at_zero", {}).items():
        accuracies = np.asarray(accuracies, dtype=np.float64)
        if len(accuracies) < 2:
            continue
        sd, low, high = sd_interval(accuracies)
        rows.append(decide(f"accuracy at 0 varies widely over restarts, with {arms.get(arm, arm)}",
                           f"sd {PAPER_RESTART_ACCURACY_SD:.3f} (mean {PAPER_RESTART_ACCURACY_MEAN:.3f}, 78 restarts)",
                           sd, low, high, null=SPREAD_NULL, unit="restarts", n=len(accuracies), what="sd"))
    rl = results.get("rl")
    if rl is not None and len(rl) >= 2:
        n_seeds = len(rl)
        rows.append(decide("RLHF on the recovered reward improves the true reward",
                           f"70M toxicity ratio {PAPER_TOXICITY_RATIO['base']} → {PAPER_TOXICITY_RATIO['rlhf_irl']}",
                           *interval_over_seeds(rl["win_irl"]), null=0.5, unit="RL seeds", n=n_seeds,
                           fmt="{:.2f}", what="win rate over π₀"))
        rows.append(decide("... more than RLHF on the true reward",
                           f"{PAPER_TOXICITY_RATIO['rlhf_irl']} (IRL RM) vs {PAPER_TOXICITY_RATIO['rlhf_true']} (true RM)",
                           *interval_over_seeds(np.asarray(rl["true_irl"]) - np.asarray(rl["true_true"])), null=0.0,
                           unit="RL seeds", n=n_seeds, what="mean r*, R̂ run − r* run"))
        rows.append(decide("fluency is kept", f"lm-eval mean {PAPER_LM_EVAL['rlhf_irl']} vs {PAPER_LM_EVAL['base']} (base)",
                           *interval_over_seeds(rl["ppl_ratio_irl"]), null=1 + FLUENCY_MARGIN, side="less",
                           unit="RL seeds", n=n_seeds, what="perplexity ratio to π₀"))
    if "backbone" in results:
        b = results["backbone"]
        why = ("a handful of restarts per backbone, no interval over them" if b.get("matched") else
               "the two backbones were trained with different budgets (epochs, trainable layers), so a difference "
               "is not the backbone's")
        rows.append(not_a_test("a larger backbone is not better", "410M: best 78.2%, mean 0.553; 70M: 80.4%, 0.605",
                               f"mean AUROC {b['auroc_large']:.3f} (larger) vs {b['auroc_small']:.3f} (smaller)", why))
    return rows
