"""The paper profile's hub models as tiny replicas (rewardscope.replicas), and the loading rules they check:
trust_remote_code only by True, safetensors only, one decoder/encoder rule, position ids under left padding,
named templates for template-less LMs, a pinned date, custom-code RMs and device_map."""

import re
import shutil
from datetime import datetime

import numpy as np
import pytest
import torch
import yaml

from rewardscope import hf, load_policy, load_reward_model
from rewardscope.replicas import CUSTOM_CODE, OPTIONS, REPLICAS, build_replica, replica_name
from rewardscope.rewards import HFRewardModel
from rewardscope.studies.sweep import decode_reencode_comparison, vocabulary_sweep
from rewardscope.training.train import load_backbone
from rewardscope.zoo import resolve

from .helpers import ROOT

PAPER = yaml.safe_load((ROOT / "notebooks" / "params" / "paper.yml").read_text())
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DATA_KEYS = {"data", "prompt_source"}  # data sets, not models
PROMPTS = ["Hi there", "What is the capital of France, and why is it that one?", "Tell me a joke", "ok",
           "How do I bake bread at home without yeast?", "Why?"]
RESPONSES = ["Hello!", "Paris. It has been the capital for centuries, since the Middle Ages.", "No.",
             "Fine, thanks, and you?", "Use baking soda.", "Because."]
SWEEP_PROMPT = "What, in one word, is the best thing ever?"
RM_IDS = sorted(h for h, r in REPLICAS.items() if r.kind == "reward-model")
GPT2 = "Ray2333/gpt2-large-helpful-reward_model"
ARMORM = "RLHFlow/ArmoRM-Llama3-8B-v0.1"
PYTHIA = "EleutherAI/pythia-70m"
ENCODERS = {"OpenAssistant/reward-model-deberta-v3-large-v2", "OpenAssistant/reward-model-deberta-v3-large",
            "s-nlp/roberta_toxicity_classifier"}


def _walk(value, key=None):
    """(key, hub id) for every model id the profile names, and every reward_options entry."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, key if key == "reward_options" else k)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)
    elif isinstance(value, str) and HUB_ID.match(value) and key not in DATA_KEYS:
        yield key, value


def _paper_options() -> dict[str, dict]:
    options = {}
    for chapter in PAPER.values():
        options.update(chapter.get("reward_options") or {})
    return options


_LOADED: dict[str, HFRewardModel] = {}


def _rm(hub_id: str) -> HFRewardModel:
    """The replica loaded with the options paper.yml gives it (float32: the dtype is left out)."""
    if hub_id not in _LOADED:
        options = {**_paper_options().get(hub_id, {}), **OPTIONS.get(hub_id, {})}
        options.pop("dtype", None)
        _LOADED[hub_id] = load_reward_model(replica_name(hub_id), device="cpu", **options)
    return _LOADED[hub_id]


def _one_at_a_time(rm) -> np.ndarray:
    return np.array([rm.score([p], [r])[0] for p, r in zip(PROMPTS, RESPONSES)])


def test_every_hub_model_of_the_paper_profile_has_a_replica():
    named = {hub_id for _, hub_id in _walk(PAPER)}
    assert named - set(REPLICAS) == set()
    assert set(CUSTOM_CODE) <= set(REPLICAS)
    assert set(_paper_options()) <= set(REPLICAS)
    assert {REPLICAS[h].kind for h in named} == {"reward-model", "policy"}


@pytest.mark.parametrize("hub_id", RM_IDS)
def test_replica_rm_scores_do_not_depend_on_the_batch_and_both_sweeps_agree(hub_id):
    """Loads with paper.yml's options; batched == one at a time; prefix sweep == naive sweep; one BOS."""
    rm = _rm(hub_id)
    assert rm.architecture == ("encoder" if hub_id in ENCODERS else "decoder")
    batched = rm.score(PROMPTS, RESPONSES, batch_size=6)
    assert batched.std() > 1e-2  # random weights, yet scores that differ: a shift would show
    np.testing.assert_allclose(batched, _one_at_a_time(rm), rtol=0, atol=1e-5)

    ids = np.arange(300)
    prefix = vocabulary_sweep(rm, SWEEP_PROMPT, ids, method="prefix", cache=False, progress=False)
    naive = vocabulary_sweep(rm, SWEEP_PROMPT, ids, method="naive", cache=False, progress=False)
    np.testing.assert_allclose(prefix["score"], naive["score"], rtol=0, atol=1e-5)
    shared = rm.architecture == "decoder" and hub_id not in CUSTOM_CODE
    assert prefix.attrs["method"] == ("prefix" if shared else "naive")
    assert ("fallback" in prefix.attrs) == (hub_id in CUSTOM_CODE)  # gated heads are scored in full, and say so

    tok = rm.tokenizer
    ids = rm.encode("Hi", "Hello")
    if rm.architecture == "encoder":
        assert ids.count(tok.cls_token_id) == 1 and ids[0] == tok.cls_token_id
    elif hf.adds_bos(tok):  # Gemma, Llama 3: the template writes one and the tokenizer adds one
        assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
        naive_ids = tok(hf.render_chat(tok, hf.chat_messages("Hi", "Hello"))).input_ids
        assert naive_ids[:2] == [tok.bos_token_id] * 2  # the trap is real for this family
    else:  # GPT-2 with hh text: no BOS, as it was trained
        assert tok.bos_token_id not in ids


