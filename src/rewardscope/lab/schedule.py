"""Build a dependency graph of cache entries on several cores, each entry once, the longest first.

The book uses it to build the lab before its notebooks run: the sample pool, the reward models trained
on it and the RL-tuned policies (which need neither) go to separate worker processes as soon as their
inputs exist, instead of one after another in the lab notebook's kernel while the other kernels wait.
Workers share the cache with every other process through its entry locks (see ``artifacts``).
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

logger = logging.getLogger(__name__)


def check_graph(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """The nodes in an order where each comes after its dependencies; a bad graph fails with one line."""
    if not isinstance(graph, Mapping) or not graph:
        raise ValueError("graph must be a non-empty mapping of node -> its dependencies")
    for node, deps in graph.items():
        if isinstance(deps, str) or not isinstance(deps, Sequence):
            raise TypeError(f"graph[{node!r}] must be a sequence of node names, got {type(deps).__name__}")
        missing = [d for d in deps if d not in graph]
        if missing:
            raise ValueError(f"graph[{node!r}] depends on {missing[0]!r}, which is not a node")
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        if state.get(node) == "done":
            return
        if state.get(node) == "open":
            raise ValueError(f"graph has a cycle: {' -> '.join((*path, node))}")
        state[node] = "open"
        for dep in graph[node]:
            visit(dep, (*path, node))
        state[node] = "done"
        order.append(node)

    for node in graph:
        visit(node, ())
    return order


def critical_path(graph: Mapping[str, Sequence[str]], cost: Mapping[str, float]) -> dict[str, float]:
    """Each node's cost plus the costliest chain of nodes that need it (its "upward rank" in list scheduling)."""
    rank: dict[str, float] = {}
    for node in reversed(check_graph(graph)):
        after = [rank[m] for m, deps in graph.items() if node in deps]
        rank[node] = cost.get(node, 1.0) + max(after, default=0.0)
    return rank


def _limit_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def run_graph(graph: Mapping[str, Sequence[str]], task: Callable[[str], object], jobs: int = 1,
              cost: Mapping[str, float] | None = None, threads: int | None = None) -> dict[str, float | str]:
    """Run ``task(node)`` for every node after its dependencies, ``jobs`` at a time in worker processes.

    Among ready nodes the one with the longest path of ``cost`` (default 1 each) to the end of the graph
    starts first, so the critical path starts early.
    ``task`` must be picklable (a module-level function or a ``functools.partial`` of one). A node whose task
    raises is reported, and the nodes that need it are skipped; the rest still run. Returns each node's
    seconds, or the error (one line) for a failed or skipped node.
    """
    order = check_graph(graph)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    rank = critical_path(graph, cost or {})
    result: dict[str, float | str] = {}
    started: dict[str, float] = {}
    running: dict[Future, str] = {}
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_limit_threads,
                             initargs=(threads,)) as pool:
        while len(result) < len(order):
            for node in order:  # nodes whose inputs failed are skipped, with the reason
                failed = next((d for d in graph[node] if isinstance(result.get(d), str)), None)
                if node not in result and node not in running.values() and failed is not None:
                    result[node] = f"skipped: {failed} failed"
            ready = [n for n in order if n not in result and n not in running.values()
                     and all(isinstance(result.get(d), float) for d in graph[n])]
            for node in sorted(ready, key=lambda n: -rank[n])[: jobs - len(running)]:
                started[node] = time.perf_counter()
                running[pool.submit(task, node)] = node
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                node = running.pop(future)
                error = future.exception()
                if error is None:
                    result[node] = round(time.perf_counter() - started[node], 1)
                    logger.info("built %s in %.1f s", node, result[node])
                else:
                    result[node] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                    logger.warning("building %s failed: %s", node, result[node])
    return {node: result[node] for node in order}
