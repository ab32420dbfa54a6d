"""The shared-prefix attention function: candidates attend to one prompt prefix's cached keys and values
(registered with transformers' AttentionInterface), so the prefix runs once per prompt, not once per candidate.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)

ATTENTION = "rewardscope_shared_prefix"  # the name registered with transformers' AttentionInterface


# --------------------------------------------------------------------------------------------------
# The shared-prefix attention function


class SharedPrefix:
    """Per-layer keys/values of the prefix (recorded by the first pass, read by the candidate passes)."""

    def __init__(self):
        self.kv: dict[int, tuple[Any, Any]] = {}
        self.recording = True
        self.length = 0


SHARED: contextvars.ContextVar[SharedPrefix | None] = contextvars.ContextVar("rewardscope_shared_prefix", default=None)


def shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None,
                            sliding_window=None, s_aux=None, **kwargs):
    """Causal attention of a batch of continuations to one shared prefix plus their own keys.

    The signature of transformers' attention functions: query ``[B, H, S, D]``, key/value
    ``[B, H_kv, S, D]`` (already rotated), returns ``([B, S, H, D], None)``. While recording, the
    batch is the prefix alone (B = 1) and its keys/values are stored per layer; afterwards every query
    also attends to those keys. Handles grouped-query attention, logit soft-capping (Gemma 2), sliding
    windows and attention sinks (``s_aux``). Padding masks are not supported (sweeps never pad).
    """
    # Hand-written: no library scores a batch against one broadcast prefix K/V plus per-row causal K/V in one softmax.
    import torch

    shared = SHARED.get()
    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    scaling = dim ** -0.5 if scaling is None else scaling
    prefix_k = prefix_v = None
    if shared is not None and shared.recording:
        if batch != 1:
            raise RuntimeError("the shared prefix must be recorded with batch size 1")
        shared.kv[id(module)] = (key[0].detach(), value[0].detach())
    elif shared is not None:
        try:
            prefix_k, prefix_v = shared.kv[id(module)]
        except KeyError:
            raise RuntimeError(f"no recorded prefix for attention layer {type(module).__name__}") from None
    offset = 0 if prefix_k is None else prefix_k.shape[1]

    # layout [H_kv, B, groups * S, D]: query head h reads key head h // groups, as transformers' repeat_kv
    q = query.reshape(batch, kv_heads, groups * length, dim).transpose(0, 1)
    k, v = key.transpose(0, 1), value.transpose(0, 1)  # [H_kv, B, S, D]
    own = torch.matmul(q, k.transpose(-1, -2))  # [H_kv, B, gS, S]
    parts = [own]
    if prefix_k is not None:
        # fold the batch into the rows: [H_kv, B*gS, D] @ [H_kv, D, P], no per-candidate copy of the prefix
        shared_scores = torch.matmul(q.reshape(kv_heads, batch * groups * length, dim), prefix_k.transpose(-1, -2))
        parts.insert(0, shared_scores.view(kv_heads, batch, groups * length, offset))
    scores = torch.cat(parts, dim=-1) * scaling if len(parts) > 1 else own * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    q_pos = offset + torch.arange(length, device=query.device).repeat(groups)[:, None]  # [gS, 1]
    k_pos = torch.arange(offset + length, device=query.device)[None, :]  # [1, P + S]
    allowed = k_pos <= q_pos
    if sliding_window is not None:
        allowed = allowed & (k_pos > q_pos - sliding_window)
    scores = scores.masked_fill(~allowed, float("-inf"))
    if s_aux is not None:
        sinks = s_aux.reshape(kv_heads, 1, groups, 1, 1).expand(kv_heads, batch, groups, length, 1)
        scores = torch.cat([scores, sinks.reshape(kv_heads, batch, groups * length, 1).to(scores.dtype)], dim=-1)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(probs[..., offset:offset + length], v)  # [H_kv, B, gS, D]
    if prefix_k is not None:
        shared_probs = probs[..., :offset].reshape(kv_heads, batch * groups * length, offset)
        out = out + torch.matmul(shared_probs, prefix_v).view(kv_heads, batch, groups * length, dim)
    out = out.view(kv_heads, batch, groups, length, dim).permute(1, 3, 0, 2, 4).reshape(batch, length, heads, dim)
    return out, None


_REGISTERED = False


def register_attention() -> None:
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface

        AttentionInterface.register(ATTENTION, shared_prefix_attention)
        _REGISTERED = True


@contextmanager
def attention_implementation(model, name: str) -> Iterator[bool]:
    """Switch ``model`` to attention implementation ``name`` for the block; yields whether it took."""
    old = model.config._attn_implementation
    try:
        model.set_attn_implementation(name)
    except (ValueError, KeyError, ImportError) as err:
        logger.warning("cannot switch %s to %s attention: %s", type(model).__name__, name, err)
        yield False
        return
    try:
        yield model.config._attn_implementation == name
    finally:
        model.set_attn_implementation(old)