def test_gpt2_needs_position_ids_under_left_padding(monkeypatch):
    """The batched == one-at-a-time test above fails for GPT-2 without the position ids that
    ``hf.reward_inputs`` passes: its absolute position embeddings read a left-padded row at shifted positions.
    Dropping them (the old code) moves batched scores far beyond that test's 1e-5."""
    rm = _rm(GPT2)
    real = hf.reward_inputs

    def without_positions(*args, **kwargs):
        return {k: v for k, v in real(*args, **kwargs).items() if k != "position_ids"}

    monkeypatch.setattr(hf, "reward_inputs", without_positions)
    assert np.abs(rm.score(PROMPTS, RESPONSES, batch_size=6) - _one_at_a_time(rm)).max() > 1e-2


def test_trust_remote_code_is_enabled_only_by_true(tmp_path):
    """A string never runs a directory's auto_map code (its module would write a marker file on import)."""
    directory = tmp_path / "armorm"
    shutil.copytree(resolve(replica_name(ARMORM)), directory)
    marker = tmp_path / "ran.txt"
    code = directory / "modeling_custom.py"
    code.write_text(f"open({str(marker)!r}, 'w').write('ran')\n" + code.read_text())
    for value in ("no", "False", 1, None):
        for load in (load_reward_model, lambda spec, **kw: HFRewardModel("x", spec, **kw), load_policy, load_backbone):
            with pytest.raises(TypeError, match="trust_remote_code must be the bool True"):
                load(str(directory), trust_remote_code=value)
    with pytest.raises(ValueError, match="custom code.*trust_remote_code=True") as refused:
        load_reward_model(str(directory))
    assert "allow_random_head" not in str(refused.value)  # its head is real: no random one is suggested
    assert not marker.exists()
    load_reward_model(str(directory), trust_remote_code=True, output="score", device="cpu")
    assert marker.exists()  # the control: the marker does work


def test_pickle_only_weights_are_refused_with_how_to_convert(tmp_path):
    for hub_id, load in ((GPT2, lambda d: load_reward_model(d, chat_template="hh")), (PYTHIA, load_policy),
                         (PYTHIA, lambda d: load_backbone(d, chat_template="plain"))):
        directory = tmp_path / hub_id.replace("/", "-")
        if not directory.exists():
            shutil.copytree(resolve(replica_name(hub_id)), directory)
            (directory / "model.safetensors").unlink()
            (directory / "pytorch_model.bin").write_bytes(b"a pickle would run code here")
        with pytest.raises(ValueError, match=r"only pickle weights \(pytorch_model.bin\).*convert them once.*"
                                             r"save_pretrained\(dir, safe_serialization=True\)"):
            load(str(directory))


def test_one_architecture_rule_for_reward_models_policies_and_backbones():
    """A template-less decoder (Pythia) is a decoder everywhere; the backbone loader once called it an encoder."""
    from transformers import AutoTokenizer

    for hub_id, expected in ((PYTHIA, "decoder"), (GPT2, "decoder"), ("s-nlp/roberta_toxicity_classifier", "encoder"),
                             ("OpenAssistant/reward-model-deberta-v3-large-v2", "encoder"), (ARMORM, "decoder")):
        path = resolve(replica_name(hub_id))
        assert hf.architecture_of(hf.read_config(path), AutoTokenizer.from_pretrained(path)) == expected, hub_id
    with pytest.raises(ValueError, match="has no chat template; pass chat_template="):
        load_backbone(replica_name(PYTHIA))
    model, tokenizer, architecture, pad_id = load_backbone(replica_name(PYTHIA), chat_template="plain")
    assert architecture == "decoder" and pad_id is not None
    assert hf.reward_inputs(tokenizer, architecture, ["a b"], ["c"], pad_id, 64)["input_ids"].shape[1] > 2
    with pytest.raises(ValueError, match="not a sequence-classification reward model.*allow_random_head"):
        load_reward_model(replica_name(PYTHIA), chat_template="plain")  # a plain causal LM is still refused


