"""The linear IRM: layer divergence, contrastive sentences, ridge probe vs random probes, feature relevance."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import kendalltau

from rewardscope.studies.irm.activations import last_token_activations
from rewardscope.studies.irm.irm import (
    NEGATIVE_WORDS,
    NEUTRAL_WORDS,
    LinearIRM,
    concat_features,
    contrastive_triples,
    divergence_target,
    evaluate_irm,
    feature_relevance,
    kendall_tau,
    layer_divergence,
    random_probe,
    reconstructed_valence,
    top_activations,
    vader_lexicon,
    word_valence,
)
from rewardscope.studies.irm.sae import train_sae


def tiny_pythia(n_layers=4, seed=0):
    """A random GPT-NeoX (Pythia's architecture) with d=32."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=n_layers,
                                            num_attention_heads=4, intermediate_size=64, max_position_embeddings=64))


# --------------------------------------------------------------------------------------------------
# layer divergence


def test_layer_divergence_finds_a_planted_change():
    base = tiny_pythia()
    tuned = copy.deepcopy(base)
    rng = np.random.default_rng(0)
    deltas = {"mlp.dense_h_to_4h.weight": rng.normal(0, 0.1, (64, 32)), "attention.dense.bias": rng.normal(0, 0.1, 32)}
    small = rng.normal(0, 1e-3, (64, 32))
    with torch.no_grad():
        block = tuned.gpt_neox.layers[2]
        for name, delta in deltas.items():
            block.get_parameter(name).add_(torch.as_tensor(delta, dtype=torch.float32))
        tuned.gpt_neox.layers[0].mlp.dense_h_to_4h.weight.add_(torch.as_tensor(small, dtype=torch.float32))
        tuned.gpt_neox.embed_in.weight.add_(5.0)  # outside the blocks: not counted
    table = layer_divergence(base, tuned)
    assert list(table.index) == [2, 0, 1, 3] and list(table.columns[:3]) == ["divergence", "delta_norm", "relative"]
    expected = sum(np.linalg.norm(d) for d in deltas.values())  # the paper's sum of per-tensor L2 norms
    assert table.loc[2, "divergence"] == pytest.approx(expected, rel=1e-5)
    assert table.loc[2, "delta_norm"] == pytest.approx(np.sqrt(sum((d ** 2).sum() for d in deltas.values())), rel=1e-5)
    base_norm = np.sqrt(sum(float((p.detach().double() ** 2).sum()) for p in base.gpt_neox.layers[2].parameters()))
    assert table.loc[2, "relative"] == pytest.approx(table.loc[2, "delta_norm"] / base_norm, rel=1e-6)
    assert table.loc[0, "divergence"] == pytest.approx(np.linalg.norm(small), rel=1e-4)
    assert table.loc[[1, 3], "divergence"].eq(0).all()
    assert list(layer_divergence(base, tuned, top_k=2).index) == [2, 0]
    assert table["n_parameters"].nunique() == 1


def test_layer_divergence_takes_policies_and_llama(tmp_path):
    from rewardscope import load_policy

    base, tuned = load_policy("tiny-llama"), load_policy("tiny-llama")
    with torch.no_grad():
        tuned.model.model.layers[1].self_attn.q_proj.weight.mul_(1.5)
    table = layer_divergence(base, tuned)
    weight = base.model.model.layers[1].self_attn.q_proj.weight.detach().double()
    assert list(table.index) == [1, 0] and table.loc[0, "divergence"] == 0
    assert table.loc[1, "divergence"] == pytest.approx(0.5 * float(weight.norm()), rel=1e-6)


def test_layer_divergence_rejects_mismatched_models():
    with pytest.raises(ValueError, match="4 blocks and tuned 3"):
        layer_divergence(tiny_pythia(4), tiny_pythia(3))
    with pytest.raises(ValueError, match="torch model or a Policy"):
        layer_divergence("base", tiny_pythia())
    with pytest.raises(ValueError, match="top_k"):
        layer_divergence(tiny_pythia(), tiny_pythia(), top_k=0)


# --------------------------------------------------------------------------------------------------
# the lexicon and the contrastive sentences


