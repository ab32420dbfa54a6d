"""Vocabulary sweeps (Christian et al. 2025): every single-token response to a prompt, scored by a reward model.

The score of token ``t`` is the RM's own score of the id sequence ``prefix + [t] + suffix``, where
``prefix``/``suffix`` are the ids that the RM's chat template writes around the assistant turn (one
BOS, found by ids: see :func:`response_slot`). The original pipeline instead decoded ``t`` to text,
rendered the template as text and re-encoded it with special tokens, which changes many tokens and
doubles the BOS of Llama-3/Gemma templates; :func:`decode_reencode_comparison` measures what that does.

Two methods give the same scores (to float rounding):

* ``"naive"``: one full forward per candidate (batched; all sequences have the same length, so no
  padding). The reference.
* ``"prefix"``: the prompt prefix is run once and its per-layer keys/values are kept; batches of
  candidates ``[t] + suffix`` then run with positions offset by the prefix length and attend to the
  shared prefix keys/values through a registered attention function (:data:`ATTENTION`), without a
  per-candidate copy. Only ``1 + len(suffix)`` tokens per candidate are computed instead of the whole
  sequence (3 instead of 45 for SmolLM2's template with the paper's prompts).

Several RMs whose embeddings and bottom layers hold identical weights (the embedded lab's SmolLM2 RMs fine-tune
only their top 8 of 30 layers) can also share those layers: :func:`vocabulary_sweeps` finds them by comparing
the weights and runs the prefix and every candidate through the shared layers once, then each RM's own top
layers and head (method ``"shared-trunk"``, :mod:`rewardscope.studies.sweep.trunk`), equal to each RM swept alone to float
rounding.

Encoder RMs cannot share a prefix (attention is bidirectional) and always use batched naive scoring.
Results stream to parquet chunks in the artifact cache; an interrupted sweep resumes from its finished
chunks, and under ``accelerate launch`` the chunks are split between the processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ... import artifacts, hf
from .scorer import DEFAULT_BATCH, METHODS, NoSharing, Scorer, make_scorer, score_block, trunk_and_head
from .slot import Slot, check_prompt, check_rm, response_slot

logger = logging.getLogger(__name__)

PROMPTS = {
    "greatest": "What, in one word, is the greatest thing ever?",
    "best": "What, in one word, is the best thing ever?",
    "worst": "What, in one word, is the worst thing ever?",
}
"""The three prompts of the paper's token sweep (its ``config/prompts.yaml``)."""

BUILDER = "vocab-sweep"
VERSION = 1
CHUNK = 4096  # candidates per cached parquet part (the unit of resume and of sharding)


# --------------------------------------------------------------------------------------------------
# The sweep


def check_token_ids(token_ids, rm) -> np.ndarray:
    limit = rm.vocabulary_size
    if token_ids is None:
        return np.arange(limit, dtype=np.int64)
    if isinstance(token_ids, (str, bytes)):
        raise ValueError(f"token_ids must be a sequence of ints, got {token_ids!r}")
    array = np.asarray(token_ids)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"token_ids must be a non-empty 1-D sequence of ints, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"token_ids must be ints, got dtype {array.dtype}")
    bad = array[(array < 0) | (array >= limit)]
    if bad.size:
        raise ValueError(f"token_ids must lie in [0, {limit}) for {rm.name!r}; got {bad[:5].tolist()}")
    if np.unique(array).size != array.size:
        raise ValueError("token_ids has duplicates; each id is scored once")
    return array.astype(np.int64)


def _model_fingerprint(model) -> str:
    """A content hash of the weights (names, shapes, sums and a few values of every tensor)."""
    from .trunk import weights_digest

    return weights_digest(model)


def _partial_state():
    """accelerate's process state: several processes under ``accelerate launch``, else one.

    ``cpu=True`` where there is no GPU (or ``ACCELERATE_USE_CPU`` is set): without it accelerate does
    not recognise a multi-process CPU launch.
    """
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())


