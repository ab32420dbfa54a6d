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
* activations come from :mod:`rewardscope.activations`, which captures only real token positions (the
  original also trained on padding) and removes every forward hook after use.

A compact torch SAE rather than SAELens: SAELens's training runner streams activations from a
TransformerLens ``HookedTransformer`` (not our HF checkpoints) and pulls in transformer-lens, wandb and more.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import artifacts

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
    the SAE comes back on the CPU. Same data, seed and device, same SAE.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(512, 8)).astype(np.float32)
    >>> sae = train_sae(x, 16, n_steps=50)
    >>> sae.dictionary.shape, bool(np.allclose(np.linalg.norm(sae.dictionary, axis=1), 1, atol=1e-5))
    ((16, 8), True)
    """
    from . import hf
    from .progress import bar

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
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)

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
