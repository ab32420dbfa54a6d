"""Vocabulary-sweep speed: chapter 3's two SmolLM2 RMs over its 3 prompts, each RM alone vs a shared trunk.

Chapter 3 sweeps two decoder RMs, sentiment-smollm2 and helpful-smollm2, that the embedded lab trains from
one SmolLM2-135M-Instruct with only the top 8 of 30 layers, the final norm and a head trainable: their
embeddings and bottom 22 layers are identical. This script times, in one process on the same token ids:

* ``per-RM``: today's path, :func:`rewardscope.sweep.vocabulary_sweep` (method "prefix") of each RM and prompt;
* ``shared-trunk``: :func:`rewardscope.sweep.vocabulary_sweeps`, which finds the shared layers by comparing
  weights and runs them once (its engine also fuses projections and computes only the last position in the
  last layer).

When the lab RMs are not built yet (they train for a long while), two stand-ins of the same shape and cost
are used: SmolLM2-135M-Instruct with a random one-output head, and a copy whose top 8 layers, final norm and
head are perturbed with another seed (the script says which it used). Rates are RM scores per second (one
candidate token scored by one RM); "vocabulary minutes" extrapolates to the whole vocabulary x 3 prompts x
2 RMs. The bound is the matmul peak measured in this run divided by the FLOPs each method must do:
2 x non-embedding parameters x tokens per candidate for each RM alone, 2 x (trunk + each RM's top) parameters
x tokens for the shared trunk (attention and elementwise work are not counted). ``vs per-RM bound`` puts both
against the per-RM bound, so sharing can exceed 100%. Rates and the peak are each the best of ``--repeats``.
By default torch runs one thread (one-core time); ``--threads`` changes it. ``--prefix-vs-naive`` prints
the older table of the prefix method against full forwards.
Run: .venv/bin/python benchmarks/vocab_sweep_throughput.py [--candidates 768] [--bf16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rewardscope import load_reward_model, report
from rewardscope.perf import matmul_peak
from rewardscope.studies.sweep import PROMPTS, response_slot, sweep_throughput, vocabulary_sweep, vocabulary_sweeps
from rewardscope.studies.sweep.trunk import shared_depth
from rewardscope.zoo import entry

LAB = ("sentiment-smollm2", "helpful-smollm2")
TOP = 8  # the lab's decoder_top_layers


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def chapter_rms() -> tuple[dict, str]:
    """The two lab RMs if built, else two stand-ins that share SmolLM2's bottom 22 layers."""
    if all(entry(name).locate() is not None for name in LAB):
        return {name: load_reward_model(name) for name in LAB}, "the lab's own RMs"
    rms = {}
    for name, seed in (("stand-in A", 1), ("stand-in B", 2)):
        torch.manual_seed(seed)  # the random head
        rm = load_reward_model("smollm2-135m-instruct", allow_random_head=True)
        if seed == 2:  # another "fine-tuning" of the top layers, final norm and head
            generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for module in (*rm.model.model.layers[-TOP:], rm.model.model.norm, rm.model.score):
                    for p in module.parameters():
                        p.add_(0.05 * p.abs().mean() * torch.randn(p.shape, generator=generator))
        rms[name] = rm
    return rms, ("stand-ins: SmolLM2-135M-Instruct + random head, and a copy with its top 8 layers, norm and head "
                 "perturbed (the lab RMs are not built)")


def prefix_vs_naive(repeats: int) -> None:
    """The older table: shared-prefix vs full-sequence scoring of one RM (float32 and bfloat16)."""
    plan = {"float32": (2048, 128, (1024, 2048)), "bfloat16": (256, 16, (256, 512))}
    for dtype, (n_prefix, n_naive, sizes) in plan.items():
        rm = load_reward_model("smollm2-135m-instruct", dtype=dtype, allow_random_head=True)
        table = sweep_throughput(rm, PROMPTS["greatest"], n_prefix, n_naive, repeats=repeats, peak_sizes=sizes)
        print(table.to_string(float_format=lambda v: f"{v:.3g}"))
        print(f"{dtype:9s} speed-up (prefix / naive): {table.attrs['speedup']:.1f}x", flush=True)


