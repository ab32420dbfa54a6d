"""The lab at smoke scale: every recipe builds, is cached, and loads like a hub model."""

import json

import numpy as np
import pytest

from rewardscope import lab, load_policy, load_reward_model
from rewardscope.artifacts import MANIFEST
from rewardscope.zoo import embedded_names, read_sidecar, resolve

SMOKE = lab.SCALES["smoke"]


def test_every_recipe_is_registered_at_both_scales():
    names = set(embedded_names())
    for recipe in [*lab.RM_RECIPES, *lab.POLICY_RECIPES, "seal-pre"]:
        assert recipe in names and f"{recipe}-smoke" in names


def test_pool_has_every_gold_and_pairs_split_by_prompt():
    pool = lab.sample_pool(SMOKE)
    assert len(pool) == (SMOKE.chatterbot_prompts + SMOKE.review_prompts) * SMOKE.k
    assert {f"gold_{g}" for g in lab.GOLDS} <= set(pool.columns)
    assert set(pool["source"]) == {"chatterbot", "drug-reviews"}
    pairs = lab.preference_pairs(SMOKE, "helpfulness", 0.0)
    prompts = pairs.groupby("split")["prompt"].apply(set)
    assert not prompts["train"] & prompts["test"]
    assert lab.sample_pool(SMOKE).equals(pool)  # cached


def test_reward_models_build_with_metrics_and_load():
    table = lab.reward_model_table("smoke")
    assert len(table) == len(lab.RM_RECIPES)
    assert table["held-out accuracy"].between(0, 1).all() and (table["train pairs"] > 0).all()
    rm = load_reward_model("sentiment-smollm2-smoke")
    assert rm.architecture == "decoder" and rm.score(["hi"], ["hello"]).shape == (1,)
    manifest = json.loads((resolve("sentiment-minilm-smoke") / MANIFEST).read_text())
    assert manifest["build_seconds"] > 0


def test_seal_post_trains_on_noisy_labels_and_reports_both_accuracies():
    pairs = lab.recipe_pairs("seal-post", "smoke")
    assert pairs["flipped"].any() and not lab.recipe_pairs("sentiment-minilm", "smoke")["flipped"].any()
    assert lab.RM_RECIPES["seal-post"].label_noise == 0.25
    metrics = read_sidecar(resolve("seal-post-smoke"))["metrics"]
    assert metrics["label_noise"] == pytest.approx(pairs["flipped"].mean())
    assert 0 <= metrics["heldout_gold_accuracy"] <= 1
    with pytest.raises(ValueError, match="unknown lab reward-model recipe 'harmless-smollm2'"):
        lab.recipe_pairs("harmless-smollm2")


def test_below_bar_names_each_reward_model_that_misses_it():
    import pandas as pd

    table = pd.DataFrame({"reward model": ["a", "b", "c", "d"], "test pairs": [350, 70, 400, 120],
                          "held-out accuracy vs gold": [0.85, 0.9, 0.66, 0.5]})
    short = lab.below_bar(table)
    assert short["reward model"].tolist() == ["b", "c", "d"]
    assert short["why"].tolist() == ["70 test pairs < 300", "accuracy 0.660 < 0.8",
                                     "accuracy 0.500 < 0.8, 120 test pairs < 300"]
    assert lab.below_bar(table, min_accuracy=0.5, min_pairs=50)["reward model"].tolist() == []
    with pytest.raises(ValueError, match="table needs columns"):
        lab.below_bar(table.drop(columns="test pairs"))
    with pytest.raises(ValueError, match="min_accuracy"):
        lab.below_bar(table, min_accuracy=1.5)


def test_heldout_correct_against_gold_undoes_the_flips():
    labels = lab.heldout_correct("seal-post", "smoke")
    gold = lab.heldout_correct("seal-post", "smoke", against="gold")
    test = lab.recipe_pairs("seal-post", "smoke").query("split == 'test'")
    assert ((labels != gold) == test["flipped"].to_numpy()).all()
    with pytest.raises(ValueError, match="against must be"):
        lab.heldout_correct("seal-post", "smoke", against="truth")


def test_the_lab_pins_float32_on_every_machine():
    default = lab.SCALES["default"]
    assert default.sample_dtype == "float32" and not default.train_bf16


