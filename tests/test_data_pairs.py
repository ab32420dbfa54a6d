import json

import numpy as np
import pandas as pd
import pytest

from rewardscope import data
from rewardscope.pairs import preference_pairs, sample_pool, split_prompts, to_dataset_dict
from rewardscope.policy import load_policy


def test_offline_prompt_sources_parse():
    dialogues = data.chatterbot_dialogues()
    assert len(dialogues) > 1000 and all(isinstance(t, str) and t for d in dialogues for t in d)
    reviews = data.drug_reviews()
    assert len(reviews) == 979 and set(reviews["label"]) == {"positive", "negative", "neutral"}
    assert not reviews["review"].str.contains("&#039;|^\"", regex=True).any()  # unescaped, unquoted
    openings = data.review_openings(n=50, seed=3)
    assert all(2 <= len(o.split()) <= 8 for o in openings)
    assert openings == data.review_openings(n=50, seed=3)
    assert data.prompts_from("drug-reviews", 2)[0].startswith("Continue this patient review: ")


def test_bad_source_and_sizes_fail_clearly():
    with pytest.raises(ValueError, match="unknown prompt source 'imdb'; sources: chatterbot, drug-reviews, sharegpt, hh-rlhf"):
        data.prompts_from("imdb")
    with pytest.raises(ValueError, match="asked for 100000 prompts"):
        data.prompts_from("chatterbot", 100_000)
    with pytest.raises(ValueError, match="min_words"):
        data.review_openings(min_words=5, max_words=2)


def test_truncated_json_array_yields_complete_elements(tmp_path):
    items = [{"id": i, "conversations": [{"from": "human", "value": f"question {i}?"}, {"from": "gpt", "value": "a"}]}
             for i in range(5)]
    text = json.dumps(items)
    cut = text[: text.index('{"id": 4') + 20]  # the fifth element is cut off mid-way
    (tmp_path / "x.json").write_text(cut)
    assert [e["id"] for e in data.parse_truncated_json_array(tmp_path / "x.json")] == [0, 1, 2, 3]


def test_hh_rlhf_split_at_last_assistant_turn():
    text = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: and?\n\nAssistant: bye"
    assert data.split_hh_dialogue(text) == ("Human: hi\n\nAssistant: hello\n\nHuman: and?", "bye")
    with pytest.raises(ValueError, match="no"):
        data.split_hh_dialogue("Human: only")


def _planted_pool():
    rows = []
    for pid in range(40):
        for sample, score in enumerate([0.0, 0.5, 0.9, 0.95]):
            rows.append({"prompt_id": pid, "prompt": f"p{pid}", "sample": sample, "response": f"r{pid}-{sample}",
                         "gold_x": score})
    return pd.DataFrame(rows)


def test_pairs_respect_margin_order_and_split_by_prompt():
    pairs = preference_pairs(_planted_pool(), "gold_x", margin=0.3, seed=1)
    assert (pairs["chosen_score"] - pairs["rejected_score"] >= 0.3).all()
    assert len(pairs) == 40 * 5  # all 6 pairs of the 4 scores but (0.9, 0.95) differ by >= 0.3
    by_split = pairs.groupby("split")["prompt_id"].apply(set)
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["validation"])
    assert len(by_split["test"]) == 4 and len(by_split["validation"]) == 4
    dd = to_dataset_dict(pairs)
    assert set(dd) == {"train", "validation", "test"} and dd["test"].num_rows == 20
    capped = preference_pairs(_planted_pool(), "gold_x", margin=0.0, max_pairs_per_prompt=2)
    assert capped.groupby("prompt_id").size().max() == 2


def test_pairs_fail_clearly():
    with pytest.raises(ValueError, match="no column 'gold_y'"):
        preference_pairs(_planted_pool(), "gold_y")
    with pytest.raises(ValueError, match="no pair of responses differs by 5"):
        preference_pairs(_planted_pool(), "gold_x", margin=5)
    with pytest.raises(ValueError, match="fractions"):
        split_prompts([1, 2, 3], (0.6, 0.5))


def test_sample_pool_is_seeded_and_shaped():
    policy = load_policy("tiny-llama")
    pool = sample_pool(policy, ["a", "b", "c"], k=3, max_new_tokens=4, seed=5)
    assert list(pool["prompt_id"]) == [0, 0, 0, 1, 1, 1, 2, 2, 2] and list(pool["sample"][:3]) == [0, 1, 2]
    again = sample_pool(policy, ["a", "b", "c"], k=3, max_new_tokens=4, seed=5)
    assert pool.equals(again)
    assert pool["response"].nunique() > 1
    with pytest.raises(ValueError, match="k must be an int >= 2"):
        sample_pool(policy, ["a"], k=1)
    with pytest.raises(ValueError, match="prompts is empty"):
        sample_pool(policy, [], k=2)
    assert np.issubdtype(pool["prompt_id"].dtype, np.integer)


def test_hh_rlhf_prompts_keep_one_turn_dialogues_from_a_local_copy(tmp_path):
    import json

    from rewardscope.data import hh_rlhf_prompts

    rows = [{"chosen": "\n\nHuman: Is tea good?\n\nAssistant: Yes.", "rejected": "\n\nHuman: Is tea good?\n\nAssistant: No."},
            {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant: Bye!",
             "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant: No."},
            {"chosen": "\n\nHuman: Is tea good?\n\nAssistant: Sure.", "rejected": "\n\nHuman: Is tea good?\n\nAssistant: Nah."}]
    path = tmp_path / "hh.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert hh_rlhf_prompts("json", split="train", data_files=str(path)) == ["Is tea good?"]
