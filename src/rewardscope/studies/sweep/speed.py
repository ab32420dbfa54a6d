"""How fast a sweep runs here: candidates per second of each method against the matmul peak measured in
the same run (:mod:`rewardscope.perf`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ... import hf
from .scorer import DEFAULT_BATCH
from .slot import check_rm, response_slot
from .sweep import check_token_ids, vocabulary_sweep

# --------------------------------------------------------------------------------------------------
# Speed


def sweep_throughput(rm, prompt: str, n_prefix: int = 2048, n_naive: int = 128, repeats: int = 2,
                     peak_sizes: Sequence[int] | None = None, seed: int = 0) -> pd.DataFrame:
    """Candidates per second of both methods on the same random token ids, against the FLOP bound.

    The bound is the matmul peak measured in the same run (:func:`rewardscope.perf.matmul_peak`, the
    best over ``peak_sizes``; by default sizes that suit the device and dtype) divided by 2 x
    non-embedding parameters x tokens per candidate (``1 + len(suffix)`` for "prefix", the whole
    sequence for "naive"); attention and elementwise work are not counted. Rates and peaks are each
    the best of ``repeats`` measurements taken in turn, since the speed of a shared machine drifts.
    Encoders have no prefix method: one "naive" row.

    Returns a frame indexed by method: batch, tokens per candidate, candidates/s, fraction of the
    bound, minutes for the whole vocabulary, peak GFLOP/s; ``attrs["speedup"]`` is prefix / naive.
    """
    import torch

    from ...perf import matmul_peak

    check_rm(rm)
    for name, value in (("n_prefix", n_prefix), ("n_naive", n_naive), ("repeats", repeats)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    dtype = next(rm.model.parameters()).dtype
    device = str(rm.device)
    if peak_sizes is None:  # emulated bfloat16 on AVX2-only CPUs takes a minute for one 2048^3 matmul
        peak_sizes = (4096, 8192) if device.startswith("cuda") else (1024, 2048) if dtype == torch.float32 else (256, 512)
    vocab = len(check_token_ids(None, rm))
    ids = np.random.default_rng(seed).permutation(vocab)
    slot = response_slot(rm, prompt)
    model = rm.model
    non_embedding = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    decoder = rm.architecture == "decoder"
    plan = {"prefix": (n_prefix, DEFAULT_BATCH["prefix"], 1 + len(slot.suffix))} if decoder else {}
    plan["naive"] = (n_naive, DEFAULT_BATCH["naive" if decoder else "encoder"], slot.length)

    def rate(method: str, n: int, batch: int) -> float:
        subset = ids[:n]
        vocabulary_sweep(rm, prompt, subset[:min(batch, n)], method, min(batch, n), cache=False, progress=False)
        start = time.perf_counter()
        vocabulary_sweep(rm, prompt, subset, method, min(batch, n), cache=False, progress=False)
        return n / (time.perf_counter() - start)

    peaks = [max(matmul_peak(dtype, n=size, repeats=3, device=device) for size in peak_sizes)]
    rows = []
    for method, (n, batch, tokens) in plan.items():
        rates = []
        for _ in range(repeats):  # alternate sweep and peak, keep the best of each
            rates.append(rate(method, n, batch))
            peaks.append(max(matmul_peak(dtype, n=size, repeats=3, device=device) for size in peak_sizes))
        best, peak = max(rates), max(peaks)
        rows.append({"method": method, "dtype": hf.dtype_name(dtype), "batch": min(batch, n), "tokens per candidate": tokens,
                     "candidates/s": best, "of FLOP bound": best / (peak / (2 * non_embedding * tokens)),
                     "vocabulary minutes": vocab / best / 60, "peak GFLOP/s": peak / 1e9})
    frame = pd.DataFrame(rows).set_index("method")
    frame.attrs.update(speedup=float(frame["candidates/s"].iloc[0] / frame["candidates/s"].iloc[-1]),
                       non_embedding=int(non_embedding), vocabulary=vocab, template_length=slot.length)
    return frame
