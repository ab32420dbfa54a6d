"""Tiny random-weight replicas of the hub models that the paper profile names, built in code (no network).

Each replica keeps what decides how rewardscope must feed the real model: its transformers class (or, for
the custom-code RMs, a modeling file in the directory that its ``auto_map`` names), its head width, its
tokenizer class with the family's special tokens and BOS convention, and its real chat template, written
out below. Only the sizes shrink: 2 layers, width 32-64, a vocabulary of about 700 pieces learned from the
chatterbot corpus. The weights are random (seeded by the hub id), so scores mean nothing; they exist to
test code paths: batched == one at a time, the prefix sweep == the naive one, one BOS, custom heads.

Every replica is an embedded zoo entry named ``replica:<hub id>`` (``load_reward_model("replica:Ray2333/
gpt2-large-helpful-reward_model", chat_template="hh")``), built once into the artifact cache;
:func:`build_replica` writes one into a directory of your choice. :data:`OPTIONS` holds the loading options
the real model needs beyond what ``notebooks/params/paper.yml`` gives (the custom-code RMs' opt-in).

The families and what they pin down:

* Gemma-2 RMs (Skywork-Reward-Gemma-2-27B(-v0.2), GRM-gemma2-2B): ``Gemma2ForSequenceClassification``,
  ``GemmaTokenizer`` (``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<start_of_turn>``/``<end_of_turn>``, byte
  fallback); the template writes ``<bos>`` and the tokenizer adds one too. Sliding window 16 tokens (real:
  4096), so the window is exercised, and the logit soft-capping of Gemma 2.
* Llama-3/3.1/3.2 RMs (GRM-Llama3-8B, Skywork-Reward-Llama-3.1-8B-v0.2, URM-LLaMa-3.1-8B with 5 labels,
  GRM-Llama3.2-3B): ``LlamaForSequenceClassification``, byte-level BPE with ``<|begin_of_text|>`` added by
  the tokenizer and written by the template, ``<|start_header_id|>``/``<|end_header_id|>``/``<|eot_id|>``;
  Llama 3.1/3.2 templates with their "Today Date" line (3.2 asks ``strftime_now``), llama3 RoPE scaling.
  The pad tokens are guesses (the real ones could not be checked offline): none, ``[PAD]`` added, or
  ``<|eot_id|>``, which the template writes (rewardscope must pad with another id).
* GPT-2 RMs (Ray2333's gpt2-large helpful/harmless): ``GPT2ForSequenceClassification``, absolute position
  embeddings, ``<|endoftext|>`` as BOS/EOS/UNK, no pad token, no chat template (paper.yml gives ``hh``).
* DeBERTa-v3 RMs (OpenAssistant's reward-model-deberta-v3-large(-v2)): ``DebertaV2ForSequenceClassification``
  with relative attention, ``DebertaV2Tokenizer`` (a SentencePiece-style unigram; ``[CLS] p [SEP] r [SEP]``).
* RoBERTa toxicity classifier (s-nlp): ``RobertaForSequenceClassification``, 2 labels (neutral, toxic),
  ``<s>p</s></s>r</s>``.
* Pythia / GPT-NeoX causal LMs (70m, 160m, 410m and the two fine-tuned ones): ``GPTNeoXForCausalLM``,
  ``GPTNeoXTokenizer`` without a chat template or pad token.
* SmolLM2-1.7B-Instruct: ``LlamaForCausalLM`` with SmolLM2's ChatML template (default system prompt); its
  pad ``<|im_end|>`` occurs in the template.
* Custom-code gated RMs (RLHFlow/ArmoRM-Llama3-8B-v0.1, nicolinho/QRM-Llama3.1-8B, nicolinho/QRM-Gemma-2-27B):
  a ``modeling_custom.py`` in the directory, named by ``auto_map``, subclassing transformers'
  ``LlamaPreTrainedModel``/``Gemma2PreTrainedModel`` as the real ones do: a regression layer over the last
  token's hidden state (one reward per objective, or per objective and quantile for QRM), a gating network
  over the hidden state at the end of the prompt, and a ``CustomOutput`` whose ``score`` is the gated
  preference score (QRM: the mean of the gated reward quantiles). No ``logits``. Loads only with
  ``trust_remote_code=True``.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import artifacts, zoo

PREFIX = "replica:"
VERSION = 1
N_MERGES = 448  # BPE merges learned from the corpus: ~700 pieces with the 256 byte symbols

# --------------------------------------------------------------------------------------------------
# The real chat templates, written out


GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)
"""Gemma-2-it's template (also Skywork's and GRM's Gemma-2 RMs): it writes ``<bos>``; "assistant" becomes "model"."""

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
"""Meta-Llama-3-8B-Instruct's template (GRM-Llama3-8B, ArmoRM)."""

