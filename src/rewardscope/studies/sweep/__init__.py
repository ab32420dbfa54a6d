"""Chapter 3, exhaustive vocabulary sweeps of reward models (Christian et al. 2025), along its concerns:

- :mod:`.slot`: where the response goes in an RM's chat template (ids, one BOS);
- :mod:`.attention`: the shared-prefix attention function (the prompt runs once per prompt);
- :mod:`.scorer`: scoring id sequences, naive (the reference) or with the shared prefix;
- :mod:`.sweep`: the sweep of one RM, or of several that share a trunk (:mod:`.trunk`), with its chunk store;
- :mod:`.roundtrip`: the original pipeline's decode/re-encode round trip against scoring by id;
- :mod:`.speed`: candidates per second against the measured matmul peak;
- :mod:`.statistics`: the paper's statistics and the chapter's decision rule (``findings``).

``rewardscope.sweep`` (DESIGN's public path) is this package; its public names are re-exported here.
"""

from .attention import ATTENTION, shared_prefix_attention
from .roundtrip import decode_reencode_comparison, rank_agreement, roundtrip_ids
from .scorer import DEFAULT_BATCH, HEADS, METHODS
from .slot import Slot, response_slot
from .speed import sweep_throughput
from .statistics import (
    AGREEMENT_NULL,
    FRAME_MATCH,
    IDENTITY_TERMS,
    PAPER_FREQUENCY_SLOPES,
    PAPER_SKEW_RANGE,
    PAPER_TAU_RANGE,
    PAPER_VALENCE_SLOPES,
    agreement_matrix,
    asymmetry_interval,
    check_sweeps,
    findings,
    frequency_bias,
    frequency_slope_interval,
    heterogeneity,
    identity_ranks,
    lexicon_join,
    mds_map,
    probe_token_ids,
    same_gold_pairs,
    score_moments,
    shared_vocabulary,
    tau_interval,
    valence_slopes,
    vocabulary_moments,
)
from .sweep import PROMPTS, SHARED_BATCH, SHARED_TRUNK, vocabulary_sweep, vocabulary_sweeps

__all__ = [
    "Slot", "response_slot", "ATTENTION", "shared_prefix_attention", "METHODS", "DEFAULT_BATCH", "HEADS", "PROMPTS",
    "vocabulary_sweep", "SHARED_TRUNK", "SHARED_BATCH", "vocabulary_sweeps", "sweep_throughput", "rank_agreement",
    "roundtrip_ids", "decode_reencode_comparison", "IDENTITY_TERMS", "probe_token_ids", "check_sweeps",
    "shared_vocabulary", "agreement_matrix", "mds_map", "score_moments", "lexicon_join", "valence_slopes",
    "frequency_bias", "identity_ranks", "PAPER_TAU_RANGE", "PAPER_SKEW_RANGE", "PAPER_FREQUENCY_SLOPES",
    "PAPER_VALENCE_SLOPES", "FRAME_MATCH", "AGREEMENT_NULL", "tau_interval", "same_gold_pairs", "heterogeneity",
    "vocabulary_moments", "frequency_slope_interval", "asymmetry_interval", "findings",
]
