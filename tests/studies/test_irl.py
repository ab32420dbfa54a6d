"""Max-margin IRL: planted linear rewards, whole-text training, validation-only selection, recovery metrics."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import rankdata

from rewardscope import load_reward_model
from rewardscope.data import chatterbot_prompts
from rewardscope.stats import bootstrap_ci
from rewardscope.studies.irl.irl import (
    PAPER_RESTART_ACCURACY_SD,
    calibrate_threshold,
    interval_over_seeds,
    irl_loss,
    max_margin_irl,
    pair_bootstrap_ci,
    recovery_metrics,
    sd_interval,
    select_restart,
    split_by_prompt,
)
from rewardscope.studies.irl.irl import findings as irl_findings
from rewardscope.training.train import BTConfig, pairwise_accuracy
from rewardscope.zoo import read_sidecar


def _cosine(a, b) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _boltzmann_pairs(w_true, n, beta=3.0, seed=0, features=None, dim=None):
    """Items x ~ N(0, I) (or features(x)); of two items, a is preferred with probability
    σ(β (w·x_a − w·x_b)) (Boltzmann choice)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, dim or len(w_true))), rng.normal(size=(n, dim or len(w_true)))
    if features is not None:
        a, b = features(a), features(b)
    a_wins = rng.random(n) < 1.0 / (1.0 + np.exp(-beta * (a - b) @ w_true))
    return np.where(a_wins[:, None], a, b), np.where(a_wins[:, None], b, a)


# --------------------------------------------------------------------------------------------------
# The loss


def test_irl_loss_is_the_papers_asymmetric_loss_capped_at_the_margin():
    d = np.array([-3.0, -0.5, 0.0, 0.25, 0.9, 1.0, 7.0])
    paper = np.where(d > 0, -d, -2 * d)  # −d if d > 0, −2d otherwise
    capped = irl_loss(d, "max_margin", margin=1.0)
    np.testing.assert_allclose(capped[d < 1], paper[d < 1])
    np.testing.assert_allclose(capped[d >= 1], -1.0)  # no gain past the margin: the reward scale cannot drift
    np.testing.assert_allclose(capped, np.maximum(0, 1 - d) + np.maximum(0, -d) - 1)  # hinge + extra slope below 0
    np.testing.assert_allclose(irl_loss(d, "hinge", margin=2.0), np.maximum(0.0, 2.0 - d))
    np.testing.assert_allclose(irl_loss(d, "logistic"), -np.log(1 / (1 + np.exp(-d))))
    for loss in ("max_margin", "hinge", "logistic"):  # the torch path (used in training) equals the numpy one
        np.testing.assert_allclose(irl_loss(torch.tensor(d), loss).numpy(), irl_loss(d, loss))


# --------------------------------------------------------------------------------------------------
# Linear rewards from feature arrays


@pytest.mark.parametrize("loss", ["max_margin", "logistic", "hinge"])
def test_linear_irl_recovers_a_planted_reward_from_boltzmann_pairs(loss):
    w_true = np.random.default_rng(1).normal(size=8)
    preferred, dispreferred = _boltzmann_pairs(w_true, 1500)
    assert 0.05 < np.mean((preferred - dispreferred) @ w_true < 0) < 0.3  # noisy choices, not separable
    result = max_margin_irl(preferred, dispreferred, loss=loss, n_restarts=3)
    assert result.weights.shape == (8,)
    assert _cosine(result.weights, w_true) >= 0.95
    assert result.restart_weights.shape == (3, 8)
    restarts = result.restarts
    assert len(restarts) == 3 and restarts["selected"].sum() == 1
    assert restarts.loc[restarts["selected"], "restart"].item() == result.best_restart
    assert restarts["validation_accuracy"].iloc[result.best_restart] == restarts["validation_accuracy"].max()
    assert len(result.validation_index) == 300 and result.metrics["n_train_pairs"] == 1200
    X = np.random.default_rng(2).normal(size=(5, 8))
    np.testing.assert_allclose(result.score(X), X @ result.weights)


def test_gradients_are_zeroed_before_every_step(monkeypatch):
    """Each step's gradient is that of one batch: |ℓ'| ≤ 2, so its norm is at most 2 max‖x⁺ − x⁻‖."""
    w_true = np.array([1.0, -1.0, 0.5, 0.0])
    preferred, dispreferred = _boltzmann_pairs(w_true, 400, seed=3)
    bound = 2 * np.linalg.norm(preferred - dispreferred, axis=1).max()
    log = max_margin_irl(preferred, dispreferred, epochs=20, batch_size=32).log
    assert len(log) == 20 * 10 and log["grad_norm"].max() <= bound
    # the released code never zeroed gradients; with that bug the same check fails
    monkeypatch.setattr(torch.optim.Optimizer, "zero_grad", lambda self, set_to_none=True: None)
    leaky = max_margin_irl(preferred, dispreferred, epochs=20, batch_size=32).log
    assert leaky["grad_norm"].max() > bound