def test_template_less_policy_takes_a_named_plain_template():
    with pytest.raises(ValueError, match="has no chat template; pass chat_template="):
        load_policy(replica_name(PYTHIA))
    for bad, error in ((3, TypeError), ("Human: {prompt}", ValueError)):
        with pytest.raises(error, match="chat_template must be"):
            load_policy(replica_name(PYTHIA), chat_template=bad)
    policy = load_policy(replica_name(PYTHIA), device="cpu", chat_template="plain")
    tok = policy.tokenizer
    assert tok.decode(hf.chat_ids(tok, "You are such an", "idiot, really.")) == "You are such an\nidiot, really."
    assert tok.decode(hf.chat_ids(tok, "You are such an")) == "You are such an\n"
    assert len(policy.generate(["You are such an", "Hello"], max_new_tokens=3)) == 2
    smol = load_policy(replica_name("HuggingFaceTB/SmolLM2-1.7B-Instruct"), device="cpu")
    assert smol.tokenizer.decode(hf.chat_ids(smol.tokenizer, "Hi")).startswith("<|im_start|>system\nYou are a helpful")


def test_templates_that_stamp_today_are_rendered_with_a_fixed_date():
    """Llama 3.2's template dates its system header with strftime_now; scores and sweep cache keys must not
    change with the calendar."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve(replica_name("Ray2333/GRM-Llama3.2-3B-rewardmodel-ft")))
    today = datetime.now().strftime("%d %b %Y")
    assert f"Today Date: {today}" in tok.apply_chat_template(hf.chat_messages("Hi", "Yo"), tokenize=False)
    assert f"Today Date: {hf.CHAT_DATE}\n" in tok.decode(hf.chat_ids(tok, "Hi", "Yo"))
    rm = _rm("Ray2333/GRM-Llama3.2-3B-rewardmodel-ft")
    frame, summary = decode_reencode_comparison(rm, SWEEP_PROMPT, token_ids=np.arange(300, 340))
    assert summary["double_bos_fraction"] == 1 and summary["changed_fraction"] < 0.5  # not every id: dates agree
    tok.chat_template = "{{ strftime_now('%Y-%m-%d') }}|{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert tok.decode(hf.chat_ids(tok, "Hi", "Yo")).endswith("2024-07-26|HiYo")
    assert datetime.now().strftime("%Y") in tok.apply_chat_template(hf.chat_messages("Hi"), tokenize=False)


def test_custom_code_rm_reads_the_output_it_is_told():
    """ArmoRM's reward is output.score (the gating network's mixture of 19 objectives); output + label pick any."""
    name = replica_name(ARMORM)
    with pytest.raises(ValueError, match=r"no tensor 'logits'; pass output=<one of .*'score'"):
        load_reward_model(name, trust_remote_code=True, device="cpu")
    with pytest.raises(ValueError, match="19 rewards columns; pass label="):
        load_reward_model(name, trust_remote_code=True, output="rewards", device="cpu")
    rm = _rm(ARMORM)
    with torch.no_grad():
        own = rm.model(input_ids=torch.tensor([rm.encode(PROMPTS[1], RESPONSES[1])])).score.item()
    assert rm.score(PROMPTS[1:2], RESPONSES[1:2])[0] == pytest.approx(own, abs=1e-6)
    objective = load_reward_model(name, trust_remote_code=True, output="rewards", label=3, device="cpu")
    with torch.no_grad():
        own = objective.model(input_ids=torch.tensor([objective.encode("Hi", "Yo")])).rewards[0, 3].item()
    assert objective.score(["Hi"], ["Yo"])[0] == pytest.approx(own, abs=1e-6)
    for bad, error in ((3, TypeError), ("__class__", ValueError)):
        with pytest.raises(error, match="output must"):
            load_reward_model(name, trust_remote_code=True, output=bad)


def test_device_map_auto_scores_like_a_plain_load(monkeypatch):
    from transformers import AutoModelForSequenceClassification

    hub_id = "Ray2333/GRM-gemma2-2B-rewardmodel-ft"
    real, seen = AutoModelForSequenceClassification.from_pretrained, []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device_map"))
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", spy)
    mapped = load_reward_model(replica_name(hub_id), device_map="auto")
    assert seen == ["auto"] and mapped.device == "cpu"  # accelerate placed it (all on the CPU here)
    np.testing.assert_allclose(mapped.score(PROMPTS, RESPONSES), _rm(hub_id).score(PROMPTS, RESPONSES), atol=1e-6)
    with pytest.raises(TypeError, match="device_map must be"):
        load_reward_model(replica_name(hub_id), device_map=0.5)


def test_replica_builds_are_deterministic_and_checked(tmp_path):
    hub_id = "OpenAssistant/reward-model-deberta-v3-large-v2"
    a, b = build_replica(hub_id, tmp_path / "a"), build_replica(hub_id, tmp_path / "b")
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir()) and "model.safetensors" in files
    assert all((a / name).read_bytes() == (b / name).read_bytes() for name in files)
    with pytest.raises(ValueError, match="no replica of 'org/unknown'"):
        build_replica("org/unknown", tmp_path / "c")
    with pytest.raises(ValueError, match="not an empty directory"):
        build_replica(hub_id, a)
