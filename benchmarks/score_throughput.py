"""Reward-model scoring speed: batched vs one pair at a time, against the FLOP bound.

The RM is SmolLM2-135M with a random one-output head (the shape of every decoder RM of the embedded
lab). The bound is the matmul peak measured in this run divided by 2 x non-embedding parameters per
token (the score head reads only the last position, so the 49k-vocabulary unembedding is not paid).
Run: .venv/bin/python benchmarks/score_throughput.py
"""

from __future__ import annotations

import time

import torch

from rewardscope import load_reward_model
from rewardscope.data import chatterbot_prompts
from rewardscope.perf import matmul_peak


def timed_score(rm, prompts, responses, batch_size: int) -> float:
    rm.score(prompts[:batch_size], responses[:batch_size], batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    rm.score(prompts, responses, batch_size=batch_size, progress=False)
    return time.perf_counter() - start


def main(n_pairs: int = 64) -> None:
    prompts = chatterbot_prompts(20, 120)[:n_pairs]
    responses = [f"Here is a short and helpful answer about: {p.lower()}" for p in prompts]
    rows = []
    for dtype in ("float32", "bfloat16"):
        rm = load_reward_model("smollm2-135m-instruct", dtype=dtype, allow_random_head=True)
        tokens = sum(len(rm.encode(p, r)) for p, r in zip(prompts, responses))
        embedding = rm.model.get_input_embeddings().weight.numel()
        flops_per_token = 2 * (rm.parameters - embedding)
        peak = matmul_peak(getattr(torch, dtype))
        bound = peak / flops_per_token  # tokens/s
        times = {bs: timed_score(rm, prompts, responses, bs) for bs in (1, 16)}
        for bs, seconds in times.items():
            rows.append((dtype, bs, n_pairs / seconds, tokens / seconds, tokens / seconds / bound,
                         times[1] / seconds, peak / 1e9))
    print(f"{n_pairs} pairs, {tokens} tokens, {torch.get_num_threads()} threads")
    print(f"{'dtype':9s} {'batch':>5s} {'pairs/s':>8s} {'tokens/s':>9s} {'of bound':>9s} {'speed-up':>9s} {'GFLOP/s':>8s}")
    for dtype, bs, pairs, toks, frac, speedup, peak in rows:
        print(f"{dtype:9s} {bs:5d} {pairs:8.1f} {toks:9.0f} {frac:9.1%} {speedup:8.1f}x {peak:8.0f}")


if __name__ == "__main__":
    main()
