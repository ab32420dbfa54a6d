"""Run one notebook with papermill in this process and report its peak memory.

Invoked by ``rewardscope.runner.book`` as ``python -m rewardscope.runner.execute SPEC_JSON``, one process per
notebook, so that ``RUSAGE_CHILDREN`` measures that notebook's kernel alone.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time


def _end_descendants(signum=None, frame=None) -> None:
    """Stop the kernel (and anything it started), then exit: a runner must not outlive its build."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
    if signum is not None:
        os._exit(128 + signum)


def die_with_parent(parent_pid: int | None) -> None:
    """Linux sends this process SIGTERM when the ``rewardscope`` process that started it dies, even by kill -9
    (PR_SET_PDEATHSIG); the handler ends the kernel too. Elsewhere this is a no-op."""
    signal.signal(signal.SIGTERM, _end_descendants)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before prctl took effect
        _end_descendants(signal.SIGTERM)


def main() -> int:
    import papermill

    spec = json.loads(sys.argv[1])
    die_with_parent(int(sys.argv[2]) if len(sys.argv) > 2 else None)
    start = time.time()
    error = None
    sink = open(spec["progress"], "a", buffering=1, encoding="utf-8") if spec.get("progress") else None  # noqa: SIM115
    bar = {"file": sink, "mininterval": 1.0, "desc": "cells"} if sink else False
    try:
        papermill.execute_notebook(spec["input"], spec["output"], parameters=spec["parameters"],
                                   kernel_name="python3", cwd=spec["cwd"], progress_bar=bar,
                                   log_output=spec.get("log_output", False),
                                   execution_timeout=spec.get("timeout"))
    except papermill.PapermillExecutionError as err:
        error = f"{err.ename}: {err.evalue}"
    except Exception as err:  # noqa: BLE001 - a dead kernel or timeout must still be reported
        error = f"{type(err).__name__}: {err}"
    if sink:
        sink.close()
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = {"duration": time.time() - start, "peak_rss_mb": peak_kb / 1024, "error": error}
    print("REWARDSCOPE_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
