"""Training: Bradley–Terry reward models (:mod:`~rewardscope.training.train`) and RL fine-tuning with TRL
(:mod:`~rewardscope.training.rlhf`).
"""
