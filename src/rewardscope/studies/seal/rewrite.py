"""Rewrites for SEAL's robustness test: rule-based edits in place of the paper's Mistral-7B paraphrases.

Two kinds of rewrite, both deterministic:

- :func:`paraphrase` keeps the meaning: it swaps words for synonyms from a small table
  (:data:`SYNONYMS`, chosen to be interchangeable in any context and to carry no VADER valence),
  contracts or expands common contractions (:data:`CONTRACTIONS`) and normalises ellipses and
  spacing. :func:`rewrite_pairs` then keeps only rewrites whose MiniLM cosine similarity to the
  original is at least a threshold (the paper checked BGE-M3 similarity).
- :func:`flip_sentiment` changes the meaning on purpose: it swaps VADER-valenced words for their
  antonyms (:data:`rewardscope.lexicons.ANTONYMS`, pairs of opposite VADER sign), a probe of how much a reward
  model follows sentiment.

The paper's paraphrases are richer (whole-sentence rewording by an LM); rule-based edits touch only
texts that contain a listed word, and change few words in each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ...lexicons import ANTONYMS

SYNONYMS: tuple[tuple[str, str], ...] = (
    ("maybe", "perhaps"), ("quickly", "rapidly"), ("often", "frequently"), ("usually", "typically"),
    ("question", "query"), ("questions", "queries"), ("choose", "select"), ("doctor", "physician"),
    ("doctors", "physicians"), ("medication", "medicine"), ("pills", "tablets"), ("began", "started"),
    ("almost", "nearly"), ("children", "kids"), ("whole", "entire"), ("movie", "film"), ("movies", "films"),
    ("until", "till"), ("everyone", "everybody"), ("someone", "somebody"), ("anyone", "anybody"),
    ("nobody", "no one"), ("buy", "purchase"), ("answer", "reply"), ("answers", "replies"), ("car", "automobile"),
    ("anyway", "anyhow"), ("shows", "displays"), ("bought", "purchased"), ("simple", "straightforward"),
)
"""Word pairs swapped both ways by :func:`paraphrase`: interchangeable in context, no VADER valence."""

CONTRACTIONS: tuple[tuple[str, str], ...] = (
    ("do not", "don't"), ("does not", "doesn't"), ("did not", "didn't"), ("is not", "isn't"), ("are not", "aren't"),
    ("was not", "wasn't"), ("were not", "weren't"), ("cannot", "can't"), ("will not", "won't"),
    ("would not", "wouldn't"), ("could not", "couldn't"), ("should not", "shouldn't"), ("I am", "I'm"),
    ("it is", "it's"), ("you are", "you're"), ("they are", "they're"), ("we are", "we're"), ("that is", "that's"),
    ("I will", "I'll"), ("you will", "you'll"), ("there is", "there's"), ("what is", "what's"), ("let us", "let's"),
)
"""Expanded and contracted forms, swapped both ways by :func:`paraphrase`."""

_APOSTROPHE = "['’]"


def _table(pairs: Sequence[tuple[str, str]]) -> tuple[re.Pattern, dict[str, str]]:
    mapping: dict[str, str] = {}
    for a, b in pairs:
        for x, y in ((a, b), (b, a)):
            key = x.lower()
            if key in mapping and mapping[key] != y:
                raise ValueError(f"rewrite table maps {x!r} twice")
            mapping[key] = y
    keys = sorted(mapping, key=len, reverse=True)  # "do not" before "do"
    alternation = "|".join(re.escape(k).replace("'", _APOSTROPHE).replace(r"\ ", r"\s+") for k in keys)
    return re.compile(rf"(?<![\w'’])(?:{alternation})(?![\w'’])", re.IGNORECASE), mapping


def _match_case(source: str, replacement: str) -> str:
    if len(source) > 1 and source.isupper():
        return replacement.upper()
    if source[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def _swap(text: str, table: tuple[re.Pattern, dict[str, str]]) -> str:
    pattern, mapping = table

    def replace(m: re.Match) -> str:
        key = re.sub(r"\s+", " ", m.group(0).replace("’", "'")).lower()
        out = mapping[key]
        if key.startswith("i ") or key.startswith("i'"):  # "I am" <-> "I'm": the pronoun stays upper case
            return out
        return _match_case(m.group(0), out)

    return pattern.sub(replace, text)


_SYNONYMS = _table(SYNONYMS)
_CONTRACTIONS = _table(CONTRACTIONS)
_ANTONYMS = _table(ANTONYMS)


def paraphrase(text: str) -> str:
    """A meaning-preserving rewrite: synonym swaps, contractions swapped, "..." ↔ "…", single spaces.

    Examples
    --------
    >>> paraphrase("Maybe ask your doctor... I do not know.")
    "Perhaps ask your physician… I don't know."
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    out = _swap(_swap(text, _SYNONYMS), _CONTRACTIONS)
    out = out.replace("...", "\0").replace("…", "...").replace("\0", "…")
    return re.sub(r"[ \t]{2,}", " ", out)