def test_capped_margin_keeps_the_reward_scale_bounded():
    """On separable pairs the capped loss stops once every pair clears the margin; Bradley–Terry keeps scaling up."""
    rng = np.random.default_rng(1)
    w_true = rng.normal(size=5)
    w_true /= np.linalg.norm(w_true)
    a, b = rng.normal(size=(800, 5)), rng.normal(size=(800, 5))
    gap = (a - b) @ w_true
    keep = np.abs(gap) > 0.5
    preferred = np.where((gap > 0)[keep, None], a[keep], b[keep])
    dispreferred = np.where((gap > 0)[keep, None], b[keep], a[keep])
    norm = {(loss, epochs): np.linalg.norm(max_margin_irl(preferred, dispreferred, loss=loss, epochs=epochs).weights)
            for loss in ("max_margin", "logistic") for epochs in (50, 200)}
    assert norm["max_margin", 200] / norm["max_margin", 50] < 1.1
    assert norm["logistic", 200] / norm["logistic", 50] > 1.3


def test_linear_irl_is_deterministic_given_seed():
    preferred, dispreferred = _boltzmann_pairs(np.array([1.0, 2.0, -1.0]), 300)
    first = max_margin_irl(preferred, dispreferred, seed=4, n_restarts=2, epochs=10)
    again = max_margin_irl(preferred, dispreferred, seed=4, n_restarts=2, epochs=10)
    other = max_margin_irl(preferred, dispreferred, seed=5, n_restarts=2, epochs=10)
    np.testing.assert_array_equal(first.restart_weights, again.restart_weights)
    np.testing.assert_array_equal(first.validation_index, again.validation_index)
    assert first.restarts.equals(again.restarts)
    assert not np.array_equal(first.restart_weights, other.restart_weights)


# --------------------------------------------------------------------------------------------------
# Validation-only selection


def test_best_restart_is_chosen_on_validation_pairs_alone():
    """A duplicated feature makes the reward non-identifiable: restarts split its weight differently and train
    equally well. Two validation sets that each favour a different restart select that restart, and the
    restarts themselves are untouched by the validation data."""
    duplicate = lambda x: np.column_stack([x, x[:, 0]])  # column 3 copies column 0 in the demonstrations
    preferred, dispreferred = _boltzmann_pairs(np.array([0.5, -1.0, 0.5, 0.5]), 600, features=duplicate, dim=3)
    reference = max_margin_irl(preferred, dispreferred, n_restarts=3, validation=(preferred[:2], dispreferred[:2]),
                               epochs=30)
    runs = {}
    rng = np.random.default_rng(7)
    for favoured in (0, 2):
        w = reference.restart_weights[favoured]
        a, b = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))  # columns 0 and 3 independent here
        a_wins = (a - b) @ w > 0
        validation = (np.where(a_wins[:, None], a, b), np.where(a_wins[:, None], b, a))
        runs[favoured] = max_margin_irl(preferred, dispreferred, n_restarts=3, validation=validation, epochs=30)
    w0, w2 = runs[0].restart_weights[0], runs[0].restart_weights[2]
    assert abs((w0[0] - w0[3]) - (w2[0] - w2[3])) > 0.1  # the restarts differ along the unidentified direction
    np.testing.assert_array_equal(runs[0].restart_weights, runs[2].restart_weights)  # validation never trains
    assert runs[0].best_restart == 0 and runs[2].best_restart == 2
    for run in runs.values():
        assert run.restarts["validation_accuracy"].iloc[run.best_restart] == 1.0
        assert run.validation_index is None


def test_held_out_validation_rows_never_train():
    """Poison the held-out rows (swap preferred and dispreferred): the fitted restarts do not change,
    only their validation scores do."""
    preferred, dispreferred = _boltzmann_pairs(np.array([1.0, -2.0, 0.5, 1.0]), 400)
    clean = max_margin_irl(preferred, dispreferred, validation=0.25, n_restarts=2, epochs=20)
    held = clean.validation_index
    poisoned_pref, poisoned_dispref = preferred.copy(), dispreferred.copy()
    poisoned_pref[held], poisoned_dispref[held] = dispreferred[held], preferred[held]
    poisoned = max_margin_irl(poisoned_pref, poisoned_dispref, validation=0.25, n_restarts=2, epochs=20)
    np.testing.assert_array_equal(poisoned.validation_index, held)
    np.testing.assert_array_equal(poisoned.restart_weights, clean.restart_weights)
    np.testing.assert_allclose(poisoned.restarts["validation_accuracy"], 1 - clean.restarts["validation_accuracy"])
    # the same training rows with the held-out rows given explicitly: the same fit
    train = np.setdiff1d(np.arange(len(preferred)), held)
    explicit = max_margin_irl(preferred[train], dispreferred[train], validation=(preferred[held], dispreferred[held]),
                              n_restarts=2, epochs=20)
    np.testing.assert_array_equal(explicit.restart_weights, clean.restart_weights)


