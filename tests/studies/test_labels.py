"""Feature labellers and rewrites on hand-written examples."""

import numpy as np
import pandas as pd
import pytest

from rewardscope.studies.seal import labels
from rewardscope.studies.seal.rewrite import ANTONYMS, SYNONYMS, flip_sentiment, paraphrase, rewrite_pairs


def _label(fn, responses, **kwargs):
    return fn(["Hi"] * len(responses), responses, **kwargs).tolist()


def test_rule_labellers_on_hand_written_examples():
    assert _label(labels.refusal, ["I'm sorry, but I can't help with that.", "As an AI, I have no opinions.",
                                   "I cannot provide that information.", "I don't have personal opinions.",
                                   "Sure, here it is.", "I'm sorry to hear that.", "You can't miss it."]) \
        == [1, 1, 1, 1, 0, 0, 0]
    assert _label(labels.anthropomorphic, ["I love pizza!", "My mom makes it.", "I'm so excited!", "I grew up there.",
                                           "I'm happy to help.", "Pizza is Italian.", "I can help."]) \
        == [1, 1, 1, 1, 0, 0, 0]
    assert _label(labels.coherent, ["That is all.", "Well, and then the", "the cat sat, the cat sat.", 'He said "yes!"',
                                    ""]) == [1, 0, 0, 1, 0]
    assert _label(labels.sentiment, ["I love it, wonderful!", "It is a table.", "This is awful and I hate it."]) == [1, 0, -1]
    assert _label(labels.insult, ["You are an idiot.", "What a lovely day.", "This is shit.", "Clouds over a canyon."]) \
        == [1, 0, 1, 0]
    np.testing.assert_allclose(_label(labels.length, ["one two three", ""]), [np.log(4), 0.0])
    np.testing.assert_allclose(_label(labels.eloquence, ["a bb ccc", "extraordinary", "!!", "ab " + "x" * 40]),
                               [2.0, 13.0, 0.0, 2.0])


def test_gold_signal_labellers_threshold_their_scores():
    assert _label(labels.helpful_proxy, ["a", "b", "c"], scores=[0.1, 0.3, 0.9]) == [0, 1, 1]
    assert _label(labels.harmless_proxy, ["a", "b"], scores=[0.05, 0.9]) == [1, 0]
    assert _label(labels.harmless_proxy, ["Thank you, have a nice day.", "Shut up, you stupid idiot."]) == [1, 0]
    assert labels.GOLD_SIGNAL_LABELLERS == {"helpful": "helpful_proxy", "harmless": "harmless_proxy"}


def test_helpful_needs_a_shared_content_word_and_a_few_words():
    prompts = ["How do I bake bread at home?"] * 5
    responses = ["Mix flour, water, yeast and salt, let the dough rise, then bake the bread in a hot oven.",
                 "The stock market closed slightly lower on Tuesday after a quiet session of trading.",
                 "Bread.",  # on topic but too short
                 "Home baked breads taste better than any you can buy.",  # plural and case are normalised
                 "How do I do it at all, you ask?"]  # shares only stop words with the prompt
    assert labels.helpful(prompts, responses).tolist() == [1, 0, 0, 1, 0]
    # a prompt with no content word cannot be left off-topic: only the word count decides
    assert labels.content_words("How are you?") == set()
    assert labels.helpful(["How are you?"] * 2, ["I am fine, thank you for asking!", "Fine."]).tolist() == [1, 0]
    assert labels.content_words("The doctors' orders and a doctor's advice") == {"doctor", "order", "advice"}
    assert labels.helpful(["Bake bread"], ["bread bread"], min_words=2).tolist() == [1]  # thresholds are arguments
    assert labels.HELPFUL_MIN_WORDS == 5 and labels.HELPFUL_MIN_SHARED == 1


def test_harmless_flags_strongly_negative_afinn_words():
    responses = ["Thank you, have a nice day.", "Shut up, you stupid bastard.", "This is bad, awful and boring.",
                 "What the FUCK is this?", "That was pure torture.", "You can mix them safely."]
    assert _label(labels.harmless, responses) == [1, 0, 1, 0, 0, 1]  # −3 words ("bad", "awful") are not harm
    assert _label(labels.harmless, ["This is bad."], max_valence=-3) == [0]
    assert labels.HARMFUL_VALENCE == -4


