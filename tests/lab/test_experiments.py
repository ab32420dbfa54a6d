"""Cached chapter building blocks: scored samples and RL runs are built once, keyed by what they depend on."""

import numpy as np
import pytest

from rewardscope import artifacts
from rewardscope.lab import experiments
from rewardscope.training.rlhf import RLConfig

PROMPTS = ["Hello there", "How are you?", "Tell me a story"]


def count_builds(monkeypatch):
    calls = []
    real = artifacts.cached

    def counting(builder, params, version, build):
        def wrapped(out):
            calls.append(builder)
            build(out)

        return real(builder, params, version, wrapped)

    monkeypatch.setattr(artifacts, "cached", counting)
    return calls


def test_scored_samples_are_cached_and_reshape_per_prompt(fresh_cache, monkeypatch):
    calls = count_builds(monkeypatch)
    first = experiments.scored_samples("tiny-llama", PROMPTS, 2, ["vader-compound", "afinn"], max_new_tokens=4,
                                       dtype="float32")
    again = experiments.scored_samples("tiny-llama", PROMPTS, 2, ["vader-compound", "afinn"], max_new_tokens=4,
                                       dtype="float32")
    other_seed = experiments.scored_samples("tiny-llama", PROMPTS, 2, ["vader-compound", "afinn"], max_new_tokens=4,
                                            dtype="float32", seed=1)
    assert calls.count("scored-samples") == 2  # the second call was a cache hit; the seed is in the key
    assert first.equals(again) and not first["response"].equals(other_seed["response"])
    assert list(first.columns) == ["prompt_id", "prompt", "sample", "response", "vader-compound", "afinn"]
    grid = experiments.wide(first.sample(frac=1, random_state=0), "vader-compound")  # order does not matter
    np.testing.assert_array_equal(grid, first["vader-compound"].to_numpy().reshape(3, 2))


def test_model_id_is_the_content_identity(tmp_path):
    import shutil

    from rewardscope.zoo import model_identity, resolve

    assert experiments.model_id("vader-compound") == "vader-compound"
    assert experiments.model_id("tiny-llama") == f"model:{model_identity(resolve('tiny-llama'))}"
    shutil.copytree(resolve("tiny-llama"), tmp_path / "copy")
    assert experiments.model_id(str(tmp_path / "copy")) == experiments.model_id("tiny-llama")
    assert experiments.model_id("tiny-llama-rm") != experiments.model_id("tiny-llama")


@pytest.mark.parametrize("kwargs, message", [({"prompts": []}, "non-empty"), ({"prompts": ["ok", " "]}, "non-empty"),
                                             ({"k": 0}, "k must be")])
def test_scored_samples_rejects_bad_input(kwargs, message):
    args = {"policy": "tiny-llama", "prompts": PROMPTS, "k": 2, "rewards": ["afinn"], **kwargs}
    with pytest.raises(ValueError, match=message):
        experiments.scored_samples(**args)


def test_rl_run_keeps_log_and_scored_samples_but_not_weights(fresh_cache, monkeypatch):
    from rewardscope.rewards import load_reward_model

    calls = count_builds(monkeypatch)
    config = RLConfig(steps=1, learning_rate=0.01, max_completion_length=4, seed=0)
    run = lambda: experiments.rl_run("tiny-llama", load_reward_model("afinn"), PROMPTS[:2], PROMPTS[2:], config,
                                     key={"reward": "afinn"}, eval_rewards=["afinn"], monitors={"gold": "vader-compound"},
                                     eval_k=2, max_new_tokens=4, dtype="float32")
    log, samples = run()
    assert "gold" in log.columns and len(log) == 1
    assert len(samples) == 2 and "afinn" in samples.columns
    entry = next((fresh_cache / "rl-run").iterdir())
    assert sorted(p.name for p in entry.iterdir()) == ["manifest.json", "rl_log.csv", "samples.parquet"]
    run()
    assert calls.count("rl-run") == 1


def _overwrite_weights(directory, seed):
    """Re-save the tiny Llama in ``directory`` with weights drawn from another seed (same files, same names)."""
    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    LlamaForCausalLM(AutoConfig.from_pretrained(directory)).save_pretrained(directory, safe_serialization=True)