# --------------------------------------------------------------------------------------------------
# Texts through a reward-model backbone


_WORDS = "the a cat dog house tree blue red small big runs walks green old new".split()


def _middle_key_pairs(n, seed):
    """Preferred and dispreferred texts share their first five and last five words; only the middle differs.
    A reward that saw only the start or the end of a text (e.g. the released code's last character) could
    not rank them."""
    rng = np.random.default_rng(seed)
    preferred, dispreferred = [], []
    for _ in range(n):
        head, tail = " ".join(rng.choice(_WORDS, 5)), " ".join(rng.choice(_WORDS, 5))
        preferred.append(f"{head} thank you {tail}")
        dispreferred.append(f"{head} go away {tail}")
    return preferred, dispreferred


@pytest.mark.parametrize("backbone, with_prompts, n_restarts", [("tiny-llama", True, 2), ("tiny-bert-rm", False, 1)])
def test_text_irl_trains_on_whole_texts(tmp_path, backbone, with_prompts, n_restarts):
    preferred, dispreferred = _middle_key_pairs(120, seed=0)
    assert all(p[:12] == d[:12] and p[-12:] == d[-12:] for p, d in zip(preferred, dispreferred))
    prompts = chatterbot_prompts()[:120] if with_prompts else None
    config = BTConfig(backbone=backbone, epochs=3, learning_rate=2e-3, batch_size=16)
    result = max_margin_irl(preferred, dispreferred, prompts=prompts, n_restarts=n_restarts, config=config,
                            output_dir=tmp_path / "rm", progress=False)
    assert len(result.restarts) == n_restarts and result.restarts["validation_accuracy"].max() >= 0.9
    assert result.log["loss"].iloc[-3:].mean() < result.log["loss"].iloc[:3].mean()
    sidecar = read_sidecar(result.path)
    assert sidecar["kind"] == "reward-model" and sidecar["metrics"]["best_restart"] == result.best_restart

    test_pref, test_dispref = _middle_key_pairs(40, seed=1)  # unseen texts
    test_prompts = chatterbot_prompts()[200:240] if with_prompts else [""] * 40
    rm = load_reward_model(str(result.path))  # an ordinary HF reward-model directory
    chosen, rejected = rm.score(test_prompts, test_pref), rm.score(test_prompts, test_dispref)
    assert pairwise_accuracy(chosen, rejected) >= 0.9
    np.testing.assert_allclose(result.score(test_pref, prompts=test_prompts if with_prompts else None), chosen)

    # the saved model is the selected restart: its validation loss is the one reported for that restart
    held = result.validation_index
    held_prompts = [prompts[i] for i in held] if with_prompts else [""] * len(held)
    margins = rm.score(held_prompts, [preferred[i] for i in held]) - rm.score(held_prompts, [dispreferred[i] for i in held])
    selected = result.restarts.iloc[result.best_restart]
    assert irl_loss(margins).mean() == pytest.approx(selected["validation_loss"], abs=1e-4)


@pytest.mark.parametrize("part", [lambda text: text[-1:], lambda text: text[:12], lambda text: text[-12:]],
                         ids=["last-character", "start", "end"])
def test_the_planted_pairs_defeat_a_reward_that_reads_part_of_each_text(tmp_path, monkeypatch, part):
    """The check above can fail: scoring only part of each text (the released code's last character) leaves
    every validation pair tied, so no restart ranks them."""
    from rewardscope import hf

    real = hf.reward_inputs
    monkeypatch.setattr(hf, "reward_inputs", lambda tokenizer, architecture, prompts, responses, *args: real(
        tokenizer, architecture, prompts, [part(r) for r in responses], *args))
    preferred, dispreferred = _middle_key_pairs(60, seed=0)
    config = BTConfig(backbone="tiny-bert-rm", epochs=2, learning_rate=2e-3, batch_size=16)
    result = max_margin_irl(preferred, dispreferred, config=config, output_dir=tmp_path / "rm", progress=False)
    assert result.restarts["validation_accuracy"].max() == 0.0  # d = 0 on every pair: never strictly above


