"""Chapter 4, SEAL: feature imprint, alignment regimes, resistance and θ (:mod:`~.imprint`), labellers
(:mod:`~.labels`), meaning-preserving rewrites and sentiment flips (:mod:`~.rewrite`).
"""
