"""Scoring id sequences with an RM's trunk and head: naive (one forward per candidate, the reference) or
prefix (the prompt once, through :mod:`.attention`), in batches.
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ... import hf
from .attention import ATTENTION, SHARED, SharedPrefix, attention_implementation, register_attention
from .slot import Slot

logger = logging.getLogger(__name__)

METHODS = ("prefix", "naive")
# candidates per forward, tuned on 2 CPU cores (an earlier --tune of benchmarks/vocab_sweep_throughput.py): SmolLM2
# prefix 512 (256: -9%, 1024: -15%), naive 32 (16 or 64: -5%); MiniLM encoder 128 (32: -6%, 256: -16%)
DEFAULT_BATCH = {"prefix": 512, "naive": 32, "encoder": 128}


# --------------------------------------------------------------------------------------------------
# Scoring id sequences


class NoSharing(Exception):
    """The prefix method cannot run on this model: its attention layers do not route through transformers'
    AttentionInterface, or it exposes no trunk and head to read the last position with."""


HEADS = ("score", "classifier", "v_head", "reward_head", "head")
"""Attribute names of the head that a sequence-classification RM reads its trunk's last position with."""


def trunk_and_head(model) -> tuple[Any, Any, str]:
    """``(trunk, head, "")`` where the model is a trunk (its ``base_model``: ``model.model``, ``model.transformer``,
    also in custom code built on a transformers ``PreTrainedModel``) plus one head module (``.score``,
    ``.classifier``, ...); else ``(None, None, why)``. The prefix method needs both; a gated head that also reads
    other positions (ArmoRM's gating network) has neither name and is scored in full."""
    import torch

    base = getattr(model, "base_model", None)
    if not isinstance(base, torch.nn.Module) or base is model:
        return None, None, f"{type(model).__name__} exposes no trunk (base_model)"
    for name in HEADS:
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module) and head is not base:
            return base, head, ""
    return None, None, (f"{type(model).__name__} has no score head on its trunk (looked for "
                        f"{', '.join('.' + n for n in HEADS)})")


def _column(values, label: int):
    return values if values.ndim == 1 else values[:, label]


