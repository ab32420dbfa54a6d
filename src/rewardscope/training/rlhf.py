"""KL-regularised RL fine-tuning of a policy against any reward, with TRL.

GRPO (the default) and RLOO both sample a group of responses per prompt, use the group's other
rewards as the baseline, and penalise the KL divergence to the initial policy with weight ``beta``.
The reward is a :class:`~rewardscope.rewards.RewardModel` or any callable ``(prompts, responses) ->
scores``. PPO is not offered: TRL removed it in 1.13.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from datasets import Dataset
from peft import LoraConfig
from transformers import PrinterCallback, ProgressCallback
from transformers.utils import logging as hf_logging
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from .. import hf
from ..policy import load_policy
from ..rewards import RewardModel
from ..zoo import write_sidecar

TRAINERS = {"grpo": (GRPOConfig, GRPOTrainer), "rloo": (RLOOConfig, RLOOTrainer)}
LOG_COLUMNS = {"step": "step", "reward": "reward", "reward_std": "reward_std", "kl": "kl",  # TRL's key: ours
               "completions/mean_length": "completion_length", "entropy": "entropy"}


@dataclass
class RLConfig:
    """Settings of one RL fine-tuning run; every field is checked when the config is made.

    Each step samples ``generations_per_prompt`` responses to each of ``prompts_per_step`` prompts and takes
    one optimiser step on them (on-policy). ``beta`` weights the KL penalty to the initial policy (0 turns it
    off); ``lora_rank`` trains a LoRA adapter on every linear layer instead of all weights."""

    algorithm: str = "grpo"
    steps: int = 40
    learning_rate: float = 3e-5
    beta: float = 0.02
    prompts_per_step: int = 4
    generations_per_prompt: int = 4
    max_completion_length: int = 24
    temperature: float = 1.0
    seed: int = 0
    lora_rank: int | None = None
    bf16: bool = False
    logging_steps: int = 1

    def __post_init__(self):
        def check(name: str, ok: bool, allowed: str):
            if not ok:
                raise ValueError(f"RLConfig.{name} must be {allowed}, got {getattr(self, name)!r}")

        is_int = lambda v: isinstance(v, int | np.integer) and not isinstance(v, bool)  # steps=True is a slip
        is_number = lambda v: isinstance(v, int | float | np.number) and not isinstance(v, bool) and np.isfinite(v)
        check("algorithm", self.algorithm in TRAINERS, " or ".join(map(repr, TRAINERS)))
        for name, low in {"steps": 1, "prompts_per_step": 1, "generations_per_prompt": 2, "max_completion_length": 1,
                          "seed": 0, "logging_steps": 1}.items():  # a group baseline needs 2 samples
            check(name, is_int(getattr(self, name)) and getattr(self, name) >= low, f"an int >= {low}")
        for name in ("learning_rate", "temperature"):
            check(name, is_number(getattr(self, name)) and getattr(self, name) > 0, "a finite number > 0")
        check("beta", is_number(self.beta) and self.beta >= 0, "a finite number >= 0 (0 turns the KL penalty off)")
        check("lora_rank", self.lora_rank is None or is_int(self.lora_rank) and self.lora_rank >= 1, "None or an int >= 1")
        check("bf16", isinstance(self.bf16, bool), "True or False")


@dataclass
class TuneResult:
    """A tuned policy: its HF directory and its training log.

    ``path`` loads with ``load_policy(str(path))``. ``log`` has one row per logged step: step, reward,
    reward_std, kl (NaN when ``beta == 0``), completion_length and entropy, each a mean over the step."""

    path: Path
    log: pd.DataFrame


def _message_text(item: Any, role: str) -> str:
    """A plain string as is, or the text of a conversation's ``role`` turns (of multimodal content, the text
    parts). Of the user turns, only the last counts: a prompt may carry earlier turns, the last is being answered."""
    if isinstance(item, str):
        return item
    texts = [m["content"] if isinstance(m.get("content"), str) else "".join(p.get("text", "") for p in m["content"])
             for m in item if m.get("role") == role]
    return (texts[-1] if texts else "") if role == "user" else "".join(texts)


def reward_function(reward: RewardModel | Callable, name: str = "reward") -> Callable[..., list[float]]:
    """Adapt a reward to TRL's ``reward_funcs`` signature ``f(prompts, completions, **kwargs)``.

    Parameters
    ----------
    reward : a :class:`RewardModel`, or a callable ``(prompts: list[str], responses: list[str]) -> array``.
    name : the name TRL logs the reward under (``rewards/<name>/mean``).

    Returns
    -------
    A function that takes TRL's prompts and completions, plain strings or conversations (lists of
    ``{"role", "content"}`` dicts), scores (last user turn, assistant text) and returns one float each.

    Examples
    --------
    >>> f = reward_function(lambda prompts, responses: [len(r) for r in responses])
    >>> f(prompts=[[{"role": "user", "content": "Hi"}]], completions=[[{"role": "assistant", "content": "Hey"}]])
    [3.0]
    """
    if not isinstance(reward, RewardModel) and not callable(reward):
        raise TypeError(f"reward must be a RewardModel or a callable (prompts, responses) -> scores, "
                        f"got {type(reward).__name__}")
    score = reward.score if isinstance(reward, RewardModel) else reward

    def scored(prompts, completions, **_: Any) -> list[float]:
        users = [_message_text(p, "user") for p in prompts]
        answers = [_message_text(c, "assistant") for c in completions]
        values = np.asarray(score(users, answers), dtype=np.float64).ravel()
        if len(values) != len(answers):
            raise ValueError(f"reward {name!r} returned {len(values)} scores for {len(answers)} responses")
        return values.tolist()

    scored.__name__ = name  # TRL names the logged reward after the function
    return scored


def _check_inputs(prompts, output_dir, config) -> tuple[list[str], Path]:
    if not isinstance(config, RLConfig):
        raise TypeError(f"config must be an RLConfig, got {type(config).__name__}")
    prompts = [] if isinstance(prompts, str) or not hasattr(prompts, "__iter__") else list(prompts)  # a Series is fine
    if not prompts:
        raise ValueError("prompts must be a non-empty list of strings")
    if (bad := next((i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()), None)) is not None:
        raise TypeError(f"prompts[{bad}] must be a non-empty str, got {prompts[bad]!r}")
    output_dir = Path(output_dir).expanduser()
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise FileExistsError(f"output_dir {str(output_dir)!r} exists and is not empty; pass a new or empty directory")
    return prompts, output_dir


def _check_policy_options(options) -> dict:
    """``policy_options`` as a dict of :func:`rewardscope.load_policy` keyword arguments; unknown names fail early."""
    import inspect

    from .. import policy

    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"policy_options must be a mapping of load_policy options, got {type(options).__name__}")
    allowed = set(inspect.signature(policy.load_policy).parameters) - {"spec"}
    if unknown := sorted(set(options) - allowed):
        raise ValueError(f"policy_options has unknown option(s) {unknown}; load_policy takes {sorted(allowed)}")
    return dict(options)


@contextmanager
def _quiet():
    """Hide transformers' weight-loading bars and the FutureWarnings that TRL's own calls trigger."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings(action="ignore", category=FutureWarning):
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class _Progress(ProgressCallback):
    """Transformers' step bar, showing the latest mean reward instead of printing every log dict.

    The bar is :func:`rewardscope.progress.bar`: on a terminal, or in a kernel whose runner asked for
    it (``rewardscope run``), never in a notebook's output.
    """

    def __init__(self, progress: bool | None = None, desc: str = "RL"):
        super().__init__()
        self.progress, self.desc = progress, desc

    def on_train_begin(self, args, state, control, **kwargs):
        from ..progress import bar

        if state.is_world_process_zero:
            self.training_bar = bar(total=state.max_steps, desc=self.desc, unit="step", progress=self.progress)
        self.current_step = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is not None and logs and "reward" in logs:
            self.training_bar.set_postfix(reward=f"{logs['reward']:.3f}")


