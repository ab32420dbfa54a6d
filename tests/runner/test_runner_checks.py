"""The runner refuses bad values before a kernel starts, builds pages that failed or were left out, runs the
file it is given, and leaves no kernel behind when it is killed."""

import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest
import yaml

from rewardscope.runner.book import MISSING_VALUE, build_book, run_one, site_dir, without_missing_glue
from rewardscope.runner.cli import main
from rewardscope.runner.params import ParameterError, check_parameters, load_profile

from ..helpers import ROOT, copy_without_chat_template, write_mini_book

NB = ROOT / "notebooks"


def _nb(n):
    return NB / f"{n}.ipynb"


# -------------------------------------------------------------------------------------------------
# Values, bounds and specs: one line naming the parameter, before any kernel


@pytest.mark.parametrize("notebook, values, match", [
    ("00_model_zoo", {"prompts": []}, "parameter 'prompts' must be a list of at least 1"),
    ("00_model_zoo", {"prompts": [1, 2]}, "parameter 'prompts' item 0 must be a non-empty string"),
    ("00_model_zoo", {"max_new_tokens": -3}, "parameter 'max_new_tokens' must be an int >= 1"),
    ("00_model_zoo", {"dtype": "int8"}, "parameter 'dtype' must be one of float32, bfloat16"),
    ("00_model_zoo", {"device": "tpu"}, "parameter 'device' must be 'cpu', 'cuda'"),
    ("00_model_zoo", {"policy": ""}, "parameter 'policy' must be a non-empty model spec"),
    ("00_model_zoo", {"policy": "bad\udcff"}, "parameter 'policy' holds text that is not valid UTF-8"),
    ("03_vocab_sweep", {"reward_models": []}, "parameter 'reward_models' must be a list of at least 1"),
    ("03_vocab_sweep", {"main_prompt": "nah"}, "parameter 'main_prompt' must be one of the prompts' names"),
    ("03_vocab_sweep", {"reward_options": {"sentiment-smollm2": {"dtyp": "bfloat16"}}}, "unknown option.*'dtyp'"),
    ("03_vocab_sweep", {"reward_options": {"sentiment-smollm3": {"dtype": "bfloat16"}}},
     "names 'sentiment-smollm3', which no model parameter"),
    ("03_vocab_sweep", {"reward_options": {"sentiment-smollm2": {"trust_remote_code": "no"}}},
     "option 'trust_remote_code' must be true or false"),
    ("05_reward_transforms", {"quantile": float("inf")}, "parameter 'quantile' must be finite"),
    ("05_reward_transforms", {"quantile": 1.0}, r"parameter 'quantile' must be a finite number in \(0, 1\)"),
    ("05_reward_transforms", {"quantiles": []}, "parameter 'quantiles' must be a list of at least 1"),
    ("05_reward_transforms", {"rl_generations": 1}, "parameter 'rl_generations' must be an int >= 2"),
    ("05_reward_transforms", {"n_reference": 8}, "parameter 'n_reference' = 8 is too few for quantile 0.95"),
    ("05_reward_transforms", {"tilt_kl": 0.0}, r"parameter 'tilt_kl' must be a finite number in \(0, inf\]"),
    ("02_irl_extraction", {"split": [0.5, 0.5]}, "parameter 'split' must be three shares"),
    ("02_irl_extraction", {"split": [0.5, 0.2, 0.2]}, "sum with validation to 1"),
    ("02_irl_extraction", {"n_bootstrap": 0}, "parameter 'n_bootstrap' must be an int >= 1"),
    ("02_irl_extraction", {"trainable": "some"}, "parameter 'trainable' must be 'all', 'head'"),
    ("01_irm_divergence", {"sae_seeds": []}, "parameter 'sae_seeds' must be a list of at least 1"),
    # the checks chapter cells made only after a kernel started (they remain there for Jupyter users)
    ("01_irm_divergence", {"sae_seeds": [0, 0]}, "parameter 'sae_seeds' must name at least 2 distinct items"),
    ("01_irm_divergence", {"dictionary_multiples": [2, 1]}, "parameter 'dictionary_multiples' must be two increasing"),
    ("02_irl_extraction", {"rl_seeds": [3]}, "parameter 'rl_seeds' must name at least 2 distinct items"),
    ("02_irl_extraction", {"demo_fractions": [0.5, 1.0]}, r"parameter 'demo_fractions' item 1 must be .*\(0, 1\)"),
    ("02_irl_extraction", {"n_compare_restarts": 9, "n_restarts": 4}, "'n_compare_restarts' must be at most n_restarts = 4"),
    ("05_reward_transforms", {"property_golds": {"helpful": "helpfulness"}},
     "'properties' and 'property_golds' must name the same two properties"),
    ("04_seal_imprint", {"n_pairs": 0}, "parameter 'n_pairs' must be an int >= 1"),
])
def test_bad_values_fail_with_one_line_naming_the_parameter(notebook, values, match):
    with pytest.raises(ParameterError, match=match) as info:
        check_parameters(_nb(notebook), values)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{notebook}: ")


