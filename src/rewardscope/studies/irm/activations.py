"""Capturing the MLP outputs of chosen decoder blocks on held-out text, for sparse autoencoders (Marks et al. 2023).

Only real token positions are kept (padding and, by default, special tokens are dropped; the original
code also trained its SAEs on padding), every forward hook is removed after use, also when the forward
or a chunk write fails (the original added a hook per call and never removed one), and activations
stream to ``.npy`` chunks on disk, written atomically, so memory stays bounded.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ... import _checks, artifacts

logger = logging.getLogger(__name__)

CAPTURE_VERSION = 1
MANIFEST = "capture.json"


# --------------------------------------------------------------------------------------------------
# Capturing MLP outputs


def decoder_blocks(model) -> torch.nn.ModuleList:
    """The model's transformer blocks: the outermost ``ModuleList`` with ``config.num_hidden_layers`` entries
    (``model.layers`` of Llama, ``gpt_neox.layers`` of Pythia, ``transformer.h`` of GPT-2/GPT-Neo)."""
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not isinstance(model, torch.nn.Module) or not isinstance(n_layers, int):
        raise ValueError("model must be a torch Hugging Face model whose config has num_hidden_layers")
    for module in model.modules():  # pre-order: the outermost list comes first
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError(f"found no ModuleList of {n_layers} blocks (config.num_hidden_layers) in {type(model).__name__}")


def _check_layers(layers, n_layers: int) -> list[int]:
    if isinstance(layers, int | np.integer) and not isinstance(layers, bool):
        layers = [layers]
    layers = list(layers) if isinstance(layers, Sequence | np.ndarray) else None
    if (not layers or any(isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < n_layers
                          for i in layers) or len(set(layers)) != len(layers)):
        raise ValueError(f"layers must be distinct block indices in 0..{n_layers - 1}, got {layers!r}")
    return [int(i) for i in layers]


@contextmanager
def mlp_output_hooks(model, layers, module: str = "mlp") -> Iterator[dict[int, torch.Tensor]]:
    """Forward hooks that keep the output of ``block[layer].<module>`` for each layer in a dict, (B, T, d).

    The hooks are removed when the ``with`` block ends, also when it ends in an exception.
    """
    blocks = decoder_blocks(model)
    layers = _check_layers(layers, len(blocks))
    try:
        targets = [blocks[layer].get_submodule(module) for layer in layers]
    except AttributeError:
        names = sorted(name for name, _ in blocks[layers[0]].named_children())
        raise ValueError(f"module must name a submodule of each block (children: {', '.join(names)}), "
                         f"got {module!r}") from None
    outputs: dict[int, torch.Tensor] = {}

    def keeper(layer: int):
        def hook(_module, _args, output):
            outputs[layer] = (output[0] if isinstance(output, tuple) else output).detach()

        return hook

    handles = []
    try:
        for layer, target in zip(layers, targets):
            handles.append(target.register_forward_hook(keeper(layer)))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def _token_ids(tokenizer, texts: list[str], max_length: int, add_special_tokens: bool) -> list[list[int]]:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, got {max_length!r}")
    ids = tokenizer(texts, add_special_tokens=add_special_tokens, truncation=True, max_length=max_length).input_ids
    return [list(row) for row in ids]


def _mlp_batches(model, tokenizer, ids: list[list[int]], layers: list[int], module: str, batch_size: int,
                 progress: bool | None, desc: str) -> Iterator[tuple[int, list[list[int]], dict[int, torch.Tensor]]]:
    """(start, the batch's ids, {layer: (B, T, d) float32 MLP outputs}) for consecutive batches of ``ids``.

    Left padding with explicit position ids, so each real token sees exactly what it sees unpadded; the
    rows of padded positions are not meaningful. Runs the model without its LM head in eval mode (restored).
    """
    import inspect

    from ... import hf
    from ...progress import bar

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    body = getattr(model, "base_model", model)  # skip the LM head: only block outputs are needed
    takes_positions = "position_ids" in inspect.signature(body.forward).parameters
    device = next(model.parameters()).device
    pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
    starts = range(0, len(ids), batch_size)
    was_training = model.training
    model.eval()
    try:
        with mlp_output_hooks(model, layers, module) as outputs, torch.inference_mode():
            for start in bar(starts, desc=desc, unit="batch", progress=progress, long=len(starts) > 8):
                batch = [row or [pad_id] for row in ids[start:start + batch_size]]  # an empty text runs as one pad
                input_ids, mask = hf.left_pad(batch, pad_id)
                kwargs = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "use_cache": False}
                if takes_positions:
                    kwargs["position_ids"] = (mask.cumsum(1) - 1).clamp_min(0).to(device)
                outputs.clear()
                body(**kwargs)
                yield start, ids[start:start + batch_size], {k: v.float().cpu() for k, v in outputs.items()}
    finally:
        model.train(was_training)


def last_token_activations(model, tokenizer, texts: Sequence[str], layers, *, module: str = "mlp",
                           batch_size: int = 16, max_length: int = 256, add_special_tokens: bool = True,
                           progress: bool | None = None) -> dict[int, np.ndarray]:
    """The MLP output at the last token of each text, {layer: [n_texts, d_model]} (the IRM's target token).

    Texts longer than ``max_length`` tokens are an error, not cut, since cutting would move the last token.
    """
    texts = _checks.texts("texts", texts)
    layers = _check_layers(layers, len(decoder_blocks(model)))
    ids = _token_ids(tokenizer, texts, max_length + 1, add_special_tokens)
    bad = next((i for i, row in enumerate(ids) if not 0 < len(row) <= max_length), None)
    if bad is not None:
        raise ValueError(f"texts[{bad}] has {len(ids[bad])} tokens; each text needs 1 to max_length={max_length}")
    parts: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    # closing(): a generator left suspended inside the hook context would keep its hooks until collected
    with closing(_mlp_batches(model, tokenizer, ids, layers, module, batch_size, progress, "last-token MLP")) as batches:
        for _, _, outputs in batches:
            for layer in layers:
                parts[layer].append(outputs[layer][:, -1].numpy())  # left padding: the last column is the last token
    return {layer: np.concatenate(parts[layer]) for layer in layers}


def _save_npy(path: Path, array: np.ndarray) -> None:
    """np.save, atomically: a temp file in the same directory, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _capture_files(directory: Path) -> list[Path]:
    patterns = ("layer*-part*.npy", "tokens-part*.npy", ".*.tmp", MANIFEST)
    return [p for pattern in patterns for p in directory.glob(pattern)]


class LayerActivations:
    """One layer's captured activations [n_rows, d_model], read lazily from memory-mapped parts.

    Indexing with an int, a slice or an array of row indices reads only those rows.
    """

    def __init__(self, paths: Sequence[Path]):
        self._parts = [np.load(p, mmap_mode="r") for p in paths]
        self._offsets = np.concatenate([[0], np.cumsum([len(p) for p in self._parts])])
        self.shape = (int(self._offsets[-1]), int(self._parts[0].shape[1]))
        self.dtype = self._parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        n = self.shape[0]
        if isinstance(key, int | np.integer):
            return self[np.array([key])][0]
        index = np.arange(n)[key] if isinstance(key, slice) else np.asarray(key)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        if index.ndim != 1 or (index.size and (index.min() < -n or index.max() >= n)):
            raise IndexError(f"row indices must be a 1-D array within [-{n}, {n}), got shape {index.shape}")
        index = np.where(index < 0, index + n, index).astype(np.int64)
        part = np.searchsorted(self._offsets, index, side="right") - 1
        out = np.empty((len(index), self.shape[1]), dtype=self.dtype)
        for p in np.unique(part):
            chosen = part == p
            out[chosen] = self._parts[p][index[chosen] - self._offsets[p]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = np.concatenate([np.asarray(p) for p in self._parts])
        return array if dtype is None else array.astype(dtype)

    def chunks(self) -> Iterator[np.ndarray]:
        """The parts in order, one in memory at a time."""
        for part in self._parts:
            yield np.asarray(part)


class ActivationStore:
    """A finished :func:`capture_activations` directory: per-layer activations and the token table.

    ``tokens`` has one row per captured position, in row order: ``text_index`` (into the captured texts),
    ``position`` (in the unpadded token sequence) and ``token_id``.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        manifest = self.directory / MANIFEST
        if not manifest.is_file():
            raise ValueError(f"{self.directory} holds no complete activation capture ({MANIFEST} is missing)")
        self.meta: dict[str, Any] = json.loads(manifest.read_text())
        self.layers: list[int] = list(self.meta["layers"])
        self.d_model: int = int(self.meta["d_model"])

    def __len__(self) -> int:
        return int(self.meta["n_rows"])

    def __repr__(self) -> str:
        return f"ActivationStore({str(self.directory)!r}, layers={self.layers}, rows={len(self)}, d={self.d_model})"

    def layer(self, layer: int) -> LayerActivations:
        """Lazy [n_rows, d_model] view of one layer's activations."""
        if layer not in self.layers:
            raise ValueError(f"layer {layer!r} was not captured; captured layers: {self.layers}")
        return LayerActivations([self.directory / f"layer{layer:03d}-part{k:05d}.npy" for k in range(self.meta["n_parts"])])

    def load(self, layer: int) -> np.ndarray:
        """One layer's activations in memory, [n_rows, d_model] float32."""
        return np.asarray(self.layer(layer))

    @property
    def tokens(self) -> pd.DataFrame:
        parts = [np.load(self.directory / f"tokens-part{k:05d}.npy") for k in range(self.meta["n_parts"])]
        table = np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)
        return pd.DataFrame(table, columns=["text_index", "position", "token_id"])


def capture_activations(model, tokenizer, texts: Sequence[str], layers, directory: str | os.PathLike, *,
                        module: str = "mlp", batch_size: int = 16, max_length: int = 128, chunk_rows: int = 8192,
                        add_special_tokens: bool = True, skip_special_tokens: bool = True, overwrite: bool = False,
                        progress: bool | None = None) -> ActivationStore:
    """Stream the MLP outputs of ``layers`` at every real token of ``texts`` to ``directory``.

    Texts are cut to ``max_length`` tokens and run in left-padded batches; only positions inside the attention
    mask are kept (and, with ``skip_special_tokens``, none holding a special token such as BOS). Every
    ``chunk_rows`` rows, one ``.npy`` part per layer plus the token table part are written atomically, so memory
    stays bounded by one chunk; the manifest is written last, so an interrupted capture is never read as
    complete (a failed capture removes its parts). Hooks are removed afterwards, also on errors.

    Returns the :class:`ActivationStore` of ``directory``.
    """
    texts = _checks.texts("texts", texts)
    layers = _check_layers(layers, len(decoder_blocks(model)))
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    directory = Path(directory)
    if (directory / MANIFEST).is_file() and not overwrite:
        raise ValueError(f"{directory} already holds a capture; read it with ActivationStore or pass overwrite=True")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in _capture_files(directory):
        stale.unlink()
    ids = _token_ids(tokenizer, texts, max_length, add_special_tokens)
    special = set(tokenizer.all_special_ids) if skip_special_tokens else set()

    buffers: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    token_rows: list[np.ndarray] = []
    part_rows: list[int] = []
    d_model = None

    def flush() -> None:
        k = len(part_rows)
        for layer in layers:
            _save_npy(directory / f"layer{layer:03d}-part{k:05d}.npy", np.concatenate(buffers[layer]))
            buffers[layer].clear()
        table = np.concatenate(token_rows)
        _save_npy(directory / f"tokens-part{k:05d}.npy", table)
        token_rows.clear()
        part_rows.append(len(table))

    batches = _mlp_batches(model, tokenizer, ids, layers, module, batch_size, progress, "capturing MLP outputs")
    try:
        buffered = 0
        for start, batch, outputs in batches:
            width = max(1, max(len(row) for row in batch))
            rows, cols, table = [], [], []
            for b, row in enumerate(batch):
                keep = [p for p, t in enumerate(row) if t not in special]
                rows += [b] * len(keep)
                cols += [width - len(row) + p for p in keep]  # left padding shifts each row right
                table += [(start + b, p, row[p]) for p in keep]
            if not table:
                continue
            for layer in layers:
                buffers[layer].append(outputs[layer][rows, cols].numpy())
            d_model = outputs[layers[0]].shape[-1]
            token_rows.append(np.asarray(table, dtype=np.int64))
            buffered += len(table)
            if buffered >= chunk_rows:
                flush()
                buffered = 0
        if buffered:
            flush()
        if not part_rows:
            raise ValueError("texts produced no token positions to capture (all empty or all special tokens)")
        meta = {"version": CAPTURE_VERSION, "layers": layers, "d_model": int(d_model), "module": module,
                "n_parts": len(part_rows), "part_rows": part_rows, "n_rows": int(sum(part_rows)),
                "n_texts": len(texts), "max_length": max_length, "add_special_tokens": add_special_tokens,
                "skip_special_tokens": skip_special_tokens,
                "model": str(getattr(getattr(model, "config", None), "_name_or_path", ""))}
        artifacts.atomic_write_text(directory / MANIFEST, json.dumps(meta, indent=2))
    except BaseException:
        batches.close()  # removes the hooks now, even when writing a part failed mid-iteration
        for written in _capture_files(directory):
            written.unlink(missing_ok=True)
        raise
    return ActivationStore(directory)


def activation_change(base, tuned) -> float:
    """How much tuning changed the activations at the same tokens: sum ||tuned - base||^2 over the rows divided by
    sum ||base - mean(base)||^2, the share of the base activations' variance that the change amounts to (0: none).
    ``base`` and ``tuned`` are [n, d] arrays of the two models' activations at the same n tokens.

    Examples
    --------
    >>> activation_change([[0.0, 0.0], [2.0, 0.0]], [[0.0, 0.0], [2.0, 1.0]])  # a change of 1 on a spread of 2
    0.5
    """
    a, b = np.asarray(base, dtype=np.float64), np.asarray(tuned, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 2:
        raise ValueError(f"base and tuned must be [n, d] arrays of one shape with n >= 2, got {a.shape} and {b.shape}")
    spread = float(((a - a.mean(0)) ** 2).sum())
    if not spread > 0:
        raise ValueError("base activations must vary across rows")
    return float(((b - a) ** 2).sum()) / spread