LLAMA32_TEMPLATE = r"""{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""
"""Llama-3.2-Instruct's template (GRM-Llama3.2-3B): "Today Date" comes from ``strftime_now`` unless the caller
passes ``date_string`` (rewardscope pins it, see :data:`rewardscope.hf.CHAT_DATE`)."""

LLAMA31_TEMPLATE = LLAMA32_TEMPLATE.replace(
    """{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}""",
    """{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}""").replace(
    """{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}""",
    """{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject("equalto", "code_interpreter") | join(", ") + "\\n\\n"}}
{%- endif %}""")
"""Llama-3.1-Instruct's template (Skywork-Reward-Llama-3.1-8B-v0.2, URM, QRM-Llama3.1): a fixed "26 Jul 2024"
unless ``date_string`` is given; the one-turn path as released, the tool-call branches as in 3.2's."""

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""SmolLM2-Instruct's ChatML template with its default system prompt."""


# --------------------------------------------------------------------------------------------------
# Tokenizers: the family's transformers class over pieces learned from the chatterbot corpus


@functools.cache
def _corpus() -> tuple[str, ...]:
    from .data import chatterbot_dialogues

    return tuple(turn for dialogue in chatterbot_dialogues() for turn in dialogue)


def _merges_of(tokenizer) -> list[tuple[str, str]]:
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def _pieces(alphabet: list[str], merges: list[tuple[str, str]]) -> list[str]:
    """The sorted alphabet, then each merged piece in the order it was learned (no duplicates)."""
    pieces: dict[str, None] = dict.fromkeys(sorted(alphabet))
    for a, b in merges:
        pieces.setdefault(a + b, None)
    return list(pieces)


@functools.cache
def _byte_level_bpe() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(pieces, merges) of a byte-level BPE (GPT-2, RoBERTa, GPT-NeoX, Llama 3, SmolLM2). The trainer starts from
    the fixed byte alphabet, which makes it deterministic across processes."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(_corpus(), trainer=trainers.BpeTrainer(
        vocab_size=len(alphabet) + N_MERGES, initial_alphabet=alphabet, show_progress=False))
    merges = _merges_of(tok)
    return tuple(_pieces(alphabet, merges)), tuple(merges)


@functools.cache
def _metaspace_bpe() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[float, ...]]:
    """(pieces, merges, log-frequency of each piece) of a SentencePiece-style BPE over "▁"-joined words (Gemma's
    pieces; DeBERTa's unigram takes the same pieces, scored by how often the BPE uses them)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    alphabet = sorted({c for text in _corpus() for c in text.replace(" ", "▁")})
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tok.train_from_iterator(_corpus(), trainer=trainers.BpeTrainer(
        vocab_size=len(alphabet) + 1 + N_MERGES, initial_alphabet=alphabet + ["▁"], show_progress=False))
    merges = _merges_of(tok)
    pieces = _pieces(alphabet + ["▁"], merges)
    counts = Counter(piece for text in _corpus() for piece in tok.encode(text).tokens)
    total = sum(counts.values())
    scores = tuple(math.log(max(counts[p], 0.5) / total) for p in pieces)
    return tuple(pieces), tuple(merges), scores


def _vocab(head: list[str], pieces, tail: list[str] = ()) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for token in [*head, *pieces, *tail]:
        vocab.setdefault(token, len(vocab))
    return vocab


LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|reserved_special_token_2|>", "<|reserved_special_token_3|>",
                   "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"]
LLAMA31_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
                    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def llama3_tokenizer(template: str, specials: list[str] = LLAMA31_SPECIALS, pad: str | None = None):
    """Llama 3's tokenizer as the hub ships it (a ``PreTrainedTokenizerFast`` over tokenizer.json): byte-level
    BPE with Llama 3's split pattern, the special tokens after the learned pieces (as at 128000+), and a
    post-processor that adds ``<|begin_of_text|>``. ``pad``: a special token to pad with, "[PAD]" to add one."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces, merges = _byte_level_bpe()
    extra = ["[PAD]"] if pad == "[PAD]" else []
    vocab = _vocab([], pieces, [*specials, *extra])
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(merges), ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in [*specials, *extra]])
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, vocab[bos])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<|eot_id|>", pad_token=pad,
                                   chat_template=template, model_max_length=131072)


