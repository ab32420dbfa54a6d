"""The linear implicit reward model (IRM) of Marks et al. (2023), rebuilt without GPT-4.

The paper asks what an RLHF-tuned LM learned about its reward: (1) rank the blocks by how far tuning moved
their parameters (:func:`layer_divergence`); (2) train sparse autoencoders on those blocks' MLP outputs
(:mod:`rewardscope.studies.irm.sae`); (3) build contrastive sentences that differ in one valenced word and measure how
far the SAE features at that word move away from a neutral variant (:func:`contrastive_triples`,
:func:`divergence_target`); (4) fit a ridge regression from SAE features to that signed divergence, "the
linear function fit to the IRM" (:class:`LinearIRM`); (5) compare its outputs with the true per-token VADER
values by Kendall tau, against random linear probes (:func:`evaluate_irm`; the paper's random-probe
baseline is tau = -0.037). Its GPT-4 check of which features are about sentiment becomes a lexicon check:
the share of a feature's top-activating tokens that carry VADER valence (:func:`feature_relevance`).

Differences from the original, on purpose: the contrastive sentences swap words by rule (optionally an antonym
table, else a word drawn from VADER-negative words: a fixed list, or every lexicon word at or below -1.5 minus a
blocklist, :func:`negative_lexicon_words`) instead of asking GPT-4; the IRM is cross-fitted by word
(:func:`word_folds`, :func:`out_of_fold_predictions`) and its tau gets an interval over words
(:func:`word_tau`); feature relevance indexes the SAE's feature activations (the original notebook indexed the
reconstruction by feature index); the concatenated feature columns carry their (layer, feature) names
(:func:`concat_features`). The chapter's claims table comes from :func:`findings`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ... import _checks
from ...lexicons import ANTONYMS, WORD, vader_lexicon
from .activations import decoder_blocks
from .sae import SAE

NEUTRAL_WORDS = ("ordinary", "usual", "typical", "regular", "standard", "average", "plain", "normal", "common")
"""Replacements for the neutral variant: words without VADER valence."""

NEGATIVE_WORDS = ("awful", "terrible", "horrible", "bad", "dreadful", "disgusting", "miserable", "worst", "hate", "sad",
                  "ugly", "nasty", "boring", "disappointing", "useless", "painful", "poor", "depressing", "hopeless",
                  "pathetic", "annoying", "weak", "dull", "gloomy", "unpleasant", "worse", "lousy", "tragic", "cruel")
"""Replacements for a positive word without an antonym in :data:`rewardscope.lexicons.ANTONYMS` (a fixed list,
so that no slur from the lexicon's negative end is ever written into a sentence)."""

NEGATIVE_MAX_VALENCE = -1.5
"""Negative replacements come from VADER's words at or below this valence (:func:`negative_lexicon_words`)."""

NEGATIVE_BLOCKLIST = (
    # slurs and their derivatives
    "nigger", "fag", "faggot", "faggots", "retard", "retarded", "tard", "fucktard", "shylock", "shylocking",
    # profanity, sexual insults and sexual violence
    "ass", "assfucking", "assholes", "bastard", "bastards", "bitch", "bitched", "bitches", "bitchy", "bullshit",
    "cocksucker", "cocksuckers", "cunt", "cunts", "damn", "damnit", "dick", "dickhead", "dipshit", "douche",
    "douchebag", "dumbass", "fuck", "fucked", "fucker", "fuckers", "fuckface", "fuckhead", "fucks", "fuked",
    "fuking", "goddam", "goddammed", "goddamn", "goddamned", "goddamns", "goddams", "jackass", "jackasses", "mofo",
    "motherfucker", "motherfucking", "piss", "pissant", "pissants", "pissed", "pisser", "pissing", "scumbag", "shit",
    "shithead", "shitheads", "shits", "shitted", "shittier", "shittiest", "shitting", "shitty", "slut", "sluts",
    "slutty", "smartass", "smartasses", "twat", "wanker", "whore", "whored", "whores", "whoreson", "whoresons",
    "wiseass", "wiseasses", "rape", "raped", "raper", "rapers", "rapes", "raping", "rapist", "rapists", "molest",
    "molested", "molester", "molesters", "molesting", "molests", "molestation", "molestations", "crap", "crappy",
    # chat abbreviations and slang that are not words of a review
    "atab", "bsod", "cwot", "fcol", "nitl", "pita", "prblm", "prblms", "fubar", "snafu", "effin", "amort",
)
"""Words never written into a sentence, whatever their valence: slurs, profanity and sexual violence. Words
with a blocklisted word as a prefix (``bitchiness``, ``whoremonger``) are dropped too
(:func:`negative_lexicon_words`)."""

TRIPLE_COLUMNS = ("text_index", "positive", "negative", "neutral", "positive_word", "negative_word", "neutral_word",
                  "positive_valence", "negative_valence")


# --------------------------------------------------------------------------------------------------
# Where tuning changed the model


def _module(name: str, model) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        model = getattr(model, "model", model)  # a Policy holds its torch model in .model
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{name} must be a torch model or a Policy, got {type(model).__name__}")
    return model


def layer_divergence(base, tuned, top_k: int | None = None) -> pd.DataFrame:
    """Per-block parameter divergence between a base and a tuned model with the same architecture.

    For block i: ``divergence`` = sum over its parameter tensors of ||theta_base - theta_tuned||_2 (the paper's
    ``find_divergences``), ``delta_norm`` = the L2 norm of the whole block's change, ``relative`` = delta_norm /
    ||theta_base|| of the block, ``n_parameters``. Parameters outside the blocks (embeddings, final norm, head)
    are not counted. Rows are the blocks ranked by ``divergence``, highest first; ``top_k`` keeps the first k.
    """
    base, tuned = _module("base", base), _module("tuned", tuned)
    base_blocks, tuned_blocks = decoder_blocks(base), decoder_blocks(tuned)
    if len(base_blocks) != len(tuned_blocks):
        raise ValueError(f"base has {len(base_blocks)} blocks and tuned {len(tuned_blocks)}; they must match")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
    rows = []
    for layer, (block_a, block_b) in enumerate(zip(base_blocks, tuned_blocks)):
        params_a, params_b = dict(block_a.named_parameters()), dict(block_b.named_parameters())
        if {k: v.shape for k, v in params_a.items()} != {k: v.shape for k, v in params_b.items()}:
            raise ValueError(f"block {layer} of base and tuned has different parameter names or shapes")
        divergence = squared = base_squared = 0.0
        n_parameters = 0
        with torch.no_grad():
            for name, a in params_a.items():
                a64, b64 = a.detach().cpu().double(), params_b[name].detach().cpu().double()
                delta = float(torch.linalg.vector_norm(a64 - b64))
                divergence += delta
                squared += delta ** 2
                base_squared += float(torch.linalg.vector_norm(a64)) ** 2
                n_parameters += a.numel()
        rows.append({"layer": layer, "divergence": divergence, "delta_norm": squared ** 0.5,
                     "relative": squared ** 0.5 / base_squared ** 0.5 if base_squared > 0 else float("nan"),
                     "n_parameters": n_parameters})
    frame = pd.DataFrame(rows).sort_values("divergence", ascending=False, kind="stable").set_index("layer")
    return frame if top_k is None else frame.head(top_k)


# --------------------------------------------------------------------------------------------------
# The lexicon and the contrastive sentences


def _lexicon(lexicon: Mapping[str, float] | None) -> Mapping[str, float]:
    lexicon = vader_lexicon() if lexicon is None else lexicon
    if not isinstance(lexicon, Mapping) or not lexicon:
        raise ValueError("lexicon must be a non-empty mapping of word -> valence (or None for VADER)")
    return lexicon


def word_valence(words: Sequence[str], lexicon: Mapping[str, float] | None = None) -> np.ndarray:
    """VADER valence of each word or token string (0 if absent), after stripping spaces, byte-level BPE and
    SentencePiece word markers ('Ġ', '▁') and surrounding punctuation, lower-cased."""
    if isinstance(words, str):
        raise ValueError("words must be a sequence of strings, not one string")
    lexicon = _lexicon(lexicon)
    clean = (str(w).replace("Ġ", " ").replace("▁", " ").strip().strip(".,;:!?\"()[]").lower() for w in words)
    return np.array([float(lexicon.get(w, 0.0)) for w in clean])


def negative_lexicon_words(max_valence: float = NEGATIVE_MAX_VALENCE, lexicon: Mapping[str, float] | None = None,
                           blocklist: Sequence[str] = NEGATIVE_BLOCKLIST, min_letters: int = 4) -> tuple[str, ...]:
    """The lexicon's plain words (letters only, at least ``min_letters``, which drops most chat abbreviations
    such as "wtf" or "ffs") with valence <= ``max_valence``, minus ``blocklist`` and any word that starts with a
    blocklisted word of at least four letters; sorted. With VADER at -1.5 this is about 2,000 words: a negative-word
    test then rests on hundreds of distinct words instead of the 29 of :data:`NEGATIVE_WORDS`.

    Examples
    --------
    >>> negative_lexicon_words(-1, {"awful": -3.4, "meh": -1.2, "fine": 0.8, "damned": -1.6}, blocklist=("damned",))
    ('awful',)
    """
    lexicon = _lexicon(lexicon)
    if isinstance(blocklist, str):
        raise ValueError("blocklist must be a sequence of words, not one string")
    blocked = {w.lower() for w in blocklist}
    stems = tuple(w for w in blocked if len(w) >= 4)
    words = sorted(w for w, v in lexicon.items() if v <= max_valence and w.isalpha() and w.isascii()
                   and len(w) >= min_letters and w.lower() not in blocked and not w.lower().startswith(stems))
    if not words:
        raise ValueError(f"no lexicon word has valence <= {max_valence} outside the blocklist")
    return tuple(words)


def _match_case(source: str, word: str) -> str:
    if len(source) > 1 and source.isupper():
        return word.upper()
    return word[:1].upper() + word[1:] if source[:1].isupper() else word


def contrastive_triples(texts: Sequence[str], lexicon: Mapping[str, float] | None = None, quantile: float = 0.75,
                        negative_words: Sequence[str] = NEGATIVE_WORDS, neutral_words: Sequence[str] = NEUTRAL_WORDS,
                        seed: int = 0, antonyms: bool = True) -> pd.DataFrame:
    """Positive / negative / neutral variants of each text that contains a strongly positive word.

    A word is strongly positive if its valence is at least the ``quantile`` of the lexicon's positive word
    valences (2.0 for VADER at 0.75) and strongly negative if at most the 1 - ``quantile`` quantile of its
    negative ones (-2.1). For each text whose first strongly positive word has no strongly negative word before
    it, the text is cut after that word (the paper's ``trim_example``: the target is the last token) and the
    word is replaced by its antonym (:data:`rewardscope.lexicons.ANTONYMS`, if VADER-negative and ``antonyms``)
    or else by a word drawn from ``negative_words``, and by one from ``neutral_words`` for the neutral variant.
    Draws use ``seed`` and the text's index. Case is kept. Texts without a target are left out. With
    ``antonyms=False`` every negative word is drawn, so a large ``negative_words`` (:func:`negative_lexicon_words`)
    gives as many distinct negative words as the triples allow (the few common positive words would otherwise
    always get the same few antonyms).

    Returns columns :data:`TRIPLE_COLUMNS`, one row per kept text.

    Examples
    --------
    >>> contrastive_triples(["The film was great, really."])[["positive", "negative"]].iloc[0].tolist()
    ['The film was great', 'The film was terrible']
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError("texts must be a sequence of strings")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"texts[{bad}] is {type(texts[bad]).__name__}, expected str")
    if isinstance(quantile, bool) or not isinstance(quantile, int | float) or not 0 < quantile < 1:
        raise ValueError(f"quantile must be a number in (0, 1), got {quantile!r}")
    lexicon = _lexicon(lexicon)
    words = {w: v for w, v in lexicon.items() if WORD.fullmatch(w)}
    positive = np.array([v for v in words.values() if v > 0])
    negative = np.array([v for v in words.values() if v < 0])
    if not len(positive) or not len(negative):
        raise ValueError("lexicon must hold both positive and negative words")
    high, low = np.quantile(positive, quantile), np.quantile(negative, 1 - quantile)
    replacements = [w for w in negative_words if lexicon.get(w.lower(), 0.0) < 0]
    neutrals = [w for w in neutral_words if w.lower() not in lexicon]
    if not replacements:
        raise ValueError("negative_words must hold at least one word with negative valence in the lexicon")
    if not neutrals:
        raise ValueError("neutral_words must hold at least one word absent from the lexicon")
    antonyms = {p: n for p, n in ANTONYMS if lexicon.get(n, 0.0) < 0} if antonyms else {}

    rows = []
    for index, text in enumerate(texts):
        for match in WORD.finditer(text):
            word = match.group(0).lower()
            valence = words.get(word, 0.0)
            if valence <= low:
                break  # a strongly negative word comes first: not a clearly positive context
            if valence < high:
                continue
            rng = np.random.default_rng([seed, index])
            swap = antonyms.get(word) or replacements[rng.integers(len(replacements))]
            neutral = neutrals[rng.integers(len(neutrals))]
            head = text[:match.start()]
            rows.append({"text_index": index, "positive": text[:match.end()],
                         "negative": head + _match_case(match.group(0), swap),
                         "neutral": head + _match_case(match.group(0), neutral),
                         "positive_word": match.group(0), "negative_word": swap, "neutral_word": neutral,
                         "positive_valence": valence, "negative_valence": float(lexicon[swap.lower()])})
            break
    return pd.DataFrame(rows, columns=list(TRIPLE_COLUMNS))


def divergence_target(positive, negative, neutral) -> tuple[np.ndarray, np.ndarray]:
    """The paper's IRM training set from SAE features at the target token of each triple, each [n, m].

    Returns ``features`` [2n, m] (positive rows, then negative rows) and ``target`` [2n]:
    ||f_pos - f_neutral||_2 for a positive row and -||f_neg - f_neutral||_2 for a negative one.

    Examples
    --------
    >>> divergence_target([[3.0, 4.0]], [[0.0, 1.0]], [[0.0, 0.0]])[1]
    array([ 5., -1.])
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (positive, negative, neutral)]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2 or 0 in arrays[0].shape:
        raise ValueError(f"positive, negative and neutral must be non-empty [n, m] arrays of one shape, got "
                         f"{[a.shape for a in arrays]}")
    pos, neg, neu = arrays
    target = np.concatenate([np.linalg.norm(pos - neu, axis=1), -np.linalg.norm(neg - neu, axis=1)])
    return np.concatenate([pos, neg]), target


