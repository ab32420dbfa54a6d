"""Sparse autoencoders on MLP outputs and the MMCS between their dictionaries (Marks et al. 2023).

The IRM paper captures the MLP outputs of the blocks that RLHF changed most, trains a sparse autoencoder
(SAE) on them for the base and the tuned model at two dictionary sizes (1x and 2x the model width), and
compares dictionaries by the maximum mean cosine similarity (MMCS): the mean cosine of a one-to-one
(Hungarian) matching of their feature directions. Features found at both sizes count as real.

Here, as in the paper, an SAE is f = ReLU(W_enc (x - b_dec) + b_enc), x_hat = W_dec f + b_dec, trained on
||x - x_hat||^2 + lambda ||f||_1 with Adam; the decoder rows (the dictionary) are kept at unit norm: their
gradient is projected onto the sphere's tangent before each step and the rows are renormalised after it
(Bricken et al. 2023). Differences from the original code, on purpose:

* the decoder is untied (the original tied it to the row-normalised encoder); ``dictionary`` is the decoder;
* activations are divided by their RMS distance to the mean, so ``l1_coefficient`` means the same at any
  scale and the normalised squared error is the fraction of variance unexplained;
* activations come from :mod:`rewardscope.studies.irm.activations`, which captures only real token positions (the
  original also trained on padding) and removes every forward hook after use.

A compact torch SAE rather than SAELens: SAELens's training runner streams activations from a
TransformerLens ``HookedTransformer`` (not our HF checkpoints) and pulls in transformer-lens, wandb and more.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ... import _checks, artifacts

logger = logging.getLogger(__name__)



# --------------------------------------------------------------------------------------------------
# The sparse autoencoder


def _as_rows(name: str, values) -> Any:
    """``values`` as a 2-D float array-like [n, d] (numpy, memmap, tensor or a lazy store view), checked."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if not hasattr(values, "shape") or not hasattr(values, "__getitem__"):
        values = np.asarray(values, dtype=np.float32)
    if len(values.shape) != 2 or values.shape[0] < 1 or values.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty 2-D array [n, d], got shape {tuple(values.shape)}")
    return values