def gemma_tokenizer(template: str = GEMMA2_TEMPLATE):
    """Gemma's ``GemmaTokenizer``: ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3, ``<mask>`` 4, the turn
    markers, the 256 byte-fallback pieces, then the learned "▁" pieces; it adds ``<bos>``."""
    from transformers import GemmaTokenizer

    pieces, merges, _ = _metaspace_bpe()
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    vocab = _vocab([*specials, *(f"<0x{i:02X}>" for i in range(256))], pieces)
    tok = GemmaTokenizer(vocab=vocab, merges=list(merges), add_bos_token=True, chat_template=template,
                         model_max_length=8192)
    tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    return tok


def deberta_v3_tokenizer():
    """DeBERTa-v3's ``DebertaV2Tokenizer``: a unigram over "▁" pieces; ``[PAD]`` 0, ``[CLS]`` 1, ``[SEP]`` 2,
    ``[UNK]`` 3, ``[MASK]`` last; pairs as ``[CLS] a [SEP] b [SEP]``."""
    from transformers import DebertaV2Tokenizer

    pieces, _, scores = _metaspace_bpe()
    vocab = [("[PAD]", 0.0), ("[CLS]", 0.0), ("[SEP]", 0.0), ("[UNK]", 0.0), *zip(pieces, scores), ("[MASK]", 0.0)]
    return DebertaV2Tokenizer(vocab=vocab, unk_id=3, model_max_length=512)


def gpt2_tokenizer():
    """GPT-2's ``GPT2Tokenizer``: ``<|endoftext|>`` (the last id) is BOS, EOS and UNK; no pad, no BOS added."""
    from transformers import GPT2Tokenizer

    pieces, merges = _byte_level_bpe()
    return GPT2Tokenizer(vocab=_vocab([], pieces, ["<|endoftext|>"]), merges=list(merges), model_max_length=1024)


def roberta_tokenizer():
    """RoBERTa's ``RobertaTokenizer``: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` last."""
    from transformers import RobertaTokenizer

    pieces, merges = _byte_level_bpe()
    return RobertaTokenizer(vocab=_vocab(["<s>", "<pad>", "</s>", "<unk>"], pieces, ["<mask>"]), merges=list(merges),
                            model_max_length=512)


def gpt_neox_tokenizer():
    """Pythia's ``GPTNeoXTokenizer``: ``<|endoftext|>`` 0 (BOS, EOS, UNK), ``<|padding|>`` 1 but no pad token set,
    no BOS added, no chat template."""
    from transformers import GPTNeoXTokenizer

    pieces, merges = _byte_level_bpe()
    return GPTNeoXTokenizer(vocab=_vocab(["<|endoftext|>", "<|padding|>"], pieces), merges=list(merges),
                            pad_token=None, model_max_length=2048)


def smollm2_tokenizer():
    """SmolLM2's ``GPT2Tokenizer``: ``<|endoftext|>`` 0, ``<|im_start|>`` 1 (BOS), ``<|im_end|>`` 2 (EOS and pad)."""
    from transformers import GPT2Tokenizer

    pieces, merges = _byte_level_bpe()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = GPT2Tokenizer(vocab=_vocab(specials, pieces), merges=list(merges), bos_token="<|im_start|>",
                        eos_token="<|im_end|>", pad_token="<|im_end|>", unk_token="<|endoftext|>",
                        chat_template=SMOLLM2_TEMPLATE, model_max_length=8192)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    return tok


# --------------------------------------------------------------------------------------------------
# Models

SIZES = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
INIT = 0.1  # initializer_range: larger than the real 0.02, so random scores spread and differences show


