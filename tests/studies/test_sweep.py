"""Vocabulary sweeps: the shared-prefix fast path against full forwards, ids without round trips, resume, shards."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rewardscope import load_reward_model
from rewardscope.lexicons import afinn_lexicon
from rewardscope.studies import sweep
from rewardscope.studies.sweep import (
    PROMPTS,
    decode_reencode_comparison,
    rank_agreement,
    response_slot,
    roundtrip_ids,
    sweep_throughput,
    vocabulary_sweep,
)
from rewardscope.studies.sweep import sweep as sweep_module  # the sweep itself, for monkeypatching its steps

PROMPT = PROMPTS["greatest"]


@pytest.fixture(scope="module")
def tiny():
    return load_reward_model("tiny-llama-rm")


def _full_score(rm, ids: list[int]) -> float:
    """The RM's own output on one unpadded sequence (a batch of one pools its last position)."""
    pad = rm.model.config.pad_token_id
    rm.model.config.pad_token_id = None
    try:
        with torch.no_grad():
            return rm.model(input_ids=torch.tensor([ids])).logits[0, 0].item()
    finally:
        rm.model.config.pad_token_id = pad


def _by_hand(rm, prompt: str, token_id: int) -> list[int]:
    """The tiny template's ids written out by hand: one BOS, the turns, the token id, the end of turn."""
    tok = rm.tokenizer
    head = tok(f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False).input_ids
    return [tok.bos_token_id, *head, token_id, *tok("<|im_end|>\n", add_special_tokens=False).input_ids]


def test_prefix_equals_naive_on_the_whole_tiny_vocabulary(tiny):
    prefix = vocabulary_sweep(tiny, PROMPT, method="prefix", batch_size=100, cache=False)
    naive = vocabulary_sweep(tiny, PROMPT, method="naive", cache=False)
    assert len(prefix) == len(tiny.tokenizer) and list(prefix.columns) == ["token_id", "token", "score"]
    np.testing.assert_array_equal(prefix["token_id"], np.arange(len(tiny.tokenizer)))
    np.testing.assert_allclose(prefix["score"], naive["score"], atol=1e-4, rtol=0)
    spread = naive["score"].std()  # the agreement is not between (near) constants
    assert spread > 5e-3 and np.abs(prefix["score"] - naive["score"]).max() < 1e-3 * spread
    for t in (5, 300, 1000):
        assert prefix["score"][t] == pytest.approx(_full_score(tiny, _by_hand(tiny, PROMPT, t)), abs=1e-4)


def test_one_bos_and_scores_by_id_where_decode_reencode_differs(tiny):
    tok = tiny.tokenizer
    slot = response_slot(tiny, PROMPT)
    assert slot.prefix[0] == tok.bos_token_id and slot.prefix[1] != tok.bos_token_id
    assert list(slot.ids(7)) == _by_hand(tiny, PROMPT, 7)
    # a lone UTF-8 lead byte decodes to U+FFFD, which re-encodes as three other ids
    t = tok.convert_tokens_to_ids("Ã")
    assert tok(tok.decode([t]), add_special_tokens=False).input_ids != [t]
    trip = roundtrip_ids(tiny, PROMPT, t)
    assert trip[:2] == [tok.bos_token_id] * 2  # the original pipeline's double BOS
    score = vocabulary_sweep(tiny, PROMPT, token_ids=[t], cache=False)["score"][0]
    assert score == pytest.approx(_full_score(tiny, _by_hand(tiny, PROMPT, t)), abs=1e-4)
    assert abs(score - _full_score(tiny, trip)) > 1e-3


def test_a_candidate_equal_to_the_pad_id_is_scored_at_its_last_position(tiny):
    tok = tiny.tokenizer
    slot = response_slot(tiny, PROMPT)
    pad = tok.pad_token_id
    reference = _full_score(tiny, _by_hand(tiny, PROMPT, pad))
    old = tiny.model.config.pad_token_id
    try:
        for config_pad in (pad, slot.suffix[-1]):  # even a pad id that the suffix ends with cannot move the pooling
            tiny.model.config.pad_token_id = config_pad
            for method in ("prefix", "naive"):
                got = vocabulary_sweep(tiny, PROMPT, token_ids=[pad, 9], method=method, cache=False)
                assert got["score"][0] == pytest.approx(reference, abs=1e-4)
    finally:
        tiny.model.config.pad_token_id = old


def test_encoders_fall_back_to_full_scoring():
    rm = load_reward_model("tiny-bert-rm")
    tok = rm.tokenizer
    words = [t for t in tok.convert_ids_to_tokens(range(200, 400)) if t.isalpha()][:6]
    ids = tok.convert_tokens_to_ids(words)
    frame = vocabulary_sweep(rm, PROMPT, token_ids=ids, method="prefix", cache=False)
    assert frame.attrs["method"] == "naive"
    np.testing.assert_allclose(frame["score"], rm.score([PROMPT] * len(words), words), atol=1e-5)


def test_bfloat16_stays_close_and_is_reported(tiny):
    full = vocabulary_sweep(tiny, PROMPT, token_ids=range(64), cache=False)
    half = vocabulary_sweep(tiny, PROMPT, token_ids=range(64), dtype="bfloat16", cache=False)
    assert half.attrs["dtype"] == "bfloat16" and full.attrs["dtype"] == "float32"
    np.testing.assert_allclose(half["score"], full["score"], atol=0.05)
    assert next(tiny.model.parameters()).dtype == torch.float32  # the RM itself is not converted


