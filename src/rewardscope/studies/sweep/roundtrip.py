"""The original pipeline's decode -> template text -> re-encode round trip, measured against scoring by id:
how many candidates change ids, and how the ranking moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ... import hf
from .scorer import DEFAULT_BATCH, NoSharing, Scorer, make_scorer
from .slot import check_rm, common_prefix, response_slot
from .sweep import vocabulary_sweep

# --------------------------------------------------------------------------------------------------
# Comparisons


def rank_agreement(a, b, top: int = 100) -> dict[str, float]:
    """Spearman ρ, Kendall τ and top/bottom-``top`` overlap (fraction shared) of two aligned score vectors."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"a and b must be 1-D, equally long and have at least 2 values; got {a.shape} and {b.shape}")
    if not isinstance(top, int) or not 1 <= top <= len(a):
        raise ValueError(f"top must be an int in [1, {len(a)}], got {top!r}")
    order_a, order_b = np.argsort(-a, kind="stable"), np.argsort(-b, kind="stable")
    return {
        "spearman": float(stats.spearmanr(a, b).statistic),
        "kendall": float(stats.kendalltau(a, b).statistic),
        "top_overlap": len(set(order_a[:top]) & set(order_b[:top])) / top,
        "bottom_overlap": len(set(order_a[-top:]) & set(order_b[-top:])) / top,
    }


def roundtrip_ids(rm, prompt: str, token_id: int) -> list[int]:
    """The ids the original pipeline scored for ``token_id``: decode it, render the template as text
    around it, re-encode with the tokenizer's special tokens (a second BOS where the template writes one)."""
    check_rm(rm)
    tok = rm.tokenizer
    response = tok.decode([int(token_id)])
    if rm.architecture == "decoder":
        text = hf.render_chat(tok, hf.chat_messages(prompt, response))  # the date pinned as for the by-id ids
        return tok(text, add_special_tokens=True).input_ids
    return tok(prompt, response).input_ids


def score_sequences(scorer: Scorer, sequences: list[list[int]], batch_size: int, reference: Sequence[int],
                     types: list[list[int]] | None = None) -> np.ndarray:
    """Scores of sequences of any lengths: grouped by (shared prefix with ``reference``, length); decoders
    share each group's prefix, encoders run in full."""
    import torch

    out = np.empty(len(sequences), dtype=np.float64)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, seq in enumerate(sequences):
        cut = min(common_prefix(seq, reference), len(seq) - 1) if scorer.decoder else 0
        groups.setdefault((cut, len(seq)), []).append(i)
    for (cut, _), members in groups.items():
        block = torch.tensor([sequences[i] for i in members], dtype=torch.long)
        block_types = None if types is None else torch.tensor([types[i] for i in members], dtype=torch.long)
        scores = None
        if scorer.decoder and cut > 0:
            try:
                with scorer.shared(reference[:cut]) as score:
                    scores = np.concatenate([score(block[s:s + batch_size, cut:])
                                             for s in range(0, len(block), batch_size)])
            except NoSharing:
                scores = None
        if scores is None:  # full forwards: one step size for the slice and the stride
            step = min(batch_size, DEFAULT_BATCH["encoder"])
            scores = np.concatenate([scorer.naive(block[s:s + step],
                                                  None if block_types is None else block_types[s:s + step])
                                     for s in range(0, len(block), step)])
        out[members] = scores
    return out


def decode_reencode_comparison(rm, prompt: str, token_ids: Sequence[int] | None = None, top: int = 100,
                               batch_size: int | None = None, dtype=None,
                               progress: bool | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """How much the original pipeline's decode → re-encode (and double BOS) changes a sweep.

    Scores each token both ways: by id (:func:`vocabulary_sweep`, prefix method) and as the original
    code did (:func:`roundtrip_ids`, scored at each sequence's true last position, so padding plays no
    part). Returns a frame (token_id, token, score, score_roundtrip, changed: the re-encoded response
    is not the id itself, n_ids: length of the re-encoded sequence) and a summary: n, changed_fraction,
    double_bos_fraction, and :func:`rank_agreement` of the two score columns.
    """
    by_id = vocabulary_sweep(rm, prompt, token_ids, batch_size=batch_size, dtype=dtype, progress=progress)
    ids = by_id["token_id"].to_numpy()
    slot = response_slot(rm, prompt)
    tok = rm.tokenizer
    bos = tok.bos_token_id
    sequences, types = [], None
    if rm.architecture == "decoder":
        texts = [hf.render_chat(tok, hf.chat_messages(prompt, r)) for r in tok.batch_decode([[int(i)] for i in ids])]
        sequences = tok(texts, add_special_tokens=True).input_ids
    else:
        encoded = tok([prompt] * len(ids), tok.batch_decode([[int(i)] for i in ids]))
        sequences, types = encoded["input_ids"], encoded.get("token_type_ids")
    compute_dtype = hf.resolve_dtype(dtype, rm.device) if dtype is not None else next(rm.model.parameters()).dtype
    scorer = make_scorer(rm, compute_dtype)
    if sequences and len(sequences[0]) > rm.max_length:
        raise ValueError(f"prompt is too long for {rm.name!r}")
    reference = sequences[0]
    roundtrip = score_sequences(scorer, sequences, batch_size or DEFAULT_BATCH["prefix"], reference, types)
    double = np.array([bos is not None and len(seq) > 1 and seq[0] == seq[1] == bos for seq in sequences])
    # the response changed if the sequence differs from the by-id one once a doubled BOS is collapsed
    changed = np.array([list(seq[1:] if dbl else seq) != slot.ids(i) for seq, i, dbl in zip(sequences, ids, double)])
    frame = by_id.assign(score_roundtrip=roundtrip, changed=changed, n_ids=[len(s) for s in sequences])
    summary = {"n": len(ids), "changed_fraction": float(changed.mean()), "double_bos_fraction": float(double.mean()),
               **rank_agreement(frame["score"], frame["score_roundtrip"], top=min(top, len(ids)))}
    return frame, summary