def _ids(tok, **tokens: str | None) -> dict[str, int | None]:
    return {f"{key}_token_id": (None if value is None else tok.convert_tokens_to_ids(value)) for key, value in tokens.items()}


def _llama_config(tok, version: str, **overrides):
    from transformers import LlamaConfig

    rope = {"rope_type": "default", "rope_theta": 500000.0}
    if version in ("3.1", "3.2"):
        rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 1024, "rope_theta": 500000.0}
    return LlamaConfig(vocab_size=len(tok), num_key_value_heads=2, max_position_embeddings=8192, rope_parameters=rope,
                       tie_word_embeddings=version == "3.2", initializer_range=INIT, rms_norm_eps=1e-5,
                       **_ids(tok, bos=tok.bos_token, eos=tok.eos_token, pad=tok.pad_token), **SIZES, **overrides)


def _gemma2_config(tok, **overrides):
    from transformers import Gemma2Config

    return Gemma2Config(vocab_size=len(tok), num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
                        max_position_embeddings=8192, sliding_window=16, attn_logit_softcapping=50.0,
                        final_logit_softcapping=30.0, initializer_range=INIT, pad_token_id=0, eos_token_id=1,
                        bos_token_id=2, **SIZES, **overrides)


@dataclass(frozen=True)
class Replica:
    """How to build the replica of one hub model; calling it with a directory builds it there."""

    hub_id: str
    kind: str  # "reward-model" or "policy", as zoo entries
    family: str
    make: Callable[[], tuple]  # () -> (model, tokenizer[, extra files]), weights drawn from the current torch seed
    description: str

    @property
    def seed(self) -> int:
        return zlib.crc32(self.hub_id.encode())

    def __call__(self, out: Path) -> None:
        import torch

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as it was
            torch.manual_seed(self.seed)
            model, tokenizer, *files = self.make()
        for name, text in (files[0] if files else {}).items():  # custom code, named by the config's auto_map
            (out / name).write_text(text)
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        zoo.write_sidecar(out, kind=self.kind, replica_of=self.hub_id, family=self.family,
                          source=f"built in code by rewardscope.replicas (random, seed {self.seed})",
                          metrics={"parameters": sum(p.numel() for p in model.parameters())})


def _gemma2_rm(**config):
    def make():
        from transformers import Gemma2ForSequenceClassification

        tok = gemma_tokenizer()
        return Gemma2ForSequenceClassification(_gemma2_config(tok, num_labels=1, **config)), tok

    return make


def _llama_rm(template: str, version: str, specials: list[str] = LLAMA31_SPECIALS, pad: str | None = None,
              num_labels: int = 1):
    def make():
        from transformers import LlamaForSequenceClassification

        tok = llama3_tokenizer(template, specials, pad)
        return LlamaForSequenceClassification(_llama_config(tok, version, num_labels=num_labels)), tok

    return make


def _gpt2_rm():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    tok = gpt2_tokenizer()
    eos = tok.eos_token_id
    config = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=64, n_layer=2, n_head=4, bos_token_id=eos,
                        eos_token_id=eos, pad_token_id=eos, num_labels=1, initializer_range=INIT)
    return GPT2ForSequenceClassification(config), tok


def _deberta_v3_rm():
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    tok = deberta_v3_tokenizer()
    config = DebertaV2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, max_position_embeddings=512, type_vocab_size=0,
                             relative_attention=True, max_relative_positions=-1, position_biased_input=False,
                             pos_att_type=["p2c", "c2p"], pad_token_id=0, num_labels=1, initializer_range=INIT,
                             position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True)
    return DebertaV2ForSequenceClassification(config), tok


def _roberta_toxicity():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tok = roberta_tokenizer()
    config = RobertaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, num_labels=2, id2label={0: "neutral", 1: "toxic"},
                           label2id={"neutral": 0, "toxic": 1}, initializer_range=INIT)
    return RobertaForSequenceClassification(config), tok


def _pythia():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    tok = gpt_neox_tokenizer()
    config = GPTNeoXConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                           num_attention_heads=4, max_position_embeddings=2048, use_parallel_residual=True,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
                           bos_token_id=0, eos_token_id=0, tie_word_embeddings=False, initializer_range=INIT)
    return GPTNeoXForCausalLM(config), tok