def test_interrupted_sweep_resumes_from_finished_chunks(tiny, fresh_cache, monkeypatch):
    reference = vocabulary_sweep(tiny, PROMPT, token_ids=range(300), cache=False)
    calls = []
    real = sweep_module.score_block

    def flaky(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "score_block", flaky)
    with pytest.raises(KeyboardInterrupt):
        vocabulary_sweep(tiny, PROMPT, token_ids=range(300), chunk_size=64)
    assert calls == [64, 64]
    monkeypatch.setattr(sweep_module, "score_block", lambda *a, **k: (calls.append(len(a[2])), real(*a, **k))[1])
    resumed = vocabulary_sweep(tiny, PROMPT, token_ids=range(300), chunk_size=64)
    assert calls == [64, 64, 64, 64, 44]  # only the three unfinished chunks
    pd.testing.assert_frame_equal(resumed, reference, check_exact=False, atol=1e-6)
    assert not any(p.name.endswith(".parts") for p in Path(resumed.attrs["cache"]).parent.iterdir())
    again = vocabulary_sweep(tiny, PROMPT, token_ids=range(300), chunk_size=64)
    assert len(calls) == 5 and again["score"].equals(resumed["score"])  # a cache hit computes nothing
    naive = vocabulary_sweep(tiny, PROMPT, token_ids=range(300), method="naive", chunk_size=64)
    assert len(calls) == 10 and naive.attrs["cache"] != resumed.attrs["cache"]  # methods are cached apart


# Run in a fresh interpreter: forking a process whose torch has already run threaded ops can deadlock the
# children (OpenMP), so this test never forks pytest itself. accelerate's debug_launcher recipe, on a free port.
_SHARDED = """
import os, socket, sys
import torch
from accelerate import PartialState
from accelerate.utils import PrepareForLaunch, patch_environment
from torch.multiprocessing import start_processes
from rewardscope import load_reward_model
from rewardscope.studies.sweep import vocabulary_sweep

def worker(model_dir, prompt):
    PartialState._reset_state()
    frame = vocabulary_sweep(load_reward_model(model_dir), prompt, token_ids=range(200), chunk_size=32)
    assert len(frame) == 200

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
with patch_environment(world_size=2, master_addr="127.0.0.1", master_port=str(port), accelerate_use_cpu="yes",
                       accelerate_mixed_precision="no", gloo_socket_ifname="lo",
                       accelerate_debug_rdv_file=sys.argv[3]):
    start_processes(PrepareForLaunch(worker, debug=True), args=(sys.argv[1], sys.argv[2]), nprocs=2,
                    start_method="fork")
"""


