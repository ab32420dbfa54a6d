import json

import numpy as np
import pandas as pd
import pytest

from rewardscope import data
from rewardscope.lab.pairs import bt_temperature, preference_pairs, sample_pool, split_prompts, to_dataset_dict
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
    with pytest.raises(ValueError, match=r"^unknown data spec 'imdb'; allowed: an embedded source \(chatterbot, drug-reviews, "
                                         r"sharegpt, hh-rlhf\), a hub data set id .* or a data file \(.jsonl, .json, .csv, "
                                         r".parquet, optionally .gz\)$"):
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


def test_label_noise_flips_the_planted_share_and_close_pairs_most():
    rows = [{"prompt_id": pid, "prompt": f"p{pid}", "sample": s, "response": f"r{pid}-{s}", "gold_x": g}
            for pid in range(1500) for s, g in enumerate([0.0, 0.1, 2.0])]
    pool = pd.DataFrame(rows)
    clean = preference_pairs(pool, "gold_x")
    assert not clean["flipped"].any() and (clean["chosen_score"] > clean["rejected_score"]).all()
    noisy = preference_pairs(pool, "gold_x", label_noise=0.25)
    assert noisy["flipped"].mean() == pytest.approx(0.25, abs=0.02)  # 4,500 pairs: SE 0.0065
    assert (noisy["chosen_score"] < noisy["rejected_score"]).to_numpy().tolist() == noisy["flipped"].tolist()
    gap = (noisy["chosen_score"] - noisy["rejected_score"]).abs()
    assert noisy.loc[gap < 0.5, "flipped"].mean() > 0.4 > noisy.loc[gap > 1.5, "flipped"].mean()  # σ(−gap/T)
    assert set(noisy["chosen"]) | set(noisy["rejected"]) == set(clean["chosen"]) | set(clean["rejected"])
    assert noisy.equals(preference_pairs(pool, "gold_x", label_noise=0.25))  # seeded


def test_bt_temperature_solves_the_expected_flip_rate():
    from scipy.special import expit

    gaps = np.array([0.1, 0.5, 1.0, 3.0])
    t = bt_temperature(gaps, 0.2)
    assert expit(-gaps / t).mean() == pytest.approx(0.2, abs=1e-8)
    with pytest.raises(ValueError, match="label_noise must be in"):
        bt_temperature(gaps, 0.5)
    with pytest.raises(ValueError, match="gaps above 0"):
        bt_temperature(np.array([0.0, 1.0]), 0.2)
    with pytest.raises(ValueError, match="label_noise must be in"):
        preference_pairs(_planted_pool(), "gold_x", label_noise=0.6)


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
    assert hh_rlhf_prompts(str(path), split="train") == ["Is tea good?"]


# --------------------------------------------------------------------------------------------------
# Data specs: embedded names, hub ids, local copies in the hub's layout and single files


def _hh(prompt: str, chosen: str, rejected: str) -> dict:
    return {"chosen": f"\n\nHuman: {prompt}\n\nAssistant: {chosen}",
            "rejected": f"\n\nHuman: {prompt}\n\nAssistant: {rejected}"}


