"""Bradley–Terry reward-model training.

The loss is the negative log-likelihood of the Bradley–Terry model,
``-log σ(r(x, y_chosen) − r(x, y_rejected))``, on pairs from :mod:`rewardscope.lab.pairs`. The
backbone is any spec (MiniLM encoder, SmolLM2 decoder, ...) loaded as a one-output
``AutoModelForSequenceClassification``. The result is saved as an ordinary HF directory with its
tokenizer and chat template, so it loads exactly like a hub reward model.

Hand-written loop rather than TRL's RewardTrainer: the loss must see exactly the ids that
:class:`rewardscope.rewards.HFRewardModel` scores (chat-template ids, one BOS, a pad outside the
template), and partial fine-tuning of the top layers must be explicit.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import hf
from ..zoo import locate, resolve, write_sidecar

logger = logging.getLogger(__name__)


@dataclass
class BTConfig:
    """Settings of one Bradley–Terry training run.

    backbone: model spec of the starting point (a causal LM, an encoder or an existing RM).
    trainable: "all", "head" (score head only), or an int k: the top k transformer layers, the final
        norm/pooler and the head (partial fine-tuning; the rest stays frozen).
    epochs, learning_rate, batch_size (pairs per step), max_length (tokens per sequence), seed.
    bf16: bfloat16 autocast for forward and backward (weights stay float32).
    cache_trunk: with an int ``trainable``, compute the frozen bottom layers once per sequence and train the top
        layers on their cached output (:class:`FrozenTrunk`): each further epoch then costs only the top layers.
        The scores equal the plain forward's (checked on the first batch; the plain path runs otherwise).
    """

    backbone: str
    trainable: str | int = "all"
    epochs: int = 1
    learning_rate: float = 3e-5
    batch_size: int = 16
    max_length: int = 128
    seed: int = 0
    bf16: bool = False
    cache_trunk: bool = False

    def __post_init__(self):
        if not (self.trainable in ("all", "head") or (isinstance(self.trainable, int) and self.trainable >= 0)):
            raise ValueError(f"trainable must be 'all', 'head' or an int >= 0, got {self.trainable!r}")
        for name in ("epochs", "batch_size", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")


@dataclass
class TrainResult:
    path: Path
    metrics: dict
    log: pd.DataFrame
    test_correct: np.ndarray | None = None  # per test pair: the saved model scores chosen above rejected


def _layer_stack(model):
    """The largest ModuleList of the backbone: its transformer layers."""
    import torch

    lists = [m for m in model.base_model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ValueError(f"cannot find the layer stack of {type(model).__name__} for partial fine-tuning")
    return max(lists, key=len)


def _pass_through():
    """A module that returns the hidden states it is given: stands in for a frozen layer whose output is cached."""
    import torch

    class PassThrough(torch.nn.Module):
        def forward(self, hidden_states, *args, **kwargs):
            return hidden_states

    return PassThrough()


class _Stop(Exception):
    """Ends a forward pass once the frozen trunk's output is captured."""


def _dropout_free(model, layers) -> bool:
    """True when the frozen layers compute the same thing in train and eval mode (no dropout anywhere in them)."""
    import torch

    rates = [v for k, v in model.config.to_dict().items() if "dropout" in k and isinstance(v, float)]
    modules = [m.p for layer in layers for m in layer.modules() if isinstance(m, torch.nn.Dropout)]
    return not any(rates + modules)


