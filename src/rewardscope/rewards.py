"""The reward-model interface and its kinds.

Every reward model, whether a trained network or a lexicon rule, is a :class:`RewardModel`
with one method, ``score(prompts, responses) -> np.ndarray`` (one float per pair). Kinds register
by name; :func:`load_reward_model` dispatches on the embedded name or on the model directory's own
metadata, never on substrings of a model's name.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from . import hf
from .lexicons import WORD
from .zoo import ModelDir, ModelSpecError, locate, read_sidecar, resolve

logger = logging.getLogger(__name__)


def check_text(name: str, texts: Sequence[str]) -> None:
    """Refuse a string that cannot be UTF-8 encoded (a lone surrogate such as ``"\\ud800"``), naming it."""
    for i, text in enumerate(texts):
        if text.isascii():
            continue
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"{name}[{i}] is not valid text (lone surrogate {text[err.start]!r} at character "
                             f"{err.start}); decode your data with errors='replace' or drop it") from None


def check_pairs(prompts: Sequence[str], responses: Sequence[str]) -> tuple[list[str], list[str]]:
    """Validate (prompt, response) inputs: two equally long, non-empty sequences of valid strings."""
    if isinstance(prompts, str) or isinstance(responses, str):
        raise TypeError("prompts and responses must be sequences of strings, not single strings")
    prompts, responses = list(prompts), list(responses)
    if not prompts:
        raise ValueError("prompts is empty: score needs at least one (prompt, response) pair")
    if len(prompts) != len(responses):
        raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses; they must pair up")
    for name, seq in (("prompts", prompts), ("responses", responses)):
        bad = next((i for i, x in enumerate(seq) if not isinstance(x, str)), None)
        if bad is not None:
            raise TypeError(f"{name}[{bad}] is {type(seq[bad]).__name__}, expected str")
        check_text(name, seq)
    return prompts, responses


class RewardModel(ABC):
    """Scores (prompt, response) pairs; higher is better."""

    kind: str = "abstract"

    def __init__(self, name: str):
        self.name = name

    def score(self, prompts: Sequence[str], responses: Sequence[str], *, batch_size: int | None = None,
              progress: bool | None = None) -> np.ndarray:
        """One float64 score per (prompt, response) pair, in input order.

        Examples
        --------
        >>> rm = load_reward_model("vader-compound")
        >>> rm.score(["How was it?"], ["It was wonderful!"]).round(3)
        array([0.611])
        """
        prompts, responses = check_pairs(prompts, responses)
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        return np.asarray(self._score(prompts, responses, batch_size, progress), dtype=np.float64)

    @abstractmethod
    def _score(self, prompts: list[str], responses: list[str], batch_size: int | None,
               progress: bool | None) -> np.ndarray: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


_KINDS: dict[str, Callable[..., RewardModel]] = {}


def register_kind(name: str):
    """Register a reward-model factory under an embedded name; a name may be registered once."""

    def decorator(factory):
        if name in _KINDS:
            raise ValueError(f"reward kind {name!r} is already registered")
        _KINDS[name] = factory
        return factory

    return decorator


def reward_kinds() -> list[str]:
    return sorted(_KINDS)


# --------------------------------------------------------------------------------------------------
# Lexicon and classifier rewards: they judge the response alone.


class ResponseReward(RewardModel):
    """A reward computed from the response text alone by ``fn``."""

    kind = "response-rule"

    def __init__(self, name: str, fn: Callable[[str], float]):
        super().__init__(name)
        self.fn = fn

    def _score(self, prompts, responses, batch_size, progress):
        return np.array([self.fn(r) for r in responses], dtype=np.float64)


@register_kind("vader-utility")
def _vader_utility() -> RewardModel:
    """The IRM paper's token-utility reward: sum of VADER valences of the words, /5, clipped to ±10.

    Differences from the original: words come from a regex, not spaCy, and the prompt's own words are
    not counted (the original scored query + response, so the prompt leaked into the reward).
    """
    lexicon = _vader().lexicon

    def utility(text: str) -> float:
        total = sum(lexicon.get(word, 0.0) for word in WORD.findall(text.lower()))
        return float(np.clip(total / 5.0, -10.0, 10.0))

    return ResponseReward("vader-utility", utility)


@register_kind("vader-compound")
def _vader_compound() -> RewardModel:
    """VADER's compound sentiment score of the response, in [-1, 1]."""
    analyzer = _vader()
    return ResponseReward("vader-compound", lambda text: analyzer.polarity_scores(text)["compound"])