def concat_features(activations: Mapping[int, np.ndarray], saes: Mapping[int, SAE]) -> tuple[np.ndarray, pd.DataFrame]:
    """Encode each layer's activations [n, d] with that layer's SAE and put the codes side by side.

    Returns ``features`` [n, sum of d_sae] and a table naming each column: ``layer`` and ``feature`` (the index
    into that layer's SAE), so a weight or column found later maps back to its SAE feature.
    """
    if not activations or set(activations) != set(saes):
        raise ValueError(f"activations and saes must name the same layers, got {sorted(activations)} and {sorted(saes)}")
    blocks, names = [], []
    for layer in sorted(activations):
        codes = saes[layer].encode(np.asarray(activations[layer], dtype=np.float32))
        blocks.append(codes)
        names.append(pd.DataFrame({"layer": layer, "feature": np.arange(codes.shape[1])}))
    if len({b.shape[0] for b in blocks}) != 1:
        raise ValueError("activations of all layers must have the same number of rows")
    return np.concatenate(blocks, axis=1), pd.concat(names, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# The linear IRM and its evaluation


def _matrix(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or 0 in array.shape or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a finite, non-empty 2-D array [n, m], got shape {array.shape}")
    return array


def _vector(name: str, values, n: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a finite 1-D array of length {n}, got shape {array.shape}")
    return array


def kendall_tau(predicted, valence, tokens: Sequence | None = None) -> tuple[float, float]:
    """Kendall's tau-b (and its p-value) between predicted and true per-token values, aligned by row.

    With ``tokens`` (one label per row, e.g. the swapped word) both are first averaged per token, as the paper
    does before comparing with the lexicon's one value per word.
    """
    from scipy.stats import kendalltau

    predicted = np.asarray(predicted, dtype=np.float64).ravel()
    valence = _vector("valence", valence, len(predicted))
    if tokens is not None:
        if isinstance(tokens, str) or len(tokens) != len(predicted):
            raise ValueError(f"tokens must hold one label per row ({len(predicted)}), got {len(tokens)}")
        means = pd.DataFrame({"t": list(tokens), "p": predicted, "v": valence}).groupby("t", sort=True).mean()
        predicted, valence = means["p"].to_numpy(), means["v"].to_numpy()
    if len(predicted) < 2:
        raise ValueError("kendall_tau needs at least 2 values (or 2 distinct tokens)")
    result = kendalltau(predicted, valence)
    return float(result.statistic), float(result.pvalue)


def random_probe(features, seed: int = 0) -> np.ndarray:
    """Outputs of the paper's baseline: a linear probe with Xavier-uniform weights (fan_in m, fan_out 1),
    w ~ U(-a, a) with a = sqrt(6 / (m + 1)), applied to ``features`` [n, m]."""
    x = _matrix("features", features)
    bound = np.sqrt(6.0 / (x.shape[1] + 1))
    return x @ np.random.default_rng(seed).uniform(-bound, bound, x.shape[1])


class LinearIRM:
    """The linear approximation of the implicit reward model: ridge regression from SAE features to a reward
    signal (the paper used ``sklearn.linear_model.Ridge()``, alpha = 1).

    ``fit(features [n, m], target [n])`` returns self; ``coef_`` [m] and ``intercept_`` are then set.
    ``score`` is Kendall's tau of the predictions against true valences (:func:`kendall_tau`).
    """

    def __init__(self, alpha: float = 1.0):
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
        self.alpha = alpha

    def fit(self, features, target) -> LinearIRM:
        from sklearn.linear_model import Ridge

        x = _matrix("features", features)
        y = _vector("target", target, x.shape[0])
        self.ridge_ = Ridge(alpha=self.alpha).fit(x, y)
        self.coef_, self.intercept_ = self.ridge_.coef_.copy(), float(self.ridge_.intercept_)
        return self

    def predict(self, features) -> np.ndarray:
        if not hasattr(self, "ridge_"):
            raise ValueError("this LinearIRM is not fitted yet; call fit(features, target) first")
        x = _matrix("features", features)
        if x.shape[1] != len(self.coef_):
            raise ValueError(f"features must have {len(self.coef_)} columns (as in fit), got {x.shape[1]}")
        return self.ridge_.predict(x)

    def score(self, features, valence, tokens: Sequence | None = None) -> float:
        return kendall_tau(self.predict(features), valence, tokens)[0]


def evaluate_irm(irm: LinearIRM, features, valence, tokens: Sequence | None = None, n_random: int = 100,
                 seed: int = 0) -> dict:
    """Kendall tau of the IRM on held-out rows against ``n_random`` random probes (:func:`random_probe`).

    Returns ``tau``, ``p`` (the IRM's), ``n`` (values compared), ``random_tau_mean``, ``random_tau_sd`` and
    ``random_taus`` (one per probe, seeds ``seed`` .. ``seed + n_random - 1``).
    """
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise ValueError(f"n_random must be a positive int, got {n_random!r}")
    tau, p = kendall_tau(irm.predict(features), valence, tokens)
    taus = np.array([kendall_tau(random_probe(features, seed + i), valence, tokens)[0] for i in range(n_random)])
    n = len(set(tokens)) if tokens is not None else len(np.asarray(valence))
    return {"tau": tau, "p": p, "n": n, "random_tau_mean": float(np.nanmean(taus)),
            "random_tau_sd": float(np.nanstd(taus, ddof=1)) if n_random > 1 else float("nan"), "random_taus": taus}


def random_probe_taus(features, valence, tokens: Sequence | None = None, n_random: int = 100, seed: int = 0) -> np.ndarray:
    """Kendall tau of ``n_random`` random Xavier probes (:func:`random_probe`, seeds ``seed`` ..) on ``features``."""
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise ValueError(f"n_random must be a positive int, got {n_random!r}")
    return np.array([kendall_tau(random_probe(features, seed + i), valence, tokens)[0] for i in range(n_random)])


def word_folds(words: Sequence[str], n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """A fold index (0 .. n_folds - 1) per row, assigned by word: every row of one word lands in one fold, so a
    model fit on the other folds has never seen the held-out words (a split by word, not by row). The distinct
    words are shuffled with ``seed`` and dealt to the folds in turn."""
    if isinstance(words, str) or not len(words):
        raise ValueError("words must be a non-empty sequence of labels, one per row")
    _checks.count("n_folds", n_folds, 2)
    labels = pd.Index([str(w) for w in words])
    distinct = np.array(sorted(set(labels)))
    if len(distinct) < n_folds:
        raise ValueError(f"{len(distinct)} distinct words cannot fill {n_folds} folds")
    shuffled = distinct[np.random.default_rng(seed).permutation(len(distinct))]
    fold_of = dict(zip(shuffled, np.arange(len(shuffled)) % n_folds))
    return np.array([fold_of[w] for w in labels])


def out_of_fold_predictions(features, target, folds, alpha: float = 1.0) -> np.ndarray:
    """Each row's prediction by a :class:`LinearIRM` fit on the rows of the other folds (cross-fitting)."""
    x = _matrix("features", features)
    y = _vector("target", target, x.shape[0])
    folds = np.asarray(folds)
    if folds.shape != (x.shape[0],):
        raise ValueError(f"folds must hold one fold index per row ({x.shape[0]}), got shape {folds.shape}")
    if len(np.unique(folds)) < 2:
        raise ValueError("folds must hold at least two folds")
    predicted = np.full(x.shape[0], np.nan)
    for fold in np.unique(folds):
        held = folds == fold
        predicted[held] = LinearIRM(alpha).fit(x[~held], y[~held]).predict(x[held])
    return predicted


def word_tau(predicted, valence, words: Sequence[str], *, against=None, n_resamples: int = 1000, level: float = 0.95,
             seed: int = 0) -> dict:
    """Kendall tau between per-word predictions and valences, with a bootstrap interval over *words*.

    Rows are first averaged per word (as :func:`kendall_tau` with ``tokens``); the words are then resampled with
    replacement, the unit that varies between replications of the experiment (refits on the same words vary
    far less and give too narrow an interval). ``against``: another prediction on the same rows (e.g. the base
    model's); the same resampled words then also give the paired difference tau(predicted) - tau(against).

    Returns ``tau``, ``low``, ``high``, ``n_words`` and, with ``against``, ``tau_against``, ``difference``,
    ``difference_low``, ``difference_high``.
    """
    from scipy.stats import kendalltau

    predicted = np.asarray(predicted, dtype=np.float64).ravel()
    valence = _vector("valence", valence, len(predicted))
    if isinstance(words, str) or len(words) != len(predicted):
        raise ValueError(f"words must hold one label per row ({len(predicted)})")
    if not np.all(np.isfinite(predicted)):
        raise ValueError("predicted must be finite")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    columns = {"p": predicted, "v": valence}
    if against is not None:
        columns["a"] = _vector("against", against, len(predicted))
    means = pd.DataFrame({"w": [str(w) for w in words], **columns}).groupby("w", sort=True).mean()
    if len(means) < 3:
        raise ValueError(f"word_tau needs at least 3 distinct words, got {len(means)}")

    def tau(column, index=None):
        rows = means if index is None else means.iloc[index]
        value = kendalltau(rows[column].to_numpy(), rows["v"].to_numpy()).statistic
        return float(value) if np.isfinite(value) else 0.0  # a constant resample carries no ranking: tau 0

    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(means), len(means)) for _ in range(n_resamples)]
    q = ((1 - level) / 2, (1 + level) / 2)
    taus = np.array([tau("p", i) for i in draws])
    out = {"tau": tau("p"), "low": float(np.quantile(taus, q[0])), "high": float(np.quantile(taus, q[1])),
           "n_words": len(means)}
    if against is not None:
        differences = taus - np.array([tau("a", i) for i in draws])
        out.update({"tau_against": tau("a"), "difference": out["tau"] - tau("a"),
                    "difference_low": float(np.quantile(differences, q[0])),
                    "difference_high": float(np.quantile(differences, q[1]))})
    return out


def share_difference(flags, in_group, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Share of True ``flags`` inside a group minus outside it (e.g. sentiment features among those shared by two
    widths against the other features), with a bootstrap interval that resamples each side's rows separately.
    Returns ``difference``, ``low``, ``high``, ``n`` (rows), ``shared`` and ``rest`` (the two shares)."""
    flags = np.asarray(flags, dtype=bool)
    inside = np.asarray(in_group, dtype=bool)
    if flags.ndim != 1 or inside.shape != flags.shape:
        raise ValueError(f"flags and in_group must be 1-D of one length, got {flags.shape} and {inside.shape}")
    if not inside.any() or inside.all():
        raise ValueError("in_group must put at least one row on each side")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    a, b = flags[inside].astype(float), flags[~inside].astype(float)
    rng = np.random.default_rng(seed)
    draws = [rng.choice(a, len(a)).mean() - rng.choice(b, len(b)).mean() for _ in range(n_resamples)]
    q = ((1 - level) / 2, (1 + level) / 2)
    return {"difference": float(a.mean() - b.mean()), "low": float(np.quantile(draws, q[0])),
            "high": float(np.quantile(draws, q[1])), "n": len(flags), "shared": float(a.mean()), "rest": float(b.mean())}


def reconstructed_valence(predicted, low: float, high: float, percentiles: tuple[float, float] = (10, 90)) -> np.ndarray:
    """The paper's display scale: map the ``percentiles`` of the IRM's outputs linearly onto [low, high] (the
    true valences' range) and clamp to it."""
    predicted = np.asarray(predicted, dtype=np.float64)
    if not low < high:
        raise ValueError(f"low must be below high, got {low} and {high}")
    lo, hi = np.percentile(predicted, percentiles)
    if not hi > lo:
        return np.full_like(predicted, (low + high) / 2)
    return np.clip(low + (predicted - lo) * (high - low) / (hi - lo), low, high)


# --------------------------------------------------------------------------------------------------
# Which features are about sentiment


def top_activations(feature_acts, feature: int, k: int = 20) -> np.ndarray:
    """Row indices of the ``k`` largest positive activations of one feature, largest first."""
    acts = np.asarray(feature_acts)
    if acts.ndim != 2 or 0 in acts.shape:
        raise ValueError(f"feature_acts must be a non-empty 2-D array [n_tokens, n_features], got shape {acts.shape}")
    if isinstance(feature, bool) or not isinstance(feature, int | np.integer) or not 0 <= feature < acts.shape[1]:
        raise ValueError(f"feature must be a column index in 0..{acts.shape[1] - 1}, got {feature!r}")
    column = np.asarray(acts[:, feature], dtype=np.float64)
    order = np.argsort(-column, kind="stable")[:k]
    return order[column[order] > 0]


def feature_relevance(feature_acts, valence, k: int = 20, block: int = 256) -> pd.DataFrame:
    """For each SAE feature, how much its top-activating tokens carry sentiment (a lexicon stand-in for the
    paper's GPT-4 "is this feature about sentiment?" check).

    ``feature_acts`` [n_tokens, n_features] are the SAE's feature activations (not its reconstruction) and
    ``valence`` [n_tokens] each token's lexicon valence (:func:`word_valence`; 0 = none). Per feature over its
    top ``k`` active tokens (:func:`top_activations`): ``share_valenced`` (the share with non-zero valence; NaN
    if never active), ``mean_valence``, ``mean_abs_valence``, ``n_active`` (tokens where it fires) and
    ``max_activation``. Features are ranked ``block`` columns at a time, so memory stays near the input's size.
    """
    acts = np.asarray(feature_acts)
    if acts.ndim != 2 or 0 in acts.shape or not np.issubdtype(acts.dtype, np.number) or not np.all(np.isfinite(acts)):
        raise ValueError(f"feature_acts must be a finite, non-empty 2-D array [n_tokens, n_features], got {acts.shape}")
    valence = _vector("valence", valence, acts.shape[0])
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    k = min(k, acts.shape[0])
    columns = {name: np.full(acts.shape[1], np.nan) for name in ("share_valenced", "mean_valence", "mean_abs_valence")}
    for start in range(0, acts.shape[1], block):
        chunk = acts[:, start:start + block]
        top = np.argsort(-chunk, axis=0, kind="stable")[:k]  # [k, block] row indices, largest first
        active = np.take_along_axis(chunk, top, axis=0) > 0
        count = active.sum(0)
        fired = count > 0
        top_valence = valence[top]
        part = slice(start, start + chunk.shape[1])
        columns["share_valenced"][part][fired] = ((top_valence != 0) & active).sum(0)[fired] / count[fired]
        columns["mean_valence"][part][fired] = (top_valence * active).sum(0)[fired] / count[fired]
        columns["mean_abs_valence"][part][fired] = (np.abs(top_valence) * active).sum(0)[fired] / count[fired]
    return pd.DataFrame({**columns, "n_active": (acts > 0).sum(0), "max_activation": acts.max(0)},
                        index=pd.RangeIndex(acts.shape[1], name="feature"))


# --------------------------------------------------------------------------------------------------
# What holds at this scale


PAPER_RANDOM_PROBE_TAU = -0.037
"""The paper's random linear probe on negative words, Kendall tau (Pythia-160M, the released notebook)."""
PAPER_RANDOM_PROBE_P = 0.55
"""Its p-value."""
PAPER_SENTIMENT_SHARED = (81, 150)
"""GPT-4-flagged sentiment features among the top 30 MMCS-matched features of five layers (Pythia-160M)."""

FINDING_KEYS = ("random_probe", "irm_negative", "widths", "sentiment_shared", "beyond_seed", "tuned_vs_base")
"""The results :func:`findings` needs; ``cross_reconstruction`` is optional."""


def _result(results: Mapping, key: str, fields: Sequence[str]) -> dict:
    entry = results.get(key)
    if not isinstance(entry, Mapping):
        raise ValueError(f"results[{key!r}] must be a mapping with {', '.join(fields)}")
    missing = [f for f in fields if f not in entry]
    if missing:
        raise ValueError(f"results[{key!r}] lacks {', '.join(missing)}")
    return {f: entry[f] for f in fields}


def findings(results: Mapping) -> list:
    """The chapter's "what holds at this scale" rows, each decided by :func:`rewardscope.findings.decide`.

    ``results`` maps each of :data:`FINDING_KEYS` (and optionally ``cross_reconstruction``) to numbers:

    * ``random_probe``: ``tau``, ``low``, ``high`` (the 2.5 and 97.5 % of random probes' taus on the negative
      words), ``n`` (words). Random probes centre on tau = 0 by construction (symmetric weights): not a test.
    * ``irm_negative``: ``tau``, ``low``, ``high``, ``n``: the tuned IRM on negative words, interval over words
      (:func:`word_tau`); holds if it lies above 0, where random probes centre.
    * ``widths``: ``mmcs``, ``low``, ``high``, ``n``, ``null``: small vs big dictionary of one model from
      *different* seeds, interval over features; holds if above ``null``, random directions of the same shapes.
    * ``sentiment_shared``: ``difference``, ``low``, ``high``, ``n``, ``shared``, ``rest``: share of sentiment
      features among those shared by both widths minus the share among the other features; holds if above 0.
    * ``beyond_seed``: ``difference``, ``low``, ``high``, ``n``, ``within``, ``cross``: matched cosine to another
      seed of the same model minus to another seed of the other model, per feature; holds if above 0.
    * ``tuned_vs_base``: ``difference``, ``low``, ``high``, ``n``: tau(tuned IRM) - tau(base IRM) on the same
      negative words, paired over words; holds if above 0.
    * ``cross_reconstruction``: ``difference``, ``low``, ``high``, ``n`` (generations), ``replicates``, ``base``,
      ``tuned``: the base SAEs' FVU on the tuned policy's own generations minus the tuned SAEs', interval over SAE
      replicate pairs widened by the spread over generations (:func:`rewardscope.studies.irm.sae.cross_reconstruction`);
      holds if above 0.
    """
    from ...findings import decide, not_a_test

    if not isinstance(results, Mapping):
        raise ValueError("results must be a mapping of result name -> numbers")
    rows = []
    r = _result(results, "random_probe", ("tau", "low", "high", "n"))
    rows.append(not_a_test(
        "a random linear probe orders negative words no better than chance",
        f"τ = {PAPER_RANDOM_PROBE_TAU} (p = {PAPER_RANDOM_PROBE_P}), Pythia-160M",
        f"mean τ {r['tau']:.3f} (95 % of probes {r['low']:.3f} to {r['high']:.3f})",
        "Xavier weights are symmetric about 0, so the probes' τ centres on 0 whatever the features",
        unit="negative words", n=int(r["n"])))
    r = _result(results, "irm_negative", ("tau", "low", "high", "n"))
    rows.append(decide("the linear IRM orders negative words by valence (better than random probes, τ = 0)",
                       "claimed; τ not public", r["tau"], r["low"], r["high"], null=0.0, unit="negative words",
                       n=int(r["n"]), what="τ ="))
    r = _result(results, "widths", ("mmcs", "low", "high", "n", "null"))
    rows.append(decide("1× and 2× dictionaries share features (different seeds)", "MMCS not public (logged to wandb)",
                       r["mmcs"], r["low"], r["high"], null=float(r["null"]), unit="features", n=int(r["n"]),
                       what="MMCS"))
    r = _result(results, "sentiment_shared", ("difference", "low", "high", "n", "shared", "rest"))
    rows.append(decide("features shared by both widths are more often about sentiment",
                       f"{PAPER_SENTIMENT_SHARED[0]} of {PAPER_SENTIMENT_SHARED[1]} "
                       f"({PAPER_SENTIMENT_SHARED[0] / PAPER_SENTIMENT_SHARED[1]:.0%}), GPT-4",
                       r["difference"], r["low"], r["high"], null=0.0, unit="features", n=int(r["n"]),
                       what=f"share {r['shared']:.2f} vs {r['rest']:.2f} (the others), difference"))
    r = _result(results, "beyond_seed", ("difference", "low", "high", "n", "within", "cross"))
    rows.append(decide("tuning changes the dictionary beyond seed noise (crossed seeds)", "qualitative (v1)",
                       r["difference"], r["low"], r["high"], null=0.0, unit="features", n=int(r["n"]),
                       what=f"cosine within {r['within']:.3f} vs across {r['cross']:.3f}, difference"))
    r = _result(results, "tuned_vs_base", ("difference", "low", "high", "n"))
    rows.append(decide("beyond the paper: the tuned model's IRM beats the base model's (negative words)", "not tested",
                       r["difference"], r["low"], r["high"], null=0.0, unit="negative words", n=int(r["n"]),
                       what="τ difference"))
    if "cross_reconstruction" in results:
        r = _result(results, "cross_reconstruction", ("difference", "low", "high", "n", "replicates", "base", "tuned"))
        rows.append(decide("beyond the paper: on the tuned policy's own generations, the base SAE reconstructs "
                           "worse than the tuned SAE", "not tested", r["difference"], r["low"], r["high"], null=0.0,
                           unit="SAE replicate pairs (and generations)", n=int(r["replicates"]),
                           what=f"FVU {r['base']:.3f} vs {r['tuned']:.3f} on {int(r['n'])} generations, difference"))
    return rows