class SAE(torch.nn.Module):
    """A ReLU sparse autoencoder with a unit-norm dictionary.

    Shapes: ``W_enc`` [d_in, d_sae], ``b_enc`` [d_sae], ``W_dec`` [d_sae, d_in] (rows unit-norm), ``b_dec``
    [d_in]. ``scale`` converts raw activations to the normalised units the SAE is trained in; ``encode`` and
    ``decode`` take and return raw units (numpy in, numpy out; tensor in, tensor out).
    """

    def __init__(self, d_in: int, d_sae: int, scale: float = 1.0):
        super().__init__()
        if not isinstance(d_in, int) or not isinstance(d_sae, int) or d_in < 1 or d_sae < 1:
            raise ValueError(f"d_in and d_sae must be positive ints, got {d_in!r} and {d_sae!r}")
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        self.d_in, self.d_sae = d_in, d_sae
        self.W_enc = torch.nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.W_dec = torch.nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.losses: np.ndarray = np.zeros((0, 3))  # per training step: total, squared error, L1

    @property
    def dictionary(self) -> np.ndarray:
        """Decoder directions, [d_sae, d_in], unit rows: the SAE's features in activation space."""
        return self.W_dec.detach().cpu().numpy().copy()

    # normalised units, tensors in and out: the training loop's view
    def _encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_sae)
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def _decode(self, feature_acts: torch.Tensor) -> torch.Tensor:  # (B, d_sae) -> (B, d_in)
        return feature_acts @ self.W_dec + self.b_dec

    def _check(self, values, width: int, name: str) -> tuple[torch.Tensor, bool]:
        is_numpy = not isinstance(values, torch.Tensor)
        tensor = torch.as_tensor(np.asarray(values, dtype=np.float32)) if is_numpy else values
        if tensor.ndim not in (1, 2) or tensor.shape[-1] != width:
            raise ValueError(f"{name} must have shape [n, {width}] (or [{width}]), got {tuple(tensor.shape)}")
        return tensor.to(self.W_enc.device, self.W_enc.dtype), is_numpy

    def encode(self, activations):
        """Feature activations f = ReLU(W_enc (x/scale - b_dec) + b_enc), [n, d_in] -> [n, d_sae]."""
        x, is_numpy = self._check(activations, self.d_in, "activations")
        with torch.no_grad():
            f = self._encode(x / self.scale)
        return f.cpu().numpy() if is_numpy else f

    def decode(self, feature_acts):
        """Reconstruction x_hat = (W_dec f + b_dec) * scale, [n, d_sae] -> [n, d_in]."""
        f, is_numpy = self._check(feature_acts, self.d_sae, "feature_acts")
        with torch.no_grad():
            x_hat = self._decode(f) * self.scale
        return x_hat.cpu().numpy() if is_numpy else x_hat

    def forward(self, activations):
        return self.decode(self.encode(activations))

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``sae.safetensors`` and ``sae.json`` (shapes) into ``directory``, each atomically."""
        from safetensors.torch import save

        directory = Path(directory)
        artifacts.atomic_write_bytes(directory / "sae.safetensors",
                                     save({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}))
        artifacts.atomic_write_text(directory / "sae.json", json.dumps({"d_in": self.d_in, "d_sae": self.d_sae}))
        np.save(directory / "losses.npy", self.losses)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SAE:
        """An SAE written by :meth:`save`; the weights must match the shapes in ``sae.json``."""
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / "sae.json").is_file() or not (directory / "sae.safetensors").is_file():
            raise ValueError(f"{directory} holds no saved SAE (sae.json and sae.safetensors)")
        shapes = json.loads((directory / "sae.json").read_text())
        sae = cls(int(shapes["d_in"]), int(shapes["d_sae"]))
        state = load_file(directory / "sae.safetensors")
        expected = {k: tuple(v.shape) for k, v in sae.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        if got != expected:
            raise ValueError(f"SAE weights in {directory} do not match d_in={sae.d_in}, d_sae={sae.d_sae}: {got}")
        sae.load_state_dict(state)
        if (directory / "losses.npy").is_file():
            sae.losses = np.load(directory / "losses.npy")
        return sae


def sae_seed(model_id: str, layer: int, width: int, replicate: int, salt: int = 0) -> int:
    """A seed of its own for one SAE, derived from what tells SAEs apart: the model, the block, the dictionary
    width (features) and the replicate (0, 1, ...), plus an optional ``salt`` (the run's seed).

    Two SAEs that differ in any of these get unrelated seeds, so they never share an initial dictionary row or a
    batch order (with one seed for all, ``randn(2d, d)`` begins with the rows of ``randn(d, d)`` and every SAE
    sees its batches in the same order, which inflates any agreement between them). A SHA-256 of the
    arguments, as an int in [0, 2**63).

    Examples
    --------
    >>> sae_seed("base", 3, 576, 0) == sae_seed("base", 3, 576, 0) != sae_seed("tuned", 3, 576, 0)
    True
    """
    import hashlib

    if not isinstance(model_id, str) or not model_id:
        raise ValueError(f"model_id must be a non-empty string, got {model_id!r}")
    for name, value in (("layer", layer), ("width", width), ("replicate", replicate), ("salt", salt)):
        _checks.count(name, value, 0)
    key = json.dumps([model_id, int(layer), int(width), int(replicate), int(salt)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def _streams(seed: int, n_features: int) -> tuple[np.random.Generator, torch.Generator]:
    """The two random streams of one SAE: numpy (the batch order) and torch (the initial dictionary), both
    keyed by ``seed`` and the width, so two widths never share a start even under the same seed."""
    _checks.count("seed", seed, 0)
    sequence = np.random.SeedSequence([int(seed) % 2 ** 63, int(seed) >> 63, int(n_features)])
    order_state, init_state = sequence.spawn(2)
    return (np.random.default_rng(order_state),
            torch.Generator().manual_seed(int(init_state.generate_state(1, np.uint64)[0] >> np.uint64(1))))


def _rows(activations, index: np.ndarray) -> torch.Tensor:
    """Rows ``index`` of an array-like as a float32 tensor (sorted reads: memmaps stay sequential)."""
    return torch.as_tensor(np.asarray(activations[np.sort(index)], dtype=np.float32))


def train_sae(activations, n_features: int, seed: int = 0, *, l1_coefficient: float = 0.1, lr: float = 3e-3,
              batch_size: int = 256, n_steps: int = 3000, device=None, progress: bool | None = None) -> SAE:
    """Train a ReLU SAE with a unit-norm dictionary on activations [n, d_in].

    ``activations`` may be a numpy array, a memmap, a tensor or a :meth:`ActivationStore.layer` view; only
    one batch at a time is read into memory. Rows are scaled by s = sqrt(mean ||x - mean||^2), so the
    normalised squared error is the fraction of variance unexplained (FVU), and the loss is
    mean_batch ||x/s - x_hat||^2 + l1_coefficient * mean_batch ||f||_1. Batches are drawn from a fresh
    permutation each epoch; the first ``n_steps`` batches train. ``device=None`` means CUDA when available;
    the SAE comes back on the CPU. Same data, seed, width and device, same SAE. The initial dictionary and the
    batch order come from two streams keyed by ``seed`` *and* ``n_features``; give each SAE its own seed
    (:func:`sae_seed`) so that no two SAEs compared later share either.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(512, 8)).astype(np.float32)
    >>> sae = train_sae(x, 16, n_steps=50)
    >>> sae.dictionary.shape, bool(np.allclose(np.linalg.norm(sae.dictionary, axis=1), 1, atol=1e-5))
    ((16, 8), True)
    """
    from ... import hf
    from ...progress import bar

    x = _as_rows("activations", activations)
    n, d = x.shape
    device = hf.resolve_device(device)
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ValueError(f"n_features must be a positive int, got {n_features!r}")
    for name, value in (("batch_size", batch_size), ("n_steps", n_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    for name, value in (("l1_coefficient", l1_coefficient), ("lr", lr)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    rng, generator = _streams(seed, n_features)  # batch order and initial dictionary, keyed by seed and width

    sample = _rows(x, rng.permutation(n)[:16384]).double()
    mean = sample.mean(0)
    scale = float(((sample - mean) ** 2).sum(1).mean().sqrt())
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("activations must vary (non-constant rows with finite values) to train an SAE")
    sae = SAE(d, n_features, scale)
    with torch.no_grad():  # random unit dictionary, encoder = its transpose, b_dec = the mean (Bricken et al.)
        directions = torch.randn(n_features, d, generator=generator, dtype=torch.float64)
        directions /= directions.norm(dim=1, keepdim=True)
        sae.W_dec.copy_(directions.float())
        sae.W_enc.copy_(directions.T.float())
        sae.b_dec.copy_((mean / scale).float())
    sae.to(device).train()
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    decay_from = int(0.8 * n_steps)  # the learning rate falls linearly to 0 over the last 20% of the steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (n_steps - step) / max(1, n_steps - decay_from)))

    losses = np.zeros((n_steps, 3))
    order, cursor = rng.permutation(n), 0
    for step in bar(range(n_steps), desc="training SAE", unit="step", progress=progress, long=n_steps >= 2000):
        if cursor + batch_size > n:
            order, cursor = rng.permutation(n), 0
        batch = _rows(x, order[cursor:cursor + batch_size]).to(device) / sae.scale
        cursor += batch_size
        feature_acts = sae._encode(batch)
        squared_error = ((sae._decode(feature_acts) - batch) ** 2).sum(1).mean()
        l1 = feature_acts.abs().sum(1).mean()
        loss = squared_error + l1_coefficient * l1
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        with torch.no_grad():
            rows = sae.W_dec
            # keep the step on the unit sphere: drop the gradient component parallel to each dictionary row
            rows.grad -= (rows.grad * rows).sum(1, keepdim=True) * rows
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
        losses[step] = loss.item(), squared_error.item(), l1.item()
    sae.losses = losses
    return sae.eval().cpu()


def reconstruction_metrics(sae: SAE, activations, batch_size: int = 4096) -> dict[str, float]:
    """How well and how sparsely ``sae`` reconstructs activations [n, d_in].

    ``fvu``: fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2. ``mse``: mean
    squared error per element (raw units). ``l0``: mean number of active features per row. ``dead_fraction``:
    share of features never active on these rows.
    """
    x = _as_rows("activations", activations)
    if x.shape[1] != sae.d_in:
        raise ValueError(f"activations must have {sae.d_in} columns (the SAE's d_in), got {x.shape[1]}")
    n = x.shape[0]
    error = total = sq_norm = active = 0.0
    column_sum = np.zeros(sae.d_in)
    fired = np.zeros(sae.d_sae, dtype=bool)
    for start in range(0, n, batch_size):
        batch = np.asarray(x[start:start + batch_size], dtype=np.float32)
        feature_acts = sae.encode(batch)
        error += float(((sae.decode(feature_acts).astype(np.float64) - batch) ** 2).sum())
        sq_norm += float((batch.astype(np.float64) ** 2).sum())
        column_sum += batch.sum(0, dtype=np.float64)
        active += float((feature_acts > 0).sum())
        fired |= (feature_acts > 0).any(0)
    total = sq_norm - float((column_sum ** 2).sum()) / n
    return {"fvu": error / total if total > 0 else float("nan"), "mse": error / (n * sae.d_in),
            "l0": active / n, "dead_fraction": float(1 - fired.mean()), "n": float(n)}


# --------------------------------------------------------------------------------------------------
# Comparing dictionaries


def _unit_rows(name: str, values) -> np.ndarray:
    array = np.asarray(values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty 2-D array [n_features, d], got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite values")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} has {int((norms == 0).sum())} all-zero rows; a direction needs a non-zero row")
    return array / norms


def matched_cosines(dict_a, dict_b, one_to_one: bool = True) -> pd.DataFrame:
    """Each row of ``dict_a`` [n_a, d] matched to a row of ``dict_b`` [n_b, d], ranked by cosine.

    ``one_to_one=True`` (the paper): the Hungarian matching that maximises the summed cosine, each row of
    ``dict_b`` used at most once; if n_a > n_b the n_a - n_b rows left over get ``feature_b`` -1 and cosine
    NaN. ``one_to_one=False``: each row's best cosine in ``dict_b`` (the max-cosine of Sharkey et al.).
    Cosines are signed: with ReLU codes a direction and its negation are different features. Rows need not be
    unit-norm. Returns columns ``feature_a``, ``feature_b``, ``cosine``, sorted by cosine, highest first.
    """
    from scipy.optimize import linear_sum_assignment

    a, b = _unit_rows("dict_a", dict_a), _unit_rows("dict_b", dict_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dict_a and dict_b must have the same width d (rows are [n_features, d]), got "
                         f"{a.shape[1]} and {b.shape[1]}; transpose a [d, n_features] dictionary")
    cos = a @ b.T
    matched_b = np.full(len(a), -1)
    if one_to_one:
        rows, cols = linear_sum_assignment(cos, maximize=True)
        matched_b[rows] = cols
    else:
        matched_b = cos.argmax(1)
    cosine = np.where(matched_b >= 0, cos[np.arange(len(a)), matched_b], np.nan)
    frame = pd.DataFrame({"feature_a": np.arange(len(a)), "feature_b": matched_b, "cosine": cosine})
    return frame.sort_values("cosine", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def mmcs(dict_a, dict_b, one_to_one: bool = True) -> float:
    """Maximum mean cosine similarity: the mean cosine of the matched rows of two dictionaries [n, d].

    With ``one_to_one=True`` (the paper's metrics/mmcs.py) rows are matched by the Hungarian algorithm and the
    mean runs over min(n_a, n_b) pairs; see :func:`matched_cosines`.

    Examples
    --------
    >>> mmcs(np.eye(3), np.eye(3)[[2, 0, 1]])
    1.0
    """
    return float(matched_cosines(dict_a, dict_b, one_to_one)["cosine"].mean())


def random_dictionary(n_features: int, d: int, covariance=None, seed: int = 0) -> np.ndarray:
    """``n_features`` random unit directions in R^d, [n_features, d]: isotropic, or drawn from N(0, covariance)
    (an anisotropic null: random directions shaped like the activations themselves, which MMCS finds easier to
    match than isotropic ones, so the null is harder to beat)."""
    for name, value in (("n_features", n_features), ("d", d)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    rng = np.random.default_rng(seed)
    if covariance is None:
        rows = rng.normal(size=(n_features, d))
    else:
        cov = np.asarray(covariance, dtype=np.float64)
        if cov.shape != (d, d) or not np.all(np.isfinite(cov)):
            raise ValueError(f"covariance must be a finite [d, d] = [{d}, {d}] matrix, got shape {cov.shape}")
        values, vectors = np.linalg.eigh((cov + cov.T) / 2)
        rows = (rng.normal(size=(n_features, d)) * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def null_mmcs(n_a: int, n_b: int, d: int, covariance=None, n_draws: int = 3, seed: int = 0) -> np.ndarray:
    """MMCS of pairs of random dictionaries of the shapes compared, [n_a, d] against [n_b, d] (one value per
    draw): the chance level of :func:`mmcs` for *these* shapes (a 1x-vs-2x comparison has a higher chance level
    than 1x vs 1x, since each row has more rows to pick from). ``covariance``: see :func:`random_dictionary`."""
    if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive int, got {n_draws!r}")
    seeds = np.random.SeedSequence(seed).spawn(2 * n_draws)
    return np.array([mmcs(random_dictionary(n_a, d, covariance, np.random.default_rng(seeds[2 * i])),
                          random_dictionary(n_b, d, covariance, np.random.default_rng(seeds[2 * i + 1])))
                     for i in range(n_draws)])


def crossed_seed_cosines(replicates_a: Sequence, replicates_b: Sequence) -> pd.DataFrame:
    """Per feature: how well it is matched by another seed of its own model (``within``) and by that same other
    seed of the other model (``cross``), with seeds always crossed (i != j).

    ``replicates_a`` and ``replicates_b`` are dictionaries [n, d] of models A and B, one per replicate (each with
    a seed of its own, :func:`sae_seed`), at least two each. For every model M, replicate i and j != i, each row of
    M_i is matched one-to-one (:func:`matched_cosines`) to M_j (within) and to the other model's replicate j
    (cross); cosines are averaged over j. Same-seed pairs never enter, so a shared start cannot inflate either
    side. If tuning changed nothing, ``within`` - ``cross`` centres on 0.

    Returns columns ``model`` ("a" or "b"), ``replicate``, ``feature``, ``within``, ``cross``, ``difference``.
    """
    if len(replicates_a) < 2 or len(replicates_b) < 2:
        raise ValueError("crossed seeds need at least two replicates of each model")
    frames = []
    for model, own, other in (("a", replicates_a, replicates_b), ("b", replicates_b, replicates_a)):
        for i, dictionary in enumerate(own):
            within, cross = [], []
            for j in range(min(len(own), len(other))):
                if j == i:
                    continue
                for store, target in ((within, own[j]), (cross, other[j])):
                    store.append(matched_cosines(dictionary, target).set_index("feature_a")["cosine"].sort_index())
            frame = pd.DataFrame({"within": pd.concat(within, axis=1).mean(axis=1),
                                  "cross": pd.concat(cross, axis=1).mean(axis=1)})
            frames.append(frame.rename_axis("feature").reset_index().assign(model=model, replicate=i))
    out = pd.concat(frames, ignore_index=True)
    out["difference"] = out["within"] - out["cross"]
    return out[["model", "replicate", "feature", "within", "cross", "difference"]]


def grouped_fvu(sae: SAE, activations, groups, batch_size: int = 4096) -> pd.DataFrame:
    """Per group of rows (e.g. a text): the SAE's summed squared error and the summed squared distance of the
    rows to the mean of *all* rows, so that FVU over any set of groups is error.sum() / variance.sum()."""
    x = _as_rows("activations", activations)
    groups = np.asarray(groups)
    if groups.shape != (x.shape[0],):
        raise ValueError(f"groups must hold one label per row ({x.shape[0]}), got shape {groups.shape}")
    mean = np.zeros(x.shape[1])
    for start in range(0, x.shape[0], batch_size):
        mean += np.asarray(x[start:start + batch_size], dtype=np.float64).sum(0)
    mean /= x.shape[0]
    error, variance = np.zeros(x.shape[0]), np.zeros(x.shape[0])
    for start in range(0, x.shape[0], batch_size):
        batch = np.asarray(x[start:start + batch_size], dtype=np.float32)
        part = slice(start, start + len(batch))
        error[part] = ((sae.forward(batch).astype(np.float64) - batch) ** 2).sum(1)
        variance[part] = ((batch - mean) ** 2).sum(1)
    return pd.DataFrame({"group": groups, "error": error, "variance": variance}).groupby("group", sort=True).sum()


def cross_reconstruction(saes_a: Sequence[SAE], saes_b: Sequence[SAE], activations, groups, n_resamples: int = 1000,
                         level: float = 0.95, seed: int = 0) -> dict:
    """FVU of model A's SAEs minus that of model B's SAEs on the same activations (e.g. the base SAEs and the
    tuned SAEs on the tuned policy's own generations), each side averaged over its replicates.

    SAEs of one model that differ only in seed already reconstruct unfamiliar text differently, so the interval
    must carry that spread, not only the spread over ``groups`` (the generations): with k replicates a side, the
    k paired differences d_i = FVU(a_i) - FVU(b_i) give a t interval with k - 1 degrees of freedom, its standard
    error widened by the bootstrap spread over groups (SAEs fixed). With one replicate a side only the groups
    vary, and the interval is the bootstrap's. Returns ``a``, ``b``, ``difference``, ``low``, ``high``, ``n``
    (groups) and ``replicates`` (k, the pairs: the smaller side's count).
    """
    from scipy.stats import t as student_t

    if not saes_a or not saes_b:
        raise ValueError("saes_a and saes_b must each hold at least one SAE")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    parts = {side: [grouped_fvu(sae, activations, groups) for sae in saes] for side, saes in (("a", saes_a), ("b", saes_b))}
    variance = parts["a"][0]["variance"].to_numpy()
    errors = {side: np.stack([f["error"].to_numpy() for f in frames]) for side, frames in parts.items()}  # [k, groups]
    if len(variance) < 2:
        raise ValueError("cross_reconstruction needs at least two groups to resample")
    gap = errors["a"].mean(0) - errors["b"].mean(0)
    rng = np.random.default_rng(seed)
    draws = np.array([gap[i].sum() / variance[i].sum()
                      for i in (rng.integers(0, len(variance), len(variance)) for _ in range(n_resamples))])
    fvu = {side: float(e.mean(0).sum() / variance.sum()) for side, e in errors.items()}
    difference = fvu["a"] - fvu["b"]
    k = min(len(saes_a), len(saes_b))
    q = ((1 - level) / 2, (1 + level) / 2)
    if k < 2:
        low, high = float(np.quantile(draws, q[0])), float(np.quantile(draws, q[1]))
    else:
        paired = (errors["a"][:k].sum(1) - errors["b"][:k].sum(1)) / variance.sum()
        se = float(np.sqrt(paired.var(ddof=1) / k + draws.var(ddof=1)))
        half = float(student_t.ppf(q[1], k - 1)) * se
        low, high = difference - half, difference + half
    return {"a": fvu["a"], "b": fvu["b"], "difference": difference, "low": low, "high": high, "n": len(variance),
            "replicates": k}
