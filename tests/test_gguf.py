"""The cached fp32 copy of SmolLM2 must be the GGUF model, bit for bit."""

import pytest
import torch

from rewardscope import load_policy
from rewardscope.zoo import load_smollm2_gguf, read_sidecar, resolve

pytestmark = pytest.mark.slow


def test_cached_copy_has_the_gguf_models_logits_and_tokenizer():
    gguf_model, gguf_tok = load_smollm2_gguf()
    path = resolve("smollm2-135m-instruct")
    assert read_sidecar(path)["metrics"]["parameters"] == 134_515_008
    policy = load_policy("smollm2-135m-instruct")
    text = "The capital of France is Paris. Reward models score responses."
    ids = gguf_tok(text, return_tensors="pt").input_ids
    assert ids.tolist() == policy.tokenizer(text, return_tensors="pt").input_ids.tolist()
    assert gguf_tok.chat_template == policy.tokenizer.chat_template
    with torch.no_grad():
        expected = gguf_model(ids).logits
        got = policy.model(ids).logits
    assert torch.equal(expected, got)
    # tied embeddings survive the copy: the head is the embedding matrix
    assert policy.model.lm_head.weight.data_ptr() == policy.model.model.embed_tokens.weight.data_ptr()
    greedy = policy.generate(["What is the capital of France?"], max_new_tokens=12, do_sample=False)
    assert "Paris" in greedy[0]