class FrozenTrunk:
    """The hidden states entering the first trainable layer, computed once per sequence.

    With partial fine-tuning the bottom layers are frozen, so every epoch recomputes the same activations there.
    :meth:`fill` computes them once (length-sorted batches, no grad) and keeps each sequence's real-token rows;
    inside :meth:`active` the frozen layers are swapped for pass-throughs and a pre-hook on the first trainable
    layer puts the cached rows back, so the model's own forward (masks, rotary embeddings, top layers, norm, head,
    pooling) runs unchanged on top. Written here because no library caches a frozen prefix for training.
    """

    def __init__(self, model, tokenizer, architecture: str, pad_id: int, max_length: int, depth: int):
        self.model, self.tokenizer, self.architecture = model, tokenizer, architecture
        self.pad_id, self.max_length = pad_id, max_length
        self.layers = _layer_stack(model)
        if not 0 < depth < len(self.layers):
            raise ValueError(f"the frozen depth must be in 1..{len(self.layers) - 1}, got {depth}")
        self.depth = depth
        self.rows: dict[tuple[str, str], object] = {}  # (prompt, response) -> its real tokens' hidden states

    def _inputs(self, prompts, responses):
        return hf.reward_inputs(self.tokenizer, self.architecture, prompts, responses, self.pad_id, self.max_length)

    def fill(self, prompts, responses, batch_size: int = 32) -> None:
        """Compute the trunk's output for every (prompt, response) not cached yet."""
        import torch

        todo = sorted({(p, r) for p, r in zip(prompts, responses)} - self.rows.keys(), key=lambda x: len(x[0]) + len(x[1]))
        captured = []

        def capture(module, args, kwargs):
            captured.append(args[0] if args else kwargs["hidden_states"])
            raise _Stop

        handle = self.layers[self.depth].register_forward_pre_hook(capture, with_kwargs=True)
        training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for i in range(0, len(todo), batch_size):
                    part = todo[i:i + batch_size]
                    batch = self._inputs([p for p, _ in part], [r for _, r in part])
                    captured.clear()
                    try:
                        self.model(**batch)
                    except _Stop:
                        pass
                    mask = batch["attention_mask"].bool()
                    for key, hidden, real in zip(part, captured[0], mask):
                        self.rows[key] = hidden[real].clone()
        finally:
            handle.remove()
            self.model.train(training)

    def _hidden(self, prompts, responses, batch):
        """The cached rows of a batch, placed at its real-token positions (zeros at the padding)."""
        import torch

        mask = batch["attention_mask"].bool()
        first = self.rows[(prompts[0], responses[0])]
        hidden = torch.zeros(*mask.shape, first.shape[-1], dtype=first.dtype)
        for i, key in enumerate(zip(prompts, responses)):
            rows = self.rows[key]
            if rows.shape[0] != int(mask[i].sum()):
                raise RuntimeError(f"cached trunk rows for sequence {i} do not match its {int(mask[i].sum())} tokens")
            hidden[i, mask[i]] = rows
        return hidden

    @contextmanager
    def active(self):
        """Run the model on cached trunk outputs: the frozen layers become pass-throughs until the block ends."""
        frozen = [self.layers[i] for i in range(self.depth)]
        for i in range(self.depth):
            self.layers[i] = _pass_through()
        try:
            yield
        finally:
            for i, layer in enumerate(frozen):
                self.layers[i] = layer

    def scores(self, prompts, responses):
        """The model's scores for a batch, its frozen layers read from the cache (call inside :meth:`active`)."""
        batch = self._inputs(prompts, responses)
        hidden = self._hidden(prompts, responses, batch)

        def inject(module, args, kwargs):
            return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

        handle = self.layers[self.depth].register_forward_pre_hook(inject, with_kwargs=True)
        try:
            return self.model(**batch).logits[:, 0].float()
        finally:
            handle.remove()


