"""Prompt and text sources that ship inside installed wheels (no network).

Only what the foundation needs lives here for now: the chatterbot dialogues (BSD-3), used to train
the tiny tokenizers of the smoke models and as short prompts.
"""

from __future__ import annotations

from functools import lru_cache

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