def main(candidates: int, repeats: int, bf16: bool) -> None:
    report.quiet()
    print(f"{cpu_name()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}")
    rms, what = chapter_rms()
    models = [rm.model for rm in rms.values()]
    depth = shared_depth(models)
    first = next(iter(rms.values()))
    layers = len(first.model.model.layers)
    non_embedding = sum(p.numel() for p in first.model.parameters()) - first.model.get_input_embeddings().weight.numel()
    per_layer = sum(p.numel() for p in first.model.model.layers[0].parameters())
    top = non_embedding - depth * per_layer  # each RM's own layers, norm and head
    tokens = 1 + len(response_slot(first, PROMPTS["greatest"]).suffix)
    n_rms, n_prompts = len(rms), len(PROMPTS)
    vocab = min(len(first.tokenizer), first.model.get_input_embeddings().weight.shape[0])
    ids = np.sort(np.random.default_rng(0).permutation(vocab)[:candidates])
    print(f"{what}; {depth} of {layers} layers shared (found by comparing weights); {non_embedding / 1e6:.1f}M "
          f"non-embedding parameters per RM, {top / 1e6:.1f}M of them above the trunk; {tokens} tokens per candidate; "
          f"{candidates} of {vocab:,} candidates x {n_prompts} prompts x {n_rms} RMs per measurement")

    def per_rm():
        return {(name, key): vocabulary_sweep(rm, prompt, ids, cache=False, progress=False)
                for name, rm in rms.items() for key, prompt in PROMPTS.items()}

    def shared(dtype=None):
        return lambda: vocabulary_sweeps(rms, PROMPTS, ids, dtype, cache=False, progress=False)

    runs = {"per-RM (today)": (per_rm, non_embedding), "shared-trunk": (shared(), (non_embedding + top) / n_rms)}
    if bf16:
        runs["shared-trunk bfloat16"] = (shared("bfloat16"), (non_embedding + top) / n_rms)
    scores = candidates * n_prompts * n_rms
    alone, together = per_rm(), shared()()  # warm-up, and the check that both give the same scores

    def gap(frames) -> float:  # the largest difference from each RM alone, in standard deviations of its scores
        return max(float(np.abs(alone[k]["score"] - frames[k]["score"]).max() / alone[k]["score"].std()) for k in alone)

    gaps = {"shared-trunk": gap(together)}
    if bf16:
        gaps["shared-trunk bfloat16"] = gap(shared("bfloat16")())
    peaks = [max(matmul_peak(torch.float32, n=size, repeats=3) for size in (1024, 2048))]
    best = {name: 0.0 for name in runs}
    for _ in range(repeats):  # alternate methods and the peak; keep the best of each
        for name, (run, _params) in runs.items():
            start = time.perf_counter()
            run()
            best[name] = max(best[name], scores / (time.perf_counter() - start))
        peaks.append(max(matmul_peak(torch.float32, n=size, repeats=3) for size in (1024, 2048)))
    peak = max(peaks)
    per_rm_bound = peak / (2 * non_embedding * tokens)
    rows = []
    for name, (_run, params) in runs.items():
        bound = peak / (2 * params * tokens)
        rows.append(f"{name:22s} {best[name]:9.1f} {best[name] / best['per-RM (today)']:7.2f}x {best[name] / bound:9.0%} "
                    f"{best[name] / per_rm_bound:11.0%} {vocab * n_prompts * n_rms / best[name] / 60:9.1f}")
    print(f"float32 matmul peak {peak / 1e9:.0f} GFLOP/s; per-RM bound {per_rm_bound:.0f} scores/s")
    print(f"{'method':22s} {'scores/s':>9s} {'ratio':>8s} {'of bound':>9s} {'vs per-RM':>11s} {'vocab min':>9s}")
    print("\n".join(rows))
    print(f"shared-trunk / per-RM: {best['shared-trunk'] / best['per-RM (today)']:.2f}x in float32")
    for name, value in gaps.items():
        print(f"{name}: largest score difference from the per-RM float32 sweep {value:.1e} standard deviations "
              "of that RM's scores")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=768, help="token ids per prompt and RM (a vocabulary slice)")
    parser.add_argument("--repeats", type=int, default=2, help="measurements per method (the best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one-core time)")
    parser.add_argument("--bf16", action="store_true", help="also time the shared trunk in bfloat16 (not equal to "
                        "float32 within float tolerance; AMX CPUs run it natively)")
    parser.add_argument("--prefix-vs-naive", action="store_true", help="print the older prefix-vs-naive table instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.prefix_vs_naive:
        report.quiet()
        prefix_vs_naive(args.repeats)
    else:
        main(args.candidates, args.repeats, args.bf16)
