"""The embedded lab: small, real reward models and RL-tuned policies built offline.

Recipe, for each scale ("default" on SmolLM2/MiniLM, "smoke" on the tiny random models):

1. a *sample pool*: k responses of the base policy to chatterbot prompts and drug-review
   continuation prompts, labelled by every gold reward;
2. *preference pairs* per gold reward (margin rule, splits by prompt);
3. Bradley–Terry *reward models* on those pairs (MiniLM encoder, SmolLM2 decoder with its top
   layers fine-tuned), and a SEAL "pre"/"post" pair: the sentiment RM before and after further
   training on a target helpful-and-harmless preference set;
4. *RL-tuned policies*: SmolLM2 tuned with GRPO on the IRM paper's utility reward and on sentiment.

Everything is cached (``$REWARDSCOPE_CACHE``) and registered in the zoo, so ``resolve("sentiment-minilm")``
builds it on first use and returns an ordinary HF directory afterwards. Smoke versions carry the
suffix ``-smoke``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import artifacts, hf
from ..zoo import entry, read_sidecar, register, register_cached, write_sidecar

VERSION = 4  # 2: distinct prompt texts, pairs split by text (v1 let 31 of 1,000 ids share 7 texts across splits);
# 3: the pool sampled by rewardscope.sampling (one seeded stream per prompt), so pairs and RMs are rebuilt with it;
# 4: float32 everywhere (no machine-dependent bfloat16), the concise gold, Bradley–Terry label noise on SEAL's
#    target set, helpful-smollm2 and concise-minilm instead of the near-chance harmless-smollm2
POLICY_VERSION = 2  # the RL policies: TRL samples them, so the new sampler does not change them
GOLDS = ("vader-utility", "vader-compound", "afinn", "toxicity", "helpfulness", "concise")


@dataclass(frozen=True)
class Scale:
    """How big the lab is: which models, how many prompts and samples, how long to train."""

    name: str
    policy: str
    encoder: str
    decoder: str
    chatterbot_prompts: int
    review_prompts: int
    k: int
    max_new_tokens: int
    sample_dtype: str
    encoder_epochs: int
    decoder_epochs: int
    decoder_top_layers: int
    rl_steps: int
    rl_prompts: int
    rl_max_completion_length: int
    train_bf16: bool = False  # bfloat16 autocast in RM training where the CPU runs it natively (AMX: ~2x faster)
    decoder_batch_size: int = 16  # pairs per step of the decoder RMs
    gold_override: str | None = None  # smoke: random tiny-model text has no sentiment, so every RM uses this gold


SCALES = {
    "default": Scale("default", policy="smollm2-135m-instruct", encoder="minilm-l6", decoder="smollm2-135m-instruct",
                     chatterbot_prompts=600, review_prompts=400, k=4, max_new_tokens=32, sample_dtype="float32",
                     encoder_epochs=2, decoder_epochs=1, decoder_top_layers=8, rl_steps=40, rl_prompts=400,
                     rl_max_completion_length=24, decoder_batch_size=8),
    # float32 on every machine: with dtype "auto" the AMX build (bfloat16) and the AVX2 build (float32) gave
    # different lab RMs and flipped chapter 2's verdicts; AVX2, the slower machine that sets the budget, samples and
    # trains in float32 anyway. Decoder RMs take 8 pairs per step: twice the updates for the same compute. They train
    # their top 8 of 30 layers at 1e-4: with the top 4 at 1.5e-4 they stayed below 0.8 (validation 0.772 sentiment,
    # 0.778 helpful). One epoch, since sentiment's validation peaks after the first (0.789, 0.778, 0.787); helpful
    # takes two (its recipe).
    "smoke": Scale("smoke", policy="tiny-llama", encoder="tiny-bert-rm", decoder="tiny-llama", chatterbot_prompts=24,
                   review_prompts=16, k=4, max_new_tokens=8, sample_dtype="float32", encoder_epochs=1, decoder_epochs=1,
                   decoder_top_layers=1, rl_steps=2, rl_prompts=16, rl_max_completion_length=8,
                   gold_override="helpfulness"),
}


def lab_prompts(scale: Scale) -> pd.DataFrame:
    """The pool's prompts: source and text, chatterbot first, in a seeded order."""
    from ..data import prompts_from

    chat = prompts_from("chatterbot", scale.chatterbot_prompts, seed=0)
    reviews = prompts_from("drug-reviews", scale.review_prompts, seed=0)  # distinct texts within and across sources
    return pd.DataFrame({"source": ["chatterbot"] * len(chat) + ["drug-reviews"] * len(reviews), "prompt": chat + reviews})


