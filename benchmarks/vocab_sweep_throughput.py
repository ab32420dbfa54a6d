"""Vocabulary-sweep speed: shared-prefix vs full-sequence scoring, against the FLOP bound.

The RM is SmolLM2-135M with a random one-output head (the shape of the embedded lab's decoder RMs),
the prompt the paper's "greatest" prompt. Both methods run in the same process on the same token ids.
The bound is the matmul peak measured in this run (the best of square matmuls of a few sizes) divided
by 2 x non-embedding parameters x tokens per candidate (1 + suffix for the prefix method, the whole
sequence for the naive one). Attention and elementwise work are not counted, and the model's own
matmul shapes can run faster than the square ones, so a fraction near or above 100% means "at the
matmul speed of this machine". The speed of a small shared VM drifts by tens of percent from minute to
minute, so every rate and the peak are each the best of ``--repeats`` measurements taken in turn.
Run: .venv/bin/python benchmarks/vocab_sweep_throughput.py [--tune]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rewardscope import load_reward_model, report
from rewardscope.perf import matmul_peak
from rewardscope.sweep import DEFAULT_BATCH, PROMPTS, response_slot, vocabulary_sweep

# (candidates for the prefix method, for the naive one, matmul sizes for the peak). bfloat16 runs far
# fewer: CPUs without bf16 instructions (AVX2 only) emulate it, and a 2048^3 bf16 matmul takes a minute.
PLAN = {"float32": (2048, 128, (1024, 2048)), "bfloat16": (256, 16, (256, 512))}


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def candidates_per_second(rm, ids, method: str, batch_size: int) -> float:
    vocabulary_sweep(rm, PROMPTS["greatest"], token_ids=ids[:batch_size], method=method, batch_size=batch_size,
                     cache=False, progress=False)  # warm-up (and the one-off prefix/naive self-check)
    start = time.perf_counter()
    vocabulary_sweep(rm, PROMPTS["greatest"], token_ids=ids, method=method, batch_size=batch_size, cache=False,
                     progress=False)
    return len(ids) / (time.perf_counter() - start)


def main(tune: bool = False, dtypes: tuple[str, ...] = ("float32", "bfloat16"), repeats: int = 2) -> None:
    report.quiet()
    rng = np.random.default_rng(0)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    header = False
    for dtype in dtypes:
        n_prefix, n_naive, sizes = PLAN[dtype]
        rm = load_reward_model("smollm2-135m-instruct", dtype=dtype, allow_random_head=True)
        ids = rng.permutation(len(rm.tokenizer))
        slot = response_slot(rm, PROMPTS["greatest"])
        non_embedding = sum(p.numel() for p in rm.model.parameters()) - rm.model.get_input_embeddings().weight.numel()
        peaks = [max(matmul_peak(getattr(torch, dtype), n=n, repeats=3) for n in sizes)]
        tokens = {"prefix": 1 + len(slot.suffix), "naive": slot.length}
        if not header:
            print(f"SmolLM2-135M RM (random head): {non_embedding / 1e6:.1f}M non-embedding parameters, vocabulary "
                  f"{len(ids):,}, template of {slot.length} tokens around a one-token response")
            print(f"{'dtype':9s} {'method':7s} {'batch':>5s} {'tok/cand':>8s} {'cand/s':>8s} {'of bound':>8s} "
                  f"{'vocab min':>9s} {'peak GFLOP/s':>12s}", flush=True)
            header = True
        grids = {"prefix": (256, 512, 1024) if tune else (DEFAULT_BATCH["prefix"],),
                 "naive": (16, 32, 64) if tune else (DEFAULT_BATCH["naive"],)}
        speed = {}
        for method, n in (("prefix", n_prefix), ("naive", n_naive)):
            for batch in grids[method]:
                rates = []
                for _ in range(repeats):  # alternate peak and sweep, keep the best of each
                    rates.append(candidates_per_second(rm, ids[:n], method, min(batch, n)))
                    peaks.append(max(matmul_peak(getattr(torch, dtype), n=n, repeats=3) for n in sizes))
                rate, peak = max(rates), max(peaks)
                bound = peak / (2 * non_embedding * tokens[method])  # candidates/s
                speed[method] = max(speed.get(method, 0.0), rate)
                print(f"{dtype:9s} {method:7s} {batch:5d} {tokens[method]:8d} {rate:8.1f} {rate / bound:8.1%} "
                      f"{len(ids) / rate / 60:9.1f} {peak / 1e9:12.1f}", flush=True)
        print(f"{dtype:9s} speed-up (best prefix / best naive): {speed['prefix'] / speed['naive']:.1f}x", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true", help="try several batch sizes per method")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=sorted(PLAN))
    parser.add_argument("--repeats", type=int, default=2, help="measurements per setting (the best is kept)")
    args = parser.parse_args()
    main(args.tune, tuple(args.dtypes), args.repeats)
