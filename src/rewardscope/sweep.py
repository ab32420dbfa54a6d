"""``rewardscope.sweep``, a public path (DESIGN's API): the code lives in the package :mod:`rewardscope.studies.sweep`.

This module *is* that package (``rewardscope.sweep is rewardscope.studies.sweep``): its public names, re-exported
from the modules along the chapter's concerns.
"""

import sys

from .studies import sweep as _module

sys.modules[__name__] = _module