def sample_pool(scale: Scale) -> pd.DataFrame:
    """The labelled sample pool of a scale: prompt, source, sample, response, one gold_* column per gold."""
    return pd.read_parquet(sample_pool_path(scale) / "pool.parquet")


def pool_params(scale: Scale) -> dict:
    """What the sample pool depends on (its cache key): the scale's sampling fields and the golds."""
    params = {k: v for k, v in asdict(scale).items() if k in ("policy", "chatterbot_prompts", "review_prompts", "k",
                                                              "max_new_tokens")}
    params["sample_dtype"] = hf.dtype_name(scale.sample_dtype)  # "auto" keyed by what it means on this machine
    return {**params, "golds": list(GOLDS)}


def sample_pool_path(scale: Scale) -> Path:
    """The cache directory of a scale's sample pool (built on first use)."""

    def build(out: Path) -> None:
        from ..policy import load_policy
        from ..rewards import load_reward_model
        from .pairs import label_pool
        from .pairs import sample_pool as draw

        prompts = lab_prompts(scale)
        policy = load_policy(scale.policy, dtype=scale.sample_dtype)
        pool = draw(policy, prompts["prompt"].tolist(), k=scale.k, max_new_tokens=scale.max_new_tokens, seed=0)
        pool.insert(1, "source", np.repeat(prompts["source"].to_numpy(), scale.k))
        pool = label_pool(pool, {gold: load_reward_model(gold) for gold in GOLDS})
        pool.to_parquet(out / "pool.parquet", index=False)

    return artifacts.cached("lab-pool", pool_params(scale), VERSION, build).path


def derived_golds(pool: pd.DataFrame) -> pd.DataFrame:
    """Golds built from the lexicon ones: harmless (= −toxicity) and hh (helpfulness − toxicity, SEAL's target)."""
    pool = pool.copy()
    pool["gold_harmless"] = -pool["gold_toxicity"]
    pool["gold_hh"] = pool["gold_helpfulness"] - pool["gold_toxicity"]
    return pool


def preference_pairs(scale: Scale, gold: str, margin: float, label_noise: float = 0.0) -> pd.DataFrame:
    """Pairs of the scale's pool labelled by ``gold`` (cached as a `datasets` parquet file); ``label_noise``: the
    share of labels flipped, drawn from Bradley–Terry (see :func:`rewardscope.lab.pairs.preference_pairs`)."""
    from datasets import Dataset

    from .pairs import preference_pairs as make_pairs

    def build(out: Path) -> None:
        pool = derived_golds(sample_pool(scale))
        pairs = make_pairs(pool, f"gold_{gold}", margin, seed=0, label_noise=label_noise)
        Dataset.from_pandas(pairs, preserve_index=False).to_parquet(str(out / "pairs.parquet"))

    return pd.read_parquet(artifacts.cached("lab-pairs", _pairs_params(scale, gold, margin, label_noise), VERSION,
                                            build).path / "pairs.parquet")


def _pairs_params(scale: Scale, gold: str, margin: float, label_noise: float) -> dict:
    return {"pool": pool_params(scale), "gold": gold, "margin": margin, "label_noise": label_noise}


def recipe_pairs(recipe: str | RMRecipe, scale: str | Scale = "default") -> pd.DataFrame:
    """The preference pairs a lab RM recipe is trained and tested on (its gold, margin and label noise)."""
    recipe = recipe if isinstance(recipe, RMRecipe) else _recipe(recipe)
    scale = scale if isinstance(scale, Scale) else _scale(scale)
    if scale.gold_override:  # smoke: one gold for every RM, but the recipe's label noise
        return preference_pairs(scale, scale.gold_override, 0.0, recipe.label_noise)
    return preference_pairs(scale, recipe.gold, recipe.margin, recipe.label_noise)


def _recipe(name: str) -> RMRecipe:
    if name not in RM_RECIPES:
        raise ValueError(f"unknown lab reward-model recipe {name!r}; recipes: {', '.join(RM_RECIPES)}")
    return RM_RECIPES[name]


# --------------------------------------------------------------------------------------------------
# Reward models