def test_vader_lexicon_and_word_valence():
    lexicon = vader_lexicon()
    assert len(lexicon) == 7506 and lexicon["great"] == 3.1 and lexicon["terrible"] == -2.1
    np.testing.assert_array_equal(word_valence(["Ġgreat", "▁Terrible", " table", "great!"]), [3.1, -2.1, 0.0, 3.1])
    with pytest.raises(ValueError, match="sequence of strings"):
        word_valence("great")


def test_contrastive_triples_on_hand_written_sentences():
    texts = ["The movie was great and the acting superb.",  # antonym swap, cut after the target
             "I hated it, but the ending was wonderful.",   # a strong negative comes first: left out
             "Nothing much to report.",                     # no strongly positive word: left out
             "GREAT service, really",                       # case is kept
             "It was good, and then amazing.",              # 'good' (1.9) is below the top quartile (2.0)
             "A splendid evening"]                          # no antonym: a word from NEGATIVE_WORDS
    table = contrastive_triples(texts, seed=0)
    assert list(table["text_index"]) == [0, 3, 4, 5]
    first = table.iloc[0]
    assert (first["positive"], first["negative"]) == ("The movie was great", "The movie was terrible")
    assert first["neutral"].startswith("The movie was ") and first["neutral_word"] in NEUTRAL_WORDS
    assert (first["positive_valence"], first["negative_valence"]) == (3.1, -2.1)
    assert table.iloc[1]["negative"] == "TERRIBLE" and table.iloc[1]["neutral"].isupper()
    assert table.iloc[2]["positive"] == "It was good, and then amazing"
    assert table.iloc[2]["negative"] == "It was good, and then disappointing"
    splendid = table.iloc[3]
    assert splendid["negative_word"] in NEGATIVE_WORDS and splendid["negative"] == "A " + splendid["negative_word"]
    lexicon = vader_lexicon()
    assert all(lexicon[w] < 0 for w in table["negative_word"]) and not any(w in lexicon for w in table["neutral_word"])
    assert all(lexicon[w.lower()] >= 2.0 for w in table["positive_word"])
    # deterministic per (seed, text), whatever else is in the list
    again = contrastive_triples(["filler", "A splendid evening"], seed=0)
    assert contrastive_triples(texts, seed=0).equals(table)
    draws = {contrastive_triples(["A splendid evening"] * 1, seed=s).iloc[0]["negative_word"] for s in range(20)}
    assert len(draws) > 3 and again.iloc[0]["text_index"] == 1


def test_contrastive_triples_with_a_small_lexicon_and_a_lower_bar():
    lexicon = {"good": 1.9, "fine": 0.8, "bad": -2.5, "meh": -0.5, "yay": 3.0}
    table = contrastive_triples(["so fine", "so good", "meh but yay"], lexicon=lexicon, quantile=0.5,
                                negative_words=["bad"], neutral_words=["plain"])
    # positive valences 0.8, 1.9, 3.0 -> median 1.9; negative -2.5, -0.5 -> median -1.5 (so "meh" is not strong)
    assert list(table["positive"]) == ["so good", "meh but yay"]
    assert list(table["negative"]) == ["so bad", "meh but bad"] and set(table["neutral_word"]) == {"plain"}


@pytest.mark.parametrize("kwargs, message", [
    ({"texts": "one string"}, "sequence of strings"),
    ({"texts": ["ok", None]}, r"texts\[1\]"),
    ({"quantile": 1.0}, "quantile"),
    ({"negative_words": ["table"]}, "negative_words"),
    ({"neutral_words": ["great"]}, "neutral_words"),
    ({"lexicon": {}}, "lexicon"),
])
def test_contrastive_triples_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        contrastive_triples(**{"texts": ["a great day"], **kwargs})


def test_divergence_target_is_the_signed_distance_to_the_neutral_variant():
    rng = np.random.default_rng(0)
    pos, neg, neu = rng.random((3, 4, 6))
    features, target = divergence_target(pos, neg, neu)
    np.testing.assert_array_equal(features, np.vstack([pos, neg]))
    expected = [np.sqrt(((p - n) ** 2).sum()) for p, n in zip(pos, neu)] + \
               [-np.sqrt(((q - n) ** 2).sum()) for q, n in zip(neg, neu)]
    np.testing.assert_allclose(target, expected)
    with pytest.raises(ValueError, match="one shape"):
        divergence_target(pos, neg[:3], neu)


