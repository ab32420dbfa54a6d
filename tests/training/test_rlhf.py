"""RL fine-tuning with TRL: a planted reward goes up, the tuned policy saves and loads, bad input fails early."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from rewardscope import load_policy, load_reward_model
from rewardscope.training import rlhf
from rewardscope.training.rlhf import RLConfig, reward_function, tune_policy

PROMPTS = ["Hello there", "How are you?", "Tell me a story", "What is your name?", "Do you like music?", "Good morning"]
# 30 steps at a high learning rate: over seeds 0-4 the mean reward of the last 5 steps was 0.38-0.67,
# against about 0.10 for the first 5 (the random tiny policy), so the margins below are wide.
PLANTED = RLConfig(steps=30, learning_rate=0.03, beta=0.02, max_completion_length=16, seed=0)


def letter_e(prompts, responses):
    """The planted reward: the fraction of the response's characters that are the letter "e"."""
    return [r.count("e") / len(r) if r else 0.0 for r in responses]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The CPU is shared: two OpenMP threads on two busy cores stalled for seconds per step (up to 100x
    # slower); one thread only slows down in proportion. Results are the same either way.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return tune_policy("tiny-llama", letter_e, PROMPTS, tmp_path_factory.mktemp("rl") / "tuned", PLANTED)


def test_rl_raises_a_planted_reward(planted):
    log = planted.log
    assert list(log.columns) == ["step", "reward", "reward_std", "kl", "completion_length", "entropy"]
    assert log["step"].tolist() == list(range(1, PLANTED.steps + 1))
    start, end = log["reward"].head(5).mean(), log["reward"].tail(5).mean()
    assert end > start + 0.15, (start, end)
    assert log["kl"].iloc[-1] > 0  # the policy moved away from the reference
    # Sampling from the saved policy and from the base, same prompts and seed, scored by the same reward.
    prompts = PROMPTS * 4
    base = np.mean(letter_e(prompts, load_policy("tiny-llama").generate(prompts, max_new_tokens=16, seed=123)))
    tuned = np.mean(letter_e(prompts, load_policy(str(planted.path)).generate(prompts, max_new_tokens=16, seed=123)))
    assert tuned > base + 0.15, (base, tuned)


def test_saved_policy_loads_and_generates(planted):
    policy = load_policy(str(planted.path))
    assert policy.tokenizer.padding_side == "left" and policy.tokenizer.chat_template
    responses = policy.generate(["Hello there", "Good morning"], max_new_tokens=6, seed=0)
    assert len(responses) == 2 and all(isinstance(r, str) for r in responses)
    pd.testing.assert_frame_equal(pd.read_csv(planted.path / "rl_log.csv"), planted.log, check_dtype=False)
    sidecar = json.loads((planted.path / "rewardscope.json").read_text())
    assert (sidecar["kind"], sidecar["base"], sidecar["reward"]) == ("policy", "tiny-llama", "letter_e")
    assert sidecar["config"]["learning_rate"] == PLANTED.learning_rate
    assert sidecar["metrics"]["reward_end"] > sidecar["metrics"]["reward_start"] and sidecar["metrics"]["kl_end"] > 0


def test_same_seed_same_log(tmp_path):
    config = RLConfig(steps=3, learning_rate=0.03, max_completion_length=8, seed=5)
    first = tune_policy("tiny-llama", letter_e, PROMPTS, tmp_path / "a", config).log
    again = tune_policy("tiny-llama", letter_e, PROMPTS, tmp_path / "b", config).log
    pd.testing.assert_frame_equal(first, again)
    other = tune_policy("tiny-llama", letter_e, PROMPTS, tmp_path / "c", replace(config, seed=6)).log
    assert not first["reward"].equals(other["reward"])


def test_rloo_with_lora_saves_merged_weights(tmp_path):
    config = RLConfig(algorithm="rloo", steps=2, learning_rate=0.01, lora_rank=4, max_completion_length=8)
    (tmp_path / "out").mkdir()  # an empty output directory is accepted; one prompt is repeated to fill a step
    result = tune_policy("tiny-llama", letter_e, ["Hi"], tmp_path / "out", config)
    assert not (result.path / "adapter_config.json").exists()  # merged into a plain model
    tuned, base = load_policy(str(result.path)), load_policy("tiny-llama")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(tuned.model.state_dict()[name], base.model.state_dict()[name])
    assert len(result.log) == 2 and len(tuned.generate(["Hi"], max_new_tokens=4)) == 1


@pytest.mark.parametrize(
    "fields, match",
    [({"algorithm": "ppo"}, "RLConfig.algorithm must be 'grpo' or 'rloo', got 'ppo'"),
     ({"steps": 0}, "RLConfig.steps must be an int >= 1"), ({"steps": True}, "RLConfig.steps"),
     ({"generations_per_prompt": 1}, "RLConfig.generations_per_prompt must be an int >= 2"),
     ({"learning_rate": -1e-3}, "RLConfig.learning_rate must be a finite number > 0"),
     ({"temperature": float("nan")}, "RLConfig.temperature"), ({"beta": -0.1}, "RLConfig.beta must be a finite number >= 0"),
     ({"lora_rank": 0}, "RLConfig.lora_rank"), ({"bf16": "yes"}, "RLConfig.bf16"), ({"max_completion_length": 2.5}, "int")],
)
def test_bad_config_fields(fields, match):
    with pytest.raises(ValueError, match=match):
        RLConfig(**fields)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"prompts": []}, ValueError, "non-empty list"), ({"prompts": "Hello"}, ValueError, "non-empty list"),
     ({"prompts": ["Hi", 3]}, TypeError, r"prompts\[1\]"), ({"prompts": ["Hi", " "]}, TypeError, r"prompts\[1\]"),
     ({"reward": "vader-compound"}, TypeError, "RewardModel or a callable"), ({"reward": 42}, TypeError, "got int"),
     ({"config": {"steps": 3}}, TypeError, "config must be an RLConfig")],
)
def test_bad_input_fails_before_loading(tmp_path, monkeypatch, kwargs, error, match):
    monkeypatch.setattr(rlhf, "load_policy", lambda *a, **k: pytest.fail("loaded the policy before checking input"))
    args = {"policy": "tiny-llama", "reward": letter_e, "prompts": PROMPTS, "output_dir": tmp_path / "out", **kwargs}
    with pytest.raises(error, match=match):
        tune_policy(**args)