def log_tail(log: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """The last fifth of an RL log's steps (at least one): one step's reward or KL is noisy, so the end of a run is
    read as the mean over these (``reward_end``, ``kl_end``)."""
    return log.tail(max(1, len(log) // 5))


def _summary(log: pd.DataFrame) -> dict[str, float | None]:
    head, tail = log.head(max(1, len(log) // 5)), log_tail(log)  # the first and last fifth of the logged steps
    values = {"reward_start": head["reward"].mean(), "reward_end": tail["reward"].mean(), "kl_end": tail["kl"].mean()}
    return {k: None if pd.isna(v) else float(v) for k, v in values.items()}  # kl is NaN when beta == 0


def _save(output_dir: Path, model, tokenizer, log: pd.DataFrame, **meta) -> None:
    # Write beside the target, then rename: an interrupted run never leaves a policy that looks complete.
    staging = output_dir.with_name(f".{output_dir.name}.{uuid.uuid4().hex[:8]}.partial")
    staging.mkdir(parents=True)
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        log.to_csv(staging / "rl_log.csv", index=False)
        write_sidecar(staging, kind="policy", architecture="decoder", metrics=_summary(log), **meta)
        if output_dir.exists():
            output_dir.rmdir()  # checked empty before training
        os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def tune_policy(policy: str, reward: RewardModel | Callable, prompts: Sequence[str], output_dir: str | os.PathLike,
                config: RLConfig | None = None, device=None, *, monitors: Mapping[str, RewardModel | Callable] | None = None,
                progress: bool | None = None, policy_options: Mapping[str, Any] | None = None) -> TuneResult:
    """RL fine-tune ``policy`` to maximise ``reward`` on ``prompts``, KL-regularised to the initial policy.

    Parameters
    ----------
    policy : a spec for :func:`rewardscope.load_policy` (embedded name, local directory or hub id).
    reward : a :class:`RewardModel` or a callable ``(prompts, responses) -> scores``.
    prompts : user messages; each is sent as a one-turn chat through the policy's own chat template.
    output_dir : where the tuned policy is saved; must not exist, or be an empty directory.
    config : an :class:`RLConfig`; None means ``RLConfig()`` (GRPO, 40 steps, lr 3e-5, beta 0.02).
    device : "cpu", "cuda" or None (CUDA if available): the first visible GPU (set ``CUDA_VISIBLE_DEVICES``).
    monitors : rewards scored on every training sample with weight 0 (a held-out gold, to watch reward hacking);
        each is logged per step as a column of its name.
    progress : show a progress bar; None shows one for runs of more than 20 steps.
    policy_options : keyword arguments of :func:`rewardscope.load_policy` for ``policy``: ``chat_template`` (e.g.
        ``"plain"`` for a base LM without one, such as Pythia; it is saved with the tuned policy),
        ``trust_remote_code``, ``dtype``. A ``device`` there is not used: training runs on ``device``.

    Returns
    -------
    TuneResult
        ``path`` (= ``output_dir``) holds the model (LoRA merged in), tokenizer, ``rl_log.csv`` (with one column
        per monitor) and a sidecar
        with ``reward_start``, ``reward_end`` (means over the first and last fifth of the logged steps), ``kl_end``.
    """
    config = RLConfig() if config is None else config
    reward_name = str(getattr(reward, "name", None) or getattr(reward, "__name__", "reward"))
    reward_name = "reward" if reward_name.startswith("<") else reward_name  # lambdas are named "<lambda>"
    scorer = reward_function(reward, reward_name)
    monitors = dict(monitors or {})
    if clash := sorted(set(monitors) & {reward_name, *LOG_COLUMNS.values()}):
        raise ValueError(f"monitor names {clash} clash with the reward's name or a log column; rename them")
    watchers = [reward_function(m, name) for name, m in monitors.items()]
    columns = {**LOG_COLUMNS, **{f"rewards/{name}/mean": name for name in monitors}}
    prompts, output_dir = _check_inputs(prompts, output_dir, config)
    loader = _check_policy_options(policy_options)
    device = hf.resolve_device(device)
    if device not in ("cpu", "cuda", "cuda:0"):
        raise ValueError(f"device must be 'cpu', 'cuda' or None, got {device!r}; pick a GPU with CUDA_VISIBLE_DEVICES")
    config_class, trainer_class = TRAINERS[config.algorithm]
    peft_config = None if config.lora_rank is None else LoraConfig(
        r=config.lora_rank, lora_alpha=2 * config.lora_rank, target_modules="all-linear", task_type="CAUSAL_LM")
    # TRL drops a short last batch, so few prompts are repeated; chat-form prompts get the policy's own template.
    repeats = -(-config.prompts_per_step // len(prompts))
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in prompts * repeats]})
    with _quiet(), tempfile.TemporaryDirectory(prefix="rewardscope-rl-") as scratch:
        # load_policy pads on the left (right pads sit between prompt and response and the KL blows up).
        # TRL builds the KL reference, the initial policy, from the same directory (with LoRA: adapter off).
        loaded = load_policy(policy, **{**loader, "device": "cpu"})
        args = config_class(
            output_dir=scratch, max_steps=config.steps, learning_rate=config.learning_rate, beta=config.beta,
            per_device_train_batch_size=config.prompts_per_step * config.generations_per_prompt,
            num_generations=config.generations_per_prompt, steps_per_generation=1,  # a fresh batch every step
            max_completion_length=config.max_completion_length, temperature=config.temperature, seed=config.seed,
            bf16=config.bf16, use_cpu=device == "cpu", logging_steps=config.logging_steps, save_strategy="no",
            report_to="none", disable_tqdm=True, log_level="error",
            reward_weights=[1.0] + [0.0] * len(watchers))  # monitors are logged, never optimised
        trainer = trainer_class(model=loaded.model, reward_funcs=[scorer, *watchers], args=args, train_dataset=dataset,
                                processing_class=loaded.tokenizer, peft_config=peft_config,
                                callbacks=[_Progress(progress, f"{config.algorithm.upper()} on {reward_name}")])
        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off
        trainer.train()
        log = pd.DataFrame([{columns[k]: v for k, v in entry.items() if k in columns}
                            for entry in trainer.state.log_history if "reward" in entry], columns=list(columns.values()))
        model = trainer.model.merge_and_unload() if config.lora_rank is not None else trainer.model  # plain HF dir
        _save(output_dir, model, loaded.tokenizer, log, base=str(policy), reward=reward_name, config=asdict(config),
              **({"policy_options": loader} if loader else {}))
    return TuneResult(output_dir, log)

