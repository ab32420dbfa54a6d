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

        Models that :func:`rewardscope.sampling.supports` are sampled by its loop (a shared prompt prefix computed
        once, a static cache, one seeded uniform per token and prompt: an answer does not depend on the batch it was
        sampled in); others by ``model.generate``. Both sample the same distribution; greedy gives the same tokens.

        ``do_sample=False`` gives greedy decoding; ``top_p`` is in (0, 1]. Each prompt's chat-template ids
        plus ``max_new_tokens`` must fit the model's positions (``config.max_position_embeddings``).
        Returns the decoded responses without special tokens.
        """
        from numbers import Integral, Real

        import torch

        from .progress import bar
        from .rewards import check_text

        if isinstance(prompts, str) or not hasattr(prompts, "__len__") or not len(prompts):
            raise ValueError("prompts must be a non-empty sequence of strings")
        prompts = list(prompts)
        bad = next((i for i, p in enumerate(prompts) if not isinstance(p, str)), None)
        if bad is not None:
            raise TypeError(f"prompts[{bad}] is {type(prompts[bad]).__name__}, expected str")
        check_text("prompts", prompts)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if do_sample and not temperature > 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {temperature!r}")
        if isinstance(top_p, bool) or not isinstance(top_p, Real):
            raise TypeError(f"top_p must be a number in (0, 1], got {type(top_p).__name__}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, Integral):
            raise TypeError(f"batch_size must be a positive int, got {type(batch_size).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, Integral):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        encoded = [hf.chat_ids(tok, p) for p in prompts]
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(limit, int):
            too_long = next((i for i, ids in enumerate(encoded) if len(ids) + max_new_tokens > limit), None)
            if too_long is not None:
                n = len(encoded[too_long])
                raise ValueError(f"prompts[{too_long}] is {n} tokens with the chat template; with max_new_tokens="
                                 f"{max_new_tokens} that needs {n + max_new_tokens} positions but the model has {limit} "
                                 "(max_position_embeddings); shorten the prompt or lower max_new_tokens")
        from . import sampling

        if sampling.supports(self.model):
            eos = self.model.generation_config.eos_token_id if self.model.generation_config else None
            eos = tok.eos_token_id if eos is None else eos
            eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
            n_batches = -(-len(encoded) // batch_size)
            with torch.no_grad():
                new = sampling.sample_ids(
                    self.model, encoded, max_new_tokens=max_new_tokens, pad_id=pad_id, eos_ids=eos_ids,
                    temperature=temperature, top_p=top_p, do_sample=do_sample, seed=int(seed), batch_size=batch_size,
                    device=self.device, bar=lambda batches: bar(batches, desc=f"sampling {self.name}", unit="batch",
                                                                progress=progress, long=n_batches > 4))
            responses = tok.batch_decode(new, skip_special_tokens=True)
        else:
            responses = self._reference_generate(encoded, pad_id, max_new_tokens=max_new_tokens,
                                                 temperature=temperature, top_p=top_p, do_sample=do_sample,
                                                 seed=seed, batch_size=batch_size, progress=progress)
        return [r.strip() for r in responses]


    def _reference_generate(self, encoded, pad_id, *, max_new_tokens, temperature, top_p, do_sample, seed,
                            batch_size, progress=None) -> list[str]:
        """``model.generate`` on left-padded batches in prompt order: the reference the fast path is tested against,
        and the path for models it does not cover (:func:`rewardscope.sampling.supports`)."""
        import torch

        from .progress import bar

        tok = self.tokenizer
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
        return responses


def load_policy(spec: str, device=None, dtype=None, trust_remote_code: bool = False,
                chat_template: str | None = None) -> Policy:
    """Load a causal LM policy from a spec (embedded name, local directory or hub id).

    ``chat_template`` replaces the tokenizer's: a name (``"plain"``: the prompt, a newline, then the answer,
    for base LMs without a template such as Pythia; ``"hh"``: hh-rlhf's "Human:/Assistant:" text) or a Jinja
    template over ``messages``. A policy without any template is refused. ``trust_remote_code`` runs the
    directory's own code only when it is the bool True.

    Examples
    --------
    >>> policy = load_policy("tiny-llama")
    >>> len(policy.generate(["Hello"], max_new_tokens=4))
    1
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trust = hf.check_trust_remote_code(trust_remote_code)
    template = None if chat_template is None else hf.resolve_chat_template(chat_template)
    path = resolve(spec)
    device = hf.resolve_device(device)
    dtype = hf.resolve_dtype(dtype, device)
    hf.check_weights(path, "AutoModelForCausalLM")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
    if template is not None:
        tokenizer.chat_template = template
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"policy {spec!r} has no chat template; {hf.NO_TEMPLATE_HINT} "
                         "(rewardscope prompts policies as one-turn chats)")
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust, use_safetensors=True)
    return Policy(str(spec), path, model.to(device).eval(), tokenizer, device)
