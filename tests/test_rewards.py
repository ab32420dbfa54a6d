import numpy as np
import pytest
import torch

from rewardscope import hf, load_reward_model
from rewardscope.rewards import HFRewardModel
from rewardscope.zoo import resolve

PROMPTS = ["Hi there", "What is the capital of France, and why?", "Tell me a joke", "ok"]
RESPONSES = ["Hello!", "Paris. It has been the capital for centuries.", "No.", "Fine, thanks, and you?"]


def _reference_scores(rm):
    """The RM's own pooled output on each pair alone: no padding at all."""
    out = []
    for p, r in zip(PROMPTS, RESPONSES):
        if rm.architecture == "decoder":
            batch = {"input_ids": torch.tensor([rm.encode(p, r)])}
        else:
            batch = rm.tokenizer(p, r, return_tensors="pt")
        with torch.no_grad():
            out.append(rm.model(**batch).logits[0, 0].item())
    return np.array(out)


@pytest.mark.parametrize("spec", ["tiny-llama-rm", "tiny-bert-rm"])
def test_batched_scores_match_unpadded_reference(spec):
    rm = load_reward_model(spec)
    reference = _reference_scores(rm)
    for batch_size in (1, 3, 16):
        np.testing.assert_allclose(rm.score(PROMPTS, RESPONSES, batch_size=batch_size), reference, atol=1e-5)
    assert rm.architecture == ("decoder" if "llama" in spec else "encoder")


def test_decoder_ids_have_exactly_one_bos_where_naive_round_trip_has_two():
    rm = load_reward_model("tiny-llama-rm")
    tok = rm.tokenizer
    naive = tok(tok.apply_chat_template(hf.chat_messages("hi", "yo"), tokenize=False)).input_ids
    assert naive[:2] == [tok.bos_token_id, tok.bos_token_id]  # the trap is real for this tokenizer
    ids = rm.encode("hi", "yo")
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id
    assert tok.decode(ids[1:]).startswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo")


def test_single_bos_rules():
    tok = load_reward_model("tiny-llama-rm").tokenizer
    bos = tok.bos_token_id
    assert hf.single_bos([bos, bos, bos, 7], tok) == [bos, 7]
    assert hf.single_bos([7, 8], tok) == [bos, 7, 8]  # this tokenizer expects a BOS
    assert hf.single_bos([7, 8], tok, wants_bos=False) == [7, 8]


def test_pad_token_inside_the_template_is_replaced(tmp_path):
    rm = load_reward_model("tiny-llama-rm")
    rm.tokenizer.pad_token = "<|im_end|>"  # as SmolLM2 ships it: the template writes this token
    rm.tokenizer.save_pretrained(tmp_path)
    rm.model.save_pretrained(tmp_path)
    patched = load_reward_model(str(tmp_path))
    assert patched.pad_id not in hf.template_token_ids(patched.tokenizer)
    np.testing.assert_allclose(patched.score(PROMPTS, RESPONSES), _reference_scores(rm), atol=1e-5)


def test_bfloat16_is_close_to_float32():
    full = load_reward_model("tiny-llama-rm").score(PROMPTS, RESPONSES)
    half = load_reward_model("tiny-llama-rm", dtype="bfloat16").score(PROMPTS, RESPONSES)
    assert half.dtype == np.float64
    np.testing.assert_allclose(half, full, atol=0.05)


def test_a_causal_lm_is_not_silently_a_reward_model():
    with pytest.raises(ValueError, match="not a sequence-classification reward model.*allow_random_head"):
        load_reward_model("tiny-llama")
    rm = load_reward_model("tiny-llama", allow_random_head=True)
    assert rm.score(["a"], ["b"]).shape == (1,)


def test_encoder_without_pair_tokens_and_template_fails_early(tmp_path):
    rm = load_reward_model("tiny-llama-rm")
    rm.tokenizer.chat_template = None
    rm.tokenizer.save_pretrained(tmp_path)
    rm.model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no chat template"):
        HFRewardModel("bare", tmp_path)


