"""rewardscope: a reproducible companion to five studies of reward models and RLHF."""

import warnings

# tqdm.auto warns in kernels without ipywidgets; the book's progress bars are plain text anyway
warnings.filterwarnings("ignore", message="IProgress not found")

from .policy import Policy, load_policy  # noqa: E402
from .rewards import RewardModel, load_reward_model  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Policy", "RewardModel", "load_policy", "load_reward_model", "__version__"]