@dataclass(frozen=True)
class RMRecipe:
    """A lab reward model: backbone role ("encoder", "decoder" or another recipe's name), gold, margin."""

    name: str
    backbone: str
    gold: str
    margin: float
    description: str
    learning_rate: float = 3e-5
    batch_size: int = 16
    label_noise: float = 0.0  # share of the pairs whose label is flipped, drawn from Bradley–Terry (pairs.preference_pairs)
    epochs: int | None = None  # None: the scale's encoder or decoder epochs


RM_RECIPES = {r.name: r for r in (
    RMRecipe("sentiment-minilm", "encoder", "vader-compound", 0.3,
             "MiniLM-L6 Bradley–Terry RM on VADER-compound preferences; also SEAL's pre RM"),
    RMRecipe("helpful-minilm", "encoder", "helpfulness", 0.1,
             "MiniLM-L6 Bradley–Terry RM on the MiniLM-similarity helpfulness proxy"),
    RMRecipe("sentiment-smollm2", "decoder", "vader-compound", 0.3,
             "SmolLM2-135M (top layers fine-tuned) Bradley–Terry RM on VADER-compound preferences",
             learning_rate=1e-4),
    RMRecipe("helpful-smollm2", "decoder", "helpfulness", 0.1,
             "SmolLM2-135M (top layers fine-tuned) Bradley–Terry RM on the helpfulness proxy (chapter 3's 2 x 2: "
             "two golds on two backbones)", learning_rate=1e-4, epochs=2),  # validation 0.825, 0.838: held-out 0.810
    RMRecipe("concise-minilm", "encoder", "concise", 2.0,
             "MiniLM-L6 Bradley–Terry RM preferring the shorter response (by at least 2 words); chapter 5's property "
             "that conflicts with helpfulness"),
    RMRecipe("seal-post", "sentiment-minilm", "hh", 0.1,
             "SEAL's post RM: sentiment-minilm further trained on the helpful-and-harmless target set, whose labels "
             "are drawn from Bradley–Terry with a quarter flipped (human labels are noisy; SEAL's resistance needs it)",
             label_noise=0.25, learning_rate=6e-5),  # at 3e-5 it reached 0.797 against the gold; 6e-5: 0.843
)}


def _rm_name(recipe: str, scale: Scale) -> str:
    return recipe if scale.name == "default" else f"{recipe}-{scale.name}"


def _recipe_key(recipe) -> dict:
    """A recipe's fields that change what it builds (its description is prose)."""
    return {k: v for k, v in asdict(recipe).items() if k != "description"}


def rm_config(recipe: RMRecipe, scale: Scale):
    """(training config, gold, margin) of a lab RM recipe at a scale."""
    from ..training.train import BTConfig

    if recipe.backbone == "encoder":
        backbone, trainable, epochs = scale.encoder, "all", scale.encoder_epochs
    elif recipe.backbone == "decoder":
        backbone, trainable, epochs = scale.decoder, scale.decoder_top_layers, scale.decoder_epochs
    else:
        backbone, trainable, epochs = _rm_name(recipe.backbone, scale), "all", scale.encoder_epochs
    epochs = recipe.epochs or epochs
    gold, margin = (scale.gold_override, 0.0) if scale.gold_override else (recipe.gold, recipe.margin)
    batch_size = scale.decoder_batch_size if recipe.backbone == "decoder" else recipe.batch_size
    config = BTConfig(backbone=backbone, trainable=trainable, epochs=epochs, learning_rate=recipe.learning_rate,
                      batch_size=batch_size, max_length=128, cache_trunk=recipe.backbone == "decoder",
                      bf16=scale.train_bf16 and hf.fast_bf16(hf.resolve_device(None)))
    return config, gold, margin


def rm_params(recipe: RMRecipe, scale: Scale) -> dict:
    """What a lab RM depends on (its cache key): its recipe, its pairs, its training config and, for an RM trained
    further from another lab RM, that RM's own key. Nothing else: a change to the RL settings keeps the RMs."""
    config, gold, margin = rm_config(recipe, scale)
    params = {"recipe": _recipe_key(recipe), "pairs": _pairs_params(scale, gold, margin, recipe.label_noise),
              "training": asdict(config)}
    if recipe.backbone not in ("encoder", "decoder"):
        params["backbone"] = rm_params(RM_RECIPES[recipe.backbone], scale)
    return params


