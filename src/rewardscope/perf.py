"""Speed measured as ratios: achieved throughput against the matmul peak measured in the same run."""

from __future__ import annotations

import time


def matmul_peak(dtype=None, n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Best-of-repeats FLOP/s of an n x n x n matmul in ``dtype`` (float32 by default) on ``device``."""
    import torch

    dtype = dtype or torch.float32
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    a @ b  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
