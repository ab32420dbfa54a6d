"""The reward-model card (``rewardscope audit``): every lens of the studies that needs only a reward
model, with intervals, and the comparison of cards (:mod:`~.audit`).
"""
