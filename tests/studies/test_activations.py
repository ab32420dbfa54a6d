"""Activation capture: padding masked, hooks removed after use, chunks streamed to disk atomically."""

import numpy as np
import pytest
import torch

from rewardscope.studies.irm.activations import (
    ActivationStore,
    capture_activations,
    decoder_blocks,
    last_token_activations,
    mlp_output_hooks,
)
from rewardscope.studies.irm.sae import train_sae

TEXTS = ["Hello there, how are you doing today?", "Hi", "What a wonderful day it is to be alive and well",
         "ok then", "The pills worked, and my doctor was pleased."]


# --------------------------------------------------------------------------------------------------
# activation capture


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardscope.zoo import resolve

    path = resolve("tiny-llama")
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def tiny_gpt_neo(tiny_llama):
    """GPT-Neo (the paper's gpt-neo-125m architecture): learned absolute positions, so left padding without
    position ids would shift every activation."""
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    tokenizer = tiny_llama[1]
    torch.manual_seed(0)
    config = GPTNeoConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                          attention_types=[[["global", "local"], 1]], window_size=16, max_position_embeddings=128,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return GPTNeoForCausalLM(config), tokenizer


def no_hooks(model) -> bool:
    return all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("which", ["tiny_llama", "tiny_gpt_neo"])
def test_padded_batches_capture_what_single_texts_give_and_only_real_tokens(which, request, tmp_path):
    model, tokenizer = request.getfixturevalue(which)
    batched = capture_activations(model, tokenizer, TEXTS, [0, 1], tmp_path / "batched", batch_size=5)
    single = capture_activations(model, tokenizer, TEXTS, [0, 1], tmp_path / "single", batch_size=1)  # no padding
    for layer in (0, 1):
        np.testing.assert_allclose(batched.load(layer), single.load(layer), atol=1e-5)
    assert not np.allclose(batched.load(0), batched.load(1))
    ids = tokenizer(TEXTS).input_ids
    special = set(tokenizer.all_special_ids)
    expected = [(t, p, i) for t, row in enumerate(ids) for p, i in enumerate(row) if i not in special]
    assert [tuple(r) for r in batched.tokens.to_numpy()] == expected  # no pad, no BOS, in text order
    assert len(batched) == len(expected) and batched.load(0).shape == (len(expected), model.config.hidden_size)
    assert no_hooks(model)


def test_capture_streams_atomic_chunks_that_add_up_to_one_capture(tiny_llama, tmp_path):
    model, tokenizer = tiny_llama
    whole = capture_activations(model, tokenizer, TEXTS, [1], tmp_path / "whole", chunk_rows=10_000)
    parts = capture_activations(model, tokenizer, TEXTS, [1], tmp_path / "parts", batch_size=2, chunk_rows=4)
    assert whole.meta["n_parts"] == 1 and parts.meta["n_parts"] == 3  # one part per flushed batch pair
    assert sum(parts.meta["part_rows"]) == len(parts) == len(whole)
    np.testing.assert_allclose(parts.load(1), whole.load(1), atol=1e-5)
    assert not list((tmp_path / "parts").glob("*.tmp")) and not list((tmp_path / "parts").glob(".*"))
    view, full = parts.layer(1), parts.load(1)
    index = np.array([len(full) - 1, 0, 7, 3, 3, -2])
    np.testing.assert_array_equal(view[index], full[index])
    np.testing.assert_array_equal(view[2:9], full[2:9])
    np.testing.assert_array_equal(view[5], full[5])
    with pytest.raises(IndexError):
        view[np.array([len(full)])]
    # an SAE trained on the lazy view equals one trained on the array in memory
    a, b = train_sae(view, 8, n_steps=20), train_sae(full, 8, n_steps=20)
    np.testing.assert_array_equal(a.dictionary, b.dictionary)
    with pytest.raises(ValueError, match="already holds a capture"):
        capture_activations(model, tokenizer, TEXTS, [1], tmp_path / "parts")
    again = capture_activations(model, tokenizer, TEXTS[:2], [0], tmp_path / "parts", overwrite=True)
    assert again.layers == [0] and len(list((tmp_path / "parts").glob("layer*"))) == 1