def flip_sentiment(text: str) -> str:
    """A sentiment flip: every word of :data:`ANTONYMS` becomes its opposite-valence partner.

    Examples
    --------
    >>> flip_sentiment("A good movie, I love it!")
    'A bad movie, I hate it!'
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _swap(text, _ANTONYMS)


REWRITES = {"paraphrase": paraphrase, "flip": flip_sentiment}


def cosine_similarity(a: Sequence[str], b: Sequence[str], embedder=None) -> np.ndarray:
    """MiniLM cosine similarity of ``a[i]`` and ``b[i]`` (mean-pooled all-MiniLM-L6-v2 embeddings).

    ``embedder`` maps a list of texts to L2-normalised rows; default: the helpfulness proxy's MiniLM.
    """
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"got {len(a)} and {len(b)} texts; they must pair up")
    if not a:
        raise ValueError("no texts to compare")
    if embedder is None:
        from .labels import helpfulness_model

        embedder = helpfulness_model().embed
    return (np.asarray(embedder(a)) * np.asarray(embedder(b))).sum(1)


def rewrite_pairs(pairs: pd.DataFrame, kind: str = "paraphrase", min_similarity: float | None = 0.9,
                  embedder=None) -> pd.DataFrame:
    """Rewrite the chosen and rejected text of every pair.

    Returns a copy of ``pairs`` with ``chosen_rewritten``, ``rejected_rewritten``, their MiniLM
    similarities to the originals (``chosen_similarity``, ``rejected_similarity``), ``changed`` (the
    rewrite altered at least one of the two texts) and ``kept`` (changed, and both similarities are
    at least ``min_similarity``; with ``min_similarity=None`` every changed pair is kept and the
    similarity of changed texts is not computed, NaN).
    """
    if kind not in REWRITES:
        raise ValueError(f"unknown rewrite kind {kind!r}; kinds: {', '.join(REWRITES)}")
    missing = [c for c in ("chosen", "rejected") if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs has no column(s) {missing}")
    if pairs.empty:
        raise ValueError("pairs is empty")
    if min_similarity is not None and not -1 <= min_similarity <= 1:
        raise ValueError(f"min_similarity must be in [-1, 1] or None, got {min_similarity}")
    out = pairs.copy()
    fn = REWRITES[kind]
    for side in ("chosen", "rejected"):
        out[f"{side}_rewritten"] = [fn(t) for t in out[side]]
        changed = (out[side] != out[f"{side}_rewritten"]).to_numpy()
        similarity = np.ones(len(out))  # an unchanged text is identical to itself; embed only the changed ones
        if min_similarity is None:
            similarity[changed] = np.nan  # no filter: skip the embeddings
        elif changed.any():
            similarity[changed] = cosine_similarity(out[side][changed], out[f"{side}_rewritten"][changed], embedder)
        out[f"{side}_similarity"] = similarity
    out["changed"] = (out["chosen"] != out["chosen_rewritten"]) | (out["rejected"] != out["rejected_rewritten"])
    keep = out["changed"].copy()
    if min_similarity is not None:
        keep &= (out["chosen_similarity"] >= min_similarity) & (out["rejected_similarity"] >= min_similarity)
    out["kept"] = keep
    return out
