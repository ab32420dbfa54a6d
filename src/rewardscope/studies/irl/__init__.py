"""Chapter 2, inverse RL: max-margin reward extraction, its paper-faithful arm and recovery metrics
(:mod:`~.irl`), and fluency under a reference LM (:mod:`~.fluency`).
"""
