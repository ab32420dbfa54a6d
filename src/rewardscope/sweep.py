"""``rewardscope.sweep``, a public path (DESIGN's API): the code lives in :mod:`rewardscope.studies.sweep.sweep`.

This module *is* that one: ``rewardscope.sweep is rewardscope.studies.sweep.sweep``, so its private names and
monkeypatches reach the real code.
"""

import sys

from .studies.sweep import sweep as _module

sys.modules[__name__] = _module
