"""rewardscope: a reproducible companion to five studies of reward models and RLHF."""

from . import lab as _lab  # noqa: F401 - registers the lab's models in the zoo
from .policy import Policy, load_policy
from .rewards import RewardModel, load_reward_model

__version__ = "0.1.0"
__all__ = ["Policy", "RewardModel", "load_policy", "load_reward_model", "__version__"]