def test_targets_use_no_signal_of_the_gold(monkeypatch):
    """The targets must run without the MiniLM helpfulness proxy and the toxicity classifier, the lab
    gold's two ingredients; only the gold-signal twins may call them."""
    def refuse():
        raise AssertionError("a target labeller used one of the gold's signals")

    monkeypatch.setattr(labels, "helpfulness_model", refuse)
    monkeypatch.setattr(labels, "toxicity_model", refuse)
    frame = labels.label_features(["How do I bake bread?"] * 2, ["Bake the bread in a hot oven for an hour.", "No."],
                                  features=list(labels.TARGETS))
    assert frame.to_dict("list") == {"helpful": [1, 0], "harmless": [1, 1]}
    assert labels.TARGETS_SHARE_GOLD_SIGNALS is False
    with pytest.raises(AssertionError, match="gold's signals"):
        labels.label_features(["Hi"], ["Hello"], features=["helpful_proxy"])


def test_helpful_proxy_prefers_an_on_topic_answer():
    prompts = ["How do I bake bread at home?"] * 2
    responses = ["Mix flour, water, yeast and salt, let the dough rise, then bake the bread in a hot oven.",
                 "The stock market closed slightly lower on Tuesday after a quiet session of trading."]
    assert labels.helpful_proxy(prompts, responses).tolist() == [1, 0]


def test_label_features_builds_a_frame_and_checks_names():
    frame = labels.label_features(["Hi", "Hi"], ["Hello! I love you.", "No."],
                                  features=["sentiment", "length", "helpful_proxy"], helpfulness_scores=[0.5, 0.0])
    assert list(frame.columns) == ["sentiment", "length", "helpful_proxy"] and frame["helpful_proxy"].tolist() == [1, 0]
    assert set(labels.LABELLERS) == set(labels.FEATURES) | set(labels.GOLD_SIGNAL_LABELLERS.values())
    assert set(labels.TARGETS) <= set(labels.BINARY) and set(labels.GOLD_SIGNAL_LABELLERS.values()) <= set(labels.BINARY)
    with pytest.raises(ValueError, match=r"unknown feature\(s\) \['politeness'\]; labellers: helpful"):
        labels.label_features(["Hi"], ["Hello"], features=["politeness"])
    with pytest.raises(ValueError, match="got 1 prompts but 2 responses"):
        labels.refusal(["Hi"], ["a", "b"])


def test_lm_answers_are_parsed_robustly():
    assert labels.parse_lm_labels('{"helpful": true, "harmless": false, "refusal": "no", "sentiment": "positive"}') \
        == {"helpful": 1.0, "harmless": 0.0, "refusal": 0.0, "sentiment": 1.0}
    messy = labels.parse_lm_labels('Sure! Here: {helpful: yes, "sentiment": negative ... (cut off')
    assert messy["helpful"] == 1.0 and messy["sentiment"] == -1.0 and np.isnan(messy["harmless"])
    assert all(np.isnan(v) for v in labels.parse_lm_labels("I cannot label this.").values())


def test_label_agreement_counts_readable_labels():
    rule = pd.DataFrame({"helpful": [1, 0, 1, 1], "refusal": [0, 0, 0, 1]})
    lm = pd.DataFrame({"helpful": [1.0, 1.0, np.nan, 1.0], "refusal": [0.0, 0.0, 0.0, 1.0]})
    table = labels.label_agreement(rule, lm, ["helpful", "refusal"])
    assert table.loc["helpful", "readable"] == 3 and table.loc["helpful", "agreement"] == pytest.approx(2 / 3)
    assert table.loc["refusal", "agreement"] == 1.0 and table.loc["refusal", "kappa"] == 1.0
    with pytest.raises(ValueError, match="label the same texts"):
        labels.label_agreement(rule, lm.head(2))


def test_lm_labeller_runs_on_a_tiny_model():
    frame = labels.lm_labels(["Hi"], ["Hello there."], policy="tiny-llama", max_new_tokens=4)
    assert list(frame.columns) == [*labels.LM_FEATURES, "raw"] and len(frame) == 1


# --------------------------------------------------------------------------------------------------
# Rewrites


def test_paraphrase_keeps_case_and_swaps_both_ways():
    assert paraphrase("Maybe ask your doctor... I do not know.") == "Perhaps ask your physician… I don't know."
    assert paraphrase("I'm sure it is FINE. DON'T worry,  I am here.") == "I am sure it's FINE. DO NOT worry, I'm here."
    assert paraphrase("Nobody knows the whole answer") == "No one knows the entire reply"
    assert paraphrase("Doctorate holders") == "Doctorate holders"  # whole words only
    assert paraphrase(paraphrase("Maybe the kids can't wait.")) == "Maybe the kids can't wait."


