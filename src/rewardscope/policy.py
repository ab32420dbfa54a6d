"""Policies: loading a causal LM and sampling responses to chat prompts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import hf
from .zoo import resolve


@dataclass
class Policy:
    """A causal LM with its tokenizer, ready to answer one-turn chat prompts."""

    name: str
    path: Path
    model: Any
    tokenizer: Any
    device: str

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 32, temperature: float = 1.0,
                 top_p: float = 1.0, do_sample: bool = True, seed: int = 0, batch_size: int = 16,
                 progress: bool | None = None) -> list[str]:
        """Sample one response per prompt (chat template, left padding, KV cache), seeded.

        ``do_sample=False`` gives greedy decoding. Returns the decoded responses without special tokens.
        """
        import torch

        from .progress import bar

        if isinstance(prompts, str) or not len(prompts):
            raise ValueError("prompts must be a non-empty sequence of strings")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if do_sample and not temperature > 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {temperature!r}")
        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        encoded = [hf.chat_ids(tok, p) for p in prompts]
        responses: list[str] = []
        starts = range(0, len(encoded), batch_size)
        torch.manual_seed(seed)
        for start in bar(starts, desc=f"sampling {self.name}", unit="batch", progress=progress, long=len(starts) > 4):
            input_ids, mask = hf.left_pad(encoded[start:start + batch_size], pad_id)
            sampling = {"temperature": temperature, "top_p": top_p, "top_k": 0} if do_sample else {}
            with torch.no_grad():
                out = self.model.generate(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                          max_new_tokens=max_new_tokens, do_sample=do_sample, pad_token_id=pad_id,
                                          **sampling)
            new = out[:, input_ids.shape[1]:]
            responses.extend(tok.batch_decode(new, skip_special_tokens=True))
        return [r.strip() for r in responses]


def load_policy(spec: str, device=None, dtype=None, trust_remote_code: bool = False) -> Policy:
    """Load a causal LM policy from a spec (embedded name, local directory or hub id).

    Examples
    --------
    >>> policy = load_policy("tiny-llama")
    >>> len(policy.generate(["Hello"], max_new_tokens=4))
    1
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(spec)
    device = hf.resolve_device(device)
    dtype = hf.resolve_dtype(dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"policy {spec!r} has no chat template; rewardscope prompts policies as one-turn chats")
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    return Policy(str(spec), path, model.to(device).eval(), tokenizer, device)