def test_two_processes_split_the_vocabulary_and_merge(tiny, fresh_cache, tmp_path):
    import signal
    import subprocess
    import sys

    reference = vocabulary_sweep(tiny, PROMPT, token_ids=range(200), cache=False)
    env = {**os.environ, "REWARDSCOPE_CACHE": str(fresh_cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _SHARDED, str(tiny.path), PROMPT, str(tmp_path / "rendezvous")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
        out, _ = proc.communicate()
        pytest.fail(f"the two-process sweep hung:\n{out[-2000:]}")
    assert proc.returncode == 0, out[-3000:]
    merged = vocabulary_sweep(tiny, PROMPT, token_ids=range(200), chunk_size=32)  # the merged entry: a cache hit
    pd.testing.assert_frame_equal(merged.drop(columns="score"), reference.drop(columns="score"))
    np.testing.assert_allclose(merged["score"], reference["score"], atol=1e-5)
    chunks = json.loads((Path(merged.attrs["cache"]) / "chunks.json").read_text())
    assert chunks["processes"] == 2 and chunks["tokens_by_process"] == {"0": 128, "1": 72}  # 7 chunks: 4 + 3


def test_decode_reencode_comparison_on_the_tiny_rm(tiny):
    frame, summary = decode_reencode_comparison(tiny, PROMPT, token_ids=range(400), top=20)
    assert summary["n"] == 400 and summary["double_bos_fraction"] == 1.0  # template BOS + tokenizer BOS
    assert 0 < summary["changed_fraction"] < 1
    by_id = vocabulary_sweep(tiny, PROMPT, token_ids=range(400))
    np.testing.assert_allclose(frame["score"], by_id["score"])
    t = 123
    assert frame["score_roundtrip"][t] == pytest.approx(_full_score(tiny, roundtrip_ids(tiny, PROMPT, t)), abs=1e-4)
    assert -1 <= summary["spearman"] < 1 and 0 <= summary["top_overlap"] <= 1


def test_decode_reencode_comparison_on_an_encoder_scores_every_token_once():
    # an encoder runs full forwards; 400 tokens give groups of more than 128 equal-length sequences, which the
    # naive fallback once sliced by batch_size (512) while stepping by 128: too many scores for the group
    bert = load_reward_model("tiny-bert-rm")
    frame, summary = decode_reencode_comparison(bert, PROMPT, token_ids=range(400), top=20)
    assert summary["n"] == 400 and len(frame) == 400 and frame["n_ids"].value_counts().max() > 128
    for t in (7, 150, 399):  # each token's round-trip score is its own pair scored alone
        word = bert.tokenizer.decode([t])
        assert frame["score_roundtrip"][t] == pytest.approx(bert.score([PROMPT], [word])[0], abs=1e-4)


def test_rank_agreement_on_planted_orders():
    x = np.arange(50.0)
    same = rank_agreement(x, 2 * x + 1, top=5)
    assert same == pytest.approx({"spearman": 1.0, "kendall": 1.0, "top_overlap": 1.0, "bottom_overlap": 1.0})
    flipped = rank_agreement(x, -x, top=5)
    assert flipped["spearman"] == pytest.approx(-1.0) and flipped["top_overlap"] == 0.0
    with pytest.raises(ValueError, match="top must be"):
        rank_agreement(x, x, top=0)
    with pytest.raises(ValueError, match="equally long"):
        rank_agreement(x, x[:3])


@pytest.mark.parametrize("kwargs, match", [
    ({"prompt": ""}, "prompt must be a non-empty string"),
    ({"prompt": "   "}, "prompt must be a non-empty string"),
    ({"prompt": None}, "prompt must be a non-empty string"),
    ({"token_ids": []}, "token_ids must be a non-empty"),
    ({"token_ids": [-1]}, r"token_ids must lie in \[0, "),
    ({"token_ids": [10**6]}, r"token_ids must lie in \[0, "),
    ({"token_ids": [1.5]}, "token_ids must be ints"),
    ({"token_ids": "abc"}, "token_ids must be a sequence of ints"),
    ({"token_ids": [3, 3]}, "duplicates"),
    ({"method": "fast"}, "method must be one of prefix, naive"),
    ({"batch_size": 0}, "batch_size must be a positive int"),
    ({"dtype": "int8"}, "dtype must be one of"),
])
def test_bad_input_fails_before_compute(tiny, kwargs, match):
    args = {"prompt": PROMPT, **kwargs}
    with pytest.raises(ValueError, match=match):
        vocabulary_sweep(tiny, args.pop("prompt"), cache=False, **args)


def test_rm_without_chat_template_or_vocabulary_fails_early():
    rm = load_reward_model("tiny-llama-rm")
    rm.tokenizer.chat_template = None
    with pytest.raises(ValueError, match="has no chat template"):
        vocabulary_sweep(rm, PROMPT, cache=False)
    with pytest.raises(ValueError, match="rm must be a Hugging Face reward model"):
        vocabulary_sweep(load_reward_model("afinn"), PROMPT)


@pytest.mark.slow
def test_prefix_equals_naive_on_smollm2_weights():
    rm = load_reward_model("smollm2-135m-instruct", allow_random_head=True)
    rng = np.random.default_rng(0)
    tok = rm.tokenizer
    ids = np.unique(np.concatenate([[tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, rm.pad_id],
                                    rng.choice(len(tok), 92, replace=False)]))
    prefix = vocabulary_sweep(rm, PROMPT, token_ids=ids, method="prefix", batch_size=64, cache=False)
    naive = vocabulary_sweep(rm, PROMPT, token_ids=ids, method="naive", cache=False)
    assert len(response_slot(rm, PROMPT).suffix) == 2  # <|im_end|> "\n": 3 tokens per candidate instead of 45
    np.testing.assert_allclose(prefix["score"], naive["score"], atol=1e-4, rtol=0)
    spread = naive["score"].std()
    assert spread > 5e-3 and np.abs(prefix["score"] - naive["score"]).max() < 1e-2 * spread


@pytest.mark.slow
def test_shared_trunk_equals_each_rm_alone_on_smollm2_weights():
    """Two SmolLM2 RMs that share 26 of 30 layers (the second's top 4 layers, norm and head redrawn; the lab's RMs
    share 22)."""
    from rewardscope.studies.sweep import vocabulary_sweeps

    rms = {}
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        rm = load_reward_model("smollm2-135m-instruct", allow_random_head=True)
        if seed == 2:
            with torch.no_grad():
                for module in (*rm.model.model.layers[-4:], rm.model.model.norm):
                    for p in module.parameters():
                        p.add_(0.05 * p.abs().mean() * torch.randn_like(p))
        rms[name] = rm
    ids = np.random.default_rng(0).choice(len(rms["a"].tokenizer), 96, replace=False)
    shared = vocabulary_sweeps(rms, {"g": PROMPT}, token_ids=ids, cache=False)
    for name, rm in rms.items():
        frame = shared[(name, "g")]
        assert frame.attrs["method"] == "shared-trunk" and frame.attrs["shared_layers"] == 26
        alone = vocabulary_sweep(rm, PROMPT, token_ids=ids, cache=False)
        assert np.abs(frame["score"] - alone["score"]).max() < 1e-3 * alone["score"].std()


# -- the paper's statistics on planted sweeps (pure pandas/statsmodels) --------------------------------

def _long(rm: str, prompt: str, tokens: list[str], scores) -> pd.DataFrame:
    return pd.DataFrame({"rm": rm, "prompt": prompt, "token_id": np.arange(len(tokens)), "token": tokens,
                         "score": np.asarray(scores, dtype=float)})


def test_shared_vocabulary_intersects_strings_and_drops_duplicates():
    sweeps = pd.concat([_long("a", "p", ["x", "y", "z", "\ufffd", "\ufffd"], [1, 2, 3, 4, 5]),
                        _long("b", "p", ["y", "x", "w", "\ufffd"], [20, 10, 30, 40]),
                        _long("b", "q", ["x"], [0])])
    wide = sweep.shared_vocabulary(sweeps, "p")
    assert list(wide.columns) == ["a", "b"] and sorted(wide.index) == ["x", "y"]  # "z"/"w" unshared, U+FFFD duplicated
    assert wide.loc["y"].tolist() == [2.0, 20.0]
    with pytest.raises(ValueError, match="prompt 'r' is not in sweeps"):
        sweep.shared_vocabulary(sweeps, "r")


def test_agreement_matrix_and_mds_recover_planted_structure():
    rng = np.random.default_rng(0)
    base = rng.normal(size=500)
    wide = pd.DataFrame({"a": base, "a2": base + 0.1 * rng.normal(size=500), "flip": -base,
                         "noise": rng.normal(size=500)})
    tau = sweep.agreement_matrix(wide)
    assert tau.loc["a", "flip"] == pytest.approx(-1) and tau.loc["a", "a2"] > 0.8 and abs(tau.loc["a", "noise"]) < 0.1
    rho = sweep.agreement_matrix(wide, method="spearman")
    assert rho.loc["a", "a2"] > tau.loc["a", "a2"]  # ρ exceeds τ for a monotone noisy relation
    xy = sweep.mds_map(tau)
    dist = lambda u, v: float(np.hypot(*(xy.loc[u] - xy.loc[v])))
    assert dist("a", "a2") < dist("a", "noise") < dist("a", "flip")
    with pytest.raises(ValueError, match="method must be"):
        sweep.agreement_matrix(wide, method="pearson")


def test_score_moments_match_a_planted_exponential():
    wide = pd.DataFrame({"exp": np.random.default_rng(1).exponential(size=4000)})
    row = sweep.score_moments(wide, n_resamples=200).loc["exp"]
    assert row["mean"] == pytest.approx(1, abs=0.05) and row["skew_low"] < 2 < row["skew_high"]


def test_valence_and_frequency_slopes_recover_planted_coefficients():
    from wordfreq import word_frequency

    lexicon = afinn_lexicon()
    assert lexicon["love"] == 3 and all(" " not in w for w in lexicon)
    words = [w for w in lexicon if word_frequency(w, "en") > 0][:600]
    value = np.array([lexicon[w] for w in words])
    log_freq = np.log(np.array([word_frequency(w, "en") for w in words]) * 1e6)
    noise = np.random.default_rng(2).normal(scale=0.05, size=len(words))
    slope = np.where(value > 0, 0.5, 0.1)  # steeper for positive words: the framing asymmetry
    score = slope * value + 0.3 * log_freq + noise
    tokens = [" " + w if i % 7 == 0 else w for i, w in enumerate(words)]  # some with a leading space
    joined = sweep.lexicon_join(_long("rm", "p", tokens, score), lexicon)
    assert len(joined) == sum(not t.startswith(" ") for t in tokens)  # the paper's join: no trimming
    assert len(sweep.lexicon_join(_long("rm", "p", tokens, score), lexicon, strip=True)) == len(tokens)
    bias = sweep.frequency_bias(joined).iloc[0]
    assert bias["low"] < bias["slope"] < bias["high"] and bias["raw_slope"] == pytest.approx(0.3, abs=0.05)
    no_freq = sweep.lexicon_join(_long("rm", "p", words, slope * value + noise), lexicon)
    slopes = sweep.valence_slopes(no_freq).set_index("valence")["slope"]
    assert slopes["positive"] / slopes["negative"] == pytest.approx(5, rel=0.15)


def test_identity_ranks_are_percentiles_within_each_sweep():
    sweeps = _long("rm", "p", ["women", " Women", "table", "chair", "gay"], [0.0, 1.0, 2.0, 3.0, 4.0])
    ranks = sweep.identity_ranks(sweeps).set_index("token")
    assert ranks.loc[" Women", "term"] == "women" and ranks.loc["gay", "percentile"] == 100
    assert ranks.loc["women", "percentile"] == 20 and "table" not in ranks.index
    with pytest.raises(ValueError, match="sweeps must be a DataFrame"):
        sweep.identity_ranks(pd.DataFrame({"x": [1]}))


def test_probe_token_ids_find_words_with_and_without_a_space(tiny):
    tok = tiny.tokenizer
    words = {"the", "you"}
    ids = sweep.probe_token_ids(tiny, words, n_random=5, seed=1)
    decoded = tok.batch_decode([[int(i)] for i in ids])
    hits = [d for d in decoded if d.strip().lower() in words]
    assert {h.strip().lower() for h in hits} == words and any(h.startswith(" ") for h in hits)
    assert len(ids) == len(hits) + 5 and np.all(np.diff(ids) > 0)
    with pytest.raises(ValueError, match="n_random must be"):
        sweep.probe_token_ids(tiny, words, n_random=-1)


def test_sweep_throughput_reports_both_methods_against_the_bound(tiny):
    table = sweep_throughput(tiny, PROMPT, n_prefix=64, n_naive=16, repeats=1, peak_sizes=(64,))
    assert list(table.index) == ["prefix", "naive"] and (table["candidates/s"] > 0).all()
    assert table.loc["prefix", "tokens per candidate"] < table.loc["naive", "tokens per candidate"]
    assert table.attrs["speedup"] == pytest.approx(table.loc["prefix", "candidates/s"] / table.loc["naive", "candidates/s"])
    assert table.attrs["vocabulary"] == len(tiny.tokenizer)
    with pytest.raises(ValueError, match="n_naive must be a positive int, got 0"):
        sweep_throughput(tiny, PROMPT, n_naive=0)


# --- chapter 3's decision rule (issue 14): intervals over tokens and words, rows that cannot fail ----------


def test_tau_interval_resamples_tokens_and_two_agreeing_rms_do_not_disagree():
    rng = np.random.default_rng(3)
    x = rng.normal(size=800)
    agree = sweep.tau_interval(x, x + 0.05 * rng.normal(size=800), n_resamples=100)
    assert agree["n"] == 800 and agree["low"] < agree["tau"] < agree["high"] and agree["low"] > sweep.AGREEMENT_NULL
    apart = sweep.tau_interval(x, x + 2 * rng.normal(size=800), n_resamples=100)
    assert apart["high"] < sweep.AGREEMENT_NULL
    rows = {r.claim: r for r in sweep.findings({"same_gold": {"a": "s1", "b": "s2", **agree}})}
    row = rows["reward models meant to measure the same thing disagree"]
    assert row.holds is False and row.unit == "tokens" and row.n == 800  # the old rule off.min() < 0.6 could not fail
    rows = {r.claim: r for r in sweep.findings({"same_gold": {"a": "s1", "b": "s2", **apart}})}
    assert rows["reward models meant to measure the same thing disagree"].holds is True
    with pytest.raises(ValueError, match="1-D of one length"):
        sweep.tau_interval(x, x[:5])


def test_vocabulary_moments_use_every_token_of_each_rm():
    rng = np.random.default_rng(4)
    tail = np.r_[rng.normal(size=3000), rng.exponential(5, size=300) + 3]  # skewed only beyond the shared words
    sweeps = pd.concat([_long("a", "p", [f"t{i}" for i in range(len(tail))], tail),
                        _long("a", "q", ["u"], [0.0])])
    full = sweep.vocabulary_moments(sweeps, "p", n_resamples=100)
    shared = sweep.score_moments(pd.DataFrame({"a": tail[:3000]}), n_resamples=100)
    assert full.loc["a", "n"] == 3300 and full.loc["a", "skew_low"] > 0.5 and shared.loc["a", "skew_high"] < 0.5
    rows = {r.claim: r for r in sweep.findings({"moments": shared, "full_moments": full})}
    assert rows["every RM's scores are positively skewed (shared vocabulary)"].holds is False
    assert rows["every RM's scores are positively skewed (each RM's whole vocabulary)"].holds is True
    assert rows["every RM's scores are positively skewed (each RM's whole vocabulary)"].n == 3300


def _planted_afinn(freq_slope: float, pos_slope: float, neg_slope: float, prompts=("best", "worst")):
    from wordfreq import word_frequency

    lexicon = afinn_lexicon()
    words = [w for w in lexicon if word_frequency(w, "en") > 0][:500]
    value = np.array([lexicon[w] for w in words])
    log_freq = np.log(np.array([word_frequency(w, "en") for w in words]) * 1e6)
    frames = []
    for k, prompt in enumerate(prompts):
        noise = np.random.default_rng(k).normal(scale=0.3, size=len(words))
        score = np.where(value > 0, pos_slope, neg_slope) * value + freq_slope * log_freq + noise
        frames.append(_long("rm", prompt, words, score))
    return sweep.lexicon_join(pd.concat(frames, ignore_index=True), lexicon)


def test_frequency_and_asymmetry_intervals_resample_words():
    up = sweep.frequency_slope_interval(_planted_afinn(0.3, 0.5, 0.5), n_resamples=60)
    down = sweep.frequency_slope_interval(_planted_afinn(-0.3, 0.5, 0.5), n_resamples=60)
    assert up["low"] > 0 and down["high"] < 0 and up["n"] == 500 and up["cases"] == 2
    # steeper among positive words under every prompt: finer where it matches "best", coarser under "worst"
    same = sweep.asymmetry_interval(_planted_afinn(0.0, 0.8, 0.1), n_resamples=60)
    assert same["low"] < 0 < same["high"] or abs(same["estimate"]) < 0.1  # +0.7 under best, −0.7 under worst
    framed = sweep.asymmetry_interval(_planted_afinn(0.0, 0.8, 0.1, prompts=("best", "greatest")), n_resamples=60)
    assert framed["low"] > 0
    results = {"frequency": down, "asymmetry": framed}
    rows = {r.claim: r for r in sweep.findings(results)}
    assert rows["frequent words score higher, valence held fixed"].holds is False
    assert rows["frequent words score higher, valence held fixed"].unit == "AFINN words"
    # no gold reads the prompt: the framing row is shown, labelled, and never counted, even when it "passes"
    asym = rows["finer discrimination where valence matches the prompt's frame"]
    assert asym.holds is None and asym.verdict == "not a test here"
    rows = {r.claim: r for r in sweep.findings({**results, "prompt_aware": True})}
    assert rows["finer discrimination where valence matches the prompt's frame"].holds is True


HETERO = "reward models meant to measure the same thing disagree"
CONTRAST = "RMs on one gold agree more than RMs on one backbone with different golds"


def _two_by_two(gold_weight: float, backbone_weight: float, noise: float = 0.3, n: int = 600, seed: int = 7
                ) -> pd.DataFrame:
    """Shared-vocabulary scores of a planted 2 x 2: golds s (sentiment) and h (helpful) on backbones D and E;
    each RM's score is gold_weight * its gold + backbone_weight * its backbone + noise * its own noise."""
    rng = np.random.default_rng(seed)
    gold = {"s": rng.normal(size=n), "h": rng.normal(size=n)}
    backbone = {"D": rng.normal(size=n), "E": rng.normal(size=n)}
    return pd.DataFrame({f"{g}-{b}": gold_weight * gold[g] + backbone_weight * backbone[b] + noise * rng.normal(size=n)
                         for g in gold for b in backbone})


PAIRS = [["s-D", "s-E"], ["h-D", "h-E"]]  # same gold, different backbones; each listed in backbone order D, E
BACKBONES = {"s-D": "D", "h-D": "D", "s-E": "E", "h-E": "E"}


def test_same_gold_pairs_takes_the_old_single_pair_and_rejects_malformed_pairs():
    from rewardscope.runner.param_rules import RuleError, check_values

    assert sweep.same_gold_pairs(["a", "b"]) == [("a", "b")]  # the old same_gold_pair
    assert sweep.same_gold_pairs([["a", "b"], ("c", "d")]) == [("a", "b"), ("c", "d")]
    assert sweep.same_gold_pairs([]) == []
    for bad, message in ((["a", "a"], "two different"), ([["a", "b"], ["b", "a"]], "given twice"),
                         ([["a"]], "two reward-model specs"), ("a,b", "must be a list")):
        with pytest.raises(ValueError, match=message):
            sweep.same_gold_pairs(bad)
    check_values({"same_gold_pairs": PAIRS, "same_gold_pair": []})  # the notebook's defaults pass
    check_values({"same_gold_pairs": [], "same_gold_pair": ["a", "b"]})
    for values, message in (({"same_gold_pairs": [["a", "a"]]}, "item 0 must be a pair"),
                            ({"same_gold_pairs": [["a", "b"], ["b", "a"]]}, "names one pair twice"),
                            ({"same_gold_pair": ["a"]}, "must be \\[a, b\\]")):
        with pytest.raises(RuleError, match=message):
            check_values(values)


def test_heterogeneity_decides_every_same_gold_pair_and_the_gold_versus_backbone_contrast():
    from rewardscope.findings import summary

    # the backbone decides the ranking: same-gold pairs disagree (both below the tolerance) and agree less than
    # same-backbone pairs, so the contrast does not hold
    backbone = sweep.heterogeneity(_two_by_two(0.3, 1.0), PAIRS, backbones=BACKBONES, n_resamples=60)
    assert [(p["a"], p["b"]) for p in backbone["same_gold"]] == [("s-D", "s-E"), ("h-D", "h-E")]
    assert backbone["contrast"]["same_backbone"] == ["s-D ~ h-D", "s-E ~ h-E"] and backbone["contrast"]["n"] == 600
    assert backbone["contrast"]["high"] < 0 and backbone["same_gold_missing"] is None
    rows = {r.claim: r for r in sweep.findings(backbone)}
    assert rows[HETERO].holds is True and rows[HETERO].unit == "tokens" and rows[HETERO].n == 600
    assert "2 of 2 pairs below" in rows[HETERO].here and "each of the 2 same-gold pairs" in rows[HETERO].rule
    assert rows[CONTRAST].holds is False and rows[CONTRAST].unit == "tokens" and rows[CONTRAST].n == 600
    # the gold decides it: the same-gold pairs agree (above the tolerance) and more than the same-backbone pairs
    gold = sweep.heterogeneity(_two_by_two(1.0, 0.1, noise=0.05), PAIRS, backbones=BACKBONES, n_resamples=60)
    rows = {r.claim: r for r in sweep.findings(gold)}
    assert rows[HETERO].holds is False and rows[CONTRAST].holds is True and gold["contrast"]["low"] > 0
    # every pair must disagree: one agreeing pair (h-E nearly a copy of h-D) fails the claim and is the one shown
    mixed = _two_by_two(0.3, 1.0)
    mixed["h-E"] = mixed["h-D"] + 0.01 * np.random.default_rng(8).normal(size=len(mixed))
    result = sweep.heterogeneity(mixed, PAIRS, n_resamples=60)
    row = {r.claim: r for r in sweep.findings(result)}[HETERO]
    assert row.holds is False and "1 of 2 pairs below" in row.here and "τ(h-D, h-E)" in row.here
    # pairs listed in the other backbone order are matched by the backbones, not by position
    swapped = sweep.heterogeneity(_two_by_two(0.3, 1.0), [["s-D", "s-E"], ["h-E", "h-D"]], backbones=BACKBONES,
                                  n_resamples=60)
    assert swapped["contrast"]["same_backbone"] == ["s-D ~ h-D", "s-E ~ h-E"]
    assert swapped["contrast"]["estimate"] == pytest.approx(backbone["contrast"]["estimate"])
    assert summary(sweep.findings(backbone)) == (1, 2)


def test_heterogeneity_without_a_two_by_two_is_not_a_test():
    scores = _two_by_two(0.3, 1.0)
    # one same-gold pair (the paper profile's Skywork pair): the paper's claim is a test, the contrast is not
    one = sweep.heterogeneity(scores, [PAIRS[0]], backbones=BACKBONES, n_resamples=40)
    rows = {r.claim: r for r in sweep.findings(one)}
    assert rows[HETERO].holds is True and rows[CONTRAST].holds is None
    assert "not a 2 × 2" in rows[CONTRAST].rule and "1 same-gold pair" in rows[CONTRAST].rule
    # a declared pair whose models are not in this run: the other is tested, and the row says which is absent
    partial = sweep.heterogeneity(scores.drop(columns=["h-E"]), PAIRS, backbones=BACKBONES, n_resamples=40)
    rows = {r.claim: r for r in sweep.findings(partial)}
    assert len(partial["same_gold"]) == 1 and "not in this run: ['h-D', 'h-E']" in rows[HETERO].here
    assert rows[CONTRAST].holds is None
    # no declared pair in this run (smoke's tiny RMs): neither row is a test
    none = sweep.heterogeneity(scores, [["sentiment-smollm2", "sentiment-minilm"]], n_resamples=40)
    rows = {r.claim: r for r in sweep.findings(none)}
    assert rows[HETERO].holds is None and "not among this run's reward models" in rows[HETERO].rule
    assert rows[CONTRAST].holds is None
    # "same-gold" pairs that share a backbone do not cross gold and backbone
    crossed_wrong = sweep.heterogeneity(scores, [["s-D", "h-D"], ["s-E", "h-E"]], backbones=BACKBONES, n_resamples=40)
    assert crossed_wrong["contrast"] is None and "shares its backbone" in crossed_wrong["contrast_missing"]
    assert sweep.heterogeneity(scores, [], n_resamples=40)["same_gold_missing"].startswith("no same-gold pairs")


def test_chapter_3_findings_without_measurements_are_not_tests():
    from rewardscope.findings import summary

    rows = sweep.findings({"same_gold_missing": "the pair is not among this run's reward models"})
    assert all(r.holds is None for r in rows) and summary(rows) == (0, 0)
    assert "not among this run" in rows[0].rule


# --- shared-trunk sweeps: models that share frozen bottom layers compute them once --------------------------


def _tiny_family(root: Path, top_seed: int | None, bottom_change: int | None = None) -> Path:
    """A 4-layer tiny Llama RM (seed 5) saved at ``root``: with ``top_seed`` its top 2 layers, final norm and head
    are redrawn (a sibling fine-tuned from the same frozen bottom); ``bottom_change`` nudges one weight of that
    layer by 1e-6 (a different bottom that no name or config reveals)."""
    import shutil

    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rewardscope.zoo import resolve

    source = resolve("tiny-llama-rm")
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("model.safetensors", "manifest.json"))
    config = LlamaConfig.from_pretrained(source)
    config.num_hidden_layers = 4
    torch.manual_seed(5)
    model = LlamaForSequenceClassification(config).eval()
    with torch.no_grad():
        if top_seed is not None:
            generator = torch.Generator().manual_seed(top_seed)
            for module in (*model.model.layers[2:], model.model.norm, model.score):
                for p in module.parameters():
                    p.add_(0.3 * p.abs().mean() * torch.randn(p.shape, generator=generator))
        if bottom_change is not None:
            model.model.layers[bottom_change].mlp.down_proj.weight[0, 0] += 1e-6
    model.save_pretrained(root, safe_serialization=True)
    return root


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    return {name: load_reward_model(str(_tiny_family(root / name, *args))) for name, args in {
        "base": (None,), "sibling": (11,), "layer0": (11, 0), "layer1": (11, 1)}.items()}


TWO_PROMPTS = {"greatest": PROMPTS["greatest"], "worst": PROMPTS["worst"]}


def test_shared_trunk_sweeps_equal_each_model_swept_alone(family):
    from rewardscope.studies.sweep import vocabulary_sweeps

    rms = {"base": family["base"], "sibling": family["sibling"]}
    shared = vocabulary_sweeps(rms, TWO_PROMPTS, batch_size=100, cache=False)
    assert list(shared) == [(r, p) for r in rms for p in TWO_PROMPTS]
    for (name, prompt), frame in shared.items():
        alone = vocabulary_sweep(rms[name], TWO_PROMPTS[prompt], method="prefix", cache=False)
        assert frame.attrs["method"] == "shared-trunk" and frame.attrs["shared_layers"] == 2
        assert frame.attrs["shared_with"] == [n for n in rms if n != name]
        pd.testing.assert_frame_equal(frame.drop(columns="score"), alone.drop(columns="score"))
        spread = alone["score"].std()  # the agreement is not between (near) constants
        assert spread > 5e-3 and np.abs(frame["score"] - alone["score"]).max() < 1e-3 * spread
    # the siblings really differ above the trunk
    a, b = shared[("base", "greatest")]["score"], shared[("sibling", "greatest")]["score"]
    assert np.abs(a - b).max() > a.std()
    unshared = vocabulary_sweeps(rms, TWO_PROMPTS, token_ids=range(50), cache=False, share=False)
    assert unshared[("base", "worst")].attrs["method"] == "prefix"
    half = vocabulary_sweeps(rms, {"g": PROMPT}, token_ids=range(64), dtype="bfloat16", cache=False)
    assert half[("sibling", "g")].attrs["dtype"] == "bfloat16"
    np.testing.assert_allclose(half[("sibling", "g")]["score"], shared[("sibling", "greatest")]["score"][:64], atol=0.05)


def test_sharing_stops_at_the_first_layer_whose_weights_differ(family):
    from rewardscope.studies.sweep import vocabulary_sweeps
    from rewardscope.studies.sweep.trunk import shared_depth

    base = family["base"].model
    assert shared_depth([base, family["sibling"].model]) == 2
    assert shared_depth([base, family["layer1"].model]) == 1  # one weight off by 1e-6 in layer 1
    assert shared_depth([base, family["layer0"].model]) == 0
    assert shared_depth([base, family["sibling"].model, family["layer1"].model]) == 1
    ids = range(200)
    out = vocabulary_sweeps({"base": family["base"], "layer0": family["layer0"]}, TWO_PROMPTS, ids, cache=False)
    assert {f.attrs["method"] for f in out.values()} == {"prefix"}  # nothing shared: each swept alone
    lazy = {"base": lambda: family["base"], "layer1": lambda: family["layer1"], "bert": lambda: load_reward_model(
        "tiny-bert-rm")}  # loaders are called to fingerprint, then again to sweep
    out = vocabulary_sweeps(lazy, {"greatest": PROMPT}, range(40), cache=False)
    assert out[("layer1", "greatest")].attrs["shared_layers"] == 1 and out[("bert", "greatest")].attrs["method"] == "naive"
    alone = vocabulary_sweep(family["layer1"], PROMPT, token_ids=range(40), cache=False)
    np.testing.assert_allclose(out[("layer1", "greatest")]["score"], alone["score"], atol=1e-5, rtol=0)


def test_shared_trunk_sweeps_are_cached_per_model_and_resume(family, fresh_cache, monkeypatch):
    from rewardscope.studies.sweep import vocabulary_sweeps

    rms = {"base": family["base"], "sibling": family["sibling"]}
    reference = vocabulary_sweeps(rms, {"g": PROMPT}, range(300), cache=False)
    calls = []
    real = sweep_module._score_shared

    def flaky(engine, block, bar=None):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(len(block))
        return real(engine, block, bar)

    monkeypatch.setattr(sweep_module, "_score_shared", flaky)
    with pytest.raises(KeyboardInterrupt):
        vocabulary_sweeps(rms, {"g": PROMPT}, range(300), chunk_size=64, batch_size=64)
    monkeypatch.setattr(sweep_module, "_score_shared", lambda e, b, bar=None: (calls.append(len(b)), real(e, b, bar))[1])
    resumed = vocabulary_sweeps(rms, {"g": PROMPT}, range(300), chunk_size=64, batch_size=64)
    assert calls == [64, 64, 64, 64, 44]  # both models' first two chunks were stored; the rest once for both
    for key, frame in resumed.items():
        pd.testing.assert_frame_equal(frame, reference[key], check_exact=False, atol=1e-6)
    again = vocabulary_sweeps(rms, {"g": PROMPT}, range(300), chunk_size=64, batch_size=64)
    assert len(calls) == 5 and again[("base", "g")].attrs["cache"] == resumed[("base", "g")].attrs["cache"]
    alone = vocabulary_sweep(family["base"], PROMPT, token_ids=range(300), chunk_size=64)
    assert alone.attrs["cache"] != resumed[("base", "g")].attrs["cache"]  # another method, another entry
    assert resumed[("base", "g")].attrs["cache"] != resumed[("sibling", "g")].attrs["cache"]


@pytest.mark.parametrize("kwargs, match", [
    ({"rms": {}}, "rms must hold at least one reward model"),
    ({"rms": "tiny-llama-rm"}, "rms must be a dict of name -> reward model"),
    ({"rms": {"a": "tiny-llama-rm"}}, r"rms\['a'\] must be a Hugging Face reward model"),
    ({"prompts": []}, "prompts must hold at least one prompt"),
    ({"prompts": "What?"}, "prompts must be a dict of name -> prompt or a list of prompts, got the string"),
    ({"prompts": {"x": " "}}, r"prompts\['x'\] must be a non-empty string"),
    ({"token_ids": [10**6]}, r"token_ids must lie in \[0, "),
    ({"batch_size": 0}, "batch_size must be a positive int"),
    ({"share": "yes"}, "share must be True or False"),
    ({"dtype": "int8"}, "dtype must be one of"),
])
def test_shared_trunk_bad_input_fails_with_one_line(family, kwargs, match):
    from rewardscope.studies.sweep import vocabulary_sweeps

    args = {"rms": {"base": family["base"], "sibling": family["sibling"]}, "prompts": TWO_PROMPTS, **kwargs}
    with pytest.raises(ValueError, match=match) as err:
        vocabulary_sweeps(args.pop("rms"), args.pop("prompts"), cache=False, **args)
    assert "\n" not in str(err.value)