# --------------------------------------------------------------------------------------------------
# Recovery metrics against the true reward


def _brute_kendall(x, y):
    pairs = list(combinations(range(len(x)), 2))
    sign = [np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in pairs]
    return sum(sign) / len(pairs)


def test_recovery_metrics_match_plain_references():
    rng = np.random.default_rng(0)
    true = rng.normal(size=60)
    recovered = 0.7 * true + rng.normal(0, 0.6, 60) + 0.3
    m = recovery_metrics(true, recovered, threshold=0.25)
    high = true > 0
    for cut, suffix in ((0.0, "at_zero"), (0.25, "calibrated")):
        predicted = recovered > cut
        tp_low = np.sum(~predicted & ~high)  # F1 of the low (toxic) class, as the paper reports
        precision, recall = tp_low / np.sum(~predicted), tp_low / np.sum(~high)
        assert m[f"accuracy_{suffix}"] == pytest.approx(np.mean(predicted == high))
        assert m[f"f1_{suffix}"] == pytest.approx(2 * precision * recall / (precision + recall))
    wins = recovered[high][:, None] - recovered[~high][None, :]
    assert m["auroc"] == pytest.approx(np.mean(wins > 0) + 0.5 * np.mean(wins == 0))  # P(high outranks low)
    assert m["pearson"] == pytest.approx(np.corrcoef(true, recovered)[0, 1])
    assert m["spearman"] == pytest.approx(np.corrcoef(rankdata(true), rankdata(recovered))[0, 1])
    assert m["kendall_tau"] == pytest.approx(_brute_kendall(true, recovered))
    assert m["n"] == 60 and m["n_high"] == high.sum() and m["threshold"] == 0.25
    high_f1 = recovery_metrics(true, recovered, positive="high")["f1_at_zero"]
    tp = np.sum((recovered > 0) & high)
    assert high_f1 == pytest.approx(2 * tp / (np.sum(recovered > 0) + high.sum()))
    assert np.isnan(recovery_metrics(true, recovered)["accuracy_calibrated"])


def test_calibrated_threshold_is_the_best_cut_on_validation_and_undoes_an_offset():
    rng = np.random.default_rng(1)
    true = rng.normal(size=200)
    recovered = true + rng.normal(0, 0.5, 200)
    val, test = slice(0, 100), slice(100, 200)
    cut = calibrate_threshold(true[val], recovered[val])
    grid = np.concatenate([[-1e9], np.sort(recovered[val]), [1e9]])
    grid = (grid[:-1] + grid[1:]) / 2  # every distinct cut, brute force
    best = max(np.mean((recovered[val] > c) == (true[val] > 0)) for c in grid)
    assert np.mean((recovered[val] > cut) == (true[val] > 0)) == best
    # pairwise losses cannot identify the offset: shift the recovered reward by 5
    plain = recovery_metrics(true[test], recovered[test], cut)
    shifted = recovery_metrics(true[test], recovered[test] + 5, calibrate_threshold(true[val], recovered[val] + 5))
    assert shifted["accuracy_at_zero"] == np.mean(true[test] > 0) < plain["accuracy_at_zero"]  # threshold 0 breaks
    for key in ("accuracy_calibrated", "f1_calibrated", "auroc", "pearson", "spearman", "kendall_tau"):
        assert shifted[key] == pytest.approx(plain[key])  # offset-free metrics do not


# --------------------------------------------------------------------------------------------------
# Failure modes


_X = np.random.default_rng(0).normal(size=(10, 3))
_Y = _X + 1.0