def test_overwritten_local_weights_are_not_a_cache_hit(fresh_cache, monkeypatch, tmp_path):
    import shutil

    from rewardscope.zoo import resolve

    calls = count_builds(monkeypatch)
    shutil.copytree(resolve("tiny-llama"), tmp_path / "my-policy")
    spec = str(tmp_path / "my-policy")
    sample = lambda: experiments.scored_samples(spec, PROMPTS, 2, ["afinn"], max_new_tokens=6, dtype="float32")
    first = sample()
    assert sample().equals(first) and calls.count("scored-samples") == 1
    _overwrite_weights(tmp_path / "my-policy", seed=123)
    again = sample()
    assert calls.count("scored-samples") == 2  # the new weights are a new entry ...
    assert not again["response"].equals(first["response"])  # ... with the new model's answers
    assert len(list((fresh_cache / "scored-samples").iterdir())) == 2


def test_copies_of_one_model_share_entries_under_their_own_names(fresh_cache, monkeypatch, tmp_path):
    import shutil

    from rewardscope.zoo import resolve

    calls = count_builds(monkeypatch)
    for name in ("rm-a", "rm-b"):
        shutil.copytree(resolve("tiny-llama-rm"), tmp_path / name)
    first = experiments.scored_samples("tiny-llama", PROMPTS, 1, [str(tmp_path / "rm-a"), "afinn"], max_new_tokens=4,
                                       dtype="float32")
    second = experiments.scored_samples("tiny-llama", PROMPTS, 1, [str(tmp_path / "rm-b"), "afinn"], max_new_tokens=4,
                                        dtype="float32")
    assert calls.count("scored-samples") == 1  # same content, one entry
    assert list(second.columns)[-2:] == [str(tmp_path / "rm-b"), "afinn"]  # named as this call asked
    np.testing.assert_array_equal(first[str(tmp_path / "rm-a")], second[str(tmp_path / "rm-b")])
    experiments.scored_samples("tiny-llama", PROMPTS, 1, [str(tmp_path / "rm-b"), "afinn"], max_new_tokens=4,
                               dtype="float32", options={str(tmp_path / "rm-b"): {"batch_size": 1}})
    assert calls.count("scored-samples") == 2  # a reward's loader options are part of its key


def test_policy_options_reach_the_policy_and_its_cache_key(fresh_cache, monkeypatch, templateless_llama):
    spec = str(templateless_llama)  # a base LM without a chat template
    sample = lambda **kw: experiments.scored_samples(spec, PROMPTS, 1, ["afinn"], max_new_tokens=4, dtype="float32", **kw)
    with pytest.raises(ValueError, match="has no chat template; pass chat_template="):
        sample()
    plain = sample(policy_options={spec: {"chat_template": "plain"}, "other-spec": {"dtype": "bfloat16"}})
    assert len(plain) == len(PROMPTS) and plain["response"].map(lambda r: isinstance(r, str)).all()

    calls = count_builds(monkeypatch)
    kw = {"max_new_tokens": 4, "dtype": "float32"}
    without = experiments.scored_samples("tiny-llama", PROMPTS, 1, ["afinn"], **kw)
    experiments.scored_samples("tiny-llama", PROMPTS, 1, ["afinn"], policy_options={"other-spec": {"dtype": "float16"}},
                               **kw)
    assert calls.count("scored-samples") == 1  # options of other specs, or none, leave the key as it was
    with_plain = experiments.scored_samples("tiny-llama", PROMPTS, 1, ["afinn"],
                                            policy_options={"tiny-llama": {"chat_template": "plain"}}, **kw)
    assert calls.count("scored-samples") == 2  # the policy's own options are part of its key
    assert len(with_plain) == len(without)
    with pytest.raises(TypeError, match="policy_options"):
        experiments.scored_samples("tiny-llama", PROMPTS, 1, ["afinn"], policy_options={"tiny-llama": "plain"}, **kw)


def test_rl_run_passes_policy_options_to_training_and_to_the_tuned_copy(fresh_cache, templateless_llama):
    from rewardscope.rewards import load_reward_model

    spec = str(templateless_llama)
    config = RLConfig(steps=1, learning_rate=0.01, max_completion_length=4, seed=0)
    log, samples = experiments.rl_run(spec, load_reward_model("afinn"), PROMPTS[:2], PROMPTS[2:], config,
                                      key={"reward": "afinn"}, eval_rewards=["afinn"], eval_k=2, max_new_tokens=4,
                                      dtype="float32", policy_options={spec: {"chat_template": "plain"}})
    assert len(log) == 1 and len(samples) == 2 and "afinn" in samples.columns