def build_reward_model(recipe: RMRecipe, scale: Scale, out: Path) -> None:
    from ..training.train import train_reward_model

    config, gold, margin = rm_config(recipe, scale)
    pairs = recipe_pairs(recipe, scale)
    result = train_reward_model(pairs, config, out, gold=gold)  # the cache entry is the model directory
    metrics = dict(result.metrics, label_noise=float(pairs["flipped"].mean()))
    if pairs["flipped"].any():  # accuracy against the noise-free gold order as well as against the noisy labels
        flipped = pairs.loc[pairs["split"] == "test", "flipped"].to_numpy()
        metrics["heldout_gold_accuracy"] = float(np.mean(result.test_correct != flipped))
    write_sidecar(out, kind="reward-model", architecture="decoder" if recipe.backbone == "decoder" else "encoder",
                  backbone=config.backbone, gold=gold, margin=margin, label_noise=recipe.label_noise, scale=scale.name,
                  description=recipe.description, config=asdict(config), metrics=metrics)


# --------------------------------------------------------------------------------------------------
# RL-tuned policies


@dataclass(frozen=True)
class PolicyRecipe:
    """A lab policy: the base policy tuned with GRPO on a gold reward over one prompt source."""

    name: str
    reward: str
    prompt_source: str
    description: str
    rl: dict = field(default_factory=dict)


POLICY_RECIPES = {r.name: r for r in (
    PolicyRecipe("utility-smollm2", "vader-utility", "drug-reviews",
                 "SmolLM2 tuned with GRPO on the IRM paper's VADER utility reward (drug-review continuations)",
                 rl={"learning_rate": 3e-5, "beta": 0.02}),
    PolicyRecipe("positive-smollm2", "vader-compound", "chatterbot",
                 "SmolLM2 tuned with GRPO on VADER compound sentiment (chatterbot prompts); the IRL chapter's expert",
                 rl={"learning_rate": 3e-5, "beta": 0.02}),
)}


def rl_prompts(recipe: PolicyRecipe, scale: Scale) -> tuple[list[str], list[str]]:
    """(training prompts, held-out prompts) of a policy recipe: disjoint, in a fixed order."""
    from ..data import prompts_from

    prompts = prompts_from(recipe.prompt_source, seed=1)
    return prompts[: scale.rl_prompts], prompts[scale.rl_prompts:]


def policy_rl_prompts(name: str) -> tuple[list[str], list[str]] | None:
    """(training prompts, held-out prompts) of the lab policy with zoo name ``name`` (any scale); None for a name
    that is not a lab policy (a hub id, a directory, the base policy)."""
    for scale in SCALES.values():
        for recipe in POLICY_RECIPES.values():
            if _rm_name(recipe.name, scale) == name:
                return rl_prompts(recipe, scale)
    return None


def policy_params(recipe: PolicyRecipe, scale: Scale) -> dict:
    """What a lab policy depends on (its cache key): its recipe, the base policy and the RL settings."""
    return {"recipe": _recipe_key(recipe), "base": scale.policy,
            "rl": {k: getattr(scale, k) for k in ("rl_steps", "rl_prompts", "rl_max_completion_length")}}


def build_policy(recipe: PolicyRecipe, scale: Scale, out: Path) -> None:
    from ..rewards import load_reward_model
    from ..training.rlhf import RLConfig, tune_policy

    train_prompts, _ = rl_prompts(recipe, scale)
    config = RLConfig(steps=scale.rl_steps, max_completion_length=scale.rl_max_completion_length, **recipe.rl)
    tune_policy(scale.policy, load_reward_model(recipe.reward), train_prompts, out, config)  # out is empty
    meta = read_sidecar(out)
    meta.update(kind="policy", architecture="decoder", base=scale.policy, reward=recipe.reward,
                prompt_source=recipe.prompt_source, n_train_prompts=len(train_prompts), scale=scale.name,
                description=recipe.description)
    write_sidecar(out, **meta)


# --------------------------------------------------------------------------------------------------
# Registration in the zoo