@pytest.mark.parametrize(
    "prompts, responses, error, match",
    [
        ([], [], ValueError, "prompts is empty"),
        (["a", "b"], ["c"], ValueError, "2 prompts but 1 responses"),
        ("a", ["c"], TypeError, "not single strings"),
        (["a"], [3], TypeError, r"responses\[0\] is int"),
        (["a", "b", "c", "x\ud800y"], ["r"] * 4, ValueError,
         r"prompts\[3\] is not valid text \(lone surrogate '\\ud800' at character 1\)"),
        (["a"], ["\udfff"], ValueError, r"responses\[0\] is not valid text \(lone surrogate"),
    ],
)
def test_bad_inputs_fail_before_compute(prompts, responses, error, match):
    for spec in ("vader-compound", "tiny-llama-rm"):
        with pytest.raises(error, match=match):
            load_reward_model(spec).score(prompts, responses)


def test_valid_non_ascii_text_is_scored():
    scores = load_reward_model("vader-compound").score(["Ça va? 😀"], ["Très bien, merci! 👍"])
    assert scores.shape == (1,) and np.isfinite(scores).all()


def test_bad_batch_size_device_dtype():
    rm = load_reward_model("vader-compound")
    with pytest.raises(ValueError, match="batch_size"):
        rm.score(["a"], ["b"], batch_size=0)
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_reward_model("tiny-llama-rm", dtype="int8")
    with pytest.raises(ValueError, match="device"):
        load_reward_model("tiny-llama-rm", device="gpu!")


def test_vader_utility_is_the_irm_papers_formula():
    rm = load_reward_model("vader-utility")
    # VADER lexicon: good = 1.9, horrible = -2.5; unknown words count 0; the prompt is not counted.
    scores = rm.score(["good good good", "x", "x"], ["Good, good... horrible!", "good " * 100, "table chair"])
    np.testing.assert_allclose(scores, [(1.9 + 1.9 - 2.5) / 5, 10.0, 0.0])


def test_concise_is_minus_the_word_count_of_the_response():
    scores = load_reward_model("concise").score(["a long prompt of many words", "q"], ["Yes, it's fine.", ""])
    np.testing.assert_array_equal(scores, [-3.0, 0.0])


def test_lexicon_and_classifier_rewards_order_obvious_cases():
    pairs = (["q", "q"], ["What a wonderful, lovely day!", "This is awful and I hate it."])
    for spec in ("vader-compound", "afinn", "vader-utility"):
        good, bad = load_reward_model(spec).score(*pairs)
        assert good > 0 > bad, spec
    nice, rude = load_reward_model("toxicity").score(["q", "q"], ["Have a nice day.", "You stupid idiot."])
    assert 0 <= nice < 0.5 < rude <= 1


def test_reward_rules_take_no_options():
    with pytest.raises(TypeError, match="takes no options"):
        load_reward_model("afinn", label=1)


def test_multi_label_model_needs_a_label(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    path = resolve("tiny-bert-rm")
    config = BertConfig.from_pretrained(path, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(path).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has 2 labels; pass label="):
        load_reward_model(str(tmp_path))
    assert load_reward_model(str(tmp_path), label=1).score(["a"], ["b"]).shape == (1,)


def test_chat_template_override_scores_hh_format_and_rejects_non_templates():
    from rewardscope.rewards import HH_TEMPLATE

    rm = load_reward_model("tiny-llama-rm", chat_template=HH_TEMPLATE)
    text = rm.tokenizer.decode(rm.encode("Is it safe?", "Yes, quite."), skip_special_tokens=True)
    assert "Human: Is it safe?" in text and text.rstrip().endswith("Assistant: Yes, quite.")
    named = load_reward_model("tiny-llama-rm", chat_template="hh")
    np.testing.assert_array_equal(named.score(["Is it safe?"], ["Yes, quite."]), rm.score(["Is it safe?"], ["Yes, quite."]))
    with pytest.raises(ValueError, match="Jinja template over `messages`"):
        load_reward_model("tiny-llama-rm", chat_template="Human: {prompt}")


def test_vocabulary_size_is_what_both_the_tokenizer_and_the_embedding_matrix_have():
    rm = load_reward_model("tiny-llama-rm")
    rows = rm.model.get_input_embeddings().weight.shape[0]
    assert rm.vocabulary_size == min(len(rm.tokenizer), rows)
    padded = load_reward_model("tiny-llama-rm")
    padded.model.resize_token_embeddings(rows + 64)  # a matrix padded past the tokenizer (as Llama 3's often is)
    assert padded.vocabulary_size == len(padded.tokenizer)
    grown = load_reward_model("tiny-llama-rm")
    grown.tokenizer.add_tokens(["<never-learnt-1>", "<never-learnt-2>"])  # tokens the model has no row for
    assert grown.vocabulary_size == rows == len(grown.tokenizer) - 2