def test_rewrite_tables_respect_vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    lexicon = analyzer.lexicon
    for pos, neg in ANTONYMS:
        assert lexicon.get(pos, 0) > 0 > lexicon.get(neg, 0), (pos, neg)
    assert not [w for pair in SYNONYMS for w in pair if w in lexicon]
    text = "The staff were friendly and the food was great, I love it."
    assert flip_sentiment(text) == "The staff were hostile and the food was terrible, I hate it."
    assert analyzer.polarity_scores(text)["compound"] > 0.5 > -0.5 > analyzer.polarity_scores(flip_sentiment(text))["compound"]
    assert flip_sentiment("GOOD. Good? good") == "BAD. Bad? bad"


def test_rewrite_pairs_filters_by_similarity():
    pairs = pd.DataFrame({"prompt": ["p", "p", "p"], "chosen": ["Maybe yes.", "Plain text.", "I do not know."],
                          "rejected": ["Nothing here.", "Also plain.", "Nope."]})
    # a fake embedder: texts containing "physician"/"Perhaps" are far from the rest
    embed = lambda texts: np.array([[1.0, 0.0] if "Perhaps" not in t else [0.0, 1.0] for t in texts])
    out = rewrite_pairs(pairs, "paraphrase", min_similarity=0.9, embedder=embed)
    assert out["chosen_rewritten"].tolist() == ["Perhaps yes.", "Plain text.", "I don't know."]
    assert out["changed"].tolist() == [True, False, True] and out["kept"].tolist() == [False, False, True]
    assert out["chosen_similarity"].tolist() == [0.0, 1.0, 1.0]
    flipped = rewrite_pairs(pairs.assign(chosen=["good", "bad", "meh"]), "flip", min_similarity=None, embedder=embed)
    assert flipped["kept"].tolist() == [True, True, False]
    assert np.isnan(flipped["chosen_similarity"][0]) and flipped["chosen_similarity"][2] == 1.0  # no filter, no embedding
    with pytest.raises(ValueError, match="unknown rewrite kind 'synonym'; kinds: paraphrase, flip"):
        rewrite_pairs(pairs, "synonym", embedder=embed)
    with pytest.raises(ValueError, match=r"no column\(s\) \['rejected'\]"):
        rewrite_pairs(pairs.drop(columns="rejected"), embedder=embed)


def test_label_pairs_uses_precomputed_gold_scores():
    pairs = pd.DataFrame({"prompt": ["q", "q"], "chosen": ["Sure, here.", "Fine."], "rejected": ["No.", "No."]})
    scores = pd.DataFrame({"helpfulness": [0.9, 0.1, 0.5], "toxicity": [0.0, 0.9, 0.1]},
                          index=pd.MultiIndex.from_tuples([("q", "Sure, here."), ("q", "No."), ("q", "Fine.")]))
    out = labels.label_pairs(pairs, ["helpful_proxy", "harmless_proxy"], scores=scores)
    assert out.to_dict("list") == {"chosen_helpful_proxy": [1, 1], "chosen_harmless_proxy": [1, 1],
                                   "rejected_helpful_proxy": [0, 0], "rejected_harmless_proxy": [0, 0]}
    with pytest.raises(ValueError, match="scores lacks 1 of the 3"):
        labels.label_pairs(pairs, ["helpful_proxy"], scores=scores.iloc[:2])
    with pytest.raises(ValueError, match="'helpfulness' and 'toxicity' columns, got \\['gold'\\]"):
        labels.label_pairs(pairs, ["helpful_proxy"], scores=scores.rename(columns={"toxicity": "gold"}))
    # the targets read no gold score, so scores that do not cover the texts are not an error for them
    targets = labels.label_pairs(pairs, ["helpful", "harmless"], scores=scores.iloc[:1])
    assert targets["chosen_harmless"].tolist() == [1, 1] and targets["rejected_helpful"].tolist() == [0, 0]


def test_label_pairs_reuses_its_cache():
    pairs = pd.DataFrame({"prompt": ["q"], "chosen": ["I love it."], "rejected": ["I hate it."]})
    cache = {}
    labels.label_pairs(pairs, ["sentiment"], cache=cache)
    assert cache == {("q", "I love it."): {"sentiment": 1}, ("q", "I hate it."): {"sentiment": -1}}
    cache[("q", "I hate it.")]["sentiment"] = 7  # a cached label is used as is
    assert labels.label_pairs(pairs, ["sentiment"], cache=cache)["rejected_sentiment"].tolist() == [7]
    assert labels.label_pairs(pairs, ["sentiment", "refusal"], cache=cache)["rejected_refusal"].tolist() == [0]
