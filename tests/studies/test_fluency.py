"""Perplexity under a reference LM, against a plain one-sequence-at-a-time computation."""

import numpy as np
import pytest
import torch

from rewardscope import hf, load_policy
from rewardscope.studies.irl.fluency import perplexity

PROMPTS = ["Hello there", "What is the weather like on Mars today?", "Hi", "Tell me a story about a cat."]
RESPONSES = ["I am fine, thanks.", "Cold and dusty.", "Hello! How can I help you today with anything at all?", "Once"]


@pytest.fixture(scope="module")
def policy():
    return load_policy("tiny-llama")


def reference_perplexity(policy, prompt, response):
    """One unpadded sequence: chat-templated prompt ids + response ids; mean NLL of the response ids."""
    prefix = hf.chat_ids(policy.tokenizer, prompt)
    target = policy.tokenizer(response, add_special_tokens=False).input_ids
    ids = torch.tensor([prefix + target])
    with torch.no_grad():
        logits = policy.model(input_ids=ids).logits[0]
    nll = torch.nn.functional.cross_entropy(logits[len(prefix) - 1:-1], torch.tensor(target))
    return float(torch.exp(nll))


def test_batched_perplexity_matches_the_plain_computation(policy):
    expected = [reference_perplexity(policy, p, r) for p, r in zip(PROMPTS, RESPONSES)]
    for batch_size in (1, 3, 16):  # mixed lengths share a right-padded batch
        np.testing.assert_allclose(perplexity(policy, PROMPTS, RESPONSES, batch_size=batch_size), expected, rtol=1e-5)
    assert all(value > 1.0 for value in expected)


def test_the_prompt_conditions_but_is_not_scored(policy):
    same = perplexity(policy, ["Hello there"] * 2, ["I am fine, thanks.", "I am fine, thanks."])
    assert same[0] == pytest.approx(same[1])
    other = perplexity(policy, ["A completely different and much longer question?"], ["I am fine, thanks."])
    assert other[0] != pytest.approx(same[0], rel=1e-6)  # the response is read in the prompt's context
    # scoring the prompt's tokens too would not match the reference, which scores the response ids only
    assert same[0] == pytest.approx(reference_perplexity(policy, "Hello there", "I am fine, thanks."), rel=1e-5)


def test_empty_response_is_nan_and_a_spec_loads_the_policy(policy):
    out = perplexity("tiny-llama", ["Hi", "Hello there"], ["", "Fine."])
    assert np.isnan(out[0]) and out[1] == pytest.approx(reference_perplexity(policy, "Hello there", "Fine."), rel=1e-5)


def test_a_one_token_response_has_perplexity_one_over_its_probability(policy):
    # planted known answer: PPL(y | x) = 1 / p(y | x) for a single-token y; take the most and least likely tokens
    tok = policy.tokenizer
    prefix = hf.chat_ids(tok, "Hello there")
    with torch.no_grad():
        probs = torch.softmax(policy.model(input_ids=torch.tensor([prefix])).logits[0, -1].float(), dim=-1)
    special = set(tok.all_special_ids)
    round_trip = lambda i: tok(tok.decode([i]), add_special_tokens=False).input_ids == [i]
    single = [i for i in range(len(tok)) if i not in special and round_trip(i)]
    assert len(single) > 10
    likely, unlikely = max(single, key=lambda i: probs[i]), min(single, key=lambda i: probs[i])
    ppl = perplexity(policy, ["Hello there"] * 2, [tok.decode([likely]), tok.decode([unlikely])])
    np.testing.assert_allclose(ppl, [1 / float(probs[likely]), 1 / float(probs[unlikely])], rtol=1e-4)
    assert ppl[0] < ppl[1]


@pytest.mark.parametrize(
    "prompts, responses, kwargs, match",
    [(["a", "b"], ["x"], {}, "responses has 1 entries but prompts has 2"),
     ([], [], {}, "prompts is empty"),
     ("hello", ["x"], {}, "prompts must be a sequence of strings, not a single string"),
     (["a"], [3], {}, r"responses\[0\] is int"),
     (["a"], ["x"], {"batch_size": 0}, "batch_size must be a positive int")],
)
def test_bad_input_fails_early_with_one_line(policy, prompts, responses, kwargs, match):
    with pytest.raises(ValueError, match=match):
        perplexity(policy, prompts, responses, **kwargs)


def test_a_pair_longer_than_the_context_fails_early(policy):
    limit = policy.model.config.max_position_embeddings
    with pytest.raises(ValueError, match="more than the model's context"):
        perplexity(policy, ["hi"], ["word " * (limit + 10)])


def test_policy_options_load_a_base_lm_spec_with_a_template(policy, templateless_llama):
    with pytest.raises(ValueError, match="has no chat template; pass chat_template="):
        perplexity(str(templateless_llama), PROMPTS[:2], RESPONSES[:2])
    options = {"chat_template": "plain"}
    by_spec = perplexity(str(templateless_llama), PROMPTS[:2], RESPONSES[:2], policy_options=options)
    loaded = load_policy(str(templateless_llama), **options)
    np.testing.assert_allclose(by_spec, perplexity(loaded, PROMPTS[:2], RESPONSES[:2]))
    with pytest.raises(ValueError, match="policy_options are for a policy spec"):
        perplexity(policy, PROMPTS[:2], RESPONSES[:2], policy_options=options)
