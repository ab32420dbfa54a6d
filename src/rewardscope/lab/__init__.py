"""The embedded lab: small, real reward models and RL-tuned policies built offline from the wheels' models.

- :mod:`~rewardscope.lab.recipes`: the scales, the sample pool, preference pairs, the RM and policy recipes,
  their cache keys and builders, and the tables the lab's chapter shows (its public names are re-exported here);
- :mod:`~rewardscope.lab.pairs`: sampling a pool, labelling it and drawing preference pairs (any policy, any golds);
- :mod:`~rewardscope.lab.experiments`: cached runs that chapters share (scored samples, whole RL runs);
- :mod:`~rewardscope.lab.schedule`: builds a dependency graph of cache entries on several cores.
"""

from .recipes import (
    BUILD_COST,
    GOLDS,
    MIN_ACCURACY,
    MIN_TEST_PAIRS,
    POLICY_RECIPES,
    POLICY_VERSION,
    POOL,
    RM_RECIPES,
    SCALES,
    VERSION,
    PolicyRecipe,
    RMRecipe,
    Scale,
    below_bar,
    build_cost,
    build_graph,
    build_node,
    build_policy,
    build_reward_model,
    derived_golds,
    heldout_correct,
    heldout_pairs,
    lab_name,
    lab_prompts,
    policy_effect,
    policy_params,
    policy_rl_prompts,
    pool_params,
    prebuild,
    preference_pairs,
    recipe_pairs,
    reward_model_table,
    rl_prompts,
    rm_config,
    rm_params,
    sample_pool,
    sample_pool_path,
    training_log,
    zoo_entries,
)

__all__ = [
    "BUILD_COST", "GOLDS", "MIN_ACCURACY", "MIN_TEST_PAIRS", "POLICY_RECIPES", "POLICY_VERSION", "POOL", "RM_RECIPES",
    "SCALES", "VERSION", "PolicyRecipe", "RMRecipe", "Scale", "below_bar", "build_cost", "build_graph", "build_node",
    "build_policy", "build_reward_model", "derived_golds", "heldout_correct", "heldout_pairs", "lab_name",
    "lab_prompts", "policy_effect", "policy_params", "policy_rl_prompts", "pool_params", "prebuild", "preference_pairs",
    "recipe_pairs", "reward_model_table", "rl_prompts", "rm_config", "rm_params", "sample_pool", "sample_pool_path",
    "training_log", "zoo_entries",
]
