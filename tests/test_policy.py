import pytest
import torch

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


@pytest.mark.parametrize("kwargs, error, match", [
    ({"top_p": 0.0}, ValueError, r"top_p must be in \(0, 1\], got 0.0"),
    ({"top_p": 1.5}, ValueError, r"top_p must be in \(0, 1\]"),
    ({"top_p": float("nan")}, ValueError, r"top_p must be in \(0, 1\]"),
    ({"top_p": "0.9"}, TypeError, "top_p must be a number"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive int, got 0"),
    ({"batch_size": -2}, ValueError, "batch_size must be a positive int"),
    ({"batch_size": 2.0}, TypeError, "batch_size must be a positive int, got float"),
    ({"seed": "1"}, TypeError, "seed must be an int"),
    ({"prompts": ["fine", None]}, TypeError, r"prompts\[1\] is NoneType, expected str"),
    ({"prompts": ["a", "b", "c", "x\ud800"]}, ValueError, r"prompts\[3\] is not valid text \(lone surrogate"),
])
def test_generate_refuses_bad_arguments_with_one_line(kwargs, error, match):
    policy = load_policy("tiny-llama")
    args = {"prompts": ["hi"], **kwargs}
    with pytest.raises(error, match=match) as err:
        policy.generate(args.pop("prompts"), max_new_tokens=2, **args)
    assert "\n" not in str(err.value)


def test_generate_refuses_a_prompt_longer_than_the_models_positions():
    policy = load_policy("tiny-llama")
    limit = policy.model.config.max_position_embeddings
    long_prompt = "hello " * limit
    with pytest.raises(ValueError, match=rf"prompts\[1\] is \d+ tokens .* max_new_tokens=4 .* the model has {limit} "
                                         r"\(max_position_embeddings\)"):
        policy.generate(["hi", long_prompt], max_new_tokens=4)
    assert len(policy.generate(["hi", "hello " * 20], max_new_tokens=4, batch_size=1)) == 2  # short ones still run


def test_policy_without_chat_template_fails_early():
    with pytest.raises(ValueError, match="no chat template"):
        load_policy("tiny-bert-rm")


def test_auto_dtype_is_bfloat16_only_where_it_runs_natively(monkeypatch):
    from rewardscope import hf

    assert hf.resolve_dtype("auto", "cpu") == (torch.bfloat16 if hf.fast_bf16("cpu") else torch.float32)
    monkeypatch.setattr(hf, "fast_bf16", lambda device="cpu": True)
    assert hf.resolve_dtype("auto") == torch.bfloat16 and hf.dtype_name("auto") == "bfloat16"
    monkeypatch.setattr(hf, "fast_bf16", lambda device="cpu": False)
    assert hf.resolve_dtype("auto") == torch.float32 and hf.dtype_name("auto") == "float32"
    assert hf.dtype_name(None) == "float32"
    with pytest.raises(ValueError, match="'auto'"):
        hf.resolve_dtype("fp8")
