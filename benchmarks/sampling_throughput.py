"""Sampling speed of SmolLM2-135M: new tokens per second at batch 1, 16 and 64, float32 and bfloat16.

The bound is the matmul peak measured in this run divided by the FLOPs of one decoding step per
sequence: 2 x (non-embedding parameters + the tied unembedding, which every step pays). Attention
over the cache is ignored, so the bound is optimistic for long contexts.
Run: .venv/bin/python benchmarks/sampling_throughput.py
"""

from __future__ import annotations

import time

import torch

from rewardscope import load_policy
from rewardscope.data import chatterbot_prompts
from rewardscope.perf import matmul_peak


def main(new_tokens: int = 32) -> None:
    prompts = chatterbot_prompts(20, 120)
    rows = []
    for dtype in ("float32", "bfloat16"):
        policy = load_policy("smollm2-135m-instruct", dtype=dtype)
        flops_per_token = 2 * policy.parameters  # tied: embedding lookup is free, the unembedding is not
        peak = matmul_peak(getattr(torch, dtype))
        for batch in (1, 16, 64):
            batch_prompts = prompts[:batch]
            policy.generate(batch_prompts[:2], max_new_tokens=4, batch_size=batch)  # warm-up
            start = time.perf_counter()
            out = policy.model.generate(  # fixed length: min_new_tokens stops early EOS from flattering the rate
                **_inputs(policy, batch_prompts), max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True,
                pad_token_id=policy.tokenizer.pad_token_id)
            seconds = time.perf_counter() - start
            produced = batch * (out.shape[1] - _inputs(policy, batch_prompts)["input_ids"].shape[1])
            rate = produced / seconds
            rows.append((dtype, batch, rate, rate * flops_per_token / peak, peak / 1e9))
    print(f"SmolLM2-135M, {new_tokens} new tokens per sequence, {torch.get_num_threads()} threads")
    print(f"{'dtype':9s} {'batch':>5s} {'new tok/s':>10s} {'of bound':>9s} {'GFLOP/s':>8s}")
    for dtype, batch, rate, frac, peak in rows:
        print(f"{dtype:9s} {batch:5d} {rate:10.1f} {frac:9.1%} {peak:8.0f}")


def _inputs(policy, prompts):
    from rewardscope import hf

    input_ids, mask = hf.left_pad([hf.chat_ids(policy.tokenizer, p) for p in prompts], policy.tokenizer.pad_token_id)
    return {"input_ids": input_ids, "attention_mask": mask}


if __name__ == "__main__":
    main()
