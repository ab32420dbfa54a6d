"""A fast decoding loop for :meth:`rewardscope.policy.Policy.generate`, checked against ``model.generate``.

Why not ``model.generate`` alone: on CPU its sampling step (``torch.multinomial`` over the 49k vocabulary) draws one
exponential per vocabulary entry and row, as slow as the whole forward pass at batch 64; no transformers option
replaces it. The loop below keeps transformers' model forward and its ``StaticCache`` and changes three things:

* the prompt prefix that every prompt of a batch shares (the chat template's system turn) is computed once, at
  batch 1, and copied into every row of the cache, with the per-prompt rest left-padded after it;
* sampling is inverse-CDF with one uniform per token, drawn per prompt from ``(seed, prompt index)``: a prompt's
  answer does not depend on the batch it was sampled in, and the distribution is the one ``model.generate``
  samples from (temperature, then top-p exactly as transformers' ``TopPLogitsWarper``);
* prompts are sampled sorted by length (less padding) and returned in their order.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULTS = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "bad_words_ids": None, "min_length": 0,
            "min_new_tokens": None, "suppress_tokens": None, "begin_suppress_tokens": None,
            "forced_bos_token_id": None, "forced_eos_token_id": None, "encoder_repetition_penalty": 1.0,
            "sequence_bias": None, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "min_p": None,
            "exponential_decay_length_penalty": None, "renormalize_logits": False}
"""Generation-config fields that change what ``model.generate`` samples; a model whose generation config sets any
of them is sampled by ``model.generate`` itself (:func:`supports`)."""


def supports(model) -> bool:
    """Whether :func:`sample_ids` reproduces ``model.generate`` for ``model``: a transformers decoder whose forward
    takes ``position_ids`` and ``cache`` with full (not sliding-window) attention in every layer, and a generation
    config that adds no logits processor."""
    from . import hf

    args = hf.forward_arguments(model)
    if args is not None and not {"position_ids", "cache"} <= args:
        return False
    config = model.config
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "sliding_window", None) \
            or set(getattr(config, "layer_types", None) or ["full_attention"]) != {"full_attention"}:
        return False
    generation = getattr(model, "generation_config", None)
    return generation is None or all(getattr(generation, k, None) in (None, v) for k, v in DEFAULTS.items())


def uniforms(seed: int, index: int, n: int):
    """The ``n`` uniforms in [0, 1) that prompt ``index`` consumes, one per new token, for ``seed``."""
    import numpy as np

    return np.random.default_rng([seed % 2**64, index]).random(n)


def warp(logits, temperature: float = 1.0, top_p: float = 1.0):
    """Probabilities ``[B, V]`` after temperature and top-p, as transformers' warpers compute them (float32)."""
    import torch

    scores = logits.float()
    if temperature != 1.0:
        scores = scores / temperature
    if top_p < 1.0:  # TopPLogitsWarper: drop the tokens whose ascending cumulative mass is <= 1 - top_p, keep >= 1
        ordered, order = torch.sort(scores, descending=False)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - top_p)
        drop[..., -1:] = False
        scores = scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return torch.softmax(scores, dim=-1)


def draw(probs, u):
    """One token per row of ``probs`` by inverse CDF at the uniforms ``u`` ([B], float64); zero-probability tokens
    are never drawn."""
    import torch

    cdf = probs.double().cumsum(dim=-1)
    target = (u.to(cdf) * cdf[:, -1]).unsqueeze(1)
    return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp_(max=probs.shape[1] - 1)


def sample_ids(model, encoded: Sequence[Sequence[int]], *, max_new_tokens: int, pad_id: int, eos_ids=(),
               temperature: float = 1.0, top_p: float = 1.0, do_sample: bool = True, seed: int = 0,
               batch_size: int = 16, device: str = "cpu", bar=None) -> list[list[int]]:
    """New token ids per prompt (chat-template ids ``encoded``), cut before the first id in ``eos_ids``.

    Arguments are checked by the caller (:meth:`Policy.generate`). ``bar`` wraps the iterable of batches.
    """
    import numpy as np

    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    results: list[list[int] | None] = [None] * len(encoded)
    for rows in (bar(batches) if bar else batches):
        u = np.stack([uniforms(seed, i, max_new_tokens) for i in rows]) if do_sample else None
        new = _batch(model, [list(encoded[i]) for i in rows], u, max_new_tokens=max_new_tokens, pad_id=pad_id,
                     eos_ids=set(eos_ids), temperature=temperature, top_p=top_p, device=device)
        for i, ids in zip(rows, new):
            results[i] = ids
    return results  # type: ignore[return-value]


def _batch(model, seqs, u, *, max_new_tokens, pad_id, eos_ids, temperature, top_p, device):
    import os

    import torch
    from transformers import DynamicCache, StaticCache

    batch = len(seqs)
    prefix = len(os.path.commonprefix(seqs)) if batch > 1 else 0
    prefix = min(prefix, min(len(s) for s in seqs) - 1)  # every row keeps at least one token to prefill
    rests = [s[prefix:] for s in seqs]
    width = max(len(r) for r in rests)
    total = prefix + width + max_new_tokens
    mask = torch.zeros(batch, total, dtype=torch.long)
    mask[:, :prefix] = 1
    ids = torch.full((batch, width), pad_id, dtype=torch.long)
    for row, rest in enumerate(rests):
        ids[row, width - len(rest):] = torch.tensor(rest)
        mask[row, prefix + width - len(rest):] = 1  # the slots of new tokens too: causality hides the future
    lengths = torch.tensor([len(s) for s in seqs])
    pos = (prefix + (mask[:, prefix:prefix + width].cumsum(1) - 1)).clamp_min(prefix)
    cache = StaticCache(config=model.config, max_cache_len=total)
    mask, ids, pos, lengths = mask.to(device), ids.to(device), pos.to(device), lengths.to(device)
    if prefix:
        shared = model(input_ids=torch.tensor([seqs[0][:prefix]], device=device), cache=DynamicCache(config=model.config),
                       use_cache=True, logits_to_keep=1).cache
        for static, dynamic in zip(cache.layers, shared.layers):
            keys, values = dynamic.keys, dynamic.values
            static.lazy_initialization(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1))
            static.keys[:, :, :prefix] = keys
            static.values[:, :, :prefix] = values
            static.cumulative_length.fill_(prefix)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True,
                   logits_to_keep=1).logits[:, -1]
    uniform = None if u is None else torch.from_numpy(u)
    out = torch.empty(batch, max_new_tokens, dtype=torch.long)
    done = torch.zeros(batch, dtype=torch.bool)
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long)
    steps = 0
    for step in range(max_new_tokens):
        if uniform is None:
            token = logits.float().argmax(dim=-1)
        else:
            token = draw(warp(logits, temperature, top_p), uniform[:, step])
        token = token.cpu()
        out[:, step] = token
        steps = step + 1
        if len(eos):
            done |= torch.isin(token, eos)
            if bool(done.all()):
                break
        if step + 1 == max_new_tokens:
            break
        logits = model(input_ids=token.to(device).unsqueeze(1), attention_mask=mask,
                       position_ids=(lengths + step).unsqueeze(1), cache=cache, use_cache=True).logits[:, -1]
    result = []
    for row in out[:, :steps].tolist():
        cut = next((k for k, t in enumerate(row) if t in eos_ids), len(row))
        result.append(row[:cut])
    return result