def test_hooks_are_removed_and_nothing_is_left_when_the_capture_fails(tiny_llama, tmp_path, monkeypatch):
    model, tokenizer = tiny_llama

    def explode(*_):
        raise RuntimeError("boom")

    handle = model.model.norm.register_forward_hook(explode)  # fails after the MLP hooks have fired
    try:
        with pytest.raises(RuntimeError, match="boom"):
            capture_activations(model, tokenizer, TEXTS, [0, 1], tmp_path / "failed", chunk_rows=1)
    finally:
        handle.remove()
    assert no_hooks(model) and not model.training
    assert not list((tmp_path / "failed").iterdir())
    with pytest.raises(ValueError, match="no complete activation capture"):
        ActivationStore(tmp_path / "failed")
    # a failure while writing a part, between two forwards, also removes the hooks at once
    monkeypatch.setattr("rewardscope.studies.irm.activations._save_npy", explode)
    with pytest.raises(RuntimeError, match="boom") as failure:
        capture_activations(model, tokenizer, TEXTS, [0, 1], tmp_path / "failed", chunk_rows=1)
    assert failure.traceback  # its frames (and any suspended generator in them) are still alive here
    assert no_hooks(model) and not list((tmp_path / "failed").iterdir())
    with pytest.raises(ZeroDivisionError):  # the context manager removes its hooks on any exception too
        with mlp_output_hooks(model, [0, 1]):
            assert all(decoder_blocks(model)[i].mlp._forward_hooks for i in (0, 1))
            raise ZeroDivisionError
    assert no_hooks(model)


def test_last_token_activations_are_the_captured_last_positions(tiny_gpt_neo, tmp_path):
    model, tokenizer = tiny_gpt_neo
    last = last_token_activations(model, tokenizer, TEXTS, [0, 1], batch_size=3)
    store = capture_activations(model, tokenizer, TEXTS, [0, 1], tmp_path / "all")
    rows = store.tokens.reset_index().groupby("text_index")["index"].max().to_numpy()
    for layer in (0, 1):
        assert last[layer].shape == (len(TEXTS), 32)
        np.testing.assert_allclose(last[layer], store.load(layer)[rows], atol=1e-5)
    assert no_hooks(model)
    with pytest.raises(ValueError, match="max_length=4"):
        last_token_activations(model, tokenizer, TEXTS, [0], max_length=4)


@pytest.mark.parametrize("kwargs, message", [
    ({"layers": [2]}, "layers must be distinct block indices in 0..1"),
    ({"layers": [0, 0]}, "layers"),
    ({"layers": []}, "layers"),
    ({"texts": "one string"}, "texts"),
    ({"texts": []}, "texts"),
    ({"texts": ["ok", 3]}, r"texts\[1\]"),
    ({"module": "feed_forward"}, "module must name a submodule"),
    ({"batch_size": 0}, "batch_size"),
    ({"chunk_rows": 0}, "chunk_rows"),
    ({"max_length": 0}, "max_length"),
])
def test_capture_rejects_bad_input(tiny_llama, tmp_path, kwargs, message):
    model, tokenizer = tiny_llama
    args = {"texts": TEXTS, "layers": [0], "directory": tmp_path / "x", **kwargs}
    with pytest.raises(ValueError, match=message):
        capture_activations(model, tokenizer, **args)
    assert no_hooks(model)


def test_decoder_blocks_needs_a_transformer():
    with pytest.raises(ValueError, match="num_hidden_layers"):
        decoder_blocks(torch.nn.Linear(2, 2))


def test_activation_change_is_the_share_of_variance_that_moved():
    from rewardscope.studies.irm.activations import activation_change

    rng = np.random.default_rng(0)
    base = rng.normal(size=(500, 8))
    assert activation_change(base, base) == 0
    assert np.isclose(activation_change(base, base + 0.1 * rng.normal(size=base.shape)), 0.01, rtol=0.15)
    with pytest.raises(ValueError, match="one shape"):
        activation_change(base, base[:10])