@pytest.mark.parametrize("notebook, values, match", [
    ("00_model_zoo", {"policy": "no-such-model"}, "'no-such-model' is not an embedded name"),
    ("00_model_zoo", {"policy": "./no/such/dir"}, "local path .*no/such/dir' does not exist"),
    ("00_model_zoo", {"policy": "org/name"}, "hub model 'org/name' cannot be fetched"),
    ("03_vocab_sweep", {"drift_rm": "/no/such/rm"}, "parameter 'drift_rm': local path"),
    ("05_reward_transforms", {"prompt_source": "no-such-source"}, "parameter 'prompt_source'"),
])
def test_specs_that_cannot_load_here_fail_before_a_kernel(notebook, values, match, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_parameters(_nb(notebook), values)  # the values themselves are well formed
    with pytest.raises(ParameterError, match=match):
        check_parameters(_nb(notebook), values, environment=True)


def test_cuda_is_refused_where_there_is_none():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ParameterError, match="'device' is 'cuda' but CUDA is not available here"):
        check_parameters(_nb("00_model_zoo"), {"device": "cuda"}, environment=True)


def test_decoder_rm_without_a_chat_template_is_refused_early(tmp_path):
    rm = copy_without_chat_template("tiny-llama-rm", tmp_path / "rm")
    with pytest.raises(ParameterError, match="decoder reward model whose tokenizer has no chat template"):
        check_parameters(_nb("03_vocab_sweep"), {"drift_rm": str(rm)}, environment=True)
    check_parameters(_nb("03_vocab_sweep"), {"drift_rm": str(rm), "reward_options": {str(rm): {"chat_template": "hh"}}},
                     environment=True)


def test_relative_specs_are_read_from_the_callers_folder(tmp_path, monkeypatch):
    from rewardscope.runner.param_rules import caller_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REWARDSCOPE_CWD", raising=False)
    assert caller_path("./m") == tmp_path / "m"
    monkeypatch.setenv("REWARDSCOPE_CWD", "/somewhere")
    assert str(caller_path("m")) == "/somewhere/m" and str(caller_path("/abs/m")) == "/abs/m"


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_offline_profiles_pass_the_environment_checks(profile):
    values = load_profile(profile, NB / "params", sorted(p.stem for p in NB.glob("*.ipynb")))
    for name, params in values.items():
        check_parameters(_nb(name), params, environment=True)


# -------------------------------------------------------------------------------------------------
# The command line: one line for each fault, no partial output


def _cli(*args, env=None, cwd=ROOT):
    run_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "rewardscope.runner.cli", *args], cwd=cwd, env=run_env,
                          capture_output=True, timeout=120)


def test_cli_faults_give_one_line_and_leave_nothing_behind(tmp_path):
    out = tmp_path / "out.ipynb"
    bad = _cli("run", "00_model_zoo", "--profile", "smoke", "-p", "policy", b"bad\xff".decode("utf-8", "surrogateescape"),
               "-o", str(out))
    assert bad.returncode == 2 and b"not valid UTF-8" in bad.stderr and b"Traceback" not in bad.stderr
    assert not out.exists()
    proc = _cli("run", "00_model_zoo", "--profile", "smoke", "-o", "/proc/no/such/out.ipynb")
    assert proc.returncode == 2 and b"cannot write the output notebook" in proc.stderr and b"Traceback" not in proc.stderr
    cache_file = tmp_path / "cache-is-a-file"
    cache_file.write_text("x")
    proc = _cli("zoo", "list", env={"REWARDSCOPE_CACHE": str(cache_file)})
    assert proc.returncode == 2 and b"is a file, not a folder" in proc.stderr and b"Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _notebook(path, body, params="value: int = 1", markdown="# page"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(markdown),
                nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                *[nbformat.v4.new_code_cell(b) for b in ([body] if isinstance(body, str) else body)]]
    nbformat.write(nb, path)


