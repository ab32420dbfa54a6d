import re

import pytest
import yaml

from rewardscope.book import notebook_names, resolve_notebook
from rewardscope.params import (
    PROFILES,
    ParameterError,
    check_parameters,
    declared_parameters,
    load_profile,
    parse_cli_value,
)

from .conftest import ROOT

NOTEBOOKS = notebook_names(ROOT)
PARAMS = ROOT / "notebooks" / "params"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_is_valid_for_every_notebook(profile):
    values = load_profile(profile, PARAMS, NOTEBOOKS)
    for name in NOTEBOOKS:
        check_parameters(resolve_notebook(ROOT, name), values[name])


def test_paper_profile_names_hub_ids_for_models():
    values = load_profile("paper", PARAMS, NOTEBOOKS)
    hub = re.compile(r"^[\w.-]+/[\w.-]+$")
    for name in NOTEBOOKS:
        for key, value in values[name].items():
            specs = value if isinstance(value, list) else [value]
            if key in ("policy", "reward_models"):
                assert any(hub.match(str(s)) for s in specs), f"{name}.{key} should name a hub model: {value}"


def test_declared_parameters_read_types_from_annotations():
    declared = declared_parameters(ROOT / "notebooks" / "00_model_zoo.ipynb")
    assert declared["max_new_tokens"].types == (int,)
    assert declared["device"].accepts(None) and declared["device"].accepts("cuda")
    assert not declared["max_new_tokens"].accepts(True)


@pytest.mark.parametrize(
    "values, match",
    [({"max_new_tokens": "many"}, "'max_new_tokens' of 00_model_zoo must be int, got str 'many'"),
     ({"reward_models": "vader"}, "must be list"),
     ({"polcy": "x"}, "00_model_zoo has no parameter 'polcy'")],
)
def test_bad_parameters_fail_with_one_line(values, match):
    with pytest.raises(ParameterError, match=match):
        check_parameters(ROOT / "notebooks" / "00_model_zoo.ipynb", values)


def test_unknown_profile_and_notebook(tmp_path):
    with pytest.raises(ParameterError, match="unknown profile 'fast'; profiles: smoke, default, paper"):
        load_profile("fast", PARAMS, NOTEBOOKS)
    with pytest.raises(ParameterError, match="unknown notebook '99_nothing'; notebooks: 00_embedded_lab, 00_model_zoo"):
        resolve_notebook(ROOT, "99_nothing")
    (tmp_path / "smoke.yml").write_text(yaml.safe_dump({"99_nothing": {"a": 1}}))
    with pytest.raises(ParameterError, match="names unknown notebooks"):
        load_profile("smoke", tmp_path, NOTEBOOKS)


def test_malformed_yaml_names_file_and_line(tmp_path):
    (tmp_path / "smoke.yml").write_text("00_model_zoo:\n  policy: [unclosed\n  seed: 1\n")
    with pytest.raises(ParameterError, match=r"malformed params file .*smoke.yml line \d+"):
        load_profile("smoke", tmp_path, NOTEBOOKS)
    (tmp_path / "smoke.yml").write_text("- just\n- a list\n")
    with pytest.raises(ParameterError, match="must map notebook names"):
        load_profile("smoke", tmp_path, NOTEBOOKS)


def test_cli_values_are_read_as_yaml():
    assert parse_cli_value("3") == 3 and parse_cli_value("0.5") == 0.5
    assert parse_cli_value('["a", "b"]') == ["a", "b"] and parse_cli_value("cuda") == "cuda"
    assert parse_cli_value("null") is None


def test_paper_profile_reward_options_match_the_models_used():
    values = load_profile("paper", PARAMS, NOTEBOOKS)
    allowed = {"dtype", "label", "chat_template", "trust_remote_code", "architecture", "batch_size"}
    for name in NOTEBOOKS:
        options = values[name].get("reward_options", {})
        used = set()
        for value in values[name].values():
            for item in (value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]):
                used.add(str(item))
        for spec, kwargs in options.items():
            assert spec in used, f"{name}: reward_options names {spec}, which no parameter uses"
            assert set(kwargs) <= allowed, f"{name}: unknown options {set(kwargs) - allowed} for {spec}"
    sweep = values["03_vocab_sweep"]
    for spec in {*sweep["reward_models"], sweep["bench_rm"], sweep["drift_rm"], *sweep["roundtrip_rms"]}:
        assert sweep["reward_options"].get(spec, {}).get("dtype") in ("bfloat16", "float16"), spec