def test_non_empty_output_dir_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(rlhf, "load_policy", lambda *a, **k: pytest.fail("loaded the policy before checking input"))
    (tmp_path / "earlier-run.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        tune_policy("tiny-llama", letter_e, PROMPTS, tmp_path)
    assert (tmp_path / "earlier-run.txt").read_text() == "keep me"


def test_reward_function_adapts_reward_models_and_callables():
    vader = load_reward_model("vader-compound")
    expected = vader.score(["How was it?", "And then?"], ["It was wonderful!", "Terrible."]).tolist()
    f = reward_function(vader, name="vader")
    assert f.__name__ == "vader"
    assert f(prompts=["How was it?", "And then?"], completions=["It was wonderful!", "Terrible."]) == expected
    chat = f(prompts=[[{"role": "system", "content": "Be kind."}, {"role": "user", "content": "How was it?"}],
                      [{"role": "user", "content": "And then?"}]],
             completions=[[{"role": "assistant", "content": "It was wonderful!"}],
                          [{"role": "assistant", "content": "Terrible."}]], completion_ids=None)
    assert chat == expected

    seen = {}

    def lengths(prompts, responses):
        seen.update(prompts=prompts, responses=responses)
        return np.array([len(r) for r in responses])

    g = reward_function(lengths)
    history = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
               {"role": "user", "content": "second"}]
    assert g(prompts=[history], completions=[[{"role": "assistant", "content": "abc"}]]) == [3.0]
    assert seen == {"prompts": ["second"], "responses": ["abc"]}  # the last user turn is the one answered
    assert g(prompts=["plain"], completions=["four"]) == [4.0]
    with pytest.raises(ValueError, match="returned 1 scores for 2 responses"):
        reward_function(lambda p, r: [0.0])(prompts=["a", "b"], completions=["x", "y"])
    with pytest.raises(TypeError, match="RewardModel or a callable"):
        reward_function("vader-compound")