def test_seal_pre_is_sentiment_and_post_is_trained_further():
    assert resolve("seal-pre-smoke") == resolve("sentiment-minilm-smoke")
    post = read_sidecar(resolve("seal-post-smoke"))
    assert post["backbone"] == "sentiment-minilm-smoke"
    prompts, responses = ["How are you?", "Any tips?"], ["Fine, thanks.", "Sleep well."]
    pre_scores = load_reward_model("seal-pre-smoke").score(prompts, responses)
    post_scores = load_reward_model("seal-post-smoke").score(prompts, responses)
    assert not np.allclose(pre_scores, post_scores)


@pytest.mark.parametrize("recipe", sorted(lab.POLICY_RECIPES))
def test_policies_build_with_logs_and_held_out_prompts(recipe):
    name = lab.lab_name(recipe, "smoke")
    meta = read_sidecar(resolve(name))
    assert meta["kind"] == "policy" and meta["reward"] == lab.POLICY_RECIPES[recipe].reward
    log = lab.training_log(name)
    assert {"step", "reward", "kl", "completion_length"} <= set(log.columns) and len(log) == SMOKE.rl_steps
    train, heldout = lab.rl_prompts(lab.POLICY_RECIPES[recipe], SMOKE)
    assert len(train) == SMOKE.rl_prompts and not set(train) & set(heldout)
    answers = load_policy(name).generate(["hi", "hello"], max_new_tokens=3)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    effect = lab.policy_effect(recipe, "smoke", n_prompts=3)
    assert list(effect.columns) == ["prompt", "base response", "base gold", "tuned response", "tuned gold"]


def test_unknown_scale_fails_clearly():
    with pytest.raises(ValueError, match="unknown lab scale 'huge'; scales: default, smoke"):
        lab.lab_name("sentiment-minilm", "huge")


def test_each_lab_entry_is_keyed_by_what_it_reads():
    """A change to the RL settings keeps every RM; a change to decoder training keeps the encoders, the pairs and
    the policies; prose keeps everything; retraining SEAL's pre RM retrains its post RM."""
    from dataclasses import replace

    from rewardscope.lab.recipes import POLICY_RECIPES, RM_RECIPES, SCALES, _pairs_params, policy_params, rm_params

    base = SCALES["default"]
    rms = {name: rm_params(recipe, base) for name, recipe in RM_RECIPES.items()}
    policies = {name: policy_params(recipe, base) for name, recipe in POLICY_RECIPES.items()}
    rl = replace(base, rl_steps=base.rl_steps + 1)
    assert all(rm_params(recipe, rl) == rms[name] for name, recipe in RM_RECIPES.items())
    assert all(policy_params(recipe, rl) != policies[name] for name, recipe in POLICY_RECIPES.items())
    decoder = replace(base, decoder_epochs=base.decoder_epochs + 5)
    changed = {name for name, recipe in RM_RECIPES.items() if rm_params(recipe, decoder) != rms[name]}
    assert changed == {name for name, recipe in RM_RECIPES.items() if recipe.backbone == "decoder" and not recipe.epochs}
    assert all(policy_params(recipe, decoder) == policies[name] for name, recipe in POLICY_RECIPES.items())
    assert _pairs_params(decoder, "hh", 0.1, 0.25) == _pairs_params(base, "hh", 0.1, 0.25)
    prose = replace(RM_RECIPES["sentiment-minilm"], description="reworded")
    assert rm_params(prose, base) == rms["sentiment-minilm"]
    encoder = replace(base, encoder_epochs=base.encoder_epochs + 1)
    assert rm_params(RM_RECIPES["seal-post"], encoder)["backbone"] != rms["seal-post"]["backbone"]


def test_policy_rl_prompts_by_zoo_name():
    for scale in lab.SCALES.values():
        recipe = lab.POLICY_RECIPES["utility-smollm2"]
        train, held_out = lab.policy_rl_prompts(lab.lab_name(recipe.name, scale.name))
        assert (train, held_out) == lab.rl_prompts(recipe, scale) and len(train) == scale.rl_prompts
        assert not set(train) & set(held_out)
    assert lab.policy_rl_prompts("smollm2-135m-instruct") is None
    assert lab.policy_rl_prompts("sentiment-minilm") is None
