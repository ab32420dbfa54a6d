"""Small helpers shared by every Hugging Face model we load: device, dtype, chat-formatted ids."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


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


def chat_ids(tokenizer, prompt: str, response: str | None = None) -> list[int]:
    """Token ids of a one-turn conversation rendered by the tokenizer's own chat template.

    With ``response=None`` the ids end with the generation prompt (the assistant header), ready to
    sample from. The template is rendered once and encoded without added special tokens, then the
    BOS is normalised with :func:`single_bos`.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"tokenizer of {tokenizer.name_or_path!r} has no chat template; pass one or use an encoder RM")
    text = tokenizer.apply_chat_template(chat_messages(prompt, response), tokenize=False,
                                         add_generation_prompt=response is None)
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
    position is the last), left-padded with ``pad_id``. Encoders: the tokenizer's text pairs.
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
        return {"input_ids": input_ids, "attention_mask": mask}
    return dict(tokenizer(list(prompts), list(responses), padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt"))