def _smollm2():
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), num_key_value_heads=2, max_position_embeddings=8192,
                         rope_parameters={"rope_type": "default", "rope_theta": 130000.0}, tie_word_embeddings=True,
                         initializer_range=INIT, bos_token_id=1, eos_token_id=2, pad_token_id=2, **SIZES)
    return LlamaForCausalLM(config), tok


# --------------------------------------------------------------------------------------------------
# Custom-code gated reward models (ArmoRM / QRM)


GATED_MODELING = '''"""A replica of the custom code of ArmoRM-style gated reward models (RLHFlow/ArmoRM-Llama3-8B-v0.1; QRM's
quantile variant), written by rewardscope.replicas. Loaded by AutoModelForSequenceClassification through the
config's auto_map, with trust_remote_code=True."""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers.models.{module}.modeling_{module} import {base}Model, {base}PreTrainedModel
from transformers.utils import ModelOutput

GATING_PATTERN = {pattern}  # the ids that end the prompt: the gating network reads the hidden state there


class GatingNetwork(nn.Module):
    def __init__(self, in_features, out_features, bias=True, temperature=10, logit_scale=1.0, hidden_dim=1024,
                 n_hidden=3):
        super().__init__()
        self.temperature = temperature
        self.logit_scale = nn.Parameter(torch.ones(1) * logit_scale)
        layers = []
        for _ in range(n_hidden):
            layers.append(nn.Linear(in_features, hidden_dim))
            in_features = hidden_dim
        layers.append(nn.Linear(in_features, out_features, bias=bias))
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = nn.functional.relu(x)
        x = nn.functional.softmax(x / self.temperature, dim=1)
        return x * self.logit_scale[0]


def find_token_for_gating(lst):
    """The last position where the gating pattern starts."""
    n = len(GATING_PATTERN)
    for j in range(len(lst) - n, -1, -1):
        if lst[j:j + n] == GATING_PATTERN:
            return j
    raise ValueError("Token pattern not found in the list.")


@dataclass
class CustomOutput(ModelOutput):
    rewards: Optional[torch.FloatTensor] = None
    hidden_state: Optional[torch.FloatTensor] = None
    prompt_embedding: Optional[torch.FloatTensor] = None
    gating_output: Optional[torch.FloatTensor] = None
    score: Optional[torch.FloatTensor] = None
    reward_quantiles: Optional[torch.FloatTensor] = None


class {name}({base}PreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = {base}Model(config)
        self.num_objectives = getattr(config, "num_objectives", 19)
        self.n_quantiles = getattr(config, "n_quantiles", 0)
        width = self.num_objectives * max(self.n_quantiles, 1)
        self.regression_layer = nn.Linear(config.hidden_size, width, bias=False)
        self.gating = GatingNetwork(config.hidden_size, self.num_objectives,
                                    temperature=getattr(config, "gating_temperature", 10),
                                    hidden_dim=getattr(config, "gating_hidden_dim", 1024),
                                    n_hidden=getattr(config, "gating_n_hidden", 3))
        self.post_init()
        eye = torch.zeros(self.num_objectives, self.num_objectives)
        eye[range(self.num_objectives), range(self.num_objectives)] = 1.0
        self.reward_transform_matrix = nn.Parameter(eye, requires_grad=False)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        outputs = self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             inputs_embeds=inputs_embeds, use_cache=use_cache)
        tokens_hidden_states = outputs[0]
        batch_size = input_ids.shape[0]
        if self.config.pad_token_id is None and batch_size != 1:
            raise ValueError("Cannot handle batch sizes > 1 if no padding token is defined.")
        if self.config.pad_token_id is None:
            sequence_lengths = -1
        else:  # the token before the first pad (right padding); the last token if there is none or it leads
            sequence_lengths = torch.eq(input_ids, self.config.pad_token_id).int().argmax(-1) - 1
            sequence_lengths = (sequence_lengths % input_ids.shape[-1]).to(tokens_hidden_states.device)
        rows = torch.arange(batch_size, device=tokens_hidden_states.device)
        hidden_states = tokens_hidden_states[rows, sequence_lengths]
        rewards = self.regression_layer(hidden_states)
        gating_token_positions = [find_token_for_gating(ids.tolist()) for ids in input_ids]
        prompt_embedding = tokens_hidden_states[rows, gating_token_positions, :]
        gating_output = self.gating(prompt_embedding)
        if self.n_quantiles:
            quantiles = rewards.view(batch_size, self.num_objectives, self.n_quantiles)
            reward_quantiles = (gating_output.unsqueeze(-1) * quantiles).sum(1)
            return CustomOutput(rewards=rewards, hidden_state=hidden_states, prompt_embedding=prompt_embedding,
                                gating_output=gating_output, score=reward_quantiles.mean(-1),
                                reward_quantiles=reward_quantiles)
        rewards_adjusted = rewards @ self.reward_transform_matrix
        score = torch.sum(gating_output * rewards_adjusted, dim=1)
        return CustomOutput(rewards=rewards, hidden_state=hidden_states, prompt_embedding=prompt_embedding,
                            gating_output=gating_output, score=score)
'''