@pytest.mark.parametrize("args, kwargs, message", [
    ((_X, _Y[:, :2]), {}, "shape"),
    ((_X, _Y[:9]), {}, "shape"),
    ((_X[:, 0], _Y[:, 0]), {}, "2-D"),
    ((np.empty((0, 3)), np.empty((0, 3))), {}, "non-empty"),
    (([], []), {}, "2-D"),
    ((_X, _Y), {"loss": "squared"}, "loss must be one of"),
    ((_X, _Y), {"n_restarts": 0}, "n_restarts"),
    ((_X, _Y), {"margin": 0.0}, "margin"),
    ((_X, _Y), {"seed": -1}, "seed"),
    ((_X, _Y), {"validation": 1.5}, "validation"),
    ((_X, _Y), {"validation": (_X,)}, "validation"),
    ((_X, _Y), {"validation": (_X[:, :2], _Y[:, :2])}, "columns"),
    ((_X, _Y), {"epochs": 0}, "epochs"),
    ((_X, _Y), {"learning_rate": -1.0}, "learning_rate"),
    ((_X, _X), {}, "identical"),
    ((np.where(np.isin(np.arange(10), [3])[:, None], np.nan, _X), _Y), {}, "non-finite"),
    ((_X[:1], _Y[:1]), {}, "at least 2"),
    ((_X, _Y), {"prompts": ["p"] * 10}, "prompts is only for texts"),
    ((_X, _Y), {"config": BTConfig(backbone="tiny-llama")}, "config, output_dir and device are for texts"),
    ((["a", "b"], _Y[:2]), {}, "must be all strings"),
    ((["a", "b"], ["c", "d"]), {}, "config=BTConfig"),
    ((["a", "b"], ["c"]), {}, "pair up"),
    ((["a", "b"], ["c", "d"]), {"prompts": ["p"]}, "pair up"),
    ((["a", "b"], ["a", "d"]), {}, "identical"),
    ((["a", "b"], ["c", "d"]), {"config": BTConfig(backbone="tiny-llama", seed=3)}, "config.seed"),
    ((["a", "b"], ["c", "d"]), {"config": BTConfig(backbone="tiny-llama")}, "output_dir"),
    ((["a", "b"], ["c", "d"]), {"config": BTConfig(backbone="tiny-llama"), "batch_size": 0, "output_dir": "x"},
     "batch_size"),
    (("ab", "cd"), {}, "2-D|single string"),
])
def test_max_margin_irl_rejects_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        max_margin_irl(*args, **kwargs)


def test_text_irl_refuses_a_non_empty_output_dir_and_mismatched_validation(tmp_path):
    (tmp_path / "rm").mkdir()
    (tmp_path / "rm" / "x").write_text("x")
    config = BTConfig(backbone="tiny-llama")
    with pytest.raises(ValueError, match="not an empty directory"):
        max_margin_irl(["a b", "c d"], ["e f", "g h"], config=config, output_dir=tmp_path / "rm")
    with pytest.raises(ValueError, match="same kind"):
        max_margin_irl(["a b", "c d"], ["e f", "g h"], config=config, output_dir=tmp_path / "new",
                       validation=(_X, _Y))
    with pytest.raises(ValueError, match="carry prompts"):
        max_margin_irl(["a b", "c d"], ["e f", "g h"], prompts=["p", "q"], config=config, output_dir=tmp_path / "new",
                       validation=(["i"], ["j"]))


