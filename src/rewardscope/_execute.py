"""Run one notebook with papermill in this process and report its peak memory.

Invoked by ``rewardscope.book`` as ``python -m rewardscope._execute SPEC_JSON``, one process per
notebook, so that ``RUSAGE_CHILDREN`` measures that notebook's kernel alone.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> int:
    import papermill

    spec = json.loads(sys.argv[1])
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
