"""Chapter 5, log-sigmoid reward transforms, references and aggregation (:mod:`~.transforms`), and
best-of-n with its KL-tilt frontier (:mod:`~.bon`).
"""
