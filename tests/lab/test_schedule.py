"""The build scheduler: a planted graph runs in dependency order, each node once, never more than ``jobs``
at a time, the critical path first; a failure skips only what needs it."""

import time
from functools import partial
from pathlib import Path

import pytest

from rewardscope import artifacts, lab, zoo
from rewardscope.lab.schedule import check_graph, critical_path, run_graph


def _record(log: str, node: str) -> None:
    with open(log, "a") as fh:
        fh.write(f"start {node} {time.time()}\n")
    if node == "broken":
        raise RuntimeError("planted failure\nsecond line")
    time.sleep(0.3)
    with open(log, "a") as fh:
        fh.write(f"end {node} {time.time()}\n")


def _events(log: Path) -> list[tuple[str, str]]:
    return [tuple(line.split()[:2]) for line in log.read_text().splitlines()]


GRAPH = {"pool": (), "rm-a": ("pool",), "rm-b": ("pool",), "post": ("rm-a",), "policy": ()}


def test_nodes_run_after_their_inputs_once_each_and_at_most_jobs_at_a_time(tmp_path):
    log = tmp_path / "log"
    result = run_graph(GRAPH, partial(_record, str(log)), jobs=2)
    assert set(result) == set(GRAPH) and all(isinstance(v, float) for v in result.values())
    events = _events(log)
    assert sorted(n for k, n in events if k == "start") == sorted(GRAPH)  # once each
    position = {(k, n): i for i, (k, n) in enumerate(events)}
    for node, deps in GRAPH.items():
        assert all(position["end", d] < position["start", node] for d in deps)
    running = most = 0
    for kind, _ in events:
        running += 1 if kind == "start" else -1
        most = max(most, running)
    assert most == 2


def test_the_critical_path_starts_first():
    rank = critical_path(GRAPH, {"pool": 38, "policy": 26, "rm-a": 5, "rm-b": 10, "post": 16})
    assert rank["pool"] == 38 + 5 + 16 and rank["rm-a"] == 21 and rank["policy"] == 26
    order = sorted(GRAPH, key=lambda n: -rank[n])
    assert order[:2] == ["pool", "policy"]


def test_a_failure_skips_only_the_nodes_that_need_it(tmp_path):
    log = tmp_path / "log"
    graph = {"broken": (), "after": ("broken",), "later": ("after",), "free": ()}
    result = run_graph(graph, partial(_record, str(log)), jobs=2)
    assert result["broken"] == "RuntimeError: planted failure"
    assert result["after"] == "skipped: broken failed" and result["later"] == "skipped: after failed"
    assert isinstance(result["free"], float) and ("start", "after") not in _events(log)


@pytest.mark.parametrize("graph, message", [
    ({}, "non-empty mapping"),
    ({"a": ("b",)}, "depends on 'b', which is not a node"),
    ({"a": ("b",), "b": ("a",)}, "cycle: a -> b -> a"),
])
def test_bad_graphs_fail_with_one_line(graph, message):
    with pytest.raises(ValueError, match=message):
        check_graph(graph)


def test_bad_jobs_fail_with_one_line():
    with pytest.raises(ValueError, match="jobs must be a positive int"):
        run_graph(GRAPH, print, jobs=0)


def test_the_smoke_lab_builds_as_a_graph_on_two_cores(fresh_cache):
    result = lab.prebuild("smoke", jobs=2)
    assert all(isinstance(v, float) for v in result.values()), result
    for node in lab.build_graph("smoke"):
        if node != lab.POOL:
            assert artifacts.is_complete(zoo.entry(node).build())
    assert lab.build_graph("smoke")["seal-post-smoke"] == (lab.POOL, "sentiment-minilm-smoke")