def _gated_rm(base: str, tokenizer: Callable[[], Any], pattern_text: str, n_objectives: int, n_quantiles: int,
              config: Callable[..., Any]):
    """A custom-code gated RM's ``make``. ``pattern_text``: the text whose ids end the prompt (ArmoRM's
    ``<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n``); the gating network reads it."""
    name = f"{base}ForRewardModelWithGating"
    module = {"Llama": "llama", "Gemma2": "gemma2"}[base]

    def make():
        import sys
        import types

        tok = tokenizer()
        pattern = tok(pattern_text, add_special_tokens=False).input_ids
        source = GATED_MODELING.replace("{module}", module).replace("{base}", base).replace("{name}", name) \
            .replace("{pattern}", repr(pattern))
        code = types.ModuleType(f"rewardscope_replica_{name}")
        sys.modules[code.__name__] = code  # dataclasses look their module up while the class is made
        try:
            exec(compile(source, "modeling_custom.py", "exec"), code.__dict__)  # noqa: S102 - our own source
        finally:
            del sys.modules[code.__name__]
        cfg = config(tok, num_labels=n_objectives, num_objectives=n_objectives, n_quantiles=n_quantiles,
                     gating_hidden_dim=32, gating_n_hidden=3, gating_temperature=10)
        cfg.auto_map = {"AutoModelForSequenceClassification": f"modeling_custom.{name}"}
        return getattr(code, name)(cfg), tok, {"modeling_custom.py": source}

    return make


def _gated(hub_id: str, base: str, template: str, n_objectives: int, n_quantiles: int, description: str) -> Replica:
    if base == "Llama":
        version = "3.1" if template is LLAMA31_TEMPLATE else "3"
        specials = LLAMA31_SPECIALS if version == "3.1" else LLAMA3_SPECIALS
        pad = "<|finetune_right_pad_id|>" if version == "3.1" else None
        make = _gated_rm(base, lambda: llama3_tokenizer(template, specials, pad),
                         "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", n_objectives, n_quantiles,
                         lambda tok, **kw: _llama_config(tok, version, **kw))
    else:
        make = _gated_rm(base, gemma_tokenizer, "<end_of_turn>\n<start_of_turn>model\n", n_objectives, n_quantiles,
                         _gemma2_config)
    return Replica(hub_id, "reward-model", f"custom-code gated RM ({base})", make, description)


# --------------------------------------------------------------------------------------------------
# The table


