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
from rewardscope.sweep import PROMPTS, sweep_throughput, vocabulary_sweep

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


def tune(rm, ids, n: int) -> None:
    """Candidates/s of a few batch sizes per method (how DEFAULT_BATCH was chosen)."""
    for method, batches in (("prefix", (256, 512, 1024)), ("naive", (16, 32, 64))):
        for batch in batches:
            subset = ids[: n if method == "prefix" else n // 16]
            vocabulary_sweep(rm, PROMPTS["greatest"], subset[:batch], method, batch, cache=False, progress=False)
            start = time.perf_counter()
            vocabulary_sweep(rm, PROMPTS["greatest"], subset, method, batch, cache=False, progress=False)
            print(f"  tune {method:7s} batch {batch:5d}: {len(subset) / (time.perf_counter() - start):8.1f} cand/s")


def main(tune_batches: bool = False, dtypes: tuple[str, ...] = ("float32", "bfloat16"), repeats: int = 2) -> None:
    report.quiet()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for dtype in dtypes:
        n_prefix, n_naive, sizes = PLAN[dtype]
        rm = load_reward_model("smollm2-135m-instruct", dtype=dtype, allow_random_head=True)
        table = sweep_throughput(rm, PROMPTS["greatest"], n_prefix, n_naive, repeats=repeats, peak_sizes=sizes)
        print(f"SmolLM2-135M RM (random head): {table.attrs['non_embedding'] / 1e6:.1f}M non-embedding parameters, "
              f"vocabulary {table.attrs['vocabulary']:,}, template of {table.attrs['template_length']} tokens")
        print(table.to_string(float_format=lambda v: f"{v:.3g}"))
        print(f"{dtype:9s} speed-up (prefix / naive): {table.attrs['speedup']:.1f}x", flush=True)
        if tune_batches:
            tune(rm, np.random.default_rng(0).permutation(table.attrs["vocabulary"]), n_prefix)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true", help="try several batch sizes per method")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=sorted(PLAN))
    parser.add_argument("--repeats", type=int, default=2, help="measurements per setting (the best is kept)")
    args = parser.parse_args()
    main(args.tune, tuple(args.dtypes), args.repeats)
