"""Bradley–Terry training must recover a planted preference."""

import numpy as np
import pandas as pd
import pytest

from rewardscope import load_reward_model
from rewardscope.data import chatterbot_prompts
from rewardscope.training.train import BTConfig, pairwise_accuracy, train_reward_model


def _planted_pairs(n=160):
    """Chosen responses end politely, rejected ones rudely; the filler words are random."""
    rng = np.random.default_rng(0)
    words = "the a cat dog house tree blue red small big runs walks".split()
    prompts = chatterbot_prompts()[:n]
    rows = []
    for i, prompt in enumerate(prompts):
        split = "train" if i < 0.7 * n else "validation" if i < 0.85 * n else "test"
        rows.append({"split": split, "prompt": prompt, "chosen": " ".join(rng.choice(words, 4)) + " thank you",
                     "rejected": " ".join(rng.choice(words, 4)) + " go away"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("backbone, trainable", [("tiny-llama", 1), ("tiny-bert-rm", "all")])
def test_bt_training_recovers_a_planted_preference(tmp_path, backbone, trainable):
    pairs = _planted_pairs()
    config = BTConfig(backbone=backbone, trainable=trainable, epochs=2, learning_rate=2e-3, batch_size=16)
    result = train_reward_model(pairs, config, tmp_path / "rm", gold="politeness", progress=False)
    assert result.metrics["heldout_accuracy"] >= 0.9
    assert result.metrics["heldout_accuracy"] > result.metrics["initial_validation_accuracy"]
    assert result.log["loss"].iloc[-3:].mean() < result.log["loss"].iloc[:3].mean()
    rm = load_reward_model(str(result.path))  # an ordinary HF directory
    test = pairs[pairs["split"] == "test"]
    acc = pairwise_accuracy(rm.score(test["prompt"], test["chosen"]), rm.score(test["prompt"], test["rejected"]))
    assert acc == result.metrics["heldout_accuracy"]
    if trainable == 1:
        assert result.metrics["trainable_parameters"] < result.metrics["parameters"]


def test_partial_fine_tuning_leaves_lower_layers_unchanged(tmp_path):
    from safetensors.torch import load_file

    from rewardscope.zoo import resolve

    pairs = _planted_pairs(60)
    train_reward_model(pairs, BTConfig(backbone="tiny-llama", trainable=1, learning_rate=1e-2), tmp_path / "rm",
                       progress=False)
    before = load_file(resolve("tiny-llama") / "model.safetensors")
    after = load_file(tmp_path / "rm" / "model.safetensors")
    assert (before["model.layers.0.mlp.up_proj.weight"] == after["model.layers.0.mlp.up_proj.weight"]).all()
    assert not (before["model.layers.1.mlp.up_proj.weight"] == after["model.layers.1.mlp.up_proj.weight"]).all()


@pytest.mark.parametrize("field, value", [("trainable", "some"), ("epochs", 0), ("learning_rate", -1.0),
                                          ("batch_size", 2.5)])
def test_bad_config_fails_early(field, value):
    with pytest.raises(ValueError, match=field):
        BTConfig(backbone="tiny-llama", **{field: value})


def test_bad_pairs_and_output_dir(tmp_path):
    pairs = _planted_pairs(40)
    with pytest.raises(ValueError, match="columns"):
        train_reward_model(pairs.drop(columns="rejected"), BTConfig(backbone="tiny-llama"), tmp_path / "a")
    with pytest.raises(ValueError, match="non-empty train/validation/test"):
        train_reward_model(pairs[pairs["split"] == "train"], BTConfig(backbone="tiny-llama"), tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        train_reward_model(pairs, BTConfig(backbone="tiny-llama"), tmp_path / "c")


def test_cached_trunk_trains_like_the_plain_forward(tmp_path):
    """Cached frozen layers give the plain path's step losses, validation accuracies and saved weights."""
    from safetensors.torch import load_file

    pairs = _planted_pairs(80)
    results = {}
    for cache in (False, True):
        config = BTConfig(backbone="tiny-llama", trainable=1, epochs=2, learning_rate=2e-3, batch_size=8,
                          cache_trunk=cache)
        results[cache] = train_reward_model(pairs, config, tmp_path / f"rm-{cache}", progress=False)
    plain, cached = results[False], results[True]
    assert cached.metrics["cached_trunk"] and not plain.metrics["cached_trunk"]
    np.testing.assert_allclose(cached.log["loss"], plain.log["loss"], rtol=1e-4, atol=1e-5)
    assert cached.metrics["validation_accuracy"] == plain.metrics["validation_accuracy"]
    assert cached.metrics["heldout_accuracy"] == plain.metrics["heldout_accuracy"]
    a, b = load_file(plain.path / "model.safetensors"), load_file(cached.path / "model.safetensors")
    assert a.keys() == b.keys()  # the frozen layers are saved too, not the pass-throughs
    for name in a:
        np.testing.assert_allclose(b[name].numpy(), a[name].numpy(), rtol=1e-3, atol=1e-5, err_msg=name)


def test_cached_trunk_stands_down_where_it_cannot_serve():
    """Dropout in the frozen layers (train and eval differ) or nothing frozen: the plain forward runs."""
    from rewardscope.training.train import FrozenTrunk, _frozen_trunk, freeze_bottom_layers, load_backbone

    pairs = _planted_pairs(40)
    splits = {s: pairs[pairs["split"] == s] for s in ("train", "validation", "test")}
    model, tokenizer, architecture, pad_id = load_backbone("tiny-llama")
    config = BTConfig(backbone="tiny-llama", trainable=1, cache_trunk=True)
    freeze_bottom_layers(model, 1)
    assert _frozen_trunk(model, tokenizer, architecture, pad_id, config, splits) is not None
    model.config.attention_dropout = 0.1
    assert _frozen_trunk(model, tokenizer, architecture, pad_id, config, splits) is None
    model.config.attention_dropout = 0.0
    n_layers = len(model.model.layers)
    assert _frozen_trunk(model, tokenizer, architecture, pad_id, BTConfig(backbone="tiny-llama", trainable=n_layers,
                                                                          cache_trunk=True), splits) is None
    with pytest.raises(ValueError, match="frozen depth"):
        FrozenTrunk(model, tokenizer, architecture, pad_id, 128, depth=0)