def test_concat_features_names_every_column():
    rng = np.random.default_rng(0)
    acts = {5: rng.normal(size=(300, 6)).astype(np.float32), 2: rng.normal(size=(300, 4)).astype(np.float32)}
    saes = {layer: train_sae(a, n, n_steps=20) for (layer, a), n in zip(acts.items(), (12, 8))}
    features, names = concat_features(acts, saes)
    assert features.shape == (300, 20) and list(names["layer"]) == [2] * 8 + [5] * 12
    column = int(np.flatnonzero((names["layer"] == 5) & (names["feature"] == 3))[0])
    np.testing.assert_array_equal(features[:, column], saes[5].encode(acts[5])[:, 3])
    with pytest.raises(ValueError, match="same layers"):
        concat_features(acts, {2: saes[2]})


# --------------------------------------------------------------------------------------------------
# the linear IRM and its evaluation


def planted_features(n=800, m=60, seed=0):
    """Sparse non-negative 'SAE features' and a reward that is a linear combination of them."""
    rng = np.random.default_rng(seed)
    features = rng.exponential(1.0, (n, m)) * (rng.random((n, m)) < 0.1)
    weights = rng.normal(size=m)
    return features, features @ weights + rng.normal(0, 0.05, n)


def test_linear_irm_recovers_a_planted_reward_and_random_probes_do_not():
    features, reward = planted_features()
    train, test = slice(0, 600), slice(600, None)
    irm = LinearIRM().fit(features[train], reward[train])
    result = evaluate_irm(irm, features[test], reward[test], n_random=50)
    assert result["tau"] > 0.9 and result["p"] < 1e-10 and result["n"] == 200
    assert abs(result["random_tau_mean"]) < 0.05 and result["random_tau_sd"] < 0.25
    assert result["random_taus"].shape == (50,) and np.all(np.abs(result["random_taus"]) < 0.8)
    assert irm.score(features[test], reward[test]) == pytest.approx(result["tau"])
    # the paper's ridge with alpha = 1 is sklearn's, fitted with an intercept
    from sklearn.linear_model import Ridge
    np.testing.assert_allclose(irm.coef_, Ridge(alpha=1.0).fit(features[train], reward[train]).coef_)


def test_irm_evaluated_per_token_like_the_paper():
    features, reward = planted_features(n=400, m=30, seed=1)
    irm = LinearIRM(alpha=0.1).fit(features[:300], reward[:300])
    # held-out rows labelled by 20 'tokens'; each token's true value is the mean reward of its rows
    tokens = [f"w{i % 20}" for i in range(100)]
    valence = pd.Series(reward[300:]).groupby(tokens).transform("mean").to_numpy()
    result = evaluate_irm(irm, features[300:], valence, tokens, n_random=20)
    assert result["n"] == 20 and result["tau"] > 0.8


def test_kendall_tau_matches_scipy_with_and_without_token_means():
    rng = np.random.default_rng(0)
    predicted, valence = rng.normal(size=30), rng.normal(size=30)
    assert kendall_tau(predicted, valence) == pytest.approx(tuple(kendalltau(predicted, valence)))
    tokens = ["a", "b", "c"] * 10
    means = pd.DataFrame({"t": tokens, "p": predicted, "v": valence}).groupby("t").mean()
    assert kendall_tau(predicted, valence, tokens)[0] == pytest.approx(kendalltau(means["p"], means["v"]).statistic)
    with pytest.raises(ValueError, match="at least 2"):
        kendall_tau(predicted, valence, ["a"] * 30)
    with pytest.raises(ValueError, match="valence"):
        kendall_tau(predicted, valence[:5])
    with pytest.raises(ValueError, match="one label per row"):
        kendall_tau(predicted, valence, tokens[:3])


def test_random_probe_is_a_seeded_xavier_uniform_linear_map():
    features = np.random.default_rng(0).random((10, 15))
    bound = np.sqrt(6 / 16)
    weights = np.random.default_rng(4).uniform(-bound, bound, 15)
    np.testing.assert_allclose(random_probe(features, seed=4), features @ weights)
    assert not np.allclose(random_probe(features, 1), random_probe(features, 2))


