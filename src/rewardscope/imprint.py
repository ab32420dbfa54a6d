"""``rewardscope.imprint``, a public path (DESIGN's API): the code lives in :mod:`rewardscope.studies.seal.imprint`.

This module *is* that one: ``rewardscope.imprint is rewardscope.studies.seal.imprint``, so its private names and
monkeypatches reach the real code.
"""

import sys

from .studies.seal import imprint as _module

sys.modules[__name__] = _module