def test_result_scoring_and_metric_inputs_are_checked():
    result = max_margin_irl(_X, _Y, epochs=1)
    with pytest.raises(ValueError, match="features"):
        result.score(np.ones((2, 4)))
    with pytest.raises(ValueError, match="linear reward"):
        result.score(["a text"])
    with pytest.raises(ValueError, match="pair up"):
        recovery_metrics([1.0, -1.0, 2.0], [0.5, 0.2])
    with pytest.raises(ValueError, match="one side of true_threshold"):
        recovery_metrics([1.0, 2.0, 3.0], [0.5, 0.2, 0.1])
    with pytest.raises(ValueError, match="non-finite"):
        recovery_metrics([1.0, -1.0], [np.nan, 0.2])
    with pytest.raises(ValueError, match="positive"):
        recovery_metrics([1.0, -1.0], [0.5, 0.2], positive="toxic")
    with pytest.raises(ValueError, match="threshold"):
        recovery_metrics([1.0, -1.0], [0.5, 0.2], threshold=float("nan"))
    with pytest.raises(ValueError, match="one side of true_threshold"):
        calibrate_threshold([1.0, 2.0], [0.5, 0.2], true_threshold=5.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        irl_loss(np.zeros(3), "squared")
    with pytest.raises(ValueError, match="margin"):
        irl_loss(np.zeros(3), margin=-1.0)


def test_backbone_options_give_a_base_lm_backbone_a_template_saved_with_the_reward_model(tmp_path, templateless_llama):
    preferred, dispreferred = _middle_key_pairs(12, seed=0)
    config = BTConfig(backbone=str(templateless_llama), epochs=1, learning_rate=2e-3, batch_size=8)
    with pytest.raises(ValueError, match="no chat template"):
        max_margin_irl(preferred, dispreferred, config=config, output_dir=tmp_path / "refused", progress=False)
    with pytest.raises(ValueError, match="unknown option.*chat_templat"):
        max_margin_irl(preferred, dispreferred, config=config, output_dir=tmp_path / "typo", progress=False,
                       backbone_options={"chat_templat": "plain"})
    # a policy's load options pass as they are: dtype and device are not the backbone's
    result = max_margin_irl(preferred, dispreferred, config=config, output_dir=tmp_path / "rm", progress=False,
                            backbone_options={"chat_template": "plain", "dtype": "bfloat16"})
    rm = load_reward_model(str(result.path))  # loads without options: the template was saved with it
    assert rm.architecture == "decoder" and np.isfinite(rm.score(["hi"], [preferred[0]])).all()
    assert read_sidecar(result.path)["backbone_options"] == {"chat_template": "plain"}


# --------------------------------------------------------------------------------------------------
# The paper-faithful arm: the released code's bugs, put back on purpose


def _replay_adamw(delta, w0, *, steps, learning_rate, accumulate, unbounded=False, margin=1.0):
    """AdamW by hand on the full batch: each step's fresh gradient, or (accumulate) the sum of all of them so far."""
    w = torch.nn.Parameter(w0.clone())
    optimiser = torch.optim.AdamW([w], lr=learning_rate)
    total, norms = torch.zeros_like(w), []
    for _ in range(steps):
        d = delta @ w
        loss = (torch.maximum(-2 * d, -d) if unbounded else irl_loss(d, "max_margin", margin)).mean()
        (grad,) = torch.autograd.grad(loss, w)
        total = total + grad if accumulate else grad
        w.grad = total.clone()
        norms.append(total.norm().item())
        optimiser.step()
    return w.detach().numpy(), np.array(norms)


@pytest.mark.parametrize("bugs", [("accumulate_gradients",), ("accumulate_gradients", "unbounded_loss"), True])
def test_faithful_arm_accumulates_gradients_exactly_as_the_released_code_did(bugs):
    """One batch per epoch: the faithful arm's weights are AdamW applied to the running sum of the batch gradients,
    the fixed arm's to each step's own gradient, and the logged gradient norms are those of the running sums."""
    preferred, dispreferred = _boltzmann_pairs(np.array([1.0, -1.0, 0.5, 0.3]), 200, seed=5)
    validation = (preferred[:5], dispreferred[:5])
    kwargs = dict(validation=validation, epochs=6, batch_size=200, learning_rate=0.05, seed=3)
    fixed = max_margin_irl(preferred, dispreferred, **kwargs)
    faithful = max_margin_irl(preferred, dispreferred, faithful=bugs, **kwargs)
    delta = torch.as_tensor(preferred - dispreferred)
    w0 = torch.randn(4, generator=torch.Generator().manual_seed(3), dtype=torch.float64) / 2.0  # as _linear draws it
    unbounded = bugs is True or "unbounded_loss" in bugs
    expected, norms = _replay_adamw(delta, w0, steps=6, learning_rate=0.05, accumulate=True, unbounded=unbounded)
    np.testing.assert_allclose(faithful.weights, expected, atol=1e-10)
    np.testing.assert_allclose(faithful.log["grad_norm"], norms, rtol=1e-8)
    zeroed, _ = _replay_adamw(delta, w0, steps=6, learning_rate=0.05, accumulate=False)
    np.testing.assert_allclose(fixed.weights, zeroed, atol=1e-10)
    assert np.abs(faithful.weights - fixed.weights).max() > 1e-3
    assert faithful.metrics["faithful"] == (["accumulate_gradients", "unbounded_loss"] if bugs is True else list(bugs))


def test_faithful_arm_has_the_papers_unbounded_loss():
    """On separable pairs the uncapped loss keeps paying for scale: the loss falls far below −margin and the
    weights keep growing, where the capped loss stops at −margin."""
    rng = np.random.default_rng(2)
    w_true = rng.normal(size=4)
    a, b = rng.normal(size=(800, 4)), rng.normal(size=(800, 4))
    gap = (a - b) @ (w_true / np.linalg.norm(w_true))
    a, b, wins = a[np.abs(gap) > 0.5], b[np.abs(gap) > 0.5], gap[np.abs(gap) > 0.5] > 0  # separable with room
    preferred, dispreferred = np.where(wins[:, None], a, b), np.where(wins[:, None], b, a)
    runs = {(bugs, epochs): max_margin_irl(preferred, dispreferred, faithful=bugs, epochs=epochs)
            for bugs in ((), ("unbounded_loss",)) for epochs in (50, 200)}
    assert min(r.log["loss"].min() for k, r in runs.items() if k[0] == ()) >= -1.0 - 1e-9
    uncapped_long = runs[("unbounded_loss",), 200]
    assert uncapped_long.log["loss"].iloc[-1] < -5.0
    assert uncapped_long.restarts["validation_loss"].iloc[0] < -5.0  # validation reports the loss it trains on
    growth = np.linalg.norm(uncapped_long.weights) / np.linalg.norm(runs[("unbounded_loss",), 50].weights)
    assert growth > 2.0 * np.linalg.norm(runs[(), 200].weights) / np.linalg.norm(runs[(), 50].weights)


def test_faithful_arm_trains_on_the_last_character_only(tmp_path):
    """Two training sets that agree only in the last character of every text (not in their words, not in their
    prompts) train the identical faithful model; the fixed arm, which reads whole texts, tells them apart."""
    preferred, dispreferred = _middle_key_pairs(40, seed=0)
    sets = {"a": (preferred, dispreferred, chatterbot_prompts()[:40]),
            "b": ([f"other words {t[-1]}" for t in preferred], [f"different {t[-1]}" for t in dispreferred],
                  chatterbot_prompts()[100:140])}
    val_pref, val_dispref = _middle_key_pairs(8, seed=1)
    config = BTConfig(backbone="tiny-bert-rm", epochs=1, learning_rate=2e-3, batch_size=8)
    fits = {(arm, name): max_margin_irl(p, d, prompts=prompts, config=config, output_dir=tmp_path / f"{arm}-{name}",
                                        validation=(val_pref, val_dispref, chatterbot_prompts()[:8]), progress=False,
                                        faithful=bugs)
            for arm, bugs in (("faithful", ("last_character",)), ("fixed", False)) for name, (p, d, prompts) in sets.items()}
    np.testing.assert_array_equal(fits["faithful", "a"].log["loss"], fits["faithful", "b"].log["loss"])
    assert fits["faithful", "a"].restarts.equals(fits["faithful", "b"].restarts)
    assert not np.array_equal(fits["fixed", "a"].log["loss"], fits["fixed", "b"].log["loss"])
    # the saved model still scores whole texts, as the paper's evaluation did
    assert fits["faithful", "a"].score(val_pref[:1])[0] != fits["faithful", "a"].score([val_pref[0][-1]])[0]


def test_faithful_rejects_what_it_cannot_reproduce():
    with pytest.raises(ValueError, match="feature arrays have no last character"):
        max_margin_irl(_X, _Y, faithful=["last_character"])
    with pytest.raises(ValueError, match="unknown bug"):
        max_margin_irl(_X, _Y, faithful=["no_zero_grad"])
    with pytest.raises(ValueError, match="uncapped"):
        max_margin_irl(_X, _Y, loss="hinge", faithful=True)


# --------------------------------------------------------------------------------------------------
# Selection, split, intervals and the claims table


def test_select_restart_is_the_rule_max_margin_irl_uses():
    frame = pd.DataFrame({"restart": [0, 1, 2, 3], "validation_accuracy": [0.7, 0.9, 0.9, 0.9],
                          "validation_loss": [-1.0, 0.2, 0.1, 0.1]}, index=[5, 6, 7, 8])
    assert select_restart(frame) == 7  # best accuracy, then lowest loss, then the earlier restart
    assert select_restart(frame.to_dict("records")) == 2
    preferred, dispreferred = _boltzmann_pairs(np.array([1.0, -1.0, 0.5]), 200)
    result = max_margin_irl(preferred, dispreferred, n_restarts=4, epochs=5)
    assert select_restart(result.restarts) == result.best_restart
    with pytest.raises(ValueError, match="validation_loss"):
        select_restart(frame.drop(columns="validation_loss"))


def test_split_by_prompt_keeps_each_prompt_on_one_side_and_matches_the_old_split():
    prompts = [f"p{i}" for i in range(50)]
    side = split_by_prompt(prompts, (0.6, 0.2, 0.2), seed=3)
    order = np.random.default_rng(3).permutation(50)  # the chapter's former inline split, for distinct prompts
    old = np.select([order < 30, order < 40], ["train", "validation"], "test")
    np.testing.assert_array_equal(side, old)
    repeated = prompts + prompts[:20]
    side = split_by_prompt(repeated, (0.6, 0.2, 0.2), seed=3)
    frame = pd.DataFrame({"prompt": repeated, "side": side})
    assert (frame.groupby("prompt")["side"].nunique() == 1).all()
    np.testing.assert_array_equal(side[:50], old)
    with pytest.raises(ValueError, match="summing to 1"):
        split_by_prompt(prompts, (0.5, 0.2, 0.2))


def test_pair_bootstrap_resamples_prompts_not_texts():
    """Every resample keeps both texts of a drawn prompt, in the layout (first texts, then second texts). When the
    two texts of a pair are alike, the interval is about √2 wider than a bootstrap over independent texts."""
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=n)
    recovered = np.concatenate([x, x + 0.01 * rng.normal(size=n)])
    true = np.concatenate([np.arange(n), np.arange(n)]).astype(float)
    aligned = []
    pair_ci = pair_bootstrap_ci(true, recovered, lambda t, r: aligned.append(np.array_equal(t[:n], t[n:])) or r.mean(),
                                n_resamples=500, seed=1)
    assert all(aligned) and len(aligned) == 501
    text_ci = bootstrap_ci(recovered, n_resamples=500, seed=1)
    assert pair_ci[0] == pytest.approx(text_ci[0])
    ratio = (pair_ci[2] - pair_ci[1]) / (text_ci[2] - text_ci[1])
    assert 1.2 < ratio < 1.7
    nan_first = iter([np.nan] * 10)
    est, lo, hi = pair_bootstrap_ci(true, recovered, lambda t, r: next(nan_first, r.mean()), n_resamples=50)
    assert np.isfinite([lo, hi]).all()
    with pytest.raises(ValueError, match="even length"):
        pair_bootstrap_ci(true[:-1], recovered[:-1], lambda t, r: 0.0)