def test_run_executes_the_file_it_is_given(tmp_path, monkeypatch):
    copy = tmp_path / "00_model_zoo.ipynb"  # a modified copy of a project notebook: same parameters, new code
    project = nbformat.read(_nb("00_model_zoo"), as_version=4)
    params = next(c.source for c in project.cells if "parameters" in c.metadata.get("tags", []))
    _notebook(copy, "print('the copy ran', max_new_tokens)", params=params)
    out = tmp_path / "out.ipynb"
    record = run_one(str(copy), {"max_new_tokens": 5}, profile="smoke", output=out, progress=False)
    assert record.status == "ok", record.error
    assert "the copy ran 5" in json.dumps(nbformat.read(out, as_version=4).cells[-1].outputs)
    with pytest.raises(ParameterError, match="notebook file .* does not exist"):
        run_one(str(tmp_path / "nope.ipynb"), {}, profile="smoke")


def test_profile_may_be_a_file(tmp_path):
    profile = tmp_path / "mine.yml"
    profile.write_text(yaml.safe_dump({"00_model_zoo": {"max_new_tokens": 3}}))
    values = load_profile(str(profile), NB / "params", ["00_model_zoo"])
    assert values == {"00_model_zoo": {"max_new_tokens": 3}}
    with pytest.raises(ParameterError, match="profile file .* does not exist"):
        load_profile(str(tmp_path / "none.yml"), NB / "params", ["00_model_zoo"])
    with pytest.raises(ParameterError, match="unknown profile 'fast'"):
        load_profile("fast", NB / "params", ["00_model_zoo"])


# -------------------------------------------------------------------------------------------------
# Pages that failed or were left out still build; the CLI names the notebook only


def test_missing_glue_becomes_a_placeholder():
    nb = nbformat.v4.new_notebook()
    glued = nbformat.v4.new_code_cell("glue('a', 1)")
    glued.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "1"},
                                            metadata={"scrapbook": {"name": "a", "mime_prefix": ""}})]
    nb.cells = [glued, nbformat.v4.new_markdown_cell(
        "A is {glue:text}`a:.2f`, B is {glue:text}`b`, C is {glue:}`c`.\n\n"
        "```{glue:figure} fig_a\n:name: fig-a\n\nCaption.\n```\n\ntail")]
    assert without_missing_glue(nb) == 3
    text = nb.cells[1].source
    assert "{glue:text}`a:.2f`" in text and text.count(MISSING_VALUE) == 2
    assert "`fig_a` was not computed" in text and text.endswith("tail") and "Caption" not in text


@pytest.fixture
def glue_book(tmp_path):
    """A book whose second page glues one value and then fails before gluing the next."""
    write_mini_book(tmp_path, ["a_ok", "b_fails"])
    glue = "from myst_nb import glue\n"
    _notebook(tmp_path / "notebooks" / "a_ok.ipynb", glue + "glue('x', value)",
              markdown="# a\n\nx is {glue:text}`x`.")
    _notebook(tmp_path / "notebooks" / "b_fails.ipynb", [glue + "glue('y', 1.5)", "raise RuntimeError('planted')",
                                                          glue + "glue('z', 2)"],
              markdown="# b\n\ny is {glue:text}`y:.1f` and z is {glue:text}`z`.")
    return tmp_path


