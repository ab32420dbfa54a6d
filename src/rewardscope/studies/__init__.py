"""The five studies, one subpackage per chapter, named from its paper's vocabulary, and the reward-model
card (``audit``) built from their lenses. Studies import the core and ``training``, never the runner.
"""