def _register(scale: Scale) -> None:
    for recipe in RM_RECIPES.values():
        name = _rm_name(recipe.name, scale)
        register_cached(name, "reward-model", f"lab: trained here ({scale.name} scale)", recipe.description,
                        lambda out, r=recipe, s=scale: build_reward_model(r, s, out), VERSION, rm_params(recipe, scale))
    for recipe in POLICY_RECIPES.values():
        name = _rm_name(recipe.name, scale)
        register_cached(name, "policy", f"lab: RL-tuned here ({scale.name} scale)", recipe.description,
                        lambda out, r=recipe, s=scale: build_policy(r, s, out), POLICY_VERSION,
                        policy_params(recipe, scale))
    pre = entry(_rm_name("sentiment-minilm", scale))
    register(replace(pre, name=_rm_name("seal-pre", scale),
                     description="SEAL's pre RM: the same model as sentiment-minilm, before training on the target set"))


def zoo_entries() -> None:
    """Add the lab's RMs and policies at every scale to the zoo (its first lookup calls this, once)."""
    for scale in SCALES.values():
        _register(scale)



# --------------------------------------------------------------------------------------------------
# Building the lab on several cores

POOL = "sample-pool"
BUILD_COST = {POOL: 38.0, "policy": 26.0, "seal-post": 16.0, "decoder": 10.0, "encoder": 5.0}  # AVX2 minutes


def build_graph(scale: str = "default") -> dict[str, tuple[str, ...]]:
    """The lab's entries at a scale with what each needs first: RMs need the sample pool (seal-post needs
    its pre RM too); the RL-tuned policies need only the base policy and a gold, so they start at once."""
    s = _scale(scale)
    graph: dict[str, tuple[str, ...]] = {POOL: ()}
    for recipe in RM_RECIPES.values():
        needs = (POOL,) if recipe.backbone in ("encoder", "decoder") else (POOL, _rm_name(recipe.backbone, s))
        graph[_rm_name(recipe.name, s)] = needs
    graph.update({_rm_name(recipe.name, s): () for recipe in POLICY_RECIPES.values()})
    return graph


def build_cost(node: str) -> float:
    """A node's rough build time (minutes on the 2-core AVX2 machine), to start the critical path first."""
    base = node.rsplit("-smoke", 1)[0]
    if base in POLICY_RECIPES:
        return BUILD_COST["policy"]
    recipe = RM_RECIPES.get(base)
    return BUILD_COST.get(node if recipe is None else recipe.name, BUILD_COST.get(recipe.backbone if recipe else "", 1.0))


def build_node(scale: str, node: str) -> None:
    """Build one node of :func:`build_graph` into the cache (in a worker process of the scheduler)."""
    if node == POOL:
        sample_pool_path(_scale(scale))
    else:
        entry(node).build()


def prebuild(scale: str = "default", jobs: int = 2) -> dict[str, float | str]:
    """Build the whole lab at a scale, ``jobs`` entries at a time; returns each entry's seconds or error."""
    from functools import partial

    from .schedule import run_graph

    graph = build_graph(scale)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return run_graph(graph, partial(build_node, scale), jobs=jobs, cost={n: build_cost(n) for n in graph},
                     threads=threads)


def _scale(name: str) -> Scale:
    if name not in SCALES:
        raise ValueError(f"unknown lab scale {name!r}; scales: {', '.join(SCALES)}")
    return SCALES[name]


# --------------------------------------------------------------------------------------------------
# Reading the lab back (for the chapter)


def lab_name(recipe: str, scale: str = "default") -> str:
    """The zoo name of a lab recipe at a scale ("sentiment-minilm" or "sentiment-minilm-smoke")."""
    return _rm_name(recipe, _scale(scale))


def reward_model_table(scale: str = "default") -> pd.DataFrame:
    """One row per lab RM: backbone, gold, margin, pair counts, trainable parameters, accuracy, time."""
    from ..zoo import locate

    rows = []
    for recipe in RM_RECIPES.values():
        meta = locate(lab_name(recipe.name, scale)).metadata
        m = meta["metrics"]
        rows.append({"reward model": lab_name(recipe.name, scale), "backbone": meta["backbone"], "gold": meta["gold"],
                     "margin": meta["margin"], "train pairs": m["n_train_pairs"], "test pairs": m["n_test_pairs"],
                     "trainable parameters": m["trainable_parameters"], "label noise": m.get("label_noise", 0.0),
                     "held-out accuracy": m["heldout_accuracy"],
                     "held-out accuracy vs gold": m.get("heldout_gold_accuracy", m["heldout_accuracy"]),
                     "train seconds": m["train_seconds"]})
    return pd.DataFrame(rows)