def test_transformed_reward_trains_a_tiny_policy_and_monitors_are_logged_not_optimised(tmp_path):
    from rewardscope.studies.transforms.transforms import AggregateReward

    class LetterE(rlhf.RewardModel):
        def _score(self, prompts, responses, batch_size, progress):
            return np.array(letter_e(prompts, responses))

    e_reward = LetterE("letter_e")
    reward = AggregateReward({"e": e_reward}, {"e": {p: 0.1 for p in PROMPTS}})  # log σ(fraction of e − 0.1)
    config = RLConfig(steps=2, learning_rate=0.01, max_completion_length=8, seed=1)
    log = tune_policy("tiny-llama", reward, PROMPTS, tmp_path / "a", config, monitors={"gold": load_reward_model("afinn")}).log
    assert list(log["step"]) == [1, 2] and log["gold"].notna().all()
    assert (log["reward"] <= 0).all()  # log σ is negative: the logged reward is the transformed one
    plain = tune_policy("tiny-llama", reward, PROMPTS, tmp_path / "b", config).log
    np.testing.assert_allclose(log["reward"], plain["reward"], rtol=1e-5)  # weight 0: the monitor changes nothing
    with pytest.raises(ValueError, match="clash"):
        tune_policy("tiny-llama", reward, PROMPTS, tmp_path / "c", config, monitors={"kl": e_reward})


def test_rl_steps_show_a_bar_to_a_watching_runner_only(tmp_path, monkeypatch, capsys):
    from rewardscope import progress

    config = RLConfig(steps=2, learning_rate=0.01, max_completion_length=8, seed=1)
    monkeypatch.setattr(progress, "_sink", None)
    monkeypatch.delenv(progress.ENV, raising=False)
    tune_policy("tiny-llama", letter_e, PROMPTS, tmp_path / "quiet", config)
    assert "GRPO on" not in capsys.readouterr().err  # in a kernel, stderr is the notebook: no bar there
    sink = tmp_path / "progress.log"
    monkeypatch.setenv(progress.ENV, str(sink))
    tune_policy("tiny-llama", letter_e, PROMPTS, tmp_path / "watched", config)
    assert "GRPO on letter_e" in sink.read_text() and "2/2" in sink.read_text()


def test_policy_options_give_a_base_lm_a_template_that_the_tuned_policy_keeps(tmp_path, monkeypatch, templateless_llama):
    config = RLConfig(steps=1, learning_rate=0.01, max_completion_length=4, seed=0)
    with pytest.raises(ValueError, match="has no chat template; pass chat_template="):
        tune_policy(str(templateless_llama), letter_e, PROMPTS[:2], tmp_path / "refused", config)
    result = tune_policy(str(templateless_llama), letter_e, PROMPTS[:2], tmp_path / "tuned", config,
                         policy_options={"chat_template": "plain"})
    assert list(result.log["step"]) == [1]
    tuned = load_policy(str(result.path))  # the template was saved with the tuned policy
    assert tuned.tokenizer.chat_template == load_policy(str(templateless_llama), chat_template="plain").tokenizer.chat_template
    assert json.loads((result.path / "rewardscope.json").read_text())["policy_options"] == {"chat_template": "plain"}
    monkeypatch.setattr(rlhf, "load_policy", lambda *a, **k: pytest.fail("loaded the policy before checking input"))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \[.chat_templat.\]; load_policy takes .*.chat_template."):
        tune_policy("tiny-llama", letter_e, PROMPTS, tmp_path / "typo", config, policy_options={"chat_templat": "plain"})


def test_the_end_of_a_run_is_its_last_fifth_of_steps():
    log_tail = rlhf.log_tail
    log = pd.DataFrame({"step": range(1, 11), "kl": [0.0] * 8 + [1.0, 3.0]})
    assert log_tail(log)["step"].tolist() == [9, 10] and log_tail(log["kl"]).mean() == 2.0
    assert log_tail(log.head(3))["step"].tolist() == [3]  # fewer than five steps: the last one
