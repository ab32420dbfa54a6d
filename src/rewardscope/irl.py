"""``rewardscope.irl``, a public path (DESIGN's API): the code lives in :mod:`rewardscope.studies.irl.irl`.

This module *is* that one: ``rewardscope.irl is rewardscope.studies.irl.irl``, so its private names and
monkeypatches reach the real code.
"""

import sys

from .studies.irl import irl as _module

sys.modules[__name__] = _module
