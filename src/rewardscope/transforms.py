"""``rewardscope.transforms``, a public path (DESIGN's API): the code lives in :mod:`rewardscope.studies.transforms.transforms`.

This module *is* that one: ``rewardscope.transforms is rewardscope.studies.transforms.transforms``, so its private names and
monkeypatches reach the real code.
"""

import sys

from .studies.transforms import transforms as _module

sys.modules[__name__] = _module
