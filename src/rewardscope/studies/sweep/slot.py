"""Where the response goes: the ids an RM's chat template writes around the assistant turn, found by ids
(one BOS), so a sweep scores ``prefix + [t] + suffix`` without a decode/re-encode round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ... import hf

_PROBES = (("A", "B"), ("x", "y"), ("1", "2"), ("yes", "no"), ("Hello", "Goodbye"))


# --------------------------------------------------------------------------------------------------
# Where the response goes


@dataclass(frozen=True)
class Slot:
    """The ids around a one-token response: the RM scores ``prefix + [t] + suffix``.

    ``token_type_ids`` (encoders only) has one entry per position of that sequence.
    """

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None = None

    def ids(self, token_id: int) -> list[int]:
        return [*self.prefix, int(token_id), *self.suffix]

    @property
    def length(self) -> int:
        return len(self.prefix) + 1 + len(self.suffix)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _split(a: Sequence[int], b: Sequence[int]) -> tuple[int, int] | None:
    """(prefix length, suffix length) if ``a`` and ``b`` differ in exactly one position each."""
    p = common_prefix(a, b)
    s = common_prefix(a[::-1], b[::-1])
    s = min(s, len(a) - p - 1, len(b) - p - 1)
    if s < 0 or len(a) - p - s != 1 or len(b) - p - s != 1:
        return None
    return p, s


def check_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    return prompt


def check_rm(rm: Any):
    from ...rewards import HFRewardModel

    if not isinstance(rm, HFRewardModel):
        raise ValueError(f"rm must be a Hugging Face reward model (load_reward_model of a model spec), got {rm!r}; "
                         "lexicon and classifier rewards have no token vocabulary to sweep")
    return rm


def response_slot(rm, prompt: str) -> Slot:
    """The ids that the RM's own template puts around a one-token assistant response to ``prompt``.

    Decoders: the chat template is rendered around two different one-token probe responses (encoded
    without added special tokens, BOS normalised to exactly one by :func:`rewardscope.hf.single_bos`);
    the ids they share on the left and right are the prefix and suffix. Encoders: the same with the
    tokenizer's (prompt, response) pair encoding. Raises ``ValueError`` for an empty prompt, a decoder
    without a chat template, or a template that does not put the response in one place.
    """
    check_rm(rm)
    check_prompt(prompt)
    tok = rm.tokenizer
    for probe_a, probe_b in _PROBES:
        if rm.architecture == "decoder":
            a, b = hf.chat_ids(tok, prompt, probe_a), hf.chat_ids(tok, prompt, probe_b)
            types = None
        else:
            enc_a, enc_b = tok(prompt, probe_a), tok(prompt, probe_b)
            a, b = enc_a["input_ids"], enc_b["input_ids"]
            types = enc_a.get("token_type_ids")
        cut = _split(a, b)
        if cut is not None:
            p, s = cut
            slot = Slot(tuple(a[:p]), tuple(a[len(a) - s:]), tuple(types) if types is not None else None)
            if slot.length > rm.max_length:
                raise ValueError(f"prompt is too long: its template takes {slot.length} tokens, "
                                 f"more than the RM's context of {rm.max_length}")
            return slot
    raise ValueError(f"the template of {rm.name!r} does not place a one-token response at one position "
                     f"(probes {[p for pair in _PROBES for p in pair]}); cannot sweep its vocabulary")