def _table() -> dict[str, Replica]:
    rm, policy = "reward-model", "policy"
    gemma = "Gemma-2 RM"
    rows = [
        Replica("Skywork/Skywork-Reward-Gemma-2-27B-v0.2", rm, gemma, _gemma2_rm(), "Gemma-2 27B sequence-classification RM"),
        Replica("Skywork/Skywork-Reward-Gemma-2-27B", rm, gemma, _gemma2_rm(), "Gemma-2 27B sequence-classification RM"),
        Replica("Ray2333/GRM-gemma2-2B-rewardmodel-ft", rm, gemma, _gemma2_rm(), "Gemma-2 2B sequence-classification RM"),
        Replica("Skywork/Skywork-Reward-Llama-3.1-8B-v0.2", rm, "Llama-3.1 RM",
                _llama_rm(LLAMA31_TEMPLATE, "3.1", pad="[PAD]"), "Llama-3.1 8B RM; pad [PAD] added"),
        Replica("LxzGordon/URM-LLaMa-3.1-8B", rm, "Llama-3.1 RM",
                _llama_rm(LLAMA31_TEMPLATE, "3.1", pad="[PAD]", num_labels=5), "Llama-3.1 8B RM with 5 outputs"),
        Replica("Ray2333/GRM-Llama3-8B-rewardmodel-ft", rm, "Llama-3 RM",
                _llama_rm(LLAMA3_TEMPLATE, "3", LLAMA3_SPECIALS, pad="<|eot_id|>"),
                "Llama-3 8B RM; its pad <|eot_id|> occurs in the template"),
        Replica("Ray2333/GRM-Llama3.2-3B-rewardmodel-ft", rm, "Llama-3.2 RM",
                _llama_rm(LLAMA32_TEMPLATE, "3.2", pad="<|finetune_right_pad_id|>"),
                "Llama-3.2 3B RM; its template dates the system header with strftime_now"),
        Replica("Ray2333/gpt2-large-helpful-reward_model", rm, "GPT-2 RM", _gpt2_rm,
                "GPT-2 large RM trained on hh-rlhf text (no chat template, no pad token, absolute positions)"),
        Replica("Ray2333/gpt2-large-harmless-reward_model", rm, "GPT-2 RM", _gpt2_rm,
                "GPT-2 large RM trained on hh-rlhf text (no chat template, no pad token, absolute positions)"),
        Replica("OpenAssistant/reward-model-deberta-v3-large-v2", rm, "DeBERTa-v3 RM", _deberta_v3_rm,
                "DeBERTa-v3 large encoder RM (SEAL's post-D model)"),
        Replica("OpenAssistant/reward-model-deberta-v3-large", rm, "DeBERTa-v3 RM", _deberta_v3_rm,
                "DeBERTa-v3 large encoder RM (SEAL's pre-D model)"),
        Replica("s-nlp/roberta_toxicity_classifier", rm, "RoBERTa classifier", _roberta_toxicity,
                "RoBERTa toxicity classifier, 2 labels (neutral, toxic)"),
        _gated("RLHFlow/ArmoRM-Llama3-8B-v0.1", "Llama", LLAMA3_TEMPLATE, 19, 0,
               "ArmoRM: 19 objectives mixed by a gating network; output.score"),
        _gated("nicolinho/QRM-Llama3.1-8B", "Llama", LLAMA31_TEMPLATE, 5, 19,
               "QRM: gated reward quantiles; output.score is their mean"),
        _gated("nicolinho/QRM-Gemma-2-27B", "Gemma2", GEMMA2_TEMPLATE, 5, 19,
               "QRM on Gemma-2: gated reward quantiles; output.score is their mean"),
        Replica("HuggingFaceTB/SmolLM2-1.7B-Instruct", policy, "SmolLM2 policy", _smollm2,
                "SmolLM2 instruct policy: Llama with ChatML"),
    ]
    for hub_id in ("EleutherAI/pythia-70m", "EleutherAI/pythia-160m", "EleutherAI/pythia-410m",
                   "jaredjoss/pythia-70m-roberta-lr_3e6-kl_0035-steps_600-rlhf-model",
                   "amirabdullah19852020/pythia-160m_utility_reward"):
        rows.append(Replica(hub_id, policy, "Pythia causal LM", _pythia, "GPT-NeoX causal LM without a chat template"))
    return {row.hub_id: row for row in rows}


REPLICAS: dict[str, Replica] = _table()
"""Hub id -> :class:`Replica` (a builder: ``REPLICAS[hub_id](out_dir)``), for every hub model of
``notebooks/params/paper.yml`` and the three custom-code RMs its chapter 3 names."""

CUSTOM_CODE = ("RLHFlow/ArmoRM-Llama3-8B-v0.1", "nicolinho/QRM-Llama3.1-8B", "nicolinho/QRM-Gemma-2-27B")
OPTIONS: dict[str, dict[str, Any]] = {hub_id: {"trust_remote_code": True, "output": "score"} for hub_id in CUSTOM_CODE}
"""Loading options the real models need beyond paper.yml's: the custom-code RMs' opt-in and reward attribute."""