MIN_ACCURACY, MIN_TEST_PAIRS = 0.8, 300
"""The bar every lab RM a chapter relies on must clear: held-out accuracy against its gold of at least
MIN_ACCURACY on at least MIN_TEST_PAIRS test pairs (a chapter cannot learn from a reward model near chance)."""


def below_bar(table: pd.DataFrame, min_accuracy: float = MIN_ACCURACY, min_pairs: int = MIN_TEST_PAIRS) -> pd.DataFrame:
    """The rows of :func:`reward_model_table` that miss the bar, with a column ``why`` ("" for none)."""
    needed = {"reward model", "test pairs", "held-out accuracy vs gold"}
    if not needed <= set(table.columns):
        raise ValueError(f"table needs columns {sorted(needed)}, got {sorted(table.columns)}")
    if not 0 < min_accuracy <= 1 or min_pairs < 1:
        raise ValueError(f"min_accuracy must be in (0, 1] and min_pairs >= 1, got {min_accuracy}, {min_pairs}")
    accuracy, pairs = table["held-out accuracy vs gold"], table["test pairs"]
    why = [", ".join(([f"accuracy {a:.3f} < {min_accuracy}"] if a < min_accuracy else [])
                     + ([f"{n} test pairs < {min_pairs}"] if n < min_pairs else [])) for a, n in zip(accuracy, pairs)]
    return table.assign(why=why)[[bool(w) for w in why]]


def heldout_correct(recipe: str, scale: str = "default", against: str = "labels") -> np.ndarray:
    """Per test pair of a lab RM: whether the saved RM orders it as its ``against`` says (for bootstrap CIs):
    "labels" (chosen above rejected, the labels it was trained on) or "gold" (the noise-free gold's order)."""
    from ..rewards import load_reward_model

    if against not in ("labels", "gold"):
        raise ValueError(f"against must be 'labels' or 'gold', got {against!r}")
    name = lab_name(recipe, scale)
    pairs = recipe_pairs(recipe, scale)
    test = pairs[pairs["split"] == "test"]
    rm = load_reward_model(name)
    correct = rm.score(test["prompt"], test["chosen"]) > rm.score(test["prompt"], test["rejected"])
    return correct != test["flipped"].to_numpy() if against == "gold" else correct


def heldout_pairs(name: str, split: str = "validation") -> pd.DataFrame | None:
    """The held-out preference pairs (prompt, chosen, rejected) of a lab reward model given by its zoo name.

    ``split`` is "validation" (used only to pick the training epoch) or "test". None when the lab did not build
    ``name`` (a hub or user model): then there are no held-out pairs to calibrate it on.
    """
    if split not in ("validation", "test"):
        raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
    for scale in SCALES.values():
        for recipe in RM_RECIPES.values():
            if _rm_name(recipe.name, scale) == name:
                pairs = recipe_pairs(recipe, scale)
                return pairs[pairs["split"] == split].reset_index(drop=True)
    return None


def training_log(name: str) -> pd.DataFrame:
    """The per-step log saved beside a lab model (train_log.csv for RMs, rl_log.csv for policies)."""
    from ..zoo import resolve

    path = resolve(name)
    for file in ("train_log.csv", "rl_log.csv"):
        if (path / file).is_file():
            return pd.read_csv(path / file)
    raise ValueError(f"{name!r} has no training log")


def policy_effect(recipe: str, scale: str = "default", n_prompts: int = 64, seed: int = 0,
                  max_new_tokens: int | None = None) -> pd.DataFrame:
    """Base vs tuned policy on held-out prompts: one sampled response each (same seed), both gold-scored."""
    from ..policy import load_policy
    from ..rewards import load_reward_model

    r = POLICY_RECIPES[recipe]
    s = SCALES[scale]
    _, heldout = rl_prompts(r, s)
    prompts = heldout[:n_prompts]
    gold = load_reward_model(r.reward)
    tokens = max_new_tokens or s.rl_max_completion_length
    frame = pd.DataFrame({"prompt": prompts})
    for column, spec in (("base", s.policy), ("tuned", lab_name(recipe, scale))):
        responses = load_policy(spec).generate(prompts, max_new_tokens=tokens, seed=seed)
        frame[f"{column} response"] = responses
        frame[f"{column} gold"] = gold.score(prompts, responses)
    return frame