def test_linear_irm_rejects_bad_input():
    with pytest.raises(ValueError, match="not fitted"):
        LinearIRM().predict(np.ones((2, 3)))
    with pytest.raises(ValueError, match="alpha"):
        LinearIRM(alpha=-1)
    with pytest.raises(ValueError, match="target"):
        LinearIRM().fit(np.ones((4, 3)), np.ones(5))
    with pytest.raises(ValueError, match="features"):
        LinearIRM().fit(np.full((4, 3), np.nan), np.ones(4))
    irm = LinearIRM().fit(np.random.default_rng(0).random((5, 3)), np.arange(5.0))
    with pytest.raises(ValueError, match="3 columns"):
        irm.predict(np.ones((2, 4)))
    with pytest.raises(ValueError, match="n_random"):
        evaluate_irm(irm, np.ones((3, 3)), np.arange(3.0), n_random=0)


def test_reconstructed_valence_maps_the_middle_percentiles_and_clamps():
    predicted = np.arange(101.0)
    out = reconstructed_valence(predicted, -4.0, 4.0)
    assert out[10] == pytest.approx(-4.0) and out[90] == pytest.approx(4.0) and out[50] == pytest.approx(0.0)
    assert out.min() == -4.0 and out.max() == 4.0 and np.all(np.diff(out) >= 0)
    with pytest.raises(ValueError, match="low must be below high"):
        reconstructed_valence(predicted, 1.0, 1.0)


# --------------------------------------------------------------------------------------------------
# feature relevance


def test_feature_relevance_counts_valenced_top_tokens():
    rng = np.random.default_rng(0)
    n = 200
    valence = np.where(rng.random(n) < 0.3, rng.choice([-2.0, 2.5], n), 0.0)
    acts = np.zeros((n, 4))
    acts[:, 0] = np.where(valence != 0, 1 + rng.random(n), 0.1 * rng.random(n))  # a sentiment feature
    acts[:, 1] = np.where(valence == 0, 1 + rng.random(n), 0.0)                   # fires on neutral tokens only
    acts[:, 2] = rng.random(n)                                                    # unrelated
    table = feature_relevance(acts, valence, k=20)                                # column 3 never fires
    pd.testing.assert_frame_equal(feature_relevance(acts.astype(np.float32), valence, k=20, block=3), table,
                                  check_dtype=False)  # ranked in column blocks: the same table
    assert table.loc[0, "share_valenced"] == 1.0 and table.loc[1, "share_valenced"] == 0.0
    assert np.isnan(table.loc[3, "share_valenced"]) and table.loc[3, "n_active"] == 0
    assert table.loc[0, "mean_abs_valence"] > 2.0
    # a plain loop over features as the reference
    for j in range(3):
        top = top_activations(acts, j, k=20)
        assert np.all(np.diff(acts[top, j]) <= 0) and len(top) == 20
        assert table.loc[j, "share_valenced"] == pytest.approx(np.mean(valence[top] != 0))
        assert table.loc[j, "mean_valence"] == pytest.approx(np.mean(valence[top]))
    few = np.zeros((200, 1))
    few[[5, 9], 0] = [1.0, 2.0]  # only two active tokens: both counted, never the inactive ones
    assert list(top_activations(few, 0)) == [9, 5]
    assert feature_relevance(few, valence)["share_valenced"].iloc[0] == pytest.approx(np.mean(valence[[5, 9]] != 0))
    with pytest.raises(ValueError, match="valence"):
        feature_relevance(acts, valence[:10])
    with pytest.raises(ValueError, match="feature must be a column index"):
        top_activations(acts, 4)


# --------------------------------------------------------------------------------------------------
# the pieces together on the embedded tiny model


