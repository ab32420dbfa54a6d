"""``rewardscope.sae``, a public path (DESIGN's API): the code lives in :mod:`rewardscope.studies.irm.sae`.

This module *is* that one: ``rewardscope.sae is rewardscope.studies.irm.sae``, so its private names and
monkeypatches reach the real code.
"""

import sys

from .studies.irm import sae as _module

sys.modules[__name__] = _module