def test_intervals_over_seeds_and_restarts():
    from scipy import stats

    values = np.array([0.55, 0.62, 0.71])
    mean, lo, hi = interval_over_seeds(values)
    ref = stats.t.interval(0.95, 2, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean()) and (lo, hi) == pytest.approx(ref)
    with pytest.raises(ValueError, match="at least 2"):
        interval_over_seeds([0.6])
    sd, lo, hi = sd_interval(np.random.default_rng(0).normal(0.7, 0.1, size=200))
    assert lo < 0.1 < hi and lo < sd < hi


def _planted_results(win_irl=(0.45, 0.55, 0.5), faithful_sd=0.1, matched=False):
    rng = np.random.default_rng(0)
    spread = lambda sd: 0.6 + sd * (rng.permutation(np.linspace(-1.5, 1.5, 10)))
    return {"auroc": (0.8, 0.7, 0.9), "n_test_pairs": 40, "accuracy_calibrated": (0.7, 0.55, 0.8), "majority": 0.6,
            "restart_accuracy_at_zero": {"fixed": spread(0.01), "faithful": spread(faithful_sd)},
            "rl": pd.DataFrame({"seed": [0, 1, 2], "win_irl": win_irl, "true_irl": [0.2, 0.3, 0.25],
                                "true_true": [0.5, 0.6, 0.55], "ppl_ratio_irl": [1.01, 1.02, 1.0]}),
            "backbone": {"auroc_small": 0.8, "auroc_large": 0.78, "matched": matched}}