def test_the_pipeline_runs_end_to_end_on_tiny_llama():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardscope.zoo import resolve

    path = resolve("tiny-llama")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    openings = ["The movie was", "My day was", "The staff were", "This pill is", "Honestly it felt", "The food was"]
    positives = ["great", "wonderful", "amazing", "excellent", "happy", "beautiful", "perfect", "lovely"]
    texts = [f"{o} {p}, thanks." for o in openings for p in positives]
    triples = contrastive_triples(texts)
    assert len(triples) == len(texts)
    acts = {k: last_token_activations(model, tokenizer, list(triples[k]), [0, 1])
            for k in ("positive", "negative", "neutral")}
    saes = {layer: train_sae(np.vstack([acts[k][layer] for k in acts]), 32, n_steps=200) for layer in (0, 1)}
    codes = {k: concat_features(acts[k], saes)[0] for k in acts}
    features, target = divergence_target(codes["positive"], codes["negative"], codes["neutral"])
    valence = np.concatenate([triples["positive_valence"], triples["negative_valence"]])
    words = list(triples["positive_word"].str.lower()) + list(triples["negative_word"])
    irm = LinearIRM().fit(features[::2], target[::2])
    first = evaluate_irm(irm, features[1::2], valence[1::2], words[1::2], n_random=10)
    again = evaluate_irm(LinearIRM().fit(features[::2], target[::2]), features[1::2], valence[1::2], words[1::2],
                         n_random=10)
    assert features.shape == (2 * len(texts), 64) and np.all(target[: len(texts)] >= 0)
    assert -1 <= first["tau"] <= 1 and first["tau"] == again["tau"]


# --------------------------------------------------------------------------------------------------
# issue 14: words as the unit, a large negative-word set, one decision rule


def test_negative_lexicon_words_is_large_and_blocks_slurs_and_profanity():
    from rewardscope.studies.irm.irm import NEGATIVE_BLOCKLIST, negative_lexicon_words

    words = negative_lexicon_words()
    lexicon = vader_lexicon()
    assert len(words) > 10 * len(NEGATIVE_WORDS)
    assert all(lexicon[w] <= -1.5 and w.isalpha() and len(w) >= 4 for w in words)
    assert not set(words) & set(NEGATIVE_BLOCKLIST)
    assert not [w for w in words if w.startswith(("fuck", "shit", "bitch", "whore", "slut", "cunt", "nigg", "rapist"))]
    assert {"awful", "terrible", "hopeless"} <= set(words)
    with pytest.raises(ValueError, match="no lexicon word"):
        negative_lexicon_words(-10)


def test_triples_without_antonyms_draw_many_distinct_negative_words():
    from rewardscope.studies.irm.irm import negative_lexicon_words

    texts = ["The film was great, really."] * 200
    fixed = contrastive_triples(texts)
    drawn = contrastive_triples(texts, negative_words=negative_lexicon_words(), antonyms=False)
    assert fixed["negative_word"].nunique() == 1  # "great" always becomes "terrible"
    assert drawn["negative_word"].nunique() > 100


def test_word_folds_keep_each_word_in_one_fold():
    from rewardscope.studies.irm.irm import word_folds

    words = ["a", "b", "c", "a", "d", "b", "e", "f"] * 3
    folds = word_folds(words, 3, seed=1)
    frame = pd.DataFrame({"w": words, "f": folds})
    assert (frame.groupby("w")["f"].nunique() == 1).all()
    assert set(folds) == {0, 1, 2}
    with pytest.raises(ValueError, match="distinct words"):
        word_folds(["a", "a", "b"], 3)


def test_out_of_fold_predictions_never_see_their_own_word():
    from rewardscope.studies.irm.irm import out_of_fold_predictions, word_folds

    # each word has a feature of its own: a model that never saw the word cannot predict it
    words = np.repeat([f"w{i}" for i in range(10)], 4)
    x = np.eye(10)[np.repeat(np.arange(10), 4)]
    target = np.repeat(np.linspace(-3, 3, 10), 4)
    predicted = out_of_fold_predictions(x, target, word_folds(words, 5), alpha=1e-6)
    in_sample = LinearIRM(1e-6).fit(x, target).predict(x)
    assert np.allclose(in_sample, target, atol=1e-3)
    assert np.abs(predicted - target.mean()).max() < 1.0  # held-out words get about the mean of the others


def test_word_tau_interval_resamples_words_not_fits():
    """Refits on the same 30 words agree closely; the word-level interval is as wide as the word sampling."""
    from rewardscope.studies.irm.irm import word_tau

    rng = np.random.default_rng(0)
    n_words = 30
    valence = rng.uniform(-4, -1.5, n_words)
    predicted = valence + rng.normal(0, 2.0, n_words)  # a weak signal
    words = [f"w{i}" for i in range(n_words)]
    result = word_tau(np.repeat(predicted, 3), np.repeat(valence, 3), np.repeat(words, 3), seed=0)
    assert result["n_words"] == n_words
    assert result["low"] < result["tau"] < result["high"]
    # the old interval: a bootstrap over 15 refits that share the same words
    fits = [kendalltau(predicted + rng.normal(0, 0.05, n_words), valence).statistic for _ in range(15)]
    old_width = np.quantile(fits, 0.975) - np.quantile(fits, 0.025)
    assert result["high"] - result["low"] > 4 * old_width
    paired = word_tau(predicted, valence, words, against=predicted)
    assert paired["difference"] == 0 and paired["difference_low"] == paired["difference_high"] == 0


