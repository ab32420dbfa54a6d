"""The reward-model card (rewardscope.studies.audit.audit) and ``rewardscope audit``: each section on a planted case, the
verdict rule, the files, failures before compute, and one end-to-end smoke audit."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rewardscope import load_reward_model
from rewardscope.rewards import RewardModel
from rewardscope.studies.audit import audit

from ..helpers import ROOT

PROMPTS = ["How do I boil an egg?", "What should I cook tonight?", "Any tips for sleeping better?",
           "How can I learn to swim?", "What is a good book to read?", "How do I fix a flat tyre?"]
WORDS = "put the egg in water and wait until it is done then cool it under the tap".split()


class RuleReward(RewardModel):
    """A reward computed by ``fn(prompt, response)`` one pair at a time: it cannot depend on its batch."""

    kind = "test-rule"

    def __init__(self, fn, name="rule"):
        super().__init__(name)
        self.fn = fn

    def _score(self, prompts, responses, batch_size, progress):
        return np.array([self.fn(p, r) for p, r in zip(prompts, responses)], dtype=float)


class BatchDependent(RewardModel):
    """A broken reward: each score is shifted by the mean length of its batch."""

    kind = "test-broken"

    def __init__(self):
        super().__init__("broken")

    def _score(self, prompts, responses, batch_size, progress):
        lengths = np.array([len(r) for r in responses], dtype=float)
        return lengths - lengths.mean()


def _pairs(seed=0, per_prompt=4):
    """Probe pairs like probe_pairs' lab frame: every prompt has ``per_prompt`` responses of varied length and
    sentiment, paired all against all, with a gold that prefers longer answers."""
    rng = np.random.default_rng(seed)
    rows, pair_id = [], 0
    for pid, prompt in enumerate(PROMPTS * 3):
        texts = []
        for _ in range(per_prompt):
            n = int(rng.integers(3, len(WORDS)))
            text = " ".join(WORDS[:n]) + rng.choice([" It is good.", " It is bad.", " I love it.", "."])
            texts.append((text, n + rng.normal(0, 0.5)))
        prompt = f"{prompt} ({pid})"
        for i in range(per_prompt):
            for j in range(i + 1, per_prompt):
                a, b = texts[i], texts[j]
                chosen, rejected = (a, b) if a[1] >= b[1] else (b, a)
                rows.append({"pair_id": pair_id, "prompt_id": pid, "prompt": prompt, "chosen": chosen[0],
                             "rejected": rejected[0], "chosen_gold": chosen[1], "rejected_gold": rejected[1],
                             "split": "test"})
                pair_id += 1
    return pd.DataFrame(rows)


def _length(prompt, response):
    return float(len(response.split()))


# --------------------------------------------------------------------------------------------------
# Sections on planted cases


def test_a_planted_length_preference_gives_a_positive_length_imprint_and_sentence():
    pairs = _pairs()
    long_rm = RuleReward(_length, "longer-is-better")
    section = audit.imprint_section(long_rm, pairs, features=["length", "sentiment", "refusal"], n_bootstrap=200)
    length = next(f for f in section["features"] if f["feature"] == "length")
    assert length["estimate"] > 0 and length["low"] > 0
    assert section["dropped_features"] == ["refusal"]  # never present in these texts: not identifiable, named
    assert section["agreement"]["estimate"] > 0.8 and section["agreement"]["unit"] == "prompts"
    assert section["agreement_gold"]["estimate"] == section["agreement"]["estimate"]  # these labels follow the gold
    card = audit.build_card(audit.describe_model(long_rm), {"imprint": section})
    assert any(s.startswith("Rewards length: +") for s in card["verdict"])


def test_a_reward_blind_to_length_gets_no_length_claim():
    pairs = _pairs()
    rng = np.random.default_rng(1)
    noise = {}
    blind = RuleReward(lambda p, r: noise.setdefault((p, r), float(rng.normal())), "noise")
    section = audit.imprint_section(blind, pairs, features=["length", "sentiment"], n_bootstrap=200)
    length = next(f for f in section["features"] if f["feature"] == "length")
    assert length["low"] < 0 < length["high"]
    sentences = audit.verdict({"imprint": section})
    assert any(s.startswith("Shows no length preference") for s in sentences)
    assert not any(s.startswith(("Rewards length", "Penalises length")) for s in sentences)


def test_batched_equals_single_for_a_pairwise_rule_and_not_for_a_batch_dependent_one():
    pairs = _pairs().head(6)
    good = audit.inputs_section(RuleReward(_length), pairs["prompt"].tolist(), pairs["chosen"].tolist())
    assert good["batch_invariance"]["equal"] and good["batch_invariance"]["max_abs_difference"] == 0
    assert good["architecture"] == "rule" and "skipped" in good["dtype_drift"]
    broken = audit.inputs_section(BatchDependent(), pairs["prompt"].tolist(), pairs["chosen"].tolist())
    assert not broken["batch_invariance"]["equal"]
    sentences = audit.verdict({"inputs": broken})
    assert sentences and sentences[0].startswith("Warning: its scores depend on the batch")


def test_inputs_of_hf_reward_models():
    pairs = _pairs().head(5)
    decoder = load_reward_model("tiny-llama-rm")
    low, why = audit.bfloat16_copy(decoder)
    out = audit.inputs_section(decoder, pairs["prompt"].tolist(), pairs["chosen"].tolist(), low, why, n_bootstrap=50)
    assert out["architecture"] == "decoder" and out["chat_template"] and out["bos_count"] == 1
    assert out["pad_in_template"] is False  # the house rule: a pad token never occurs in the chat template
    assert out["batch_invariance"]["equal"]
    if why is None:
        assert out["dtype_drift"]["kendall"]["estimate"] > 0.5
    else:
        assert out["dtype_drift"]["skipped"] == why
    encoder = load_reward_model("tiny-bert-rm")
    out = audit.inputs_section(encoder, pairs["prompt"].tolist(), pairs["chosen"].tolist())
    assert out["architecture"] == "encoder" and out["pair_encoding"] and out["separators"] == 2
    assert out["batch_invariance"]["equal"]


def test_vocabulary_section_on_a_small_sweep():
    rm = load_reward_model("tiny-llama-rm")
    prompts = {"best": "What, in one word, is the best thing ever?", "worst": "What, in one word, is the worst thing ever?"}
    out = audit.vocabulary_section(rm, prompts, vocab_tokens=60, n_top=3, n_bootstrap=50)
    assert [p["prompt"] for p in out["per_prompt"]] == ["best", "worst"]
    for p in out["per_prompt"]:
        assert len(p["optimal"]) == 3 and p["optimal"][0]["score"] >= p["pessimal"][0]["score"]
        assert p["skew"]["n"] == 60 and p["skew"]["low"] <= p["skew"]["estimate"] <= p["skew"]["high"]
    ids, random = audit.vocabulary_token_ids(rm, 60)
    assert len(random) == 60 and set(random) <= set(ids) and out["tokens_swept"] == len(ids)
    rule = audit.vocabulary_section(RuleReward(_length), prompts)
    assert "rule reward" in rule["skipped"]


def test_robustness_paraphrase_and_flip():
    pairs = _pairs()
    blind = RuleReward(lambda p, r: float(len(p)), "prompt-only")  # ignores the response: rewrites cannot move it
    out = audit.robustness_section(blind, pairs, n_bootstrap=100)
    assert out["paraphrase"]["mean_change"]["estimate"] == 0 and out["paraphrase"]["texts_changed"] >= 2
    assert any(s.startswith("Is stable under meaning-preserving paraphrases") for s in audit.verdict({"robustness": out}))
    vader = load_reward_model("vader-compound")
    out = audit.robustness_section(vader, pairs, n_bootstrap=100)
    flip = out["flip"]
    assert flip["texts_changed"] >= 2
    assert flip["sentiment_sensitivity"]["low"] > 0  # VADER follows VADER
    assert flip["mean_change"]["estimate"] < 0  # "good", "love" -> "bad", "hate"


def test_transform_on_the_gold_itself():
    pairs = _pairs()
    gold = {(p, t): g for p, c, r, gc, gr in pairs[["prompt", "chosen", "rejected", "chosen_gold", "rejected_gold"]]
            .itertuples(index=False) for t, g in ((c, gc), (r, gr))}
    rng = np.random.default_rng(0)
    noisy = {k: v + rng.normal(0, 2.0) for k, v in gold.items()}  # misorders some pairs: T is identified
    out = audit.transform_section(RuleReward(lambda p, r: noisy[(p, r)]), pairs, n_bootstrap=100)
    t = out["temperature"]
    assert t["estimate"] > 0 and t["low"] <= t["estimate"] <= t["high"]
    ref = out["reference"]
    assert ref["responses_per_prompt"] == 4 and ref["prompts"] == 18
    assert ref["compression"]["estimate"] < 1 and ref["compression"]["high"] < 1  # log σ flattens above r_ref
    perfect = audit.transform_section(RuleReward(lambda p, r: gold[(p, r)]), pairs, n_bootstrap=100)
    assert "skipped" in perfect["temperature"]  # every pair ordered right: T -> 0 is refused, not a bound
    assert perfect["best_of_n"]["share_of_oracle_gain"] == pytest.approx(1.0)
    assert perfect["best_of_n"]["gain"]["low"] > 0
    no_gold = audit.transform_section(RuleReward(lambda p, r: noisy[(p, r)]),
                                      pairs.drop(columns=["chosen_gold", "rejected_gold"]), n_bootstrap=20)
    assert "skipped" in no_gold["best_of_n"]


# --------------------------------------------------------------------------------------------------
# The verdict rule, the card and its files


def _card(low, high, **extra):
    return {"imprint": {"features": [{"feature": "length", "per": "standard deviation of log(1 + words)",
                                      "estimate": (low + high) / 2, "low": low, "high": high, "n": 40}],
                        "agreement": {"estimate": 0.7, "low": 0.6, "high": 0.8, "n": 40, "unit": "prompts"}}, **extra}


def test_verdict_states_an_effect_only_when_its_interval_excludes_the_null():
    assert "Rewards length: +0.31 [+0.22, +0.4]" in " ".join(audit.verdict(_card(0.22, 0.40)))
    assert any(s.startswith("Penalises length") for s in audit.verdict(_card(-0.4, -0.2)))
    text = " ".join(audit.verdict(_card(-0.1, 0.3)))
    assert "Shows no length preference" in text and "Rewards length" not in text
    assert audit.verdict({}) == []  # no interval, no sentence
    card = _card(0.2, 0.4)
    card["imprint"]["agreement"].update(low=0.45, high=0.6)
    assert "Does not agree with the probe pairs' labels more often than chance" in audit.verdict(card)[0]


def test_verdict_has_at_most_five_sentences():
    card = _card(0.2, 0.4)
    card["imprint"]["features"] += [{"feature": f, "per": "presence (0/1 label)", "estimate": 1, "low": 0.5, "high": 1.5,
                                     "n": 9} for f in ("sentiment", "refusal")]
    card["robustness"] = {"paraphrase": {"mean_change": {"estimate": 0.1, "low": 0.05, "high": 0.2, "n": 30}},
                          "flip": {"sentiment_sensitivity": {"estimate": 1, "low": 0.5, "high": 2}}}
    card["vocabulary"] = {"frequency_bias": {"estimate": 0.2, "low": 0.1, "high": 0.3}}
    assert len(audit.verdict(card)) == 5


def test_card_files_are_plain_json_and_a_myst_page(tmp_path):
    pairs = _pairs()
    rm = RuleReward(_length, "longer")
    sections = {"inputs": audit.inputs_section(rm, pairs["prompt"][:4].tolist(), pairs["chosen"][:4].tolist()),
                "imprint": audit.imprint_section(rm, pairs, features=["length", "sentiment"], n_bootstrap=50),
                "transform": audit.transform_section(rm, pairs, n_bootstrap=20)}
    card = audit.build_card(audit.describe_model(rm, "my/rm"), sections, {"seed": np.int64(0), "q": float("nan")})
    paths = audit.write_card(card, tmp_path / "card")
    loaded = json.loads(paths["json"].read_text())  # allow_nan=False when written: NaN became null
    assert loaded == card and loaded["parameters"] == {"seed": 0, "q": None}
    page = paths["markdown"].read_text()
    assert page.startswith("# Reward-model card: my/rm") and page.index("## Verdict") < page.index("## Inputs")
    assert "## Imprint (chapter 4)" in page and "## Vocabulary" not in page
    assert not list(tmp_path.joinpath("card").glob("*.tmp*"))


@pytest.mark.parametrize("call, error, match", [
    (lambda: audit.inputs_section("tiny-llama-rm", ["a"] * 3, ["b"] * 3), TypeError, "rm must be a RewardModel"),
    (lambda: audit.inputs_section(RuleReward(_length), ["a"], ["b"]), ValueError, "at least 3 probe pairs"),
    (lambda: audit.imprint_section(RuleReward(_length), "pairs"), TypeError, "pairs must be a pandas DataFrame"),
    (lambda: audit.imprint_section(RuleReward(_length), pd.DataFrame({"prompt": ["a"] * 2})), ValueError,
     r"pairs has no column\(s\) \['prompt_id', 'chosen', 'rejected'\]"),
    (lambda: audit.transform_section(RuleReward(_length), _pairs(), quantile=1.5), ValueError, r"quantile must be"),
    (lambda: audit.vocabulary_section(RuleReward(_length), {}), ValueError, "prompts must map"),
    (lambda: audit.vocabulary_token_ids(None, -1), ValueError, "vocab_tokens must be an int >= 0"),
    (lambda: audit.verdict("card"), TypeError, "card must be a mapping"),
    (lambda: audit.build_card({}, {"vibes": {}}), ValueError, r"unknown card section\(s\) \['vibes'\]"),
    (lambda: audit.card_markdown({}), ValueError, "card must be build_card's output"),
    (lambda: audit.safe_name(""), ValueError, "spec must be a non-empty string"),
    (lambda: audit.probe_pairs("lab", "smoke", n_pairs=0), ValueError, "n_pairs must be an int >= 1"),
    (lambda: audit.vocabulary_sweeps(RuleReward(_length), {}), ValueError, "prompts must map"),
    (lambda: audit.write_card({}, "/nonexistent", sweeps=pd.DataFrame({"a": [1]})), ValueError, "sweeps must be a DataFrame"),
    (lambda: audit.read_cards("cards"), TypeError, "folders must be a list of card folders"),
    (lambda: audit.read_cards(["/nonexistent"]), ValueError, "no card.json in '/nonexistent'"),
    (lambda: audit.read_sweeps("cards"), TypeError, "folders must be a list of card folders"),
    (lambda: audit.compare_cards([]), ValueError, "cards must be a non-empty list"),
    (lambda: audit.compare_cards([{"imprint": {}}]), ValueError, "every card must be build_card's output"),
    (lambda: audit.compare_cards([_with_model(_card(0, 1), "a"), _with_model(_card(0, 1), "a")]), ValueError,
     "two cards audit the same spec"),
    (lambda: audit.comparison_markdown([_with_model(_card(0, 1), "a")], links=[]), ValueError, "one link per card"),
    (lambda: audit.feature_table({"model": {}}), ValueError, "cards must be a list"),
    (lambda: audit.token_table(pd.DataFrame({"rm": []})), ValueError, "sweeps must be a DataFrame with columns"),
    (lambda: audit.mds_svg([]), ValueError, "card must be build_card's output"),
])
def test_bad_input_fails_with_one_clear_line(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def _with_model(card, spec):
    return {"model": {"spec": spec}, **card}


def test_comparison_has_one_row_per_card_with_the_headline_intervals(tmp_path):
    pairs = _pairs()
    rm = RuleReward(_length, "longer")
    sections = {"imprint": audit.imprint_section(rm, pairs, features=["length", "sentiment", "refusal"], n_bootstrap=50),
                "transform": audit.transform_section(rm, pairs, n_bootstrap=20)}
    audit.write_card(audit.build_card(audit.describe_model(rm, "my/rm"), sections), tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "card.json").write_text(json.dumps(_with_model(_card(0.22, 0.40), "other")))
    cards = audit.read_cards([tmp_path / "a", tmp_path / "b"])
    table = audit.compare_cards(cards)
    assert list(table.index) == ["my/rm", "other"] and list(table.columns) == [h[0] for h in audit.HEADLINES]
    length = next(f for f in cards[0]["imprint"]["features"] if f["feature"] == "length")
    assert table.loc["my/rm", "length imprint"] == audit._ci(length) and length["low"] > 0
    assert table.loc["other", "length imprint"] == "+0.31 [+0.22, +0.4]"
    assert table.loc["other", "agreement with labels"] == "70% [60%, 80%]"
    assert table.loc["my/rm", "refusal imprint"] == "n/a"  # never present in these texts: dropped, so no number
    assert table.loc["other", "temperature T"] == "n/a"
    assert table.loc["my/rm", "best-of-n gain on the gold"].startswith("+")
    skipped = _with_model({"imprint": {"features": {"skipped": "no feature varies"}}}, "flat")
    assert audit.compare_cards([skipped]).loc["flat", "length imprint"] == "skipped"
    page = audit.comparison_markdown(cards, links=["a/card.md", "b/card.md"])
    assert "| [my/rm](a/card.md) |" in page and "| [other](b/card.md) | 70% \\[60%, 80%\\] |" in page
    assert "[card.json](card.json)" in (tmp_path / "a" / "card.md").read_text()


def test_feature_and_token_tables_for_the_explorer(tmp_path):
    length = {"feature": "length", "role": "spoiler", "per": "sd", "estimate": 0.3, "low": 0.2, "high": 0.4, "p_adj": 0.01}
    cards = [_with_model({"imprint": {"features": [length]}}, "a"),
             _with_model({"imprint": {"features": {"skipped": "why"}}}, "b")]
    assert audit.feature_table(cards).to_dict("records") == [{
        "rm": "a", "feature": "length", "role": "spoiler", "estimate": 0.3, "low": 0.2, "high": 0.4, "p (Bonferroni)": 0.01,
        "unit": "sd"}]
    sweeps = pd.DataFrame({"rm": ["x"] * 4 + ["y"] * 2, "prompt": ["best"] * 6, "token_id": [0, 1, 2, 3, 0, 1],
                           "token": ["good", " good", "bad", "bad", "good", "meh"], "score": [3.0, 1, 2, 0.5, -1, 5.0]})
    audit.write_card(_with_model({}, "x"), tmp_path / "x", sweeps=sweeps[sweeps["rm"] == "x"])
    audit.write_card(_with_model({}, "y"), tmp_path / "y", sweeps=sweeps[sweeps["rm"] == "y"])
    audit.write_card(_with_model({}, "rule"), tmp_path / "rule")  # a rule reward has no sweeps
    read = audit.read_sweeps([tmp_path / "x", tmp_path / "y", tmp_path / "rule"])
    assert len(read) == 6 and audit.read_sweeps([tmp_path / "rule"]) is None
    table = audit.token_table(read).set_index("token")
    assert list(table.columns) == ["x · best: score", "x · best: rank", "y · best: score", "y · best: rank"]
    assert table.loc["good", "x · best: rank"] == 1 and table.loc["good", "y · best: rank"] == 2
    assert table.loc["' good'", "x · best: score"] == 1  # a leading space is shown quoted
    assert table.loc["bad", "x · best: score"] == 2 and table.loc["bad", "x · best: rank"] == 2  # best-ranked id kept
    assert pd.isna(table.loc["meh", "x · best: rank"]) and table.loc["meh", "y · best: rank"] == 1


def test_the_mds_map_has_a_tooltip_per_reward_model():
    import re

    near = {"prompt": "best", "tau": [{"rm": "b", "estimate": 0.5, "low": 0.4, "high": 0.6},
                                      {"rm": "c", "estimate": -0.1, "low": -0.2, "high": 0.1}],
            "mds": [{"rm": "a", "x": 0.0, "y": 0.0}, {"rm": "b", "x": 0.5, "y": 0.1}, {"rm": "c", "x": -0.4, "y": 0.3}]}
    svg = audit.mds_svg(_with_model({"vocabulary": {"neighbours": near}}, "a"))
    assert svg.startswith("<svg") and 'role="img"' in svg and "MDS dimension 1" in svg  # a labelled axis
    assert re.findall(r"<title>(.*?)</title>", svg) == ["a: the audited reward model", "b: τ with a = +0.5 [+0.4, +0.6]",
                                                        "c: τ with a = -0.1 [-0.2, +0.1]"]
    assert audit.mds_svg(_with_model({"vocabulary": {"neighbours": {"skipped": "alone"}}}, "a")) is None


def test_safe_names():
    assert audit.safe_name("Skywork/Skywork-Reward-Llama-3.1-8B") == "Skywork--Skywork-Reward-Llama-3.1-8B"
    assert audit.safe_name("./models/my rm/") == "models--my-rm"
    assert audit.safe_name("replica:org/name") == "replica--org--name"


def test_an_rm_without_one_scalar_is_named_before_compute(tmp_path):
    from rewardscope.zoo import resolve

    assert audit.scalar_reward_problem("tiny-llama-rm") is None
    assert audit.scalar_reward_problem("vader-compound") is None
    assert "embedded policy, not a reward model" in audit.scalar_reward_problem("tiny-llama")
    two = tmp_path / "two-logits"
    shutil.copytree(resolve("tiny-llama-rm"), two)
    config = json.loads((two / "config.json").read_text())
    config.update(id2label={"0": "bad", "1": "good"}, label2id={"bad": 0, "good": 1}, num_labels=2)
    (two / "config.json").write_text(json.dumps(config))
    assert "returns 2 logits, not one scalar" in audit.scalar_reward_problem(str(two))
    assert audit.scalar_reward_problem(str(two), {"label": 1}) is None


# --------------------------------------------------------------------------------------------------
# The runner and the command line


def test_the_audit_is_not_a_chapter_and_its_profile_sections_are_valid():
    from rewardscope.runner.book import AUDIT, audit_notebook, audit_settings, notebook_names
    from rewardscope.runner.params import check_parameters, load_profile

    names = notebook_names(ROOT)
    assert AUDIT not in names and audit_notebook(ROOT).is_file()
    values, book_rms = {}, {}
    for profile in ("smoke", "default", "replica"):
        values[profile], book_rms[profile] = audit_settings(ROOT, profile)
        assert values[profile], f"{profile}.yml has no audit section"
        check_parameters(audit_notebook(ROOT), values[profile])
    assert book_rms["smoke"] == ["tiny-llama-rm"]  # make test's smoke book builds one tiny card
    assert set(book_rms["default"]) == set(values["default"]["compare_rms"])  # make book: a card per lab RM of chapter 3
    assert "00_model_zoo" in load_profile("smoke", ROOT / "notebooks" / "params", names)  # the book ignores it


def test_the_book_lists_the_cards_under_the_audits_page(tmp_path):
    import yaml

    from rewardscope.runner.book import AUDITS_PAGE, _stage_toc_cards, audit_settings
    from rewardscope.runner.params import ParameterError

    from ..helpers import write_mini_book

    (tmp_path / "_toc.yml").write_text((ROOT / "_toc.yml").read_text())
    _stage_toc_cards(tmp_path, ["audits/a/card", "audits/b/card"])
    parts = yaml.safe_load((tmp_path / "_toc.yml").read_text())["parts"]
    audits = next(p for p in parts if p["caption"] == "Audits")
    assert audits["chapters"] == [{"file": AUDITS_PAGE, "sections": [{"file": "audits/a/card"}, {"file": "audits/b/card"}]},
                                  {"file": "audits/explorer"}]
    _stage_toc_cards(tmp_path, None)  # a profile that audits no RM: no Audits part
    assert [p["caption"] for p in yaml.safe_load((tmp_path / "_toc.yml").read_text())["parts"]] == \
        [p["caption"] for p in parts if p["caption"] != "Audits"]
    book = write_mini_book(tmp_path / "mini", ["a"], profiles={"audit": {"book_rms": "tiny-llama-rm"}})
    with pytest.raises(ParameterError, match="book_rms must be a list of reward-model specs, got 'tiny-llama-rm'"):
        audit_settings(book, "smoke")


def _cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rewardscope.runner.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("args, match", [
    (["no-such-rm"], "parameter 'rm': 'no-such-rm' is not a reward rule"),
    (["tiny-llama"], "'tiny-llama' is an embedded policy, not a reward model"),
    (["tiny-llama-rm", "-p", "n_layers", "2"], "audit has no parameter 'n_layers'"),
    (["tiny-llama-rm", "-p", "vocab_tokens", "-5"], "parameter 'vocab_tokens' must be an int >= 0"),
    (["tiny-llama-rm", "-p", "rm", "tiny-bert-rm"], "parameter 'rm' is set by `rewardscope audit`"),
    (["tiny-llama-rm", "-p", "reward_options", "{tiny-llama: {}}"], "names 'tiny-llama', which is not among the audited"),
])
def test_audit_faults_fail_before_compute_with_one_line(tmp_path, args, match):
    proc = _cli("audit", *args, "--profile", "smoke", "-o", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert match in proc.stderr and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_audit_smoke_writes_the_notebook_and_the_card(tmp_path):
    proc = _cli("audit", "tiny-llama-rm", "--profile", "smoke", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "tiny-llama-rm"
    card = json.loads((folder / "card.json").read_text())
    assert card["model"]["spec"] == "tiny-llama-rm" and len(card["model"]["identity"]) == 20
    assert set(audit.SECTIONS) <= set(card) and 1 <= len(card["verdict"]) <= 5
    assert card["inputs"]["batch_invariance"]["equal"] and card["vocabulary"]["tokens_swept"] > 200
    assert [r["rm"] for r in card["vocabulary"]["neighbours"]["tau"]] == ["tiny-bert-rm", "sentiment-smollm2-smoke"]
    page = (folder / "card.md").read_text()
    assert page.startswith("# Reward-model card: tiny-llama-rm") and card["verdict"][0][:30] in page.replace("\\", "")
    assert (folder / "audit.ipynb").is_file() and "tiny-llama-rm: ok" in proc.stdout
    comparison = (tmp_path / "comparison.md").read_text()
    assert "| [tiny-llama-rm](tiny-llama-rm/card.md) |" in comparison and "comparison of the cards" in proc.stdout


def test_audit_runs_on_a_replica_of_a_paper_rm(tmp_path):
    """`rewardscope audit` on the replica profile with one of the paper's RMs (a tiny Llama-3.1 replica built in code)."""
    spec = "replica:Skywork/Skywork-Reward-Llama-3.1-8B-v0.2"
    proc = _cli("audit", spec, "--profile", "replica", "-p", "compare_rms", "[]", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    card = json.loads((tmp_path / audit.safe_name(spec) / "card.json").read_text())
    inputs = card["inputs"]
    assert card["model"]["spec"] == spec and inputs["model_type"] == "llama" and inputs["bos_count"] == 1
    assert inputs["batch_invariance"]["equal"] and not inputs["pad_in_template"]
    assert set(audit.SECTIONS) <= set(card) and card["vocabulary"]["tokens_swept"] > 200


def test_neighbours_place_the_rm_among_others():
    rm = load_reward_model("tiny-llama-rm")
    others = {"same weights": load_reward_model("tiny-llama-rm"),
              "in bfloat16": load_reward_model("tiny-llama-rm", dtype="bfloat16"),
              "a rule": load_reward_model("vader-compound")}
    prompts = {"best": "What, in one word, is the best thing ever?"}
    out = audit.vocabulary_section(rm, prompts, vocab_tokens=80, n_top=3, n_bootstrap=20, others=others)["neighbours"]
    tau = {r["rm"]: r for r in out["tau"]}
    assert tau["same weights"]["estimate"] == pytest.approx(1.0) and tau["in bfloat16"]["estimate"] > 0.5
    assert out["shared_tokens"] > 80 and {m["rm"] for m in out["mds"]} == {"tiny-llama-rm", "same weights", "in bfloat16"}
    assert "rule reward" in out["not_compared"]["a rule"]
    with pytest.raises(ValueError, match="others must map at least one name"):
        audit.vocabulary_neighbours(pd.DataFrame({"rm": ["x"] * 3, "prompt": "p", "token_id": [1, 2, 3],
                                                  "token": ["a", "b", "c"], "score": [1.0, 2, 3]}), {}, "p", "p")