def freeze_bottom_layers(model, trainable) -> int:
    """Leave only the requested parameters trainable; return their count."""
    if trainable == "all":
        return sum(p.numel() for p in model.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    keep = [m for name, m in model.named_children() if m is not model.base_model]  # the head(s)
    if trainable != "head" and trainable > 0:
        keep += list(_layer_stack(model)[-trainable:])
        keep += [m for name, m in model.base_model.named_children() if name in ("norm", "final_layer_norm", "pooler", "ln_f")]
    for module in keep:
        for p in module.parameters():
            p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_backbone(spec: str, device: str = "cpu", *, trust_remote_code: bool = False,
                  chat_template: str | None = None):
    """(model, tokenizer, architecture, pad_id) of a backbone spec as a one-output sequence classifier.

    A causal LM gets a fresh linear score head (drawn from torch's current seed); the pad token is one
    that never occurs in the chat template (see :func:`rewardscope.hf.safe_pad_id`). Decoder or encoder is
    decided by the model's config, by the same rule as for reward models (:func:`rewardscope.hf.architecture_of`):
    a decoder without a chat template (a base LM such as Pythia) needs ``chat_template`` (e.g. "plain"), and
    the template is saved with the trained RM. ``trust_remote_code`` runs the directory's code only when True.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    trust = hf.check_trust_remote_code(trust_remote_code)
    template = None if chat_template is None else hf.resolve_chat_template(chat_template)
    model_dir = locate(spec)
    path = model_dir.path
    hf.check_weights(path, "AutoModelForSequenceClassification")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
    if template is not None:
        tokenizer.chat_template = template
    architecture = hf.architecture_of(hf.read_config(path), tokenizer, model_dir.metadata)
    pad_id = hf.safe_pad_id(tokenizer) if architecture == "decoder" else tokenizer.pad_token_id
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32,
                                                               trust_remote_code=trust, use_safetensors=True).to(device)
    model.config.pad_token_id = pad_id
    if architecture == "decoder":
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
    return model, tokenizer, architecture, pad_id


def _both_sides(pairs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(prompts, responses) of a pairs frame: every chosen response, then every rejected one."""
    return pairs["prompt"].tolist() * 2, pairs["chosen"].tolist() + pairs["rejected"].tolist()


def _trainable_state(model) -> dict:
    """A copy of the trainable parameters (all that training changes)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _frozen_trunk(model, tokenizer, architecture, pad_id, config: BTConfig, splits) -> FrozenTrunk | None:
    """A filled :class:`FrozenTrunk` for the train and validation texts, or None where it cannot serve: full or
    head-only fine-tuning, dropout in the frozen layers, or scores that differ from the plain forward's."""
    import torch

    if not isinstance(config.trainable, int) or config.trainable < 1:
        return None
    layers = _layer_stack(model)
    depth = len(layers) - config.trainable
    if depth < 1 or not _dropout_free(model, list(layers)[:depth]):
        logger.info("training without a cached trunk: nothing frozen below the trainable layers, or dropout in them")
        return None
    trunk = FrozenTrunk(model, tokenizer, architecture, pad_id, config.max_length, depth)
    texts = pd.concat([splits["train"], splits["validation"]])
    trunk.fill(*_both_sides(texts))
    prompts, responses = _both_sides(splits["train"].iloc[:8])
    model.eval()
    with torch.no_grad():
        plain = model(**trunk._inputs(prompts, responses))
        try:
            with trunk.active():
                cached = trunk.scores(prompts, responses)
        except Exception as error:  # an architecture whose layers take or return something else
            logger.warning("training without a cached trunk: %s", error)
            return None
    plain = plain.logits[:, 0].float()
    if not torch.allclose(cached, plain, rtol=1e-4, atol=1e-4):
        logger.warning("training without a cached trunk: its scores differ from the plain forward's by %.2g",
                       float((cached - plain).abs().max()))
        return None
    return trunk


def pairwise_accuracy(chosen: np.ndarray, rejected: np.ndarray) -> float:
    """Share of pairs whose chosen response scores strictly higher."""
    return float(np.mean(np.asarray(chosen) > np.asarray(rejected)))


def train_reward_model(pairs: pd.DataFrame, config: BTConfig, output_dir: Path, *, gold: str = "",
                       progress: bool | None = None) -> TrainResult:
    """Train a Bradley–Terry RM on the train split; keep the epoch best on validation; report test.

    ``pairs`` has columns split, prompt, chosen, rejected (from :func:`rewardscope.lab.pairs.preference_pairs`).
    Returns the saved directory, metrics (``heldout_accuracy`` = test pairwise accuracy of the saved
    model, ``validation_accuracy``, ``initial_heldout_accuracy``, sizes, seconds) and the step log.
    """
    import torch

    from ..progress import bar as progress_bar
    from ..rewards import HFRewardModel

    required = {"split", "prompt", "chosen", "rejected"}
    if not required <= set(pairs.columns):
        raise ValueError(f"pairs must have columns {sorted(required)}, got {sorted(pairs.columns)}")
    splits = {s: pairs[pairs["split"] == s] for s in ("train", "validation", "test")}
    if any(frame.empty for frame in splits.values()):
        raise ValueError(f"pairs need non-empty train/validation/test splits, got sizes {[len(f) for f in splits.values()]}")
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise ValueError(f"output_dir {output_dir} exists and is not empty")

    start_time = time.time()
    # Build an embedded backbone (if not cached yet) before seeding: a build draws random numbers, and the
    # result must not depend on what is cached already. The seed then gives a causal LM's new score head
    # and the training's dropout.
    resolve(config.backbone)
    torch.manual_seed(config.seed)
    model, tokenizer, architecture, pad_id = load_backbone(config.backbone)
    n_trainable = freeze_bottom_layers(model, config.trainable)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)

    trunk = _frozen_trunk(model, tokenizer, architecture, pad_id, config, splits) if config.cache_trunk else None

    def rewards_of(prompts, responses):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            if trunk is not None:
                return trunk.scores(prompts, responses)
            batch = hf.reward_inputs(tokenizer, architecture, prompts, responses, pad_id, config.max_length)
            return model(**batch).logits[:, 0].float()

    def accuracy(frame) -> float:
        model.eval()
        chosen, rejected = [], []
        with torch.no_grad():
            for i in range(0, len(frame), 64):
                part = frame.iloc[i:i + 64]
                scores = rewards_of(*_both_sides(part))
                chosen.append(scores[: len(part)].numpy())
                rejected.append(scores[len(part):].numpy())
        return pairwise_accuracy(np.concatenate(chosen), np.concatenate(rejected))

    with trunk.active() if trunk is not None else nullcontext():  # frozen layers restored before saving
        initial_val = accuracy(splits["validation"])
        best = (-1.0, None)  # the best epoch by validation accuracy (never the untrained start)
        rows = []
        generator = np.random.default_rng(config.seed)
        train = splits["train"]
        n_steps = config.epochs * int(np.ceil(len(train) / config.batch_size))
        bar = progress_bar(total=n_steps, desc=f"BT training on {gold or 'pairs'}", unit="step", progress=progress)
        step = 0
        for epoch in range(config.epochs):
            model.train()
            order = generator.permutation(len(train))
            for i in range(0, len(order), config.batch_size):
                part = train.iloc[order[i:i + config.batch_size]]
                n = len(part)
                scores = rewards_of(*_both_sides(part))
                margin = scores[:n] - scores[n:]
                loss = -torch.nn.functional.logsigmoid(margin).mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                step += 1
                rows.append({"step": step, "epoch": epoch, "loss": loss.item(), "accuracy": (margin > 0).float().mean().item()})
                bar.update()
            val = accuracy(splits["validation"])
            rows[-1]["validation_accuracy"] = val
            if val > best[0]:
                best = (val, _trainable_state(model) if config.epochs > 1 else None)
    bar.close()
    if config.epochs > 1:
        model.load_state_dict(best[1], strict=False)
    model.eval()
    model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)
    train_seconds = time.time() - start_time

    saved = HFRewardModel(str(output_dir), output_dir, architecture=architecture)  # measure what was saved
    test = splits["test"]
    chosen = saved.score(test["prompt"].tolist(), test["chosen"].tolist())
    rejected = saved.score(test["prompt"].tolist(), test["rejected"].tolist())
    correct = np.asarray(chosen) > np.asarray(rejected)
    metrics = {
        "heldout_accuracy": float(correct.mean()),
        "validation_accuracy": best[0],
        "initial_validation_accuracy": initial_val,
        "n_train_pairs": len(train), "n_validation_pairs": len(splits["validation"]), "n_test_pairs": len(test),
        "trainable_parameters": n_trainable, "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(train_seconds, 1), "cached_trunk": trunk is not None,
    }
    log = pd.DataFrame(rows)
    log.to_csv(output_dir / "train_log.csv", index=False)
    write_sidecar(output_dir, kind="reward-model", architecture=architecture, backbone=config.backbone, gold=gold,
                  config=asdict(config), metrics=metrics)
    return TrainResult(output_dir, metrics, log, correct)