def write_hh_copy(root):
    """A tiny copy of Anthropic/hh-rlhf in its hub layout: <part>/{train,test}.jsonl.gz, chosen/rejected transcripts."""
    import gzip

    for part in ("harmless-base", "helpful-base"):
        for split, n in (("train", 6), ("test", 2)):
            rows = [_hh(f"{split} question {i} ({part})?", "A kind answer.", "A rude answer.") for i in range(n)]
            rows.append({"chosen": f"\n\nHuman: {split} two turns ({part})\n\nAssistant: Hi\n\nHuman: More?"
                                   "\n\nAssistant: Yes.",
                         "rejected": f"\n\nHuman: {split} two turns ({part})\n\nAssistant: Hi\n\nHuman: More?"
                                     "\n\nAssistant: No."})
            (root / part).mkdir(parents=True, exist_ok=True)
            with gzip.open(root / part / f"{split}.jsonl.gz", "wt", encoding="utf-8") as fh:
                fh.write("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def write_jigsaw_copy(root):
    """A tiny copy in jaredjoss/jigsaw-long-2000's kind of layout: data/train-*.parquet with a `prompt` column."""
    (root / "data").mkdir(parents=True)
    frame = pd.DataFrame({"prompt": [f"Comment number {i} says" for i in range(12)] + ["Comment number 0 says"],
                          "continuation": ["something"] * 13})
    frame.to_parquet(root / "data" / "train-00000-of-00001.parquet", index=False)
    return root


def test_resolve_data_names_each_kind_of_spec(tmp_path, monkeypatch):
    hh = write_hh_copy(tmp_path / "hh-rlhf-copy")
    (tmp_path / "prompts.csv").write_text("prompt\nHello\n")
    assert data.resolve_data("chatterbot").kind == "embedded"
    assert data.resolve_data("hh-rlhf") == data.DataSource("hh-rlhf", "hub", "Anthropic/hh-rlhf")
    assert data.resolve_data("org/set@v1") == data.DataSource("org/set@v1", "hub", "org/set", "v1")
    assert data.resolve_data(hh) == data.DataSource(str(hh), "directory", str(hh.resolve()))
    monkeypatch.setenv("REWARDSCOPE_CWD", str(tmp_path))  # relative paths: the caller's directory, not the cwd
    monkeypatch.chdir("/")
    assert data.resolve_data("./hh-rlhf-copy").location == str(hh.resolve())
    assert data.resolve_data("prompts.csv").kind == "file"
    for bad, why in (("./missing", "no file or directory"), ("nope.jsonl", "no file or directory"),
                     ("imdb", "unknown data spec 'imdb'; allowed")):
        with pytest.raises(data.DataSpecError, match=why) as err:
            data.resolve_data(bad)
        assert "\n" not in str(err.value) and "hub data set id" in str(err.value)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(data.DataSpecError, match="unknown format"):
        data.resolve_data("notes.txt")


def test_prompt_source_hh_rlhf_is_the_hub_id_and_a_local_copy_reads_the_same(tmp_path, monkeypatch):
    import datasets

    hh = write_hh_copy(tmp_path / "hh")
    local = data.prompts_from(str(hh), seed=3)
    # the one-turn human turns of its *test* split (held out from RMs trained on train), shuffled by the seed
    assert sorted(local) == sorted(f"test question {i} ({p})?" for i in range(2) for p in ("harmless-base", "helpful-base"))
    assert local == data.prompts_from(str(hh), seed=3) and local != data.prompts_from(str(hh), seed=0)
    assert len(data.prompts_from(str(hh), split="train")) == 12
    seen = []
    real = datasets.load_dataset

    def fake_hub(path, *args, **kwargs):  # "hh-rlhf" must go to the hub id, which the local copy stands in for
        seen.append(path)
        return real(str(hh), *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    assert data.prompts_from("hh-rlhf", seed=3) == local
    assert seen == ["Anthropic/hh-rlhf"]


def test_hh_rlhf_from_a_file_and_a_hub_id_offline(tmp_path):
    hh = write_hh_copy(tmp_path / "hh")
    pairs = data.hh_rlhf_pairs(str(hh / "helpful-base" / "train.jsonl.gz"), n=3)
    assert list(pairs.columns) == ["prompt", "chosen", "rejected"] and len(pairs) == 3
    assert pairs["chosen"].eq("A kind answer.").all()
    with pytest.raises(data.DataSpecError, match=r"^could not load data 'nobody/no-data' \(ConnectionError.*local copy") as err:
        data.hh_rlhf_pairs("nobody/no-data")
    assert "\n" not in str(err.value)


def test_jigsaw_layout_reads_its_prompt_column(tmp_path):
    jigsaw = write_jigsaw_copy(tmp_path / "jigsaw-long-2000")
    prompts = data.prompts_from(str(jigsaw), seed=1)
    assert sorted(prompts) == sorted(f"Comment number {i} says" for i in range(12))  # distinct, all of train
    assert data.prompts_from(str(jigsaw), 5, seed=1) == prompts[:5]
    single = tmp_path / "prompts.jsonl.gz"
    import gzip

    with gzip.open(single, "wt") as fh:
        fh.write("\n".join(json.dumps({"text": f"Say {i}"}) for i in range(4)))
    assert sorted(data.prompts_from(str(single), column="text")) == [f"Say {i}" for i in range(4)]
    with pytest.raises(data.DataSpecError, match=r"no prompt column 'prompt' .*; its columns: text$"):
        data.prompts_from(str(single))
    with pytest.raises(data.DataSpecError, match=r"has no split 'test'; its splits: train$"):
        data.prompts_from(str(jigsaw), split="test")
    with pytest.raises(data.DataSpecError, match="not hh-rlhf-style: no column chosen, rejected"):
        data.hh_rlhf_pairs(str(jigsaw))


def test_heldout_pairs_come_from_the_test_split(tmp_path):
    hh = write_hh_copy(tmp_path / "hh")
    pairs = data.hh_rlhf_heldout_pairs(str(hh))
    assert list(pairs.columns) == ["split", "prompt_id", "prompt", "chosen", "rejected"]
    assert pairs["split"].value_counts().to_dict() == {"train": 14, "test": 6}  # every dialogue of both splits
    assert pairs["prompt_id"].is_unique
    assert pairs.loc[pairs["split"] == "test", "prompt"].str.startswith("Human: test").all()
    capped = data.hh_rlhf_heldout_pairs(str(hh), n=4)
    assert capped["split"].value_counts().to_dict() == {"train": 4, "test": 4}  # min(n, len(test))
    assert data.hh_rlhf_heldout_pairs(str(hh), n=10)["split"].value_counts().to_dict() == {"train": 10, "test": 6}
    assert data.hh_rlhf_heldout_pairs(str(hh), n=4, n_test=1)["split"].value_counts().to_dict() == {"train": 4, "test": 1}
    assert set(data.hh_rlhf_heldout_pairs(str(hh), n=4, test_split=None)["split"]) == {"train"}
    assert set(data.hh_rlhf_heldout_pairs(str(hh), split="test")["split"]) == {"test"}
    single = hh / "helpful-base" / "train.jsonl.gz"
    with pytest.raises(data.DataSpecError, match=r"test_split 'test' is not a split of data .*; its splits: train; "
                                                 r"pass test_split=None"):
        data.hh_rlhf_heldout_pairs(str(single))
    with pytest.raises(ValueError, match="n_test must be None or an int >= 1"):
        data.hh_rlhf_heldout_pairs(str(hh), n_test=0)
    with pytest.raises(ValueError, match="n must be None or an int >= 1, got -1"):
        data.hh_rlhf_heldout_pairs(str(hh), n=-1)
