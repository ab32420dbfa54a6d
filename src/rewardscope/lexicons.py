"""Word lists and lexicons that several studies read: one home for each.

- :data:`WORD`: what counts as a word (letters, one inner apostrophe), for rewards and studies alike;
- :func:`vader_lexicon`: VADER's token valences, read from the vaderSentiment wheel (the zoo's ``vader``);
- :func:`afinn_lexicon`: AFINN-en-165's single words, as the vocabulary-sweep paper's tidytext ``afinn`` set;
- :data:`ANTONYMS`: (positive, negative) word pairs of opposite VADER sign, used by chapter 1's contrastive
  texts and chapter 4's sentiment flips.
"""

from __future__ import annotations

import re
from functools import lru_cache

WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")

ANTONYMS: tuple[tuple[str, str], ...] = (
    ("good", "bad"), ("great", "terrible"), ("happy", "sad"), ("love", "hate"), ("best", "worst"),
    ("better", "worse"), ("nice", "nasty"), ("beautiful", "ugly"), ("wonderful", "awful"), ("excellent", "poor"),
    ("fun", "boring"), ("positive", "negative"), ("success", "failure"), ("win", "lose"), ("safe", "dangerous"),
    ("helpful", "useless"), ("pleasant", "unpleasant"), ("calm", "anxious"), ("healthy", "sick"),
    ("friendly", "hostile"), ("agree", "disagree"), ("perfect", "horrible"), ("easy", "difficult"),
    ("lucky", "cruel"), ("strong", "weak"), ("clean", "dirty"), ("comfortable", "uncomfortable"),
    ("interesting", "dull"), ("pleased", "upset"), ("enjoy", "suffer"), ("amazing", "disappointing"),
    ("hope", "fear"), ("glad", "sorry"), ("relief", "pain"), ("effective", "ineffective"),
)
"""(positive, negative) VADER word pairs, swapped both ways by :func:`rewardscope.studies.seal.rewrite.flip_sentiment`."""


@lru_cache(maxsize=1)
def vader_lexicon() -> dict[str, float]:
    """VADER's 7,506 entries, token -> mean valence in [-4, 4], read from the vaderSentiment wheel."""
    from .zoo import resolve

    lexicon = {}
    for line in (resolve("vader") / "vader_lexicon.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            token, valence = line.split("\t")[:2]
            lexicon[token] = float(valence)
    return lexicon


def afinn_lexicon() -> dict[str, float]:
    """AFINN-en-165 single words and their valences (−5…+5), as the paper's tidytext ``afinn`` set."""
    from afinn import Afinn

    return {w: float(v) for w, v in Afinn(language="en")._dict.items() if " " not in w}