@register_kind("concise")
def _concise() -> RewardModel:
    """Minus the number of words of the response: shorter is better (the lab's property that conflicts with
    the helpfulness proxy, whose length guard and topicality favour longer answers)."""
    return ResponseReward("concise", lambda text: -float(len(WORD.findall(text.lower()))))


@register_kind("afinn")
def _afinn() -> RewardModel:
    """Sum of AFINN-en-165 valences of the response's words."""
    from afinn import Afinn

    return ResponseReward("afinn", Afinn(language="en").score)


class ToxicityReward(RewardModel):
    """Probability that the response is offensive (alt-profanity-check's calibrated linear SVM)."""

    kind = "classifier"

    def _score(self, prompts, responses, batch_size, progress):
        from profanity_check import predict_prob

        return predict_prob(responses)


@register_kind("toxicity")
def _toxicity() -> RewardModel:
    return ToxicityReward("toxicity")


class HelpfulnessProxy(RewardModel):
    """A helpfulness proxy: MiniLM cosine similarity of response to prompt, times a length guard.

    ``score = cos(e(prompt), e(response)) * min(1, words(response) / min_words)`` with mean-pooled,
    L2-normalised all-MiniLM-L6-v2 embeddings. The guard stops a response that merely repeats a few
    prompt words from scoring as helpful. It measures topicality, not truth.
    """

    kind = "similarity"

    def __init__(self, name: str = "helpfulness", min_words: int = 12, device=None):
        super().__init__(name)
        from transformers import AutoModel, AutoTokenizer

        path = resolve("minilm-l6")
        self.min_words = min_words
        self.device = hf.resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, use_safetensors=True).to(self.device).eval()

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence embeddings, shape (n, 384)."""
        import torch

        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=256,
                                   return_tensors="pt").to(self.device)
            with torch.no_grad():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        return np.concatenate(out)

    def _score(self, prompts, responses, batch_size, progress):
        similarity = (self.embed(prompts) * self.embed(responses)).sum(1)
        guard = np.minimum(1.0, np.array([len(r.split()) for r in responses]) / self.min_words)
        return similarity * guard


@register_kind("helpfulness")
def _helpfulness() -> RewardModel:
    return HelpfulnessProxy()


def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


# --------------------------------------------------------------------------------------------------
# Hugging Face sequence-classification reward models


HH_TEMPLATE = hf.HH_TEMPLATE  # the named templates live in rewardscope.hf, shared with policies and backbones
NAMED_TEMPLATES = hf.NAMED_TEMPLATES
OUTPUT_NAME = re.compile(r"^[A-Za-z_]\w*$")


class HFRewardModel(RewardModel):
    """An ``AutoModelForSequenceClassification`` reward model.

    Decoders score the token ids of the chat template around (prompt, response), with exactly one
    BOS, left-padded (with position ids that start at each row's first token), read at the last
    position. Encoders score the text pair (prompt, response).

    Custom-code reward models (ArmoRM-Llama3-8B, QRM-Llama3.1-8B, QRM-Gemma-2-27B) declare their class in
    the config's ``auto_map`` and run only with ``trust_remote_code=True``; their reward is the output
    attribute named by ``output`` ("score" for those three: ArmoRM's ``score`` is already the gating
    network's mixture of its 19 objectives, the preference score of its model card, and QRM's ``score`` is
    the expectation of its reward quantiles). ``output="rewards", label=k`` reads ArmoRM's objective k instead.
    """

    kind = "hf"

    def __init__(self, name: str, path: Path | ModelDir, *, device=None, dtype=None, trust_remote_code: bool = False,
                 architecture: str | None = None, label: int | None = None, batch_size: int = 16,
                 allow_random_head: bool = False, chat_template: str | None = None, output: str = "logits",
                 device_map: str | dict | None = None):
        super().__init__(name)
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        trust = hf.check_trust_remote_code(trust_remote_code)
        if not isinstance(output, str):
            raise TypeError(f"output must be the name of an output attribute (a str such as 'logits' or 'score'), "
                            f"got {type(output).__name__}")
        if not OUTPUT_NAME.match(output) or output.startswith("_"):
            raise ValueError(f"output must name an attribute of the model's output ('logits', 'score', ...), got {output!r}")
        if label is not None and (not isinstance(label, int) or isinstance(label, bool)):
            raise TypeError(f"label must be an int index or None, got {type(label).__name__}")
        if device_map is not None and not isinstance(device_map, (str, dict)):
            raise TypeError(f"device_map must be a str such as 'auto' or a dict (accelerate's), "
                            f"got {type(device_map).__name__}")
        if architecture is not None and architecture not in hf.ARCHITECTURES:
            raise ValueError(f"architecture must be 'decoder' or 'encoder', got {architecture!r}")
        model_dir = path if isinstance(path, ModelDir) else ModelDir(name, Path(path), read_sidecar(Path(path)))
        self.path, self.metadata = model_dir.path, model_dir.metadata
        self._model_dir = model_dir
        self.device = hf.resolve_device(device)
        self.dtype = hf.resolve_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.output = output
        hf.check_weights(self.path, "AutoModelForSequenceClassification")
        config = hf.read_config(self.path)  # plain JSON: no code runs before the checks below
        custom = hf.custom_class(config)
        if custom and not trust:
            raise ValueError(f"{name!r} declares its own reward model class in custom code ({custom}, in its "
                             "directory); read that code, then pass trust_remote_code=True to run it")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=trust)
        if chat_template is not None:  # RMs trained on a plain-text format (hh-rlhf's "Human:/Assistant:") have none
            self.tokenizer.chat_template = hf.resolve_chat_template(chat_template)
        self.architecture = architecture or hf.architecture_of(config, self.tokenizer, self.metadata)
        if self.architecture == "decoder":
            self.pad_id = hf.safe_pad_id(self.tokenizer)  # fails early if there is no chat template
        else:
            self.pad_id = self.tokenizer.pad_token_id
        head = [a for a in (config.get("architectures") or []) if a.endswith("ForSequenceClassification")]
        extra: dict[str, Any] = {}
        if not head and not custom:
            if not allow_random_head:
                raise ValueError(
                    f"{name!r} is not a sequence-classification reward model (architectures: "
                    f"{config.get('architectures')}); its score head would be random. Pass allow_random_head=True "
                    "to score with a random head")
            extra["num_labels"] = 1
        if device_map is not None:
            extra["device_map"] = device_map  # accelerate spreads the layers over the devices
        model = AutoModelForSequenceClassification.from_pretrained(
            self.path, dtype=self.dtype, trust_remote_code=trust, use_safetensors=True, **extra)
        if device_map is None:
            model = model.to(self.device)
        else:
            self.device = str(model.get_input_embeddings().weight.device)  # inputs go where the embeddings are
        self.model = model.eval()
        self.model.config.pad_token_id = self.pad_id
        self._arguments = hf.forward_arguments(self.model)
        if output == "logits" and not custom:
            n_labels = self.model.config.num_labels
        else:  # custom code: what the output holds is known only by running it once
            probe = self._model_outputs(self._inputs(["Hi"], ["Hello there"]))
            n_labels = hf.output_width(probe, output)
        if label is None and n_labels != 1:
            what = "labels" if output == "logits" else f"{output} columns"
            raise ValueError(f"{name!r} has {n_labels} {what}; pass label=<index> to say which is the reward")
        self.label = 0 if label is None else label
        if not 0 <= self.label < n_labels:
            raise ValueError(f"label must lie in [0, {n_labels}), got {label}")
        self.max_length = min(int(getattr(self.model.config, "max_position_embeddings", 1 << 16) or 1 << 16),
                              int(self.tokenizer.model_max_length or 1 << 16))

    @cached_property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def identity(self) -> str:
        """The content identity of the RM's directory (:func:`rewardscope.zoo.model_identity`), hashed once."""
        return self._model_dir.identity

    @cached_property
    def vocabulary_size(self) -> int:
        """How many token ids the RM can score: those both its tokenizer and its embedding matrix have (a model's
        matrix is often padded past the tokenizer, and a tokenizer may add tokens its model never learnt)."""
        return min(len(self.tokenizer), self.model.get_input_embeddings().weight.shape[0])

    def encode(self, prompt: str, response: str) -> list[int]:
        """The ids the RM scores for one pair: a decoder's chat-template ids (one BOS, left-truncated to the
        context length), an encoder's text pair."""
        return self._inputs([prompt], [response])["input_ids"][0].tolist()

    def _inputs(self, prompts: list[str], responses: list[str]) -> dict:
        max_length = getattr(self, "max_length", None) or int(self.tokenizer.model_max_length or 1 << 16)
        return hf.reward_inputs(self.tokenizer, self.architecture, prompts, responses, self.pad_id, max_length)

    def _model_outputs(self, batch):
        import torch

        if self._arguments is not None:  # custom code may not take position_ids
            batch = {k: v for k, v in batch.items() if k in self._arguments}
        with torch.no_grad():
            return self.model(**{k: v.to(self.device) for k, v in batch.items()})

    def _forward(self, batch) -> np.ndarray:
        return hf.read_reward(self._model_outputs(batch), self.output, self.label).float().cpu().numpy()

    def _score(self, prompts, responses, batch_size, progress):
        from .progress import bar

        batch_size = batch_size or self.batch_size
        scores = np.empty(len(prompts), dtype=np.float64)
        # similar lengths share a batch, so little compute goes to padding
        order = np.argsort([len(p) + len(r) for p, r in zip(prompts, responses)], kind="stable")
        starts = range(0, len(order), batch_size)
        for start in bar(starts, desc=f"scoring with {self.name}", unit="batch", progress=progress, long=len(starts) > 8):
            idx = order[start:start + batch_size]
            scores[idx] = self._forward(self._inputs([prompts[i] for i in idx], [responses[i] for i in idx]))
        return scores


def load_reward_model(spec: str, device=None, dtype=None, trust_remote_code: bool = False, **kwargs: Any) -> RewardModel:
    """Load a reward model from a spec.

    Parameters
    ----------
    spec : a lexicon/classifier reward ({kinds}), an embedded model name, a local model directory
        or a hub id.
    device : "cpu", "cuda" or None (CUDA when available).
    dtype : "float32" (default), "bfloat16" or "float16".
    trust_remote_code : the bool True runs the model directory's own code (custom-code RMs such as ArmoRM);
        off unless you ask for it, and any other value is refused.
    kwargs : ``architecture`` ("decoder"/"encoder"), ``label`` (logit or objective index), ``batch_size``,
        ``chat_template`` (one of {templates} or a Jinja template over ``messages``), ``output`` (the
        output attribute that holds the reward: "logits", or "score" for ArmoRM/QRM custom code),
        ``device_map`` (accelerate's, e.g. "auto": spread a large model over the GPUs),
        ``allow_random_head`` (score a causal LM or encoder backbone through a freshly initialised head).
    """
    hf.check_trust_remote_code(trust_remote_code)
    if isinstance(spec, str) and spec in _KINDS:
        if kwargs:
            raise TypeError(f"{spec!r} takes no options, got {sorted(kwargs)}")
        return _KINDS[spec]()
    try:
        model_dir = locate(spec)
    except ModelSpecError as err:
        raise ModelSpecError(f"{err}; reward rules: {', '.join(reward_kinds())}") from None
    return HFRewardModel(str(spec), model_dir, device=device, dtype=dtype, trust_remote_code=trust_remote_code, **kwargs)


load_reward_model.__doc__ = load_reward_model.__doc__.format(kinds=", ".join(sorted(_KINDS)),
                                                             templates=", ".join(sorted(hf.NAMED_TEMPLATES)))