def test_failed_and_left_out_pages_build_and_only_the_notebook_is_named(glue_book, monkeypatch, capsys):
    _, code, log = build_book("smoke", root=glue_book, only=["a_ok"], progress=False)  # b left out: no glue at all
    assert code == 0, log
    monkeypatch.chdir(glue_book)
    assert main(["book", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert "notebooks failed: b_fails" in err and "site build failed" not in err
    html = (site_dir(glue_book, "smoke") / "notebooks" / "b_fails.html").read_text()
    assert "planted" in html and "1.5" in html and "not computed in this build" in html


# -------------------------------------------------------------------------------------------------
# Killing the runner stops its kernel


def test_killing_the_runner_stops_its_kernel(tmp_path):
    import psutil

    marker = tmp_path / "kernel.pid"
    slow = tmp_path / "slow.ipynb"
    _notebook(slow, f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)")
    runner = subprocess.Popen([sys.executable, "-m", "rewardscope.runner.cli", "run", str(slow), "--profile", "smoke",
                               "-o", str(tmp_path / "out.ipynb")], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while not marker.exists() or not marker.read_text():
            assert time.time() < deadline and runner.poll() is None, "the kernel never started"
            time.sleep(0.5)
        kernel = psutil.Process(int(marker.read_text()))
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(10)
        kernel.wait(timeout=30)  # raises psutil.TimeoutExpired if the kernel outlives its runner
    finally:
        if runner.poll() is None:
            runner.kill()


@pytest.mark.parametrize("values, match", [
    ({"policy_options": {"smollm2-135m-instruct": {"chat_templat": "plain"}}},
     "parameter 'policy_options' entry 'smollm2-135m-instruct' has unknown option.*'chat_templat'; options: .*chat_template"),
    ({"policy_options": {"smollm2-135m-instruct": {"trust_remote_code": "yes"}}},
     "option 'trust_remote_code' must be true or false"),
    ({"policy_options": {"smollm2-135m-instruct": {"chat_template": " "}}}, "option 'chat_template' must be a non-empty"),
    ({"policy_options": {"smollm2-135m-instruct": "plain"}}, "must be a mapping of load_policy options"),
    ({"policy_options": {"EleutherAI/pythia-70m": {"chat_template": "plain"}}},
     "parameter 'policy_options' names 'EleutherAI/pythia-70m', which no policy or backbone parameter"),
    ({"policy_options": {"vader-compound": {"chat_template": "plain"}}}, "names 'vader-compound', which no policy"),
])
def test_bad_policy_options_fail_with_one_line(values, match):
    with pytest.raises(ParameterError, match=match) as info:
        check_parameters(_nb("02_irl_extraction"), values)
    assert "\n" not in str(info.value) and str(info.value).startswith("02_irl_extraction: ")


def test_policy_options_may_name_every_policy_and_backbone():
    from rewardscope.runner.param_rules import policy_option_names

    assert policy_option_names() == {"device", "dtype", "trust_remote_code", "chat_template"}
    plain = {"chat_template": "plain"}
    check_parameters(_nb("02_irl_extraction"), {
        "policy": "tiny-llama", "backbone": "tiny-llama-rm", "decoder_backbone": "smollm2-135m-instruct",
        "policy_options": {"tiny-llama": plain, "tiny-llama-rm": plain, "smollm2-135m-instruct": plain,
                           "positive-smollm2": {"dtype": "float32", "trust_remote_code": False}}})


def test_show_params_prints_each_parameter_its_origin_and_help_without_running(monkeypatch, capsys):
    from rewardscope.runner.book import effective_parameters

    rows = {r["name"]: r for r in effective_parameters("03_vocab_sweep", {"n_top": 3}, profile="smoke", root=ROOT)}
    assert rows["n_top"]["value"] == 3 and rows["n_top"]["from"] == "-p" and "tokens listed" in rows["n_top"]["help"]
    assert rows["reward_models"]["from"] == "smoke" and rows["main_prompt"]["from"] == "default"
    monkeypatch.chdir(ROOT)
    assert main(["run", "03_vocab_sweep", "--profile", "smoke", "-p", "n_top", "3", "--show-params"]) == 0
    out = capsys.readouterr().out
    assert "n_top" in out and "= 3  [int; -p]  # optimal / pessimal tokens" in out
    assert main(["run", "03_vocab_sweep", "--profile", "smoke", "-p", "n_top", "-3", "--show-params"]) == 2
    assert "parameter 'n_top' must be an int >= 1, got -3" in capsys.readouterr().err
