"""Chapter 1, implicit reward models read through sparse autoencoders: the SAE (:mod:`~.sae`), activation
capture (:mod:`~.activations`), the linear IRM and layer divergence (:mod:`~.irm`).
"""