def test_random_probe_taus_centre_on_zero():
    from rewardscope.studies.irm.irm import random_probe_taus

    rng = np.random.default_rng(0)
    taus = random_probe_taus(rng.normal(size=(200, 16)), rng.normal(size=200), n_random=200)
    assert abs(taus.mean()) < 0.02 and taus.shape == (200,)


def _results(**overrides):
    results = {"random_probe": {"tau": 0.0, "low": -0.1, "high": 0.1, "n": 300},
               "irm_negative": {"tau": 0.2, "low": 0.1, "high": 0.3, "n": 300},
               "widths": {"mmcs": 0.5, "low": 0.45, "high": 0.55, "n": 1152, "null": 0.2},
               "sentiment_shared": {"difference": 0.1, "low": 0.02, "high": 0.2, "n": 1152, "shared": 0.3, "rest": 0.2},
               "beyond_seed": {"difference": 0.05, "low": 0.03, "high": 0.07, "n": 2304, "within": 0.6, "cross": 0.55},
               "tuned_vs_base": {"difference": 0.02, "low": -0.05, "high": 0.09, "n": 300}}
    results.update(overrides)
    return results


def test_findings_follow_one_rule_and_do_not_count_the_random_probe():
    from rewardscope.findings import summary, table
    from rewardscope.studies.irm.irm import PAPER_RANDOM_PROBE_TAU, findings

    rows = findings(_results())
    frame = table(rows)
    assert frame["verdict"].tolist() == ["not a test here", "holds", "holds", "holds", "holds", "does not hold"]
    assert summary(rows) == (4, 5)  # the by-construction random-probe row is not counted
    assert str(PAPER_RANDOM_PROBE_TAU) in frame.loc[0, "paper"]
    assert frame.loc[1, "unit"] == "negative words" and frame.loc[1, "n"] == 300


def test_findings_planted_null_does_not_hold():
    from rewardscope.findings import summary
    from rewardscope.studies.irm.irm import findings

    # an MMCS above the isotropic chance level but inside the matched-shape null; an IRM tau whose word-level
    # interval crosses 0 (the old fit-level interval would have excluded it)
    rows = findings(_results(widths={"mmcs": 0.25, "low": 0.21, "high": 0.29, "n": 576, "null": 0.26},
                             irm_negative={"tau": 0.011, "low": -0.1, "high": 0.12, "n": 30},
                             cross_reconstruction={"difference": 0.04, "low": 0.01, "high": 0.07, "n": 96,
                                                   "replicates": 3, "base": 0.4, "tuned": 0.36}))
    verdicts = {r.claim: r.holds for r in rows}
    assert verdicts["1× and 2× dictionaries share features (different seeds)"] is False
    assert not next(r for r in rows if r.claim.startswith("the linear IRM")).holds
    assert rows[-1].unit.startswith("SAE replicate pairs") and rows[-1].n == 3 and rows[-1].holds
    assert summary(rows) == (3, 6)
    with pytest.raises(ValueError, match="beyond_seed"):
        findings({k: v for k, v in _results().items() if k != "beyond_seed"})


def test_share_difference_resamples_each_side():
    from rewardscope.studies.irm.irm import share_difference

    flags = np.r_[np.ones(20), np.zeros(10), np.ones(20), np.zeros(80)].astype(bool)
    inside = np.r_[np.ones(30), np.zeros(100)].astype(bool)
    result = share_difference(flags, inside, n_resamples=500)
    assert np.isclose(result["difference"], 2 / 3 - 0.2) and result["low"] > 0 and result["n"] == 130
    same = share_difference(np.zeros(10, bool), np.arange(10) < 3)
    assert same["difference"] == same["low"] == same["high"] == 0
    with pytest.raises(ValueError, match="each side"):
        share_difference(flags, np.ones(130, bool))