def build_replica(hub_id: str, out_dir: str | Path) -> Path:
    """Write the replica of ``hub_id`` (a key of :data:`REPLICAS`) into ``out_dir`` (new or empty); returns it."""
    if not isinstance(hub_id, str):
        raise TypeError(f"hub_id must be a str, got {type(hub_id).__name__}")
    if hub_id not in REPLICAS:
        raise ValueError(f"no replica of {hub_id!r}; replicas: {', '.join(sorted(REPLICAS))}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"out_dir {out} exists and is not an empty directory")
    REPLICAS[hub_id](out)
    return out


def replica_name(hub_id: str) -> str:
    """The zoo name of a replica: ``replica:<hub id>``."""
    return PREFIX + hub_id


def _register(replica: Replica) -> None:
    name = replica_name(replica.hub_id)
    if name in zoo.embedded_names():
        return
    builder = "zoo-replica-" + replica.hub_id.replace("/", "--")  # one flat cache folder per replica
    params = {"hub_id": replica.hub_id}

    def build() -> Path:
        return artifacts.cached(builder, params, VERSION, replica).path

    def locate() -> Path | None:
        path = artifacts.entry_path(builder, params, VERSION)
        return path if artifacts.is_complete(path, verify_hashes=False) else None

    zoo.register(zoo.ZooEntry(name, replica.kind, "built in code (random weights)",
                              f"tiny replica of {replica.hub_id}: {replica.description}", build, locate, params))


def zoo_entries() -> None:
    """Add ``replica:<hub id>`` for every replica to the zoo (its first lookup calls this, once)."""
    for replica in REPLICAS.values():
        _register(replica)


# --------------------------------------------------------------------------------------------------
# Data replicas: small local copies of hub data sets in the hub's own layout

DATA_VERSION = 1


def _hh_dialogue(prompt: str, answer: str) -> str:
    return f"\n\nHuman: {prompt}\n\nAssistant: {answer}"


def _build_hh_rlhf(out: Path) -> None:
    """hh-rlhf's hub layout: <subset>/{train,test}.jsonl.gz, rows {chosen, rejected} in its plain-text format."""
    from .data import chatterbot_dialogues

    turns = [d for d in chatterbot_dialogues() if len(d) >= 2]
    pairs = [(d[0], d[1], turns[(i * 7 + 3) % len(turns)][1]) for i, d in enumerate(turns)]
    subsets = {"helpful-base": pairs[0::2], "harmless-base": pairs[1::2]}
    for subset, rows in subsets.items():
        (out / subset).mkdir()
        cut = max(1, len(rows) // 5)
        for split, part in (("test", rows[:cut]), ("train", rows[cut:])):
            lines = [json.dumps({"chosen": _hh_dialogue(p, good), "rejected": _hh_dialogue(p, bad)})
                     for p, good, bad in part if good != bad]
            with gzip.open(out / subset / f"{split}.jsonl.gz", "wt", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")


def _build_jigsaw(out: Path) -> None:
    """jaredjoss/jigsaw-long-2000's hub layout: data/train-*.parquet with a ``prompt`` column."""
    import pandas as pd

    from .data import review_openings

    prompts = [f"{opening} and then" for opening in review_openings(seed=0)][:400]
    (out / "data").mkdir()
    pd.DataFrame({"prompt": prompts}).to_parquet(out / "data" / "train-00000-of-00001.parquet", index=False)


DATA_REPLICAS = {"Anthropic/hh-rlhf": _build_hh_rlhf, "jaredjoss/jigsaw-long-2000": _build_jigsaw}


def data_replica(spec: str) -> Path:
    """The local directory of ``replica:<hub data set id>`` (built and cached on first use)."""
    hub_id = spec.removeprefix(PREFIX)
    if hub_id not in DATA_REPLICAS:
        raise ValueError(f"no data replica {spec!r}; data replicas: {', '.join(PREFIX + k for k in DATA_REPLICAS)}")
    return artifacts.cached("replica-data", {"hub_id": hub_id}, DATA_VERSION, DATA_REPLICAS[hub_id]).path
