"""Sampling speed of SmolLM2-135M: new tokens per second at batch 1, 16 and 64, float32 and bfloat16.

Two paths, in one run: the reference (transformers' ``model.generate``, sampling) and rewardscope's fast path
(:func:`rewardscope.sampling.sample_ids`, what ``Policy.generate`` uses), both for a fixed number of new tokens
(the reference with ``min_new_tokens``, the fast path without EOS ids) so that early EOS flatters neither.
The bound is the matmul peak measured in this run divided by the FLOPs of one decoding step per
sequence: 2 x (non-embedding parameters + the tied unembedding, which every step pays). Prefill and attention
over the cache are not counted, so the bound is optimistic.
Run: .venv/bin/python benchmarks/sampling_throughput.py
"""

from __future__ import annotations

import time

import torch

from rewardscope import hf, load_policy
from rewardscope.data import chatterbot_prompts
from rewardscope.perf import matmul_peak
from rewardscope.sampling import sample_ids


def main(new_tokens: int = 32) -> None:
    prompts = chatterbot_prompts(20, 120)
    rows = []
    for dtype in ("float32", "bfloat16"):
        policy = load_policy("smollm2-135m-instruct", dtype=dtype)
        flops_per_token = 2 * policy.parameters  # tied: embedding lookup is free, the unembedding is not
        peak = matmul_peak(getattr(torch, dtype))
        for batch in (1, 16, 64):
            encoded = [hf.chat_ids(policy.tokenizer, p) for p in prompts[:batch]]
            reference = _timed(_reference, policy, encoded, new_tokens) / (batch * new_tokens)
            fast = _timed(_fast, policy, encoded, new_tokens) / (batch * new_tokens)
            rows.append((dtype, batch, 1 / reference, 1 / fast, flops_per_token / peak, peak / 1e9))
    print(f"SmolLM2-135M, {new_tokens} new tokens per sequence, {torch.get_num_threads()} threads")
    print(f"{'dtype':9s} {'batch':>5s} {'ref tok/s':>10s} {'of bound':>9s} {'fast tok/s':>11s} {'of bound':>9s} "
          f"{'fast/ref':>9s} {'GFLOP/s':>8s}")
    for dtype, batch, ref, fast, seconds_per_token, peak in rows:
        print(f"{dtype:9s} {batch:5d} {ref:10.1f} {ref * seconds_per_token:9.1%} {fast:11.1f} "
              f"{fast * seconds_per_token:9.1%} {fast / ref:8.2f}x {peak:8.0f}")


def _timed(run, policy, encoded, new_tokens, repeats: int = 1) -> float:
    run(policy, encoded, 2)  # warm-up: the same batch, two tokens
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(policy, encoded, new_tokens)
        best = min(best, time.perf_counter() - start)
    return best


def _reference(policy, encoded, new_tokens):
    pad = policy.tokenizer.pad_token_id
    input_ids, mask = hf.left_pad(encoded, pad)
    with torch.no_grad():
        out = policy.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=new_tokens,
                                    min_new_tokens=new_tokens, do_sample=True, top_k=0, pad_token_id=pad)
    assert out.shape[1] - input_ids.shape[1] == new_tokens


def _fast(policy, encoded, new_tokens):
    with torch.no_grad():
        out = sample_ids(policy.model, encoded, max_new_tokens=new_tokens, pad_id=policy.tokenizer.pad_token_id,
                         eos_ids=(), batch_size=len(encoded))
    assert all(len(ids) == new_tokens for ids in out)


if __name__ == "__main__":
    main()
