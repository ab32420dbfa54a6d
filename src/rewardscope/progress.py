"""Progress bars for the library's long steps, shown where a person is watching.

In a terminal a long step shows a tqdm bar (with its ETA) on stderr. Inside a notebook kernel
stderr is the notebook, so bars stay off there (they would clutter the book), unless the runner
that launched the kernel asked for them: ``rewardscope run`` sets ``REWARDSCOPE_PROGRESS`` to a file
that the bars write to and that the runner copies to its own terminal (see ``book.execute_notebook``).
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import IO, Any

ENV = "REWARDSCOPE_PROGRESS"
_sink: IO[str] | None = None


def _runner_sink() -> IO[str] | None:
    """The file named by REWARDSCOPE_PROGRESS, opened once (line-buffered, appended), or None."""
    global _sink
    path = os.environ.get(ENV)
    if not path:
        return None
    if _sink is None or _sink.closed:
        _sink = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - kept open for the process
        atexit.register(_sink.close)
    return _sink


def bar(iterable: Any = None, *, total: int | None = None, desc: str, unit: str, progress: bool | None = None,
        long: bool = True, **kwargs: Any):
    """A tqdm bar that is shown when ``progress`` is True, or (when None) for a ``long`` step watched live.

    "Watched live" is a terminal on stderr, or a runner that asked for bars through REWARDSCOPE_PROGRESS.
    """
    from tqdm import tqdm

    sink = _runner_sink()
    if progress is None:
        progress = long and (sink is not None or sys.stderr.isatty())
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not progress, file=sink or sys.stderr,
                mininterval=1.0 if sink is not None else 0.1, **kwargs)
