"""The fast sampling loop (rewardscope.sampling) against its reference, transformers' ``model.generate``."""

import numpy as np
import pytest
import torch
from scipy import stats

from rewardscope import hf, load_policy
from rewardscope.sampling import draw, sample_ids, supports, warp

PROMPTS = ["Hello there", "What is the weather like on Mars today, and why is it so cold?", "Hi", "Tell me a story"]


@pytest.fixture(scope="module")
def policy():
    return load_policy("tiny-llama")


def _encoded(policy, prompts=PROMPTS):
    return [hf.chat_ids(policy.tokenizer, p) for p in prompts]


def _pad(policy):
    tok = policy.tokenizer
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def test_the_tiny_policy_takes_the_fast_path(policy):
    assert supports(policy.model)


@pytest.mark.parametrize("batch_size", [1, 3, 4])
def test_greedy_gives_the_tokens_of_model_generate(policy, batch_size):
    encoded, pad = _encoded(policy), _pad(policy)
    input_ids, mask = hf.left_pad(encoded, pad)
    with torch.no_grad():
        ref = policy.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=10, min_new_tokens=10,
                                    do_sample=False, pad_token_id=pad)[:, input_ids.shape[1]:].tolist()
        fast = sample_ids(policy.model, encoded, max_new_tokens=10, pad_id=pad, do_sample=False, batch_size=batch_size)
    assert fast == ref  # a shared prefix, left padding after it and position ids leave every token unchanged


def test_generate_matches_the_reference_path_when_greedy(policy):
    encoded = _encoded(policy)
    reference = policy._reference_generate(encoded, _pad(policy), max_new_tokens=8, temperature=1.0, top_p=1.0,
                                           do_sample=False, seed=0, batch_size=2)
    assert policy.generate(PROMPTS, max_new_tokens=8, do_sample=False, batch_size=2) == [r.strip() for r in reference]


def test_sampling_is_seeded_and_independent_of_the_batch(policy):
    prompts = PROMPTS * 2
    first = policy.generate(prompts, max_new_tokens=8, seed=3, batch_size=8)
    assert first == policy.generate(prompts, max_new_tokens=8, seed=3, batch_size=8)
    assert first == policy.generate(prompts, max_new_tokens=8, seed=3, batch_size=1)  # uniforms are per prompt
    assert first != policy.generate(prompts, max_new_tokens=8, seed=4, batch_size=8)
    assert first[:4] != first[4:]  # a repeated prompt gets its own draws


def test_text_after_eos_never_appears(policy):
    encoded, pad = _encoded(policy), _pad(policy)
    free = sample_ids(policy.model, encoded, max_new_tokens=8, pad_id=pad, do_sample=False, batch_size=4)
    eos = free[1][2]
    cut = sample_ids(policy.model, encoded, max_new_tokens=8, pad_id=pad, eos_ids=[eos], do_sample=False, batch_size=4)
    for row, ids in zip(free, cut):
        assert ids == row[:row.index(eos)] if eos in row else ids == row


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 1.0), (1.3, 0.9), (1.0, 0.5)])
def test_warp_is_transformers_temperature_and_top_p(temperature, top_p):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    logits = torch.randn(4, 300, generator=torch.Generator().manual_seed(0)) * 3
    scores = logits.clone()
    if temperature != 1.0:
        scores = TemperatureLogitsWarper(temperature)(None, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(None, scores)
    torch.testing.assert_close(warp(logits, temperature, top_p), torch.softmax(scores, -1))


def test_inverse_cdf_draws_follow_the_probabilities():
    """Chi-square (fixed seed) of 20,000 draws against the probabilities; zero-probability tokens never come."""
    probs = torch.tensor([[0.0, 0.5, 0.2, 0.0, 0.25, 0.05]])
    u = torch.from_numpy(np.random.default_rng(0).random(20_000))
    tokens = draw(probs.expand(len(u), -1), u)
    counts = np.bincount(tokens.numpy(), minlength=6)
    assert counts[0] == counts[3] == 0
    keep = probs[0].numpy() > 0
    assert stats.chisquare(counts[keep], 20_000 * probs[0].numpy()[keep]).pvalue > 0.01


def test_first_tokens_follow_the_model_distribution(policy):
    """The RNG differs from model.generate's (one uniform per token instead of torch.multinomial), so the check is on
    the distribution: first-token frequencies over 2,000 draws against the warped softmax of the model's logits."""
    prompt, n, temperature, top_p = "Tell me something", 2000, 0.15, 0.9  # ~50 tokens with >= 5 expected
    encoded = _encoded(policy, [prompt])
    new = sample_ids(policy.model, encoded * n, max_new_tokens=1, pad_id=_pad(policy), temperature=temperature,
                     top_p=top_p, seed=0, batch_size=500)
    with torch.no_grad():
        logits = policy.model(input_ids=torch.tensor(encoded)).logits[:, -1]
    expected = warp(logits, temperature, top_p)[0].numpy() * n
    counts = np.bincount([ids[0] for ids in new], minlength=len(expected))
    assert counts[expected == 0].sum() == 0
    big = expected >= 5
    assert big.sum() >= 10  # a distribution worth testing, not one dominant token
    observed = np.append(counts[big], counts[~big].sum())
    wanted = np.append(expected[big], expected[~big].sum())
    assert stats.chisquare(observed, wanted * observed.sum() / wanted.sum()).pvalue > 0.01
