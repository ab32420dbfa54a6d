"""Repeatability: the same call gives the same result, whatever ran or was cached before it."""

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from rewardscope import artifacts, zoo
from rewardscope.studies.irl.irl import max_margin_irl
from rewardscope.training.train import BTConfig, train_reward_model

SENTENCE = "The quick brown fox, unbelievably, jumps over 12 lazy dogs!"


@pytest.mark.parametrize("build", [zoo.tiny_encoder_tokenizer, zoo.tiny_chat_tokenizer])
def test_tiny_tokenizers_have_one_vocabulary(build):
    tokenizers = [build() for _ in range(3)]
    vocabs = [t.get_vocab() for t in tokenizers]
    assert vocabs[0] == vocabs[1] == vocabs[2]
    encoded = [t(SENTENCE, "and a second text")["input_ids"] for t in tokenizers]
    assert encoded[0] == encoded[1] == encoded[2]


def test_tiny_encoder_tokenizer_keeps_the_bert_special_ids():
    tok = zoo.tiny_encoder_tokenizer()
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id] == [0, 1, 2, 3, 4]
    ids = tok("hello there", "second part")["input_ids"]
    assert ids[0] == 2 and ids.count(3) == 2 and ids[-1] == 3
    assert tok.decode(ids, skip_special_tokens=True) == "hello there second part"


def _pairs(n=40):
    rng = np.random.default_rng(0)
    words = "the a cat dog house tree blue red small big runs walks".split()
    rows = [{"split": "train" if i < 24 else "validation" if i < 32 else "test", "prompt": f"Question {i}?",
             "chosen": " ".join(rng.choice(words, 4)) + " thank you",
             "rejected": " ".join(rng.choice(words, 4)) + " go away"} for i in range(n)]
    return pd.DataFrame(rows)


def _use_cache(monkeypatch, path):
    monkeypatch.setenv("REWARDSCOPE_CACHE", str(path))
    artifacts._VERIFIED.clear()


# tiny-bert-rm trains with dropout; tiny-llama gets a fresh score head: both draw from torch's seed.
@pytest.mark.parametrize("backbone", ["tiny-bert-rm", "tiny-llama"])
def test_training_does_not_depend_on_a_cached_backbone(fresh_cache, monkeypatch, tmp_path, backbone):
    pairs = _pairs()
    config = BTConfig(backbone=backbone, epochs=1, learning_rate=2e-3, batch_size=8, max_length=32)
    cold = train_reward_model(pairs, config, tmp_path / "cold", progress=False)  # builds the backbone
    _use_cache(monkeypatch, tmp_path / "other-cache")
    zoo.resolve(backbone)  # already built, as in a warm cache
    warm = train_reward_model(pairs, config, tmp_path / "warm", progress=False)
    assert cold.log["loss"].tolist() == warm.log["loss"].tolist()
    cold_weights = load_file(cold.path / "model.safetensors")
    warm_weights = load_file(warm.path / "model.safetensors")
    assert cold_weights.keys() == warm_weights.keys()
    assert all(np.array_equal(cold_weights[k], warm_weights[k]) for k in cold_weights)


def test_text_irl_does_not_depend_on_a_cached_backbone(fresh_cache, monkeypatch, tmp_path):
    pairs = _pairs(24)
    config = BTConfig(backbone="tiny-llama", epochs=1, learning_rate=2e-3, batch_size=8, max_length=32)

    def fit(out):
        return max_margin_irl(pairs["chosen"].tolist(), pairs["rejected"].tolist(), prompts=pairs["prompt"].tolist(),
                              config=config, output_dir=out, progress=False)

    cold = fit(tmp_path / "cold")
    _use_cache(monkeypatch, tmp_path / "other-cache")
    zoo.resolve("tiny-llama")
    warm = fit(tmp_path / "warm")
    assert cold.log["loss"].tolist() == warm.log["loss"].tolist()
    cold_weights = load_file(cold.path / "model.safetensors")
    warm_weights = load_file(warm.path / "model.safetensors")
    assert all(np.array_equal(cold_weights[k], warm_weights[k]) for k in cold_weights)
