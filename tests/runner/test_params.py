
import pytest
import yaml

from rewardscope.runner.book import notebook_names, resolve_notebook
from rewardscope.runner.params import (
    PROFILES,
    ParameterError,
    check_parameters,
    declared_parameters,
    load_profile,
    parse_cli_value,
)

from ..helpers import ROOT

NOTEBOOKS = notebook_names(ROOT)
PARAMS = ROOT / "notebooks" / "params"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_is_valid_for_every_notebook(profile):
    values = load_profile(profile, PARAMS, NOTEBOOKS)
    for name in NOTEBOOKS:
        check_parameters(resolve_notebook(ROOT, name), values[name])


def test_paper_profile_names_hub_ids_for_models():
    from rewardscope.zoo import _HUB_ID as hub

    values = load_profile("paper", PARAMS, NOTEBOOKS)
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
    assert parse_cli_value("1e-2") == 0.01 and parse_cli_value("3E4") == 30000.0 and parse_cli_value("e5") == "e5"


def test_paper_profile_reward_options_match_the_models_used():
    values = load_profile("paper", PARAMS, NOTEBOOKS)
    from rewardscope.runner.param_rules import reward_option_names

    allowed = reward_option_names()
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
    assert len(sweep["reward_models"]) == 10, "the paper profile sweeps all ten of the paper's reward models"
    custom = [s for s in sweep["reward_models"] if sweep["reward_options"][s].get("trust_remote_code") is True]
    assert len(custom) == 3 and all(sweep["reward_options"][s]["output"] == "score" for s in custom)


# Every parameter that names a model, per notebook (the table in book/rerun.md).
MODEL_PARAMETERS = {
    "00_model_zoo": ["policy", "reward_models"],
    "01_irm_divergence": ["policy", "tuned_policy"],
    "02_irl_extraction": ["expert", "policy", "true_reward", "alternative_reward", "backbone", "decoder_backbone"],
    "03_vocab_sweep": ["reward_models", "bench_rm", "drift_rm", "roundtrip_rms"],
    "04_seal_imprint": ["pre_rm", "post_rm", "lm_labeller"],
    "05_reward_transforms": ["policy", "proxy", "proxy_gold", "properties", "property_golds"],
}


def _specs(value):
    return list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_model_parameter_names_a_loadable_spec(profile):
    """Schema check: each model a profile names (its values over the notebook's defaults) is an embedded
    name, a reward kind, or a well-formed hub id; the paper profile names at least one hub model per chapter."""
    from rewardscope.rewards import reward_kinds
    from rewardscope.zoo import _HUB_ID as hub
    from rewardscope.zoo import embedded_names

    known = set(embedded_names()) | set(reward_kinds())
    values = load_profile(profile, PARAMS, NOTEBOOKS)
    assert set(MODEL_PARAMETERS) <= set(NOTEBOOKS)
    for name, keys in MODEL_PARAMETERS.items():
        declared = declared_parameters(ROOT / "notebooks" / f"{name}.ipynb")
        assert set(keys) <= set(declared), f"{name}: MODEL_PARAMETERS names {set(keys) - set(declared)}"
        merged = {key: values[name].get(key, declared[key].default) for key in keys}
        specs = [str(s) for key in keys for s in _specs(merged[key])]
        bad = [s for s in specs if s not in known and not hub.match(s)]
        assert not bad, f"{profile}/{name}: not an embedded name, reward kind or hub id: {bad}"
        if profile == "paper":
            assert any(hub.match(s) and s not in known for s in specs), f"paper/{name} names no hub model"


def test_the_schema_check_catches_a_malformed_spec():
    from rewardscope.zoo import _HUB_ID as hub  # the rule resolve() applies, not a copy of it

    assert hub.match("OpenAssistant/reward-model-deberta-v3-large-v2") and hub.match("s-nlp/roberta_toxicity_classifier")
    assert hub.match("org/rm@v1.0")
    assert not any(hub.match(s) for s in ("org name/rm", "/rm", "org/", "org/rm/extra", "https://hf.co/org/rm"))


def test_a_parameters_help_is_its_trailing_comment_or_the_comment_line_above(tmp_path):
    import nbformat

    from rewardscope.runner.params import declared_parameters

    cell = nbformat.v4.new_code_cell('n: int = 3  # how many\n# the reward specs, one per line of the table\n'
                                     'rms: list = ["a", "b"]\nplain: str = "#not a comment"\n',
                                     metadata={"tags": ["parameters"]})
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    declared = declared_parameters(path)
    assert declared["n"].help == "how many" and declared["rms"].help == "the reward specs, one per line of the table"
    assert declared["plain"].help == "" and declared["plain"].default == "#not a comment"