class Scorer:
    """Scores batches of id sequences with one RM in one dtype, pooling at the known last position.

    Decoders with a trunk and a head (:func:`trunk_and_head`) that reproduce the model's own score are read
    at the last position of the trunk (the prefix method shares the trunk's prompt keys/values); any other
    model runs in full and its reward is read from its own output (``rm.output``, ``rm.label``), and
    ``unshared`` says why the prefix method cannot run.
    """

    def __init__(self, rm, dtype):
        import torch

        self.dtype = dtype  # no reference to rm itself: _SCORERS holds scorers weakly by rm
        self.device = rm.device
        self.label = rm.label
        self.output = getattr(rm, "output", "logits")
        self.decoder = rm.architecture == "decoder"
        if dtype == next(rm.model.parameters()).dtype:
            self.model = rm.model
        else:
            self.model = copy.deepcopy(rm.model).to(dtype).eval()
        self.checked = False
        self.base = self.head = None
        self.unshared = "" if self.decoder else "an encoder attends both ways"
        if self.decoder:
            self.base, self.head, self.unshared = trunk_and_head(self.model)
        if self.head is not None:
            probe = torch.tensor([hf.chat_ids(rm.tokenizer, "Hi", "Hello there")], device=self.device)
            pad = self.model.config.pad_token_id
            try:
                self.model.config.pad_token_id = None  # batch of one: transformers pools the last position
                full = float(self._full(probe)[0])
            finally:
                self.model.config.pad_token_id = pad
            mine = float(self.naive(probe)[0])
            if not np.isclose(mine, full, rtol=1e-3, atol=1e-3 if dtype == torch.float32 else 5e-2):
                self.base = self.head = None
                self.unshared = (f"the head of {type(self.model).__name__} read at the last position gives {mine:.4g}, "
                                 f"the model's own output is {full:.4g}")
                logger.warning("%s; scoring full sequences", self.unshared)

    def _full(self, ids, token_type_ids=None) -> np.ndarray:
        """The model's own forward, its reward read from its output (no padding: every row is one sequence)."""
        import torch

        ids = ids.to(self.device)
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids.to(self.device)}
        with torch.inference_mode():
            outputs = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
        return hf.read_reward(outputs, self.output, self.label).float().cpu().numpy().astype(np.float64)

    def naive(self, ids, token_type_ids=None) -> np.ndarray:
        """Full forwards of equally long sequences ``ids`` [B, T]; scores at the last position."""
        import torch

        if self.head is None:
            return self._full(ids, token_type_ids)
        ids = ids.to(self.device)
        with torch.inference_mode():
            hidden = self.base(input_ids=ids, use_cache=False).last_hidden_state[:, -1]
            logits = _column(self.head(hidden), self.label)
        return logits.float().cpu().numpy().astype(np.float64)

    def _records(self, prefix: Sequence[int], state: SharedPrefix) -> bool:
        """Run the prefix through the trunk once; whether its attention layers recorded keys/values."""
        import torch

        with torch.inference_mode():
            self.base(input_ids=torch.tensor([list(prefix)], device=self.device), use_cache=False)
        return bool(state.kv)

    @contextmanager
    def shared(self, prefix: Sequence[int]) -> Iterator[Any]:
        """Record ``prefix``'s keys/values once; yields ``score(continuations [B, S]) -> scores``."""
        import torch

        if self.head is None:
            raise NoSharing(self.unshared)
        register_attention()
        state = SharedPrefix()
        token = SHARED.set(state)
        try:
            with attention_implementation(self.model, ATTENTION) as switched:
                if not switched or not self._records(prefix, state):
                    raise NoSharing(f"{type(self.model).__name__} does not route attention through "
                                     "transformers' AttentionInterface")
                state.recording = False
                state.length = len(prefix)

                def score(continuations) -> np.ndarray:
                    continuations = continuations.to(self.device)
                    batch, length = continuations.shape
                    positions = torch.arange(state.length, state.length + length, device=self.device).expand(batch, -1)
                    with torch.inference_mode():
                        hidden = self.base(input_ids=continuations, position_ids=positions,
                                           use_cache=False).last_hidden_state[:, -1]
                        logits = _column(self.head(hidden), self.label)
                    return logits.float().cpu().numpy().astype(np.float64)

                yield score
        finally:
            SHARED.reset(token)

    def check(self, prefix: Sequence[int], continuations, scores: np.ndarray) -> None:
        """Compare the first shared-prefix scores with full forwards (once per scorer)."""
        import torch

        if self.checked:
            return
        n = min(2, len(continuations))
        full = torch.cat([torch.tensor([list(prefix)] * n), continuations[:n].cpu()], dim=1)
        reference = self.naive(full)
        tol = 1e-3 if self.dtype == torch.float32 else 1e-1
        if not np.allclose(scores[:n], reference, rtol=tol, atol=tol):
            raise RuntimeError(f"shared-prefix scores {scores[:n]} disagree with full forwards {reference} for "
                               f"{type(self.model).__name__}; use method='naive' for this architecture")
        self.checked = True


_SCORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def make_scorer(rm, dtype) -> Scorer:
    per_rm = _SCORERS.setdefault(rm, {})
    if dtype not in per_rm:
        per_rm[dtype] = Scorer(rm, dtype)
    return per_rm[dtype]


def score_block(scorer: Scorer, slot: Slot, token_ids: np.ndarray, method: str, batch_size: int,
                 bar=None) -> np.ndarray:
    """Scores of ``token_ids`` placed in ``slot``, by ``method`` ("prefix" or "naive")."""
    import torch

    out = np.empty(len(token_ids), dtype=np.float64)
    if method == "prefix":
        continuation = torch.empty((len(token_ids), 1 + len(slot.suffix)), dtype=torch.long)
        continuation[:, 0] = torch.as_tensor(token_ids)
        continuation[:, 1:] = torch.tensor(slot.suffix, dtype=torch.long)
        with scorer.shared(slot.prefix) as score:
            for start in range(0, len(token_ids), batch_size):
                out[start:start + batch_size] = score(continuation[start:start + batch_size])
                if bar is not None:
                    bar.update(len(continuation[start:start + batch_size]))
        scorer.check(slot.prefix, continuation, out)  # outside the shared-prefix context: plain attention
        return out
    prefix = torch.tensor(slot.prefix, dtype=torch.long)
    suffix = torch.tensor(slot.suffix, dtype=torch.long)
    types = None if slot.token_type_ids is None else torch.tensor([slot.token_type_ids])
    for start in range(0, len(token_ids), batch_size):
        ids = torch.as_tensor(token_ids[start:start + batch_size], dtype=torch.long)
        batch = torch.cat([prefix.expand(len(ids), -1), ids[:, None], suffix.expand(len(ids), -1)], dim=1)
        out[start:start + len(ids)] = scorer.naive(batch, None if types is None else types.expand(len(ids), -1))
        if bar is not None:
            bar.update(len(ids))
    return out
