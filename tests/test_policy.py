import pytest

from rewardscope import load_policy


def test_greedy_batched_generation_matches_one_by_one():
    policy = load_policy("tiny-llama")
    prompts = ["Hello there", "What is the weather like on Mars today?", "Hi"]
    batched = policy.generate(prompts, max_new_tokens=6, do_sample=False, batch_size=3)
    single = [policy.generate([p], max_new_tokens=6, do_sample=False)[0] for p in prompts]
    assert batched == single  # left padding and the attention mask leave each answer unchanged


def test_sampling_is_seeded():
    policy = load_policy("tiny-llama")
    prompts = ["Tell me something", "Another prompt"]
    first = policy.generate(prompts, max_new_tokens=8, seed=3)
    assert first == policy.generate(prompts, max_new_tokens=8, seed=3)
    assert first != policy.generate(prompts, max_new_tokens=8, seed=4)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"prompts": []}, "non-empty"), ({"prompts": "hi"}, "non-empty"),
     ({"max_new_tokens": 0}, "max_new_tokens"), ({"temperature": 0.0}, "temperature")],
)
def test_bad_generation_arguments(kwargs, match):
    policy = load_policy("tiny-llama")
    args = {"prompts": ["hi"], **kwargs}
    with pytest.raises(ValueError, match=match):
        policy.generate(args.pop("prompts"), **args)


def test_policy_without_chat_template_fails_early():
    with pytest.raises(ValueError, match="no chat template"):
        load_policy("tiny-bert-rm")
