"""Notebook helpers: glue numbers and figures into the book's prose, and quiet library logging."""

from __future__ import annotations

import logging
import warnings
from typing import Any


def glue(name: str, value: Any, display: bool = False) -> None:
    """``myst_nb.glue`` when the book stack is installed; elsewhere (Colab) just display the value."""
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            from IPython.display import display as _display

            _display(value)
        return
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy scalars repr as "np.float64(...)", which glue's number formats cannot read
    _glue(name, value, display=display)


def quiet() -> None:
    """Silence load reports and weight-loading progress bars that would clutter executed notebooks."""
    import datasets
    import transformers

    datasets.disable_progress_bars()  # "Creating parquet from Arrow format" bars when a lab entry is built
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("rewardscope").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="transformers")


def setup(seed: int = 0) -> None:
    """Quiet logging, seed numpy/torch/random, and set one plotting style for the book."""
    import random

    import numpy as np
    import seaborn as sns
    import torch

    quiet()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    sns.set_theme(context="notebook", style="whitegrid")