def _read_part(path: Path, expected: np.ndarray) -> pd.DataFrame | None:
    try:
        part = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        logger.warning("unreadable sweep chunk %s (%s); recomputing it", path, err)
        return None
    if not np.array_equal(part["token_id"].to_numpy(), expected):
        return None
    return part


def _write_part(path: Path, frame: pd.DataFrame) -> None:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    artifacts.atomic_write_bytes(path, buffer.getvalue())


def _cache_params(rm, prompt: str, slot: Slot, ids: np.ndarray, method: str, dtype_name: str, **extra) -> dict:
    """The cache key of one (RM, prompt) sweep: everything its scores depend on, the weights by content."""
    model = extra.pop("model", None) or _model_fingerprint(rm.model)
    return {"model": model, "label": rm.label, "architecture": rm.architecture,
            "prompt": prompt, "prefix": list(slot.prefix), "suffix": list(slot.suffix),
            "types": None if slot.token_type_ids is None else list(slot.token_type_ids),
            "tokens": hashlib.sha256(ids.tobytes()).hexdigest()[:16], "n": len(ids), "method": method,
            "dtype": dtype_name, **extra}


class _ChunkStore:
    """The cache entry of one (RM, prompt) sweep and its resumable parquet chunks.

    Finished chunks live in a hidden ``.<entry>.parts`` directory beside the entry (one atomic file each);
    :meth:`build` merges them into the entry (scores.parquet, chunks.json) and removes the parts.
    """

    def __init__(self, params: dict, ids: np.ndarray, chunk_size: int):
        self.ids, self.chunk_size, self.params = ids, chunk_size, params
        self.final = artifacts.entry_path(BUILDER, params, VERSION)
        self.parts = self.final.parent / f".{self.final.name}.parts"
        self.n_chunks = -(-len(ids) // chunk_size)

    def complete(self) -> bool:
        return artifacts.is_complete(self.final)

    def part_path(self, k: int) -> Path:
        return self.parts / f"chunk-{self.chunk_size}-{k:06d}.parquet"

    def expected(self, k: int) -> np.ndarray:
        return self.ids[k * self.chunk_size:(k + 1) * self.chunk_size]

    def has(self, k: int) -> bool:
        return self.part_path(k).is_file() and _read_part(self.part_path(k), self.expected(k)) is not None

    def pending(self) -> list[int]:
        return [k for k in range(self.n_chunks) if not self.has(k)]

    def write(self, k: int, scores: np.ndarray, seconds: float) -> None:
        _write_part(self.part_path(k), pd.DataFrame({"token_id": self.expected(k), "score": scores,
                                                     "process": _partial_state().process_index,
                                                     "seconds": seconds / len(scores)}))

    def build(self, state, batch_size: int, recompute) -> None:
        """Merge the chunks into the entry (main process); ``recompute(k)`` writes a chunk a process left out."""
        import torch

        def build(tmp: Path) -> None:
            frames = []
            for k in range(self.n_chunks):
                part = _read_part(self.part_path(k), self.expected(k)) if self.part_path(k).is_file() else None
                if part is None:  # a process died before writing it: score it here
                    recompute(k)
                    part = _read_part(self.part_path(k), self.expected(k))
                frames.append(part)
            merged = pd.concat(frames, ignore_index=True)
            merged[["token_id", "score"]].to_parquet(tmp / "scores.parquet", index=False)
            computed_by = merged.groupby("process").size()
            (tmp / "chunks.json").write_text(json.dumps({
                "chunk_size": self.chunk_size, "chunks": self.n_chunks, "processes": state.num_processes,
                "tokens_by_process": {str(p): int(n) for p, n in computed_by.items()},
                "compute_seconds": round(float(merged["seconds"].sum()), 2),
                "torch_threads": torch.get_num_threads(), "batch_size": batch_size}, indent=2))

        if state.is_main_process:
            artifacts.cached(BUILDER, self.params, VERSION, build)
            shutil.rmtree(self.parts, ignore_errors=True)
        state.wait_for_everyone()
        if not self.complete():
            raise RuntimeError(f"the sweep entry {self.final} is missing or corrupt after it was built")

    def scores(self) -> np.ndarray:
        return pd.read_parquet(self.final / "scores.parquet")["score"].to_numpy()

    def compute_seconds(self) -> float:
        return json.loads((self.final / "chunks.json").read_text())["compute_seconds"]


def vocabulary_sweep(rm, prompt: str, token_ids: Sequence[int] | None = None, method: str = "prefix",
                     batch_size: int | None = None, dtype=None, *, progress: bool | None = None,
                     cache: bool = True, chunk_size: int = CHUNK) -> pd.DataFrame:
    """Score every token id as the whole assistant response to ``prompt``.

    Parameters
    ----------
    rm : a Hugging Face reward model from :func:`rewardscope.load_reward_model`.
    prompt : the user turn.
    token_ids : ids to score (default: the whole tokenizer vocabulary, special tokens included).
    method : "prefix" (share the prompt's keys/values; decoders) or "naive" (a full forward per
        candidate; the reference). Encoders always score naively.
    batch_size : candidates per forward (default: 512 for "prefix", 32 for "naive", 128 for encoders).
    dtype : compute dtype (default: the RM's; "auto": bfloat16 where the device runs it natively); another
        dtype runs on a converted copy of the model.
    progress : show a progress bar (default: only on a terminal, for long sweeps).
    cache : keep the result (and the chunks of an interrupted run) in the artifact cache.
    chunk_size : candidates per cached chunk; chunks are the unit of resume and of sharding between
        processes (``accelerate launch``: each process scores its share, the main process merges).

    Returns
    -------
    DataFrame with columns ``token_id`` (int64), ``token`` (the id decoded alone, for reading; never
    re-encoded) and ``score`` (float64), one row per id in the order given. ``attrs`` records the
    prompt, method, dtype, template ids and (with ``cache``) the cache entry.

    Examples
    --------
    >>> from rewardscope import load_reward_model
    >>> rm = load_reward_model("tiny-llama-rm")
    >>> vocabulary_sweep(rm, "What is the best thing ever?", token_ids=[5, 6]).columns.tolist()
    ['token_id', 'token', 'score']
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_rm(rm)
    check_prompt(prompt)
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    compute_dtype = hf.resolve_dtype(dtype, rm.device) if dtype is not None else next(rm.model.parameters()).dtype
    ids = check_token_ids(token_ids, rm)
    slot = response_slot(rm, prompt)
    fallback = None  # why the prefix method could not run, when it could not
    if rm.architecture != "decoder" and method == "prefix":
        logger.info("%s is an encoder: scoring every sequence in full", rm.name)
        method = "naive"
    elif method == "prefix" and trunk_and_head(rm.model)[1] is None:
        fallback = trunk_and_head(rm.model)[2]
        logger.warning("%s: %s; the prefix method needs one, scoring full sequences (method='naive')", rm.name, fallback)
        method = "naive"
    batch_size = batch_size or DEFAULT_BATCH[method if rm.architecture == "decoder" else "encoder"]
    dtype_name = str(compute_dtype).removeprefix("torch.")
    attrs = {"prompt": prompt, "method": method, "dtype": dtype_name, "prefix_ids": list(slot.prefix),
             "suffix_ids": list(slot.suffix), "rm": rm.name, "architecture": rm.architecture,
             "reward": f"{getattr(rm, 'output', 'logits')}[{rm.label}]"}
    if fallback:
        attrs["fallback"] = fallback

    def finish(scores: np.ndarray) -> pd.DataFrame:
        tokens = rm.tokenizer.batch_decode([[int(i)] for i in ids])
        frame = pd.DataFrame({"token_id": ids, "token": tokens, "score": scores})
        frame.attrs.update(attrs)
        return frame

    n_chunks = -(-len(ids) // chunk_size)
    bar_total = len(ids)
    scorer_holder: list[Scorer] = []

    def scorer() -> Scorer:
        if not scorer_holder:
            scorer_holder.append(make_scorer(rm, compute_dtype))
        return scorer_holder[0]

    def run(chunks: Sequence[int], write=None, done: int = 0) -> dict[int, np.ndarray]:
        from ...progress import bar as progress_bar

        results = {}
        main = write is None or _partial_state().is_main_process
        with progress_bar(total=bar_total, initial=done, desc=f"sweeping {rm.name}", unit="tok",
                          progress=progress if main else False, long=bar_total > 4 * CHUNK,
                          dynamic_ncols=True) as bar:
            for k in chunks:
                block = ids[k * chunk_size:(k + 1) * chunk_size]
                started = time.perf_counter()
                try:
                    results[k] = score_block(scorer(), slot, block, method, batch_size, bar)
                except NoSharing as err:
                    logger.warning("%s; scoring full sequences instead", err)
                    attrs.update(method="naive", fallback=str(err))
                    results[k] = score_block(scorer(), slot, block, "naive", DEFAULT_BATCH["naive"], bar)
                if write is not None:
                    write(k, results[k], time.perf_counter() - started)
        return results

    if not cache:
        started = time.perf_counter()
        results = run(range(n_chunks))
        attrs["compute_seconds"] = round(time.perf_counter() - started, 2)
        return finish(np.concatenate([results[k] for k in range(n_chunks)]))

    store = _ChunkStore(_cache_params(rm, prompt, slot, ids, method, dtype_name), ids, chunk_size)
    if not store.complete():
        state = _partial_state()
        pending = store.pending()
        state.wait_for_everyone()  # every process lists the same pending chunks before any writes one
        done = len(ids) - sum(len(store.expected(k)) for k in pending)
        if done:
            logger.info("resuming a sweep of %s: %d of %d tokens already scored", rm.name, done, len(ids))
        with state.split_between_processes(pending) as mine:
            run(mine, store.write, done)
        state.wait_for_everyone()
        store.build(state, batch_size, lambda k: run([k], store.write))
    attrs["cache"] = str(store.final)
    attrs["compute_seconds"] = store.compute_seconds()
    return finish(store.scores())


SHARED_TRUNK = "shared-trunk"
SHARED_BATCH = 128  # candidates per forward of the shared-trunk engine (1 CPU thread, SmolLM2: 64 -6%, 256 -15%)


def _check_rms(rms) -> list[tuple[str, Any]]:
    """(name, reward model or zero-argument loader) pairs of ``rms``; one clear line when malformed."""
    from collections.abc import Mapping

    if isinstance(rms, Mapping):
        items = list(rms.items())
    elif isinstance(rms, (list, tuple)):
        items = [(getattr(rm, "name", None), rm) for rm in rms]
    else:
        raise ValueError(f"rms must be a dict of name -> reward model (or a function that loads one) or a list of "
                         f"reward models, got {type(rms).__name__}")
    if not items:
        raise ValueError("rms must hold at least one reward model, got none")
    names = [name for name, _ in items]
    bad = [name for name in names if not isinstance(name, str) or not name]
    if bad:
        raise ValueError(f"rms names must be non-empty strings, got {bad[0]!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"rms names must be unique, got {sorted(n for n in set(names) if names.count(n) > 1)}")
    return items


def _check_prompts(prompts) -> dict[str, str]:
    from collections.abc import Mapping

    if isinstance(prompts, str):
        raise ValueError(f"prompts must be a dict of name -> prompt or a list of prompts, got the string {prompts!r}")
    if isinstance(prompts, Mapping):
        out = dict(prompts)
    elif isinstance(prompts, (list, tuple)):
        out = {p: p for p in prompts}
    else:
        raise ValueError(f"prompts must be a dict of name -> prompt or a list of prompts, got {type(prompts).__name__}")
    if not out:
        raise ValueError("prompts must hold at least one prompt, got none")
    for name, text in out.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"prompts[{name!r}] must be a non-empty string, got {text!r}")
    return out


def _loaded(name: str, value):
    """The reward model of an ``rms`` entry (calling a loader), checked."""
    from ...rewards import HFRewardModel

    rm = value if isinstance(value, HFRewardModel) else value() if callable(value) else value
    if not isinstance(rm, HFRewardModel):
        raise ValueError(f"rms[{name!r}] must be a Hugging Face reward model (load_reward_model of a model spec) or a "
                         f"function that returns one, got {rm!r}")
    return rm


def _shared_frames(members: list[tuple[str, Any]], depth: int, prompts: dict[str, str], token_ids, dtype,
                   batch_size: int, progress, cache: bool, chunk_size: int) -> dict[tuple[str, str], pd.DataFrame] | None:
    """Sweeps of every prompt for models sharing their bottom ``depth`` layers; None where the engine
    cannot reproduce their own scores (the caller then sweeps each model alone)."""
    import torch

    from .trunk import VERSION as ENGINE_VERSION
    from .trunk import Engine

    names = [name for name, _ in members]
    rms = [rm for _, rm in members]
    ids = check_token_ids(token_ids, rms[0])
    if any(not np.array_equal(check_token_ids(token_ids, rm), ids) for rm in rms[1:]):
        logger.warning("%s score different token ids; sweeping each alone", names)
        return None
    compute_dtype = hf.resolve_dtype(dtype, rms[0].device) if dtype is not None else next(rms[0].model.parameters()).dtype
    dtype_name = str(compute_dtype).removeprefix("torch.")
    slots = {}
    for key, prompt in prompts.items():
        each = [response_slot(rm, prompt) for rm in rms]
        if any(s != each[0] for s in each[1:]):
            logger.warning("%s put the response to %r in different template slots; sweeping each alone", names, key)
            return None
        slots[key] = each[0]
    engine = Engine([rm.model for rm in rms], [rm.label for rm in rms], depth, compute_dtype)
    fingerprint = [_model_fingerprint(rm.model) for rm in rms] if cache else []
    tol = 1e-3 if compute_dtype == torch.float32 else 1e-1
    checked = False
    out: dict[tuple[str, str], pd.DataFrame] = {}
    for key, prompt in prompts.items():
        slot = slots[key]
        continuation = torch.empty((len(ids), 1 + len(slot.suffix)), dtype=torch.long)
        continuation[:, 0] = torch.as_tensor(ids)
        continuation[:, 1:] = torch.tensor(slot.suffix, dtype=torch.long)
        engine.prefix(slot.prefix)
        if not checked:  # the engine against each model's own forward, before anything is stored
            probe = continuation[:2]
            full = torch.cat([torch.tensor([list(slot.prefix)] * len(probe)), probe], dim=1)
            mine = engine.score(probe)
            for name, rm, scores in zip(names, rms, mine):
                reference = make_scorer(rm, compute_dtype).naive(full)
                if not np.allclose(scores, reference, rtol=tol, atol=tol):
                    logger.warning("shared-trunk scores %s of %s disagree with its own forward %s; sweeping each "
                                   "alone", scores, name, reference)
                    return None
            checked = True
        params = [_cache_params(rm, prompt, slot, ids, SHARED_TRUNK, dtype_name, engine=ENGINE_VERSION,
                                model=fingerprint[j]) for j, rm in enumerate(rms)] if cache else [{}] * len(rms)
        scores, seconds, entries = _shared_prompt(engine, continuation, params, names, batch_size, progress, cache,
                                                  chunk_size)
        tokens = rms[0].tokenizer.batch_decode([[int(i)] for i in ids])
        for j, (name, rm) in enumerate(zip(names, rms)):
            if j and rm.tokenizer is not rms[0].tokenizer:
                tokens = rm.tokenizer.batch_decode([[int(i)] for i in ids])
            frame = pd.DataFrame({"token_id": ids, "token": tokens, "score": scores[j]})
            frame.attrs.update(prompt=prompt, method=SHARED_TRUNK, dtype=dtype_name, prefix_ids=list(slot.prefix),
                               suffix_ids=list(slot.suffix), rm=rm.name, architecture=rm.architecture,
                               reward=f"logits[{rm.label}]", shared_layers=depth,
                               layers=engine.n_layers, shared_with=[n for n in names if n != name],
                               compute_seconds=seconds[j])
            if cache:
                frame.attrs["cache"] = str(entries[j])
            out[(name, key)] = frame
    return out


def _shared_prompt(engine, continuation, params: list[dict], names: list[str], batch_size: int, progress,
                   cache: bool, chunk_size: int) -> tuple[list[np.ndarray], list[float], list[Path | None]]:
    """Scores of every candidate of one recorded prefix for each model of ``engine``: (scores per model,
    compute seconds per model, cache entry per model). With ``cache`` each model has its own chunk store;
    the chunks that any of them lacks are computed once for all and written to each."""
    from ...progress import bar as progress_bar

    ids = continuation[:, 0].numpy()
    n_chunks = -(-len(ids) // chunk_size)
    stores = [_ChunkStore(p, ids, chunk_size) for p in params] if cache else []
    open_stores = [s for s in stores if not s.complete()]
    pending = sorted({k for s in open_stores for k in s.pending()}) if cache else list(range(n_chunks))
    results: dict[int, np.ndarray] = {}

    def compute(chunks, bar) -> None:
        for k in chunks:
            block = continuation[k * chunk_size:(k + 1) * chunk_size]
            started = time.perf_counter()
            scores = np.concatenate([_score_shared(engine, block[s:s + batch_size], bar)
                                     for s in range(0, len(block), batch_size)], axis=1)
            seconds = (time.perf_counter() - started) / len(names)  # the shared work, split evenly
            for j, store in enumerate(stores):
                if store in open_stores:
                    store.write(k, scores[j], seconds)
            results[k] = scores

    started = time.perf_counter()
    if not cache:
        with progress_bar(total=len(ids), desc=f"sweeping {', '.join(names)} (shared trunk)", unit="tok",
                          progress=progress, long=len(ids) > 4 * CHUNK, dynamic_ncols=True) as bar:
            compute(pending, bar)
        seconds = round((time.perf_counter() - started) / len(names), 2)
        return list(np.concatenate([results[k] for k in range(n_chunks)], axis=1)), [seconds] * len(names), \
            [None] * len(names)
    if open_stores:
        state = _partial_state()
        state.wait_for_everyone()  # every process lists the same pending chunks before any writes one
        total = sum(len(stores[0].expected(k)) for k in pending)
        with progress_bar(total=len(ids), initial=len(ids) - total, desc=f"sweeping {', '.join(names)} (shared trunk)",
                          unit="tok", progress=progress if state.is_main_process else False,
                          long=len(ids) > 4 * CHUNK, dynamic_ncols=True) as bar:
            with state.split_between_processes(pending) as mine:
                compute(mine, bar)
        state.wait_for_everyone()
        for store in open_stores:
            store.build(state, batch_size, lambda k: compute([k], None))
    return [s.scores() for s in stores], [s.compute_seconds() for s in stores], [s.final for s in stores]


def _score_shared(engine, continuations, bar=None) -> np.ndarray:
    """Scores ``[models, B]`` of one batch through the shared-trunk engine."""
    scores = engine.score(continuations)
    if bar is not None:
        bar.update(len(continuations))
    return scores


def vocabulary_sweeps(rms, prompts, token_ids: Sequence[int] | None = None, dtype=None, *,
                      batch_size: int | None = None, progress: bool | None = None, cache: bool = True,
                      chunk_size: int = CHUNK, share: bool = True,
                      method: str = "prefix") -> dict[tuple[str, str], pd.DataFrame]:
    """:func:`vocabulary_sweep` of every reward model and prompt, computing shared frozen layers once.

    Reward models whose embeddings and bottom layers hold identical weights (the embedded lab's decoder RMs
    fine-tune only the top 8 of SmolLM2's 30 layers) are found by comparing the tensors (never names, see
    :func:`rewardscope.studies.sweep.trunk.shared_depth`); each prompt's prefix and every candidate then run through
    the shared layers once and through each model's own top layers and head (:class:`rewardscope.studies.sweep.trunk.Engine`,
    method ``"shared-trunk"``). The engine is checked against each model's own forward first; any model it
    cannot run or that shares nothing is swept alone with :func:`vocabulary_sweep` (method "prefix").

    Parameters
    ----------
    rms : dict of name -> reward model, or -> a function that loads one (then at most one group of models
        sharing a trunk is in memory at a time: each is loaded once to fingerprint its layers, and again to
        sweep), or a list of reward models (named by ``rm.name``).
    prompts : dict of name -> prompt text, or a list of prompts (each its own name).
    token_ids, dtype, progress, cache, chunk_size : as :func:`vocabulary_sweep`; every (model, prompt) is
        its own cache entry with resumable chunks, keyed by the model's weights (not by the group it was
        computed in).
    batch_size : candidates per forward (default: 128 for the shared trunk; :func:`vocabulary_sweep`'s
        defaults for models swept alone).
    share : False sweeps every model alone with :func:`vocabulary_sweep` (the reference).
    method : "prefix" (share what can be shared) or "naive" (every model alone, one full forward per
        candidate: the plain reference).

    Returns
    -------
    dict (model name, prompt name) -> the frame :func:`vocabulary_sweep` returns (token_id, token, score);
    ``attrs["method"]`` is "shared-trunk" with ``shared_layers`` and ``shared_with`` where layers were shared.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    entries = _check_rms(rms)
    prompts = _check_prompts(prompts)
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if dtype is not None:
        hf.resolve_dtype(dtype)
    if not isinstance(share, bool):
        raise ValueError(f"share must be True or False, got {share!r}")
    from ...rewards import HFRewardModel
    from .trunk import common_depth, fingerprints, shared_depth, unsupported

    # 1. which models the shared engine could run; loaders' models are fingerprinted (one in memory at a time)

    prints: list[Any] = []
    for name, value in entries:
        rm = _loaded(name, value)
        check_token_ids(token_ids, rm)
        usable = (share and method == "prefix" and rm.architecture == "decoder" and getattr(rm, "output", "logits") == "logits"
                  and not unsupported(rm.model))
        if not usable:
            prints.append(None)
        elif isinstance(value, HFRewardModel):
            prints.append(rm)  # in memory anyway: compared exactly below
        else:
            prints.append(fingerprints(rm.model))
        del rm

    def depth(i: int, j: int) -> int:
        a, b = prints[i], prints[j]
        if a is None or b is None:
            return 0
        if isinstance(a, HFRewardModel) and isinstance(b, HFRewardModel):
            return shared_depth([a.model, b.model])
        return common_depth(*(fingerprints(x.model) if isinstance(x, HFRewardModel) else x for x in (a, b)))

    # 2. group models whose leading layers agree with every member's
    groups: list[list[int]] = []
    for i in range(len(entries)):
        for group in groups:
            if prints[i] is not None and all(depth(i, j) > 0 for j in group):
                group.append(i)
                break
        else:
            groups.append([i])
    # 3. sweep each group: shared where the weights really agree, else each model alone
    out: dict[tuple[str, str], pd.DataFrame] = {}
    for group in groups:
        members = [(entries[i][0], _loaded(*entries[i])) for i in group]
        frames = None
        if len(members) > 1:
            layers = shared_depth([rm.model for _, rm in members])
            if layers > 0:
                frames = _shared_frames(members, layers, prompts, token_ids, dtype, batch_size or SHARED_BATCH,
                                        progress, cache, chunk_size)
        if frames is None:
            frames = {(name, key): vocabulary_sweep(rm, prompt, token_ids, method, batch_size, dtype,
                                                    progress=progress, cache=cache, chunk_size=chunk_size)
                      for name, rm in members for key, prompt in prompts.items()}
        out.update(frames)
        del members
    return {(name, key): out[(name, key)] for name, _ in entries for key in prompts}