def test_findings_decide_each_claim_by_its_interval_and_never_count_the_backbone_row():
    from rewardscope.findings import summary, table

    rows = irl_findings(_planted_results())
    frame = table(rows).set_index("claim")
    verdict = frame["verdict"]
    assert verdict["the recovered reward agrees with the true one above chance"] == "holds"
    assert verdict["the selected reward classifies texts better than the majority class"] == "does not hold"  # 0.55 < 0.6
    spread = frame[frame.index.str.startswith("accuracy at 0 varies")]
    assert list(spread["verdict"]) == ["does not hold", "holds"]  # fixed sd 0.01, faithful sd 0.1 over 10 restarts
    assert set(spread["unit"]) == {"restarts"} and set(spread["n"]) == {10}
    assert verdict["RLHF on the recovered reward improves the true reward"] == "does not hold"  # a planted null
    assert verdict["... more than RLHF on the true reward"] == "does not hold"
    assert verdict["fluency is kept"] == "holds"
    assert frame.loc["fluency is kept", "unit"] == "RL seeds" and frame.loc["fluency is kept", "n"] == 3
    assert verdict["a larger backbone is not better"] == "not a test here"
    assert summary(rows) == (3, 7)  # the backbone row is shown, not counted
    assert str(PAPER_RESTART_ACCURACY_SD) in frame.loc[spread.index[0], "paper"]
    held = irl_findings(_planted_results(win_irl=(0.7, 0.72, 0.75)))
    assert table(held).set_index("claim").loc["RLHF on the recovered reward improves the true reward", "verdict"] == "holds"
    assert "different budgets" in table(rows).set_index("claim").loc["a larger backbone is not better", "rule"]


def test_the_faithful_bugs_parameter_rule_names_exactly_the_papers_bugs():
    from rewardscope.runner.param_rules import RULES, RuleError
    from rewardscope.studies.irl.irl import PAPER_BUGS

    RULES["faithful_bugs"](list(PAPER_BUGS))
    RULES["faithful_bugs"]([])  # no paper-faithful arm
    with pytest.raises(RuleError, match="item 0"):
        RULES["faithful_bugs"](["no_zero_grad"])
