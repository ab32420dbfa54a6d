"""Bradley–Terry training speed of a lab decoder RM: the cached frozen trunk against the plain forward.

The RM is SmolLM2-135M with its top 8 of 30 layers trainable, as the embedded lab trains it
(``train.BTConfig(trainable=8)``), on planted pairs of chatterbot prompts. Both paths run in this
run with the same pairs and seed; the cached path (``cache_trunk=True``) computes the 22 frozen
layers once per sequence and then trains only the top layers, so its first epoch pays about what
the plain one does and each further epoch costs a fraction of it. Reported: seconds for one and
for three epochs per path, and the ratio plain / cached. The step losses of the two paths agree
(tests/training/test_train.py checks it on a tiny model; here the largest difference is printed).
Run: .venv/bin/python benchmarks/bt_training_throughput.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rewardscope.data import chatterbot_prompts
from rewardscope.training.train import BTConfig, train_reward_model


def planted_pairs(n: int = 96) -> pd.DataFrame:
    """Chosen answers thank the user, rejected ones do not; 70/15/15 split by prompt."""
    rng = np.random.default_rng(0)
    words = "the answer is simple and you can try it again later today with some care".split()
    rows = []
    for i, prompt in enumerate(chatterbot_prompts(20, 120)[:n]):
        split = "train" if i < 0.7 * n else "validation" if i < 0.85 * n else "test"
        filler = lambda: " ".join(rng.choice(words, 12))  # noqa: E731
        rows.append({"split": split, "prompt": prompt, "chosen": f"{filler()}, thank you!", "rejected": f"{filler()}."})
    return pd.DataFrame(rows)


def main() -> None:
    pairs = planted_pairs()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in (1, 3):
            for cache in (False, True):
                config = BTConfig(backbone="smollm2-135m-instruct", trainable=8, epochs=epochs, batch_size=8,
                                  learning_rate=1e-4, cache_trunk=cache)
                start = time.perf_counter()
                result = train_reward_model(pairs, config, Path(tmp) / f"{epochs}-{cache}", progress=False)
                results[epochs, cache] = (time.perf_counter() - start, result)
    print(f"SmolLM2-135M RM, top 8 of 30 layers trained, {int((pairs['split'] == 'train').sum())} train pairs, "
          f"{torch.get_num_threads()} threads (seconds include loading and the saved model's test scoring)")
    print(f"{'epochs':>6s} {'plain s':>8s} {'cached s':>9s} {'plain/cached':>13s} {'max |loss diff|':>16s}")
    for epochs in (1, 3):
        (plain, a), (cached, b) = results[epochs, False], results[epochs, True]
        assert b.metrics["cached_trunk"], "the cached path stood down"
        diff = float(np.abs(a.log["loss"].to_numpy() - b.log["loss"].to_numpy()).max())
        print(f"{epochs:6d} {plain:8.1f} {cached:9.1f} {plain / cached:12.2f}x {diff:16.2e}")


if __name__ == "__main__":
    main()
