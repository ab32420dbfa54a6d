"""Chapter 3, exhaustive vocabulary sweeps of reward models (:mod:`~.sweep`) and shared-trunk scoring of
RMs that share frozen bottom layers (:mod:`~.trunk`).
"""
